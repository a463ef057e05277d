"""Generated API cases against a running server (`cargo xtask fuzz-api`).

For every operation of the served OpenAPI document, schemathesis generates
requests from the declared schemas; each answer is checked for a server
error (5xx) and against the response schema the document declares. Prints
one summary line, `cases N, server errors E, schema violations V`, after a
line per failure (at most a few per operation and kind).
"""

import argparse
import json
import math
import sys
import urllib.request

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.specs.openapi.checks import response_schema_conformance


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--cases", type=int, default=1000)
    args = parser.parse_args()

    # The whole document first, with a real OpenAPI 3 validator: operation
    # ids, references, schemas (SPEC §5).
    from openapi_spec_validator import validate

    with urllib.request.urlopen(f"{args.base_url}/api/v1/etl/openapi.json") as answer:
        document = json.load(answer)
    try:
        validate(document)
    except Exception as error:  # the validator's errors share no base class
        print(f"the OpenAPI document is invalid: {error}"[:2000])
        print("cases 0, server errors 0, schema violations 1")
        return 1
    ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    if len(ids) != len(set(ids)):
        print(f"operationIds used twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
        print("cases 0, server errors 0, schema violations 1")
        return 1
    print(f"the OpenAPI document is valid ({len(ids)} operations, each id unique)")

    # utoipa writes OpenAPI 3.1, which schemathesis 3 supports behind a flag.
    schemathesis.experimental.OPEN_API_3_1.enable()
    schema = schemathesis.from_uri(
        f"{args.base_url}/api/v1/etl/openapi.json", base_url=args.base_url
    )
    operations = []
    broken = 0
    for result in schema.get_all_operations():
        if type(result).__name__ == "Err":
            print(f"schema error: {result.err()}"[:600])
            broken += 1
            continue
        operations.append(result.ok())
    if not operations:
        print("cases 0, server errors 0, schema violations 1")
        return 1
    per_operation = max(1, math.ceil(args.cases / len(operations)))
    headers = {"Authorization": f"Bearer {args.token}"}
    totals = {"cases": 0, "server": 0, "schema": 0}
    shown = {}

    def report(kind, operation, case, response, detail):
        key = (kind, operation.verbose_name)
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= 2:
            body = response.text[:300].replace("\n", " ")
            print(
                f"{kind}: {operation.verbose_name} -> {response.status_code} "
                f"({response.headers.get('content-type')}): "
                f"{detail[:400]} | body {body} | sent {case.body if case.body is not None else ''}"[:1200]
            )

    # Some operations have few distinct inputs (hypothesis stops early), so
    # rounds with new seeds run until the asked-for number of cases is met.
    for round_number in range(10):
        if totals["cases"] >= args.cases:
            break
        for operation in operations:
            run_operation(operation, per_operation, round_number, headers, totals, report)

    totals["schema"] += broken
    print(
        f"cases {totals['cases']}, server errors {totals['server']}, "
        f"schema violations {totals['schema']}"
    )
    return 0 if totals["server"] == 0 and totals["schema"] == 0 else 1


def run_operation(operation, examples, round_number, headers, totals, report):
    @seed(round_number)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy())
    def run(case):
        response = case.call(headers=headers, timeout=30)
        totals["cases"] += 1
        if response.status_code >= 500:
            totals["server"] += 1
            report("server error", operation, case, response, "")
        try:
            case.validate_response(response, checks=(response_schema_conformance,))
        except Exception as failure:  # CheckFailed, or a group of them
            totals["schema"] += 1
            report("schema violation", operation, case, response, str(failure))

    try:
        run()
    except Exception as error:  # a generation failure counts against the schema
        totals["schema"] += 1
        print(f"generation error: {operation.verbose_name}: {error}"[:600])


if __name__ == "__main__":
    sys.exit(main())
