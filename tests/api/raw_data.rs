//! SPEC §5, raw data routes: store, batch, list, read, status.

use etl_tests::{json, TestApp, TestTenant};
use reqwest::Method;
use serde_json::{json, Value};

const STORE: &str = "/api/v1/etl/raw-data/store";
const BATCH: &str = "/api/v1/etl/raw-data/store-batch";

fn record(tenant: &TestTenant, external_id: &str) -> Value {
    json!({
        "integration_id": tenant.integration,
        "entity_type": "jira_issues",
        "external_id": external_id,
        "raw_data": {"id": external_id, "fields": {"summary": "Résumé ✓"}},
        "extraction_metadata": {"page": 1}
    })
}

async fn store(app: &TestApp, tenant: &TestTenant, body: &Value) -> i64 {
    let response = app.post_json(STORE, tenant, body).await;
    assert_eq!(response.status(), 201);
    json(response).await["record_id"]
        .as_i64()
        .expect("record_id")
}

fn rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM raw_extraction_data")
}

#[tokio::test]
async fn store_answers_201_with_the_seed_body_and_keeps_the_data() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let response = app
        .post_json(STORE, &tenant, &record(&tenant, "10001"))
        .await;
    assert_eq!(response.status(), 201);
    let body = json(response).await;
    let id = body["record_id"].as_i64().expect("record_id");
    assert_eq!(
        body,
        json!({"status": "success", "record_id": id, "message": "Raw data stored successfully"})
    );

    let detail = json(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    assert_eq!(detail["id"], id);
    assert_eq!(detail["integration_id"], tenant.integration);
    assert_eq!(detail["entity_type"], "jira_issues");
    assert_eq!(detail["external_id"], "10001");
    assert_eq!(detail["raw_data"], record(&tenant, "10001")["raw_data"]);
    assert_eq!(detail["extraction_metadata"], json!({"page": 1}));
    assert_eq!(detail["processing_status"], "pending");
    assert_eq!(detail["error_details"], Value::Null);
    assert_eq!(detail["processed_at"], Value::Null);
    assert!(detail["created_at"].is_string());
}

#[tokio::test]
async fn any_well_formed_entity_type_may_be_stored() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body = json!({"integration_id": tenant.integration, "entity_type": "confluence_pages_v2", "raw_data": {}});
    let response = app.post_json(STORE, &tenant, &body).await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn store_refuses_invalid_bodies_with_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let base = record(&tenant, "1");
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().map(|o| o.remove(field));
        body
    };
    let cases = [
        (without("integration_id"), "integration_id"),
        (without("entity_type"), "entity_type"),
        (without("raw_data"), "raw_data"),
        (with("integration_id", json!("1")), "integration_id"),
        (with("entity_type", json!("Jira-Issues")), "entity_type"),
        (with("entity_type", json!("")), "entity_type"),
        (with("entity_type", json!("x".repeat(51))), "entity_type"),
        (with("external_id", json!("e".repeat(256))), "external_id"),
        (with("external_id", json!(12)), "external_id"),
        (with("raw_data", json!([1, 2])), "raw_data"),
        (with("raw_data", json!("text")), "raw_data"),
        (with("extraction_metadata", json!(7)), "extraction_metadata"),
    ];
    for (body, field) in cases {
        let response = app.post_json(STORE, &tenant, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error = json(response).await;
        assert_eq!(error["code"], "validation_error", "{body}");
        assert_eq!(error["errors"][0]["field"], field, "{body}");
        assert!(error["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_eq!(rows(&app), 0);
}

#[tokio::test]
async fn store_refuses_a_foreign_missing_or_inactive_integration_with_422() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let other = app.tenant("globex");
    let inactive = app.create_integration(tenant.id, "github", false);
    for integration in [other.integration, inactive, 999_999] {
        let mut body = record(&tenant, "1");
        body["integration_id"] = json!(integration);
        let response = app.post_json(STORE, &tenant, &body).await;
        assert_eq!(response.status(), 422, "integration {integration}");
        let error = json(response).await;
        assert_eq!(error["errors"][0]["field"], "integration_id");
    }
    assert_eq!(rows(&app), 0);
}

#[tokio::test]
async fn a_one_mebibyte_non_ascii_payload_round_trips_unchanged() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let text: String = "Grüße, 世界! 🚀 ".chars().cycle().take(900_000).collect();
    let raw = json!({"id": "big", "fields": {"description": text, "nested": [{"ü": "ß"}, null, 1.5e300, -0]}});
    let mut body = record(&tenant, "big");
    body["raw_data"] = raw.clone();
    assert!(serde_json::to_vec(&body).expect("serialises").len() > 1024 * 1024);
    let id = store(&app, &tenant, &body).await;
    let detail = json(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    assert_eq!(detail["raw_data"], raw);
}

#[tokio::test]
async fn batch_stores_all_records_and_returns_ids_in_input_order() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let github = app.create_integration(tenant.id, "github", true);
    let mut records: Vec<Value> = (0..50).map(|i| record(&tenant, &format!("k{i}"))).collect();
    records[7]["integration_id"] = json!(github);
    records[7]["entity_type"] = json!("github_prs");
    let response = app
        .post_json(BATCH, &tenant, &json!({"records": records}))
        .await;
    assert_eq!(response.status(), 201);
    let body = json(response).await;
    assert_eq!(body["status"], "success");
    assert_eq!(body["count"], 50);
    let ids: Vec<i64> = body["record_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 50);
    for (i, id) in ids.iter().enumerate() {
        let detail = json(
            app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
                .await,
        )
        .await;
        assert_eq!(detail["external_id"], format!("k{i}"));
    }
}

#[tokio::test]
async fn batch_is_all_or_nothing_and_names_the_failing_index() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let other = app.tenant("globex");
    let mut records: Vec<Value> = (0..5).map(|i| record(&tenant, &i.to_string())).collect();
    records[3]["raw_data"] = json!("not an object");
    let response = app
        .post_json(BATCH, &tenant, &json!({"records": records}))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        json(response).await["errors"][0]["field"],
        "records[3].raw_data"
    );

    let mut records: Vec<Value> = (0..5).map(|i| record(&tenant, &i.to_string())).collect();
    records[2]["integration_id"] = json!(other.integration);
    let response = app
        .post_json(BATCH, &tenant, &json!({"records": records}))
        .await;
    assert_eq!(response.status(), 422);
    let error = json(response).await;
    assert_eq!(error["errors"][0]["field"], "records[2].integration_id");
    assert_eq!(error["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(rows(&app), 0, "nothing stored");
}

#[tokio::test]
async fn batch_holds_1_to_1000_records() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let response = app.post_json(BATCH, &tenant, &json!({"records": []})).await;
    assert_eq!(response.status(), 422);
    assert_eq!(json(response).await["errors"][0]["field"], "records");
    let many: Vec<Value> = (0..1001).map(|i| record(&tenant, &i.to_string())).collect();
    let response = app
        .post_json(BATCH, &tenant, &json!({"records": many}))
        .await;
    assert_eq!(response.status(), 422);
    let most: Vec<Value> = (0..1000).map(|i| record(&tenant, &i.to_string())).collect();
    let response = app
        .post_json(BATCH, &tenant, &json!({"records": most}))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(rows(&app), 1000);
}

#[tokio::test]
async fn list_pages_by_after_id_returning_every_row_exactly_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let other = app.tenant("globex");
    let records: Vec<Value> = (0..37).map(|i| record(&tenant, &i.to_string())).collect();
    let created = json(
        app.post_json(BATCH, &tenant, &json!({"records": records}))
            .await,
    )
    .await;
    // Another tenant's rows and another type's rows interleave but never show.
    store(&app, &other, &record(&other, "x")).await;
    let mut github = record(&tenant, "pr");
    github["entity_type"] = json!("github_prs");
    store(&app, &tenant, &github).await;

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = json(
            app.get_as(
                &format!("/api/v1/etl/raw-data?entity_type=jira_issues&limit=10&after_id={after}"),
                &tenant,
            )
            .await,
        )
        .await;
        let page = page.as_array().expect("a list").clone();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        for row in &page {
            assert_eq!(
                row.as_object().map(|o| {
                    let mut keys: Vec<_> = o.keys().cloned().collect();
                    keys.sort();
                    keys
                }),
                Some(
                    [
                        "created_at",
                        "entity_type",
                        "external_id",
                        "id",
                        "processing_status",
                        "raw_data"
                    ]
                    .map(String::from)
                    .to_vec()
                )
            );
        }
        after = page.last().and_then(|r| r["id"].as_i64()).expect("id");
        seen.extend(page.iter().map(|r| r["id"].clone()));
    }
    assert_eq!(Value::Array(seen), created["record_ids"]);
}

#[tokio::test]
async fn list_defaults_to_100_rows_and_filters_by_status() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let records: Vec<Value> = (0..120).map(|i| record(&tenant, &i.to_string())).collect();
    let created = json(
        app.post_json(BATCH, &tenant, &json!({"records": records}))
            .await,
    )
    .await;
    let first_page = json(
        app.get_as("/api/v1/etl/raw-data?entity_type=jira_issues", &tenant)
            .await,
    )
    .await;
    assert_eq!(first_page.as_array().map(Vec::len), Some(100));
    assert_eq!(
        first_page[0]["id"], created["record_ids"][0],
        "oldest first"
    );

    let failed_id = created["record_ids"][5].as_i64().expect("id");
    let response = app
        .authed(
            Method::PUT,
            &format!("/api/v1/etl/raw-data/{failed_id}/status"),
            &tenant,
        )
        .json(&json!({"status": "failed", "error_details": {"reason": "bad"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let failed = json(
        app.get_as(
            "/api/v1/etl/raw-data?entity_type=jira_issues&status=failed",
            &tenant,
        )
        .await,
    )
    .await;
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    assert_eq!(failed[0]["id"], failed_id);
    assert_eq!(failed[0]["processing_status"], "failed");
}

#[tokio::test]
async fn list_validates_its_query_naming_each_parameter() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    for (query, field) in [
        ("", "entity_type"),
        ("?status=pending", "entity_type"),
        ("?entity_type=Jira", "entity_type"),
        ("?entity_type=jira_issues&limit=0", "limit"),
        ("?entity_type=jira_issues&limit=1001", "limit"),
        ("?entity_type=jira_issues&limit=ten", "limit"),
        ("?entity_type=jira_issues&status=done", "status"),
        ("?entity_type=jira_issues&after_id=x", "after_id"),
    ] {
        let response = app
            .get_as(&format!("/api/v1/etl/raw-data{query}"), &tenant)
            .await;
        assert_eq!(response.status(), 422, "{query}");
        let error = json(response).await;
        assert_eq!(error["code"], "validation_error");
        assert_eq!(error["errors"][0]["field"], field, "{query}");
    }
    let ok = app
        .get_as(
            "/api/v1/etl/raw-data?entity_type=jira_issues&limit=1000",
            &tenant,
        )
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn another_tenants_record_answers_404_like_a_missing_one_and_is_not_changed() {
    let app = TestApp::spawn().await;
    let owner = app.tenant("acme");
    let intruder = app.tenant("globex");
    let id = store(&app, &owner, &record(&owner, "secret")).await;
    for path in [
        format!("/api/v1/etl/raw-data/{id}"),
        "/api/v1/etl/raw-data/999999".to_owned(),
    ] {
        let response = app.get_as(&path, &intruder).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["code"], "not_found");
    }
    let response = app
        .authed(
            Method::PUT,
            &format!("/api/v1/etl/raw-data/{id}/status"),
            &intruder,
        )
        .json(&json!({"status": "skipped"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE id = {id} AND processing_status = 'pending'"
        )),
        1,
        "the owner's record is unchanged"
    );
    let listed = json(
        app.get_as("/api/v1/etl/raw-data?entity_type=jira_issues", &intruder)
            .await,
    )
    .await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn a_non_integer_id_is_a_422() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let response = app.get_as("/api/v1/etl/raw-data/abc", &tenant).await;
    assert_eq!(response.status(), 422);
    assert_eq!(json(response).await["errors"][0]["field"], "id");
}

async fn set_status(
    app: &TestApp,
    tenant: &TestTenant,
    id: i64,
    status: &str,
) -> reqwest::Response {
    app.authed(
        Method::PUT,
        &format!("/api/v1/etl/raw-data/{id}/status"),
        tenant,
    )
    .json(&json!({"status": status, "error_details": {"why": status}}))
    .send()
    .await
    .expect("request")
}

/// Puts a fresh record into `status` through allowed steps.
async fn record_in(app: &TestApp, tenant: &TestTenant, status: &str) -> i64 {
    let id = store(app, tenant, &record(tenant, status)).await;
    if status != "pending" {
        assert_eq!(set_status(app, tenant, id, status).await.status(), 200);
    }
    id
}

#[tokio::test]
async fn status_changes_follow_the_rules() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let all = ["pending", "processing", "completed", "failed", "skipped"];
    for from in all {
        for to in all {
            let id = record_in(&app, &tenant, from).await;
            let allowed = from == to
                || matches!(from, "pending" | "processing")
                || (from == "failed" && to == "pending");
            let response = set_status(&app, &tenant, id, to).await;
            let expected = if allowed { 200 } else { 409 };
            assert_eq!(response.status(), expected, "{from} → {to}");
            let body = json(response).await;
            if allowed {
                assert_eq!(
                    body,
                    json!({"status": "success", "message": format!("Status updated to {to}")})
                );
            } else {
                assert_eq!(body["code"], "conflict");
            }
            let detail = json(
                app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
                    .await,
            )
            .await;
            let now = if allowed { to } else { from };
            assert_eq!(detail["processing_status"], now, "{from} → {to}");
        }
    }
}

#[tokio::test]
async fn completed_and_failed_stamp_processed_at_and_keep_error_details() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    for status in ["completed", "failed"] {
        let id = record_in(&app, &tenant, status).await;
        let detail = json(
            app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
                .await,
        )
        .await;
        assert!(detail["processed_at"].is_string(), "{status}");
        assert_eq!(detail["error_details"], json!({"why": status}));
    }
    let id = record_in(&app, &tenant, "processing").await;
    let detail = json(
        app.get_as(&format!("/api/v1/etl/raw-data/{id}"), &tenant)
            .await,
    )
    .await;
    assert_eq!(detail["processed_at"], Value::Null);
}

#[tokio::test]
async fn an_unknown_status_is_a_422() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let id = store(&app, &tenant, &record(&tenant, "1")).await;
    let response = set_status(&app, &tenant, id, "done").await;
    assert_eq!(response.status(), 422);
    assert_eq!(json(response).await["errors"][0]["field"], "status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_stores_are_each_answered_for_their_own_record() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let globex = app.tenant("globex");
    let handles: Vec<_> = (0..60)
        .map(|i| {
            // Every third request names the other tenant's integration.
            let (tenant, mut body) = match i % 3 {
                0 => (&acme, record(&acme, &format!("a{i}"))),
                1 => (&globex, record(&globex, &format!("g{i}"))),
                _ => (&acme, record(&acme, &format!("bad{i}"))),
            };
            if i % 3 == 2 {
                body["integration_id"] = json!(globex.integration);
            }
            let request = app.authed(Method::POST, STORE, tenant).json(&body);
            let (token, external_id) = (tenant.token.clone(), body["external_id"].clone());
            tokio::spawn(
                async move { (request.send().await.expect("request"), token, external_id) },
            )
        })
        .collect();
    let mut stored = 0;
    for handle in handles {
        let (response, token, external_id) = handle.await.expect("task");
        let bad = external_id.as_str().is_some_and(|e| e.starts_with("bad"));
        if bad {
            assert_eq!(response.status(), 422, "{external_id}");
            continue;
        }
        assert_eq!(response.status(), 201, "{external_id}");
        stored += 1;
        let id = json(response).await["record_id"].as_i64().expect("id");
        let detail = app
            .client
            .get(app.url(&format!("/api/v1/etl/raw-data/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert_eq!(
            json(detail).await["external_id"],
            external_id,
            "its own record"
        );
    }
    assert_eq!(stored, 40);
    assert_eq!(rows(&app), 40);
}

#[tokio::test]
async fn a_locked_row_answers_503_within_the_lock_timeout_then_200_once_released() {
    use etl_store::SimpleConnection as _;
    let app = TestApp::builder()
        .lock_timeout(std::time::Duration::from_millis(300))
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    let id = store(&app, &tenant, &record(&tenant, "locked")).await;
    // Another session holds the row, as a long transaction would.
    let mut holder = app.db.connect();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM raw_extraction_data WHERE id = {id} FOR UPDATE"
        ))
        .expect("locking the row");
    let started = std::time::Instant::now();
    let waited = set_status(&app, &tenant, id, "processing").await;
    let took = started.elapsed();
    assert_eq!(waited.status(), 503);
    assert!(waited.headers().get("retry-after").is_some());
    assert_eq!(json(waited).await["code"], "service_unavailable");
    // Bounded by the lock timeout (300 ms), with room for a slow machine.
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    let status = "SELECT count(*) FROM raw_extraction_data WHERE processing_status = 'pending'";
    assert_eq!(app.count(status), 1, "nothing changed");

    holder.batch_execute("COMMIT").expect("releasing the row");
    assert_eq!(
        set_status(&app, &tenant, id, "processing").await.status(),
        200
    );
}
