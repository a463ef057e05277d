//! `Idempotency-Key`: a repeat gets the first answer and stores nothing new,
//! also when repeats race.

use etl_tests::{json, TestApp, TestTenant};
use reqwest::Method;
use serde_json::{json, Value};

const STORE: &str = "/api/v1/etl/raw-data/store";
const BATCH: &str = "/api/v1/etl/raw-data/store-batch";

fn body(tenant: &TestTenant) -> Value {
    json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {"id": "1"}})
}

async fn post_with_key(
    app: &TestApp,
    path: &str,
    tenant: &TestTenant,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.authed(Method::POST, path, tenant)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request")
}

fn rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM raw_extraction_data")
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_answer_and_stores_nothing_new() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let first = post_with_key(&app, STORE, &tenant, "key-1", &body(&tenant)).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    let again = post_with_key(&app, STORE, &tenant, "key-1", &body(&tenant)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(json(again).await, first);
    assert_eq!(rows(&app), 1);
    // Another key stores another record.
    let other = post_with_key(&app, STORE, &tenant, "key-2", &body(&tenant)).await;
    assert_ne!(json(other).await["record_id"], first["record_id"]);
    assert_eq!(rows(&app), 2);
}

#[tokio::test]
async fn keys_belong_to_their_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let globex = app.tenant("globex");
    let a = json(post_with_key(&app, STORE, &acme, "shared", &body(&acme)).await).await;
    let g = json(post_with_key(&app, STORE, &globex, "shared", &body(&globex)).await).await;
    assert_ne!(a["record_id"], g["record_id"]);
    assert_eq!(rows(&app), 2);
}

#[tokio::test]
async fn a_failed_request_does_not_burn_its_key() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let mut bad = body(&tenant);
    bad["integration_id"] = json!(999_999);
    assert_eq!(
        post_with_key(&app, STORE, &tenant, "retry-me", &bad)
            .await
            .status(),
        422
    );
    let fixed = post_with_key(&app, STORE, &tenant, "retry-me", &body(&tenant)).await;
    assert_eq!(fixed.status(), 201);
    assert_eq!(rows(&app), 1);
}

#[tokio::test]
async fn keys_over_255_characters_or_empty_are_422() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let response = post_with_key(&app, STORE, &tenant, &"k".repeat(256), &body(&tenant)).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        json(response).await["errors"][0]["field"],
        "Idempotency-Key"
    );
    let response = post_with_key(&app, STORE, &tenant, &"k".repeat(255), &body(&tenant)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(rows(&app), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_store_once_and_all_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let request = app
                .authed(Method::POST, STORE, &tenant)
                .header("Idempotency-Key", "race")
                .json(&body(&tenant));
            tokio::spawn(async move { request.send().await.expect("request") })
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        let response = handle.await.expect("task");
        assert_eq!(response.status(), 201);
        answers.push(json(response).await);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(rows(&app), 1);
}

#[tokio::test]
async fn batches_are_idempotent_too() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let batch = json!({"records": [body(&tenant), body(&tenant), body(&tenant)]});
    let first = json(post_with_key(&app, BATCH, &tenant, "b", &batch).await).await;
    let again = json(post_with_key(&app, BATCH, &tenant, "b", &batch).await).await;
    assert_eq!(first, again);
    assert_eq!(rows(&app), 3);
}
