//! SPEC §5 "What is stored is what was sent": exact numbers, the NUL rule,
//! and containment (no record makes another request fail).

use std::collections::BTreeMap;

use etl_tests::{json, TestApp, TestTenant};
use serde_json::value::RawValue;
use serde_json::{json, Value};

const STORE: &str = "/api/v1/etl/raw-data/store";
const BATCH: &str = "/api/v1/etl/raw-data/store-batch";

/// Numbers a binary float would change, as sent and as PostgreSQL writes
/// them back (`jsonb` keeps the value, in its own decimal notation).
fn exact_numbers() -> Vec<(String, String)> {
    let mut cases: Vec<(String, String)> = [
        "12345678901234567890123",
        "-98765432109876543210987654321",
        "0.1234567890123456789012345",
        "90.28571428571429",
        "0.30000000000000004",
        "1.10",
        "18446744073709551616",
    ]
    .iter()
    .map(|n| (n.to_string(), n.to_string()))
    .collect();
    cases.push(("1e-320".into(), format!("0.{}1", "0".repeat(319))));
    cases.push(("1e-16383".into(), format!("0.{}1", "0".repeat(16382))));
    let long_fraction = format!("3.{}", "1415926535".repeat(500));
    cases.push((long_fraction.clone(), long_fraction));
    cases
}

fn body_with(tenant: &TestTenant, raw_data: &str) -> String {
    format!(
        r#"{{"integration_id":{},"entity_type":"jira_issues","raw_data":{raw_data}}}"#,
        tenant.integration
    )
}

/// The texts of `raw_data.n[*]` in a record as answered.
fn numbers_of(record_text: &str) -> Vec<String> {
    let record: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(record_text).expect("a record object");
    let raw: BTreeMap<String, Vec<Box<RawValue>>> =
        serde_json::from_str(record["raw_data"].get()).expect("raw_data with n");
    raw["n"].iter().map(|n| n.get().to_owned()).collect()
}

fn raw_data_of_numbers(numbers: &[(String, String)]) -> String {
    let sent: Vec<&str> = numbers.iter().map(|(s, _)| s.as_str()).collect();
    format!(r#"{{"n":[{}]}}"#, sent.join(","))
}

async fn text(response: reqwest::Response) -> String {
    response.text().await.expect("body")
}

#[tokio::test]
async fn every_digit_round_trips_through_store_batch_and_both_reads() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let cases = exact_numbers();
    let expected: Vec<String> = cases.iter().map(|(_, back)| back.clone()).collect();
    let raw_data = raw_data_of_numbers(&cases);

    let stored = app
        .post_text(STORE, &tenant, body_with(&tenant, &raw_data))
        .await;
    assert_eq!(stored.status(), 201);
    let id = json(stored).await["record_id"].as_i64().expect("id");
    let detail = text(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    assert_eq!(numbers_of(&detail), expected, "GET /raw-data/{{id}}");

    let batch = format!(
        r#"{{"records":[{},{}]}}"#,
        body_with(&tenant, "{}"),
        body_with(&tenant, &raw_data)
    );
    let response = app.post_text(BATCH, &tenant, batch).await;
    assert_eq!(response.status(), 201);
    let batch_id = json(response).await["record_ids"][1].as_i64().expect("id");
    let listed = text(
        app.get_as("/api/v1/etl/raw-data?entity_type=jira_issues", &tenant)
            .await,
    )
    .await;
    let listed: Vec<Box<RawValue>> = serde_json::from_str(&listed).expect("a list");
    assert_eq!(listed.len(), 3);
    for record in [&listed[0], &listed[2]] {
        assert_eq!(numbers_of(record.get()), expected, "GET /raw-data");
    }
    let detail = text(
        app.get_as(&format!("/api/v1/etl/raw-data/{batch_id}"), &tenant)
            .await,
    )
    .await;
    assert_eq!(numbers_of(&detail), expected, "stored by store-batch");
}

#[tokio::test]
async fn a_number_beyond_numeric_is_a_422_naming_the_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    for number in ["1e-20000", "1e200000", "1e-16384"] {
        let response = app
            .post_text(
                STORE,
                &tenant,
                body_with(&tenant, &format!(r#"{{"a":{{"b":[{number}]}}}}"#)),
            )
            .await;
        assert_eq!(response.status(), 422, "{number}");
        let body = json(response).await;
        assert_eq!(body["code"], "validation_error");
        assert_eq!(body["errors"][0]["field"], "raw_data", "{body}");
    }
    let metadata = format!(
        r#"{{"integration_id":{},"entity_type":"x","raw_data":{{}},"extraction_metadata":{{"p":1e-20000}}}}"#,
        tenant.integration
    );
    let body = json(app.post_text(STORE, &tenant, metadata).await).await;
    assert_eq!(body["errors"][0]["field"], "extraction_metadata", "{body}");
    let batch = format!(
        r#"{{"records":[{},{}]}}"#,
        body_with(&tenant, "{}"),
        body_with(&tenant, r#"{"n":1e200000}"#)
    );
    let response = app.post_text(BATCH, &tenant, batch).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        json(response).await["errors"][0]["field"],
        "records[1].raw_data"
    );
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
}

#[tokio::test]
async fn nul_is_removed_from_strings_and_keys_and_each_place_is_listed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body = format!(
        r#"{{"integration_id":{},"entity_type":"jira_issues","external_id":"1",
            "raw_data":{{"fields":{{"summary":"ends in nul\u0000","labels":["a","b\u0000c"],"ke\u0000y":1,"n":1.50}}}},
            "extraction_metadata":{{"cursor":"\u0000x"}}}}"#,
        tenant.integration
    );
    let response = app.post_text(STORE, &tenant, body).await;
    assert_eq!(response.status(), 201);
    let id = json(response).await["record_id"].as_i64().expect("id");
    let detail = json(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    assert_eq!(
        detail["raw_data"],
        json!({"fields": {"summary": "ends in nul", "labels": ["a", "bc"], "key": 1, "n": 1.50}})
    );
    assert_eq!(detail["extraction_metadata"], json!({"cursor": "x"}));
    let mut places: Vec<String> = detail["ingest_changes"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            assert_eq!(c["change"], "removed_nul");
            c["field"].as_str().expect("field").to_owned()
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [
            "extraction_metadata.cursor",
            "raw_data.fields.key",
            "raw_data.fields.labels[1]",
            "raw_data.fields.summary"
        ]
    );
}

#[tokio::test]
async fn a_batch_with_nul_in_one_record_stores_all_and_lists_only_its_changes() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let batch = format!(
        r#"{{"records":[{},{},{}]}}"#,
        body_with(&tenant, r#"{"s":"ok"}"#),
        body_with(&tenant, r#"{"s":"n\u0000ul","deep":{"x":["\u0000"]}}"#),
        body_with(&tenant, r#"{"s":"ok too"}"#)
    );
    let response = app.post_text(BATCH, &tenant, batch).await;
    assert_eq!(response.status(), 201);
    let ids: Vec<i64> = json(response).await["record_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in input order: {ids:?}"
    );
    let mut changes = Vec::new();
    for id in &ids {
        let detail = json(
            app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
                .await,
        )
        .await;
        changes.push(detail["ingest_changes"].clone());
    }
    assert_eq!(changes[0], json!([]));
    assert_eq!(
        changes[1],
        json!([
            {"field": "raw_data.s", "change": "removed_nul"},
            {"field": "raw_data.deep.x[0]", "change": "removed_nul"}
        ])
    );
    assert_eq!(changes[2], json!([]));
}

#[tokio::test]
async fn nul_in_identifiers_and_query_parameters_is_a_422_naming_them() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body = format!(
        r#"{{"integration_id":{},"entity_type":"jira_issues","external_id":"a\u0000b","raw_data":{{}}}}"#,
        tenant.integration
    );
    let response = app.post_text(STORE, &tenant, body).await;
    assert_eq!(response.status(), 422);
    assert_eq!(json(response).await["errors"][0]["field"], "external_id");
    let batch = format!(
        r#"{{"records":[{},{{"integration_id":{},"entity_type":"jira\u0000_issues","raw_data":{{}}}}]}}"#,
        body_with(&tenant, "{}"),
        tenant.integration
    );
    let response = app.post_text(BATCH, &tenant, batch).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        json(response).await["errors"][0]["field"],
        "records[1].entity_type"
    );
    for (path, field) in [
        ("/api/v1/etl/work-items?project_key=a%00b", "project_key"),
        ("/api/v1/etl/work-items?status=%00", "status"),
        ("/api/v1/etl/pull-requests?repository=a%00b", "repository"),
        ("/api/v1/etl/raw-data?entity_type=a%00b", "entity_type"),
        ("/api/v1/etl/jobs?entity_type=a%00b", "entity_type"),
    ] {
        let response = app.get_as(path, &tenant).await;
        assert_eq!(response.status(), 422, "{path}");
        assert_eq!(json(response).await["errors"][0]["field"], field, "{path}");
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
}

/// Makes PostgreSQL itself refuse records whose external_id is `poison`
/// (a trigger in this test's own database): a refusal no check in the
/// service can see coming.
fn poison_trigger(app: &TestApp) {
    app.execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.external_id = 'poison' THEN
             RAISE EXCEPTION 'poisoned record' USING ERRCODE = '22023';
           END IF;
           RETURN NEW;
         END $$",
    );
    app.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON raw_extraction_data
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    );
}

#[tokio::test]
async fn a_record_postgresql_refuses_fails_alone_among_concurrent_stores_of_other_tenants() {
    let app = TestApp::spawn().await;
    poison_trigger(&app);
    let good = app.tenant("good");
    let hostile = app.tenant("hostile");
    let app = &app;
    let mut requests = Vec::new();
    for i in 0..120 {
        let (tenant, external_id) = if i % 4 == 0 {
            (&hostile, "poison".to_owned())
        } else {
            (&good, format!("ok-{i}"))
        };
        let body = json!({
            "integration_id": tenant.integration, "entity_type": "jira_issues",
            "external_id": external_id, "raw_data": {"i": i}
        });
        requests.push(async move {
            (
                external_id,
                app.post_json(STORE, tenant, &body).await.status(),
            )
        });
    }
    let outcomes = futures_util::future::join_all(requests).await;
    let mut stored = 0;
    for (external_id, status) in outcomes {
        if external_id == "poison" {
            assert_eq!(status, 422, "the refused record gets a 4xx");
        } else {
            assert_eq!(
                status, 201,
                "{external_id} was grouped with a refused record"
            );
            stored += 1;
        }
    }
    assert_eq!(stored, 90);
    assert_eq!(
        app.count("SELECT count(*) FROM raw_extraction_data WHERE external_id LIKE 'ok-%'"),
        90
    );
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 90);
}

#[tokio::test]
async fn a_batch_record_postgresql_refuses_is_a_422_naming_its_index() {
    let app = TestApp::spawn().await;
    poison_trigger(&app);
    let tenant = app.tenant("acme");
    let record = |external_id: &str| json!({"integration_id": tenant.integration, "entity_type": "x", "external_id": external_id, "raw_data": {}});
    let body = json!({"records": [record("a"), record("b"), record("poison"), record("c")]});
    let response = app.post_json(BATCH, &tenant, &body).await;
    assert_eq!(response.status(), 422);
    let body = json(response).await;
    assert_eq!(body["errors"][0]["field"], "records[2].raw_data", "{body}");
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
    let keyed = app
        .authed(reqwest::Method::POST, STORE, &tenant)
        .header("idempotency-key", "k1")
        .json(&record("poison"))
        .send()
        .await
        .expect("sent");
    assert_eq!(keyed.status(), 422, "the idempotent path too");
}

#[tokio::test]
async fn every_timestamp_answered_is_rfc3339_utc_with_z() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body =
        json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {}});
    let id = json(app.post_json(STORE, &tenant, &body).await).await["record_id"]
        .as_i64()
        .expect("id");
    let status = json!({"status": "failed", "error_details": {"code": "x"}});
    let response = app
        .authed(
            reqwest::Method::PUT,
            &format!("/api/v1/etl/raw-data/{id}/status"),
            &tenant,
        )
        .json(&status)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let pipeline =
        json!({"entity_type": "jira_issues", "integration_id": tenant.integration, "payload": {}});
    assert_eq!(
        app.post_json("/api/v1/etl/pipeline", &tenant, &pipeline)
            .await
            .status(),
        202
    );
    let detail = json(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    let list = json(
        app.get_as("/api/v1/etl/raw-data?entity_type=jira_issues", &tenant)
            .await,
    )
    .await;
    let jobs = json(app.get_as("/api/v1/etl/jobs", &tenant).await).await;
    let mut times = vec![
        detail["created_at"].clone(),
        detail["processed_at"].clone(),
        list[0]["created_at"].clone(),
    ];
    for field in ["created_at", "scheduled_at"] {
        times.push(jobs[0][field].clone());
    }
    for time in times {
        let text = time
            .as_str()
            .unwrap_or_else(|| panic!("a timestamp: {time}"));
        assert!(text.ends_with('Z'), "{text}");
        chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[tokio::test]
async fn a_dry_run_transform_answers_custom_fields_with_every_digit() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let raw = r#"{"id":"7","fields":{"summary":"s","customfield_1":12345678901234567890123,"customfield_2":90.28571428571429}}"#;
    let response = app.post_text(STORE, &tenant, body_with(&tenant, raw)).await;
    let id = json(response).await["record_id"].as_i64().expect("id");
    let body = json!({"entity_type": "jira_issues", "raw_data_ids": [id], "transform_options": {"dry_run": true}});
    let response = app.post_json("/api/v1/etl/transform", &tenant, &body).await;
    assert_eq!(response.status(), 200);
    let text = text(response).await;
    assert!(
        text.contains(r#""customfield_1":12345678901234567890123"#)
            && text.contains(r#""customfield_2":90.28571428571429"#),
        "{text}"
    );
}
