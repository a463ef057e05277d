//! SPEC §5 "No request can stall the service, and every error tells the
//! truth": hostile bodies are checked in linear time off the HTTP workers,
//! and a database failure is a 503 or a 500 by its SQLSTATE, never a 422.

use std::time::Duration;

use etl_tests::{json, TestApp, TestTenant};
use reqwest::Method;
use serde_json::json;

const STORE: &str = "/api/v1/etl/raw-data/store";
const BATCH: &str = "/api/v1/etl/raw-data/store-batch";
/// A body just under the default `ETL_MAX_BODY_BYTES` (16 MiB).
const HUGE: usize = 16 * 1024 * 1024 - 1024;

fn nul_heavy_body(tenant: &TestTenant) -> String {
    let head = format!(
        r#"{{"integration_id":{},"entity_type":"jira_issues","raw_data":{{"fields":{{"labels":["#,
        tenant.integration
    );
    let item = r#""\u0000","#;
    let mut body = head;
    while body.len() + item.len() + 8 < HUGE {
        body.push_str(item);
    }
    body.push_str(r#""end"]}}}"#);
    body
}

fn deeply_nested_body(tenant: &TestTenant) -> String {
    let head = format!(
        r#"{{"integration_id":{},"entity_type":"jira_issues","raw_data":{{"a":"#,
        tenant.integration
    );
    let depth = (HUGE - head.len()) / 2;
    format!("{head}{}{}}}}}", "[".repeat(depth), "]".repeat(depth))
}

/// Sends `body` while polling `/health` and a small store of another
/// tenant: both must keep answering (each within a few seconds, a bound
/// far above their usual milliseconds and far below the body's check).
async fn send_while_others_answer(
    app: &TestApp,
    tenant: &TestTenant,
    other: &TestTenant,
    body: String,
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let big = client
        .post(app.url(STORE))
        .bearer_auth(&tenant.token)
        .header("content-type", "application/json")
        .body(body)
        .send();
    let probes = async {
        let quick = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut answered = 0;
        for i in 0..20 {
            let health = quick.get(app.url("/health")).send().await;
            assert_eq!(
                health.map(|r| r.status().as_u16()).ok(),
                Some(200),
                "/health answered while a hostile body was checked"
            );
            let small = quick
                .post(app.url(STORE))
                .bearer_auth(&other.token)
                .json(
                    &json!({"integration_id": other.integration, "entity_type": "x",
                              "external_id": format!("small-{i}"), "raw_data": {"i": i}}),
                )
                .send()
                .await;
            assert_eq!(
                small.map(|r| r.status().as_u16()).ok(),
                Some(201),
                "another tenant's small store answered"
            );
            answered += 1;
        }
        answered
    };
    let (big, answered) = tokio::join!(big, probes);
    assert_eq!(answered, 20);
    big.expect("the hostile body was answered within the statement timeout")
}

#[tokio::test]
async fn a_16_mib_body_of_nul_strings_is_stored_while_others_keep_answering() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("hostile");
    let other = app.tenant("other");
    let response = send_while_others_answer(&app, &tenant, &other, nul_heavy_body(&tenant)).await;
    assert_eq!(response.status(), 201);
    let id = json(response).await["record_id"].as_i64().expect("id");
    // Every NUL is gone; the places listed stay bounded in bytes, the
    // first ones one by one and the rest named by their field.
    assert_eq!(
        app.count(&format!(
            "SELECT jsonb_array_length(raw_data->'fields'->'labels')::bigint FROM raw_extraction_data WHERE id = {id}"
        )),
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data, jsonb_array_elements_text(raw_data->'fields'->'labels') l
              WHERE id = {id} AND l = ''"
        )) + 1
    );
    let detail = json(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    let changes = detail["ingest_changes"].as_array().expect("changes");
    assert_eq!(changes[0]["field"], "raw_data.fields.labels[0]");
    assert_eq!(changes[0]["change"], "removed_nul");
    assert_eq!(changes[changes.len() - 1]["field"], "raw_data");
    assert!(
        changes.len() < 200_000,
        "{} places listed one by one",
        changes.len()
    );
    assert_eq!(
        app.count("SELECT count(*) FROM raw_extraction_data WHERE external_id LIKE 'small-%'"),
        20
    );
}

#[tokio::test]
async fn a_16_mib_deeply_nested_body_is_a_422_while_others_keep_answering() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("hostile");
    let other = app.tenant("other");
    let response =
        send_while_others_answer(&app, &tenant, &other, deeply_nested_body(&tenant)).await;
    assert_eq!(response.status(), 422);
    let error = json(response).await;
    assert_eq!(error["errors"][0]["field"], "raw_data");
    let message = error["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("nested too deeply"), "{message}");
    assert!(
        message.len() < 1000,
        "the message quotes every level: {message}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {}",
            tenant.id
        )),
        0
    );
}

#[tokio::test]
async fn nesting_postgresql_accepts_is_stored_and_one_level_past_the_bound_is_not() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body = |depth: usize| {
        format!(
            r#"{{"integration_id":{},"entity_type":"x","raw_data":{{"a":{}1{}}}}}"#,
            tenant.integration,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    // The body's own object and raw_data's take two of the levels.
    let bound = etl_domain::json_text::MAX_NESTING;
    let stored = app.post_text(STORE, &tenant, body(bound - 2)).await;
    assert_eq!(stored.status(), 201);
    let refused = app.post_text(STORE, &tenant, body(bound - 1)).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(json(refused).await["errors"][0]["field"], "raw_data");
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 1);
}

/// Makes PostgreSQL fail the insert of a record whose external_id is
/// `raise-<SQLSTATE>` with that SQLSTATE (a trigger in this test's own
/// database): a disk full, a read-only server, a serialization failure,
/// a missing relation, or bad content, on demand.
fn raising_trigger(app: &TestApp) {
    app.execute(
        "CREATE FUNCTION raise_on_demand() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.external_id LIKE 'raise-%' THEN
             RAISE EXCEPTION 'raised by the test' USING ERRCODE = substr(NEW.external_id, 7);
           END IF;
           RETURN NEW;
         END $$",
    );
    app.execute(
        "CREATE TRIGGER raise_on_demand BEFORE INSERT ON raw_extraction_data
         FOR EACH ROW EXECUTE FUNCTION raise_on_demand()",
    );
}

/// What each SQLSTATE must be answered with.
const FAULTS: [(&str, u16); 6] = [
    ("53100", 503), // disk full
    ("40001", 503), // serialization failure
    ("40P01", 503), // deadlock
    ("25006", 503), // read-only server
    ("42P01", 500), // a missing relation
    ("22023", 422), // the value itself
];

fn record(tenant: &TestTenant, external_id: &str) -> serde_json::Value {
    json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
           "external_id": external_id, "raw_data": {"k": external_id}})
}

async fn check_answer(response: reqwest::Response, code: &str, status: u16, field: &str) {
    assert_eq!(response.status().as_u16(), status, "SQLSTATE {code}");
    let retry_after = response.headers().contains_key("retry-after");
    let body = json(response).await;
    match status {
        503 => {
            assert!(retry_after, "SQLSTATE {code}: 503 carries Retry-After");
            assert_eq!(body["code"], "service_unavailable");
        }
        500 => {
            assert_eq!(body["code"], "internal_error");
            assert!(!body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("raised by the test"));
        }
        _ => assert_eq!(body["errors"][0]["field"], field, "SQLSTATE {code}"),
    }
}

#[tokio::test]
async fn a_single_store_is_answered_by_the_sqlstate_of_its_failure() {
    let app = TestApp::spawn().await;
    raising_trigger(&app);
    let tenant = app.tenant("acme");
    for (code, status) in FAULTS {
        let response = app
            .post_json(STORE, &tenant, &record(&tenant, &format!("raise-{code}")))
            .await;
        check_answer(response, code, status, "raw_data").await;
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
    let fine = app
        .post_json(STORE, &tenant, &record(&tenant, "fine"))
        .await;
    assert_eq!(fine.status(), 201);
}

#[tokio::test]
async fn an_idempotent_store_is_answered_by_the_sqlstate_and_keeps_no_answer() {
    let app = TestApp::spawn().await;
    raising_trigger(&app);
    let tenant = app.tenant("acme");
    for (code, status) in FAULTS {
        let key = format!("key-{code}");
        for _ in 0..2 {
            let response = app
                .authed(Method::POST, STORE, &tenant)
                .header("Idempotency-Key", &key)
                .json(&record(&tenant, &format!("raise-{code}")))
                .send()
                .await
                .expect("request");
            check_answer(response, code, status, "raw_data").await;
        }
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys"), 0);
}

#[tokio::test]
async fn a_batch_is_answered_by_the_sqlstate_of_the_record_that_fails() {
    let app = TestApp::spawn().await;
    raising_trigger(&app);
    let tenant = app.tenant("acme");
    for (code, status) in FAULTS {
        let body = json!({"records": [
            record(&tenant, "first"),
            record(&tenant, &format!("raise-{code}")),
            record(&tenant, "third"),
        ]});
        let response = app.post_json(BATCH, &tenant, &body).await;
        check_answer(response, code, status, "records[1].raw_data").await;
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
}

#[tokio::test]
async fn a_record_failing_for_want_of_disk_fails_alone_among_concurrent_stores() {
    let app = TestApp::spawn().await;
    raising_trigger(&app);
    let tenant = app.tenant("acme");
    let app = &app;
    let tenant = &tenant;
    let requests = (0..80).map(|i| async move {
        let external_id = if i % 4 == 0 {
            "raise-53100".to_owned()
        } else {
            format!("ok-{i}")
        };
        let status = app
            .post_json(STORE, tenant, &record(tenant, &external_id))
            .await
            .status();
        (external_id, status.as_u16())
    });
    for (external_id, status) in futures_util::future::join_all(requests).await {
        let expected = if external_id.starts_with("raise") {
            503
        } else {
            201
        };
        assert_eq!(status, expected, "{external_id}");
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 60);
}

#[tokio::test]
async fn an_extract_payload_keeps_every_digit_in_job_answers() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body = format!(
        r#"{{"entity_type":"jira_issues","integration_id":{},"payload":{{"big":1e400,"long":123456789012345678901234567890,"fine":0.10000000000000000000001}}}}"#,
        tenant.integration
    );
    let response = app.post_text("/api/v1/etl/pipeline", &tenant, body).await;
    assert_eq!(response.status(), 202);
    let id = json(response).await["job_id"].as_i64().expect("id");
    for path in [
        format!("/api/v1/etl/jobs/{id}"),
        "/api/v1/etl/jobs?job_type=extract".to_owned(),
    ] {
        let response = app.get_as(&path, &tenant).await;
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.expect("text");
        for digits in [
            "1e400",
            "123456789012345678901234567890",
            "0.10000000000000000000001",
        ] {
            // jsonb may spell a number another way, never lose a digit.
            let kept = text.contains(digits)
                || (digits == "1e400" && text.contains(&format!("1{}", "0".repeat(400))));
            assert!(
                kept,
                "{path} lost {digits}: {}",
                &text[..text.len().min(300)]
            );
        }
    }
}

#[tokio::test]
async fn a_job_list_shows_large_values_truncated_and_the_job_whole() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let big = "x".repeat(100 * 1024);
    let body = json!({"entity_type": "jira_issues", "integration_id": tenant.integration,
                      "payload": {"jql": big}});
    let response = app.post_json("/api/v1/etl/pipeline", &tenant, &body).await;
    assert_eq!(response.status(), 202);
    let id = json(response).await["job_id"].as_i64().expect("id");
    let listed = json(app.get_as("/api/v1/etl/jobs", &tenant).await).await;
    assert_eq!(listed[0]["payload"]["truncated"], true);
    assert!(listed[0]["payload"]["bytes"].as_i64().expect("bytes") > 100 * 1024);
    let whole = json(app.get_as(&format!("/api/v1/etl/jobs/{id}"), &tenant).await).await;
    assert_eq!(
        whole["payload"]["payload"]["jql"].as_str().map(str::len),
        Some(100 * 1024)
    );
}

#[tokio::test]
async fn ready_answers_from_kept_state_while_the_store_writers_are_busy() {
    let app = TestApp::spawn().await;
    // Each record of this test takes PostgreSQL 0.2 s to store: forty of
    // them keep both writers busy for seconds, with records queued behind.
    app.execute(
        "CREATE FUNCTION slow_store() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$",
    );
    app.execute(
        "CREATE TRIGGER slow_store BEFORE INSERT ON raw_extraction_data
         FOR EACH ROW EXECUTE FUNCTION slow_store()",
    );
    let tenant = app.tenant("acme");
    let app = &app;
    let tenant = &tenant;
    let stores = futures_util::future::join_all((0..40).map(|i| async move {
        app.post_json(STORE, tenant, &record(tenant, &format!("slow-{i}")))
            .await
            .status()
            .as_u16()
    }));
    let readiness = async {
        // Once records wait, /ready must not wait behind them.
        let waiting = etl_tests::poll_until(Duration::from_secs(10), || async {
            let stored = app.count("SELECT count(*) FROM raw_extraction_data");
            (stored < 30).then_some(())
        })
        .await;
        assert!(waiting.is_some());
        let mut answers = Vec::new();
        for _ in 0..5 {
            let ready = app.get("/ready").await;
            answers.push(ready.status().as_u16());
        }
        answers
    };
    let (stored, answers) = tokio::join!(stores, readiness);
    assert!(stored.iter().all(|s| *s == 201), "{stored:?}");
    assert_eq!(answers, [200; 5], "/ready while the writers were busy");
}

/// Pages a list to its end with `after_id`, returning every id once.
async fn page_through(app: &TestApp, tenant: &TestTenant, path: &str) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut after = 0;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let response = app
            .get_as(&format!("{path}{sep}limit=1000&after_id={after}"), tenant)
            .await;
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.expect("text");
        assert!(text.len() <= 4096, "{path}: a page of {} bytes", text.len());
        let page: Vec<serde_json::Value> = serde_json::from_str(&text).expect("array");
        if page.is_empty() {
            return (ids, pages);
        }
        pages += 1;
        for item in &page {
            ids.push(item["id"].as_i64().expect("id"));
        }
        after = *ids.last().expect("one");
    }
}

#[tokio::test]
async fn a_small_response_bound_ends_pages_early_and_paging_collects_everything_once() {
    let app = TestApp::builder()
        .state(|state| state.with_max_response_bytes(4096))
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    let records: Vec<serde_json::Value> = (0..60)
        .map(|i| {
            json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
                   "external_id": format!("{i}"), "raw_data": {"pad": "p".repeat(300), "i": i}})
        })
        .collect();
    let stored = app
        .post_json(BATCH, &tenant, &json!({"records": records}))
        .await;
    assert_eq!(stored.status(), 201);
    let (ids, pages) = page_through(
        &app,
        &tenant,
        "/api/v1/etl/raw-data?entity_type=jira_issues",
    )
    .await;
    assert_eq!(ids.len(), 60);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "each once, in order");
    assert!(pages >= 6, "pages ended early: {pages}");
    // Jobs too (each extract job carries a 300-byte payload).
    for _ in 0..30 {
        let body = json!({"entity_type": "jira_issues", "integration_id": tenant.integration,
                          "payload": {"pad": "p".repeat(300)}});
        let response = app.post_json("/api/v1/etl/pipeline", &tenant, &body).await;
        assert_eq!(response.status(), 202);
    }
    let (jobs, pages) = page_through(&app, &tenant, "/api/v1/etl/jobs").await;
    assert_eq!(jobs.len(), 30);
    assert!(pages >= 3, "pages ended early: {pages}");
}

#[tokio::test]
async fn stats_samples_are_at_most_500_characters() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let stored = app
        .post_json(STORE, &tenant, &record(&tenant, "long-message"))
        .await;
    let id = json(stored).await["record_id"].as_i64().expect("id");
    let long = "é".repeat(2000);
    let failed = app
        .authed(
            Method::PUT,
            &format!("/api/v1/etl/raw-data/{id}/status"),
            &tenant,
        )
        .json(&json!({"status": "failed", "error_details": {"code": "custom", "message": long}}))
        .send()
        .await
        .expect("request");
    assert_eq!(failed.status(), 200);
    let figures = json(app.get_as("/api/v1/etl/stats", &tenant).await).await;
    let sample = figures["failures"][0]["sample"].as_str().expect("sample");
    assert_eq!(sample.chars().count(), 500);
    assert!(long.starts_with(sample));
}

#[tokio::test]
async fn a_dry_run_whose_answer_would_pass_the_bound_is_a_422_saying_so() {
    let app = TestApp::builder()
        .state(|state| state.with_max_response_bytes(4096))
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    let issue = json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
        "raw_data": {"id": "1", "key": "K-1", "fields": {"summary": "s".repeat(8000),
                     "project": {"key": "K"}}}});
    let id = json(app.post_json(STORE, &tenant, &issue).await).await["record_id"]
        .as_i64()
        .expect("id");
    let body = json!({"entity_type": "jira_issues", "raw_data_ids": [id],
                      "transform_options": {"dry_run": true}});
    let response = app.post_json("/api/v1/etl/transform", &tenant, &body).await;
    assert_eq!(response.status(), 422);
    let error = json(response).await;
    assert_eq!(error["errors"][0]["field"], "raw_data_ids");
    assert!(error["detail"]
        .as_str()
        .is_some_and(|d| d.contains("ETL_MAX_RESPONSE_BYTES")));
}

#[tokio::test]
async fn final_table_pages_end_early_under_a_small_response_bound() {
    let app = TestApp::builder()
        .state(|state| state.with_max_response_bytes(4096))
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    app.execute(&format!(
        "INSERT INTO work_items (tenant_id, integration_id, external_id, key, summary)
         SELECT {}, {}, g::text, 'K-' || g, repeat('s', 300) FROM generate_series(1, 40) AS g",
        tenant.id, tenant.integration
    ));
    let (ids, pages) = page_through(&app, &tenant, "/api/v1/etl/work-items").await;
    assert_eq!(ids.len(), 40);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(pages >= 4, "pages ended early: {pages}");
}

#[tokio::test]
async fn large_bodies_wait_for_room_and_give_it_back() {
    // Room for one 600 KiB body at a time.
    let app = TestApp::builder()
        .http(etl_http::HttpConfig {
            max_body_bytes: 1024 * 1024,
            max_large_bodies_bytes: 1024 * 1024,
            ..etl_http::HttpConfig::default()
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    let big = |i: usize| {
        json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
               "external_id": format!("big-{i}"), "raw_data": {"pad": "p".repeat(600 * 1024)}})
    };
    // One after another: each gives its room back when answered.
    for i in 0..3 {
        assert_eq!(app.post_json(STORE, &tenant, &big(i)).await.status(), 201);
    }
    // At once: they take turns, and small stores never wait for them.
    let app = &app;
    let tenant = &tenant;
    let bigs = futures_util::future::join_all(
        (3..7).map(|i| async move { app.post_json(STORE, tenant, &big(i)).await.status() }),
    );
    let small_record = record(tenant, "small");
    let small = app.post_json(STORE, tenant, &small_record);
    let (bigs, small) = tokio::join!(bigs, small);
    assert_eq!(small.status(), 201);
    assert!(bigs.iter().all(|s| *s == 201), "{bigs:?}");
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 8);
}
