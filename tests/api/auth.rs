//! SPEC §3: bearer tokens and tenancy.

use etl_tests::{json, TestApp, TEST_SECRET};
use serde_json::{json, Value};

const STORE: &str = "/api/v1/etl/raw-data/store";
const LIST: &str = "/api/v1/etl/raw-data?entity_type=jira_issues";

async fn status_and_code(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(response.headers().get("x-request-id").is_some());
    (status, json(response).await["code"].clone())
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signing")
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

#[tokio::test]
async fn requests_without_a_valid_token_answer_401() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let valid_claims = json!({"sub": "t", "tenant_id": tenant.id, "exp": in_an_hour()});
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("not bearer", Some(format!("Basic {}", tenant.token))),
        ("bearer without token", Some("Bearer ".to_owned())),
        ("garbage token", Some("Bearer not-a-jwt".to_owned())),
        (
            "wrongly signed",
            Some(format!("Bearer {}", sign(&valid_claims, "another-secret"))),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(
                    &json!({"sub": "t", "tenant_id": tenant.id, "exp": chrono::Utc::now().timestamp() - 10}),
                    TEST_SECRET
                )
            )),
        ),
        (
            "no tenant_id",
            Some(format!(
                "Bearer {}",
                sign(&json!({"sub": "t", "exp": in_an_hour()}), TEST_SECRET)
            )),
        ),
        (
            "tenant_id not an integer",
            Some(format!(
                "Bearer {}",
                sign(
                    &json!({"sub": "t", "tenant_id": "1", "exp": in_an_hour()}),
                    TEST_SECRET
                )
            )),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                sign(&json!({"sub": "t", "tenant_id": tenant.id}), TEST_SECRET)
            )),
        ),
    ];
    for (case, header) in cases {
        let mut request = app.client.get(app.url(LIST));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = request.send().await.expect("request");
        assert_eq!(
            status_and_code(response).await,
            (401, json!("unauthorized")),
            "{case}"
        );
    }
    // The same token, properly signed, passes.
    let ok = app
        .client
        .get(app.url(LIST))
        .bearer_auth(sign(&valid_claims, TEST_SECRET))
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn writes_without_a_token_store_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let response = app
        .client
        .post(app.url(STORE))
        .json(&json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
}

#[tokio::test]
async fn an_inactive_or_missing_tenant_answers_403() {
    let app = TestApp::spawn().await;
    let inactive = app.create_tenant("gone", false);
    let integration = app.create_integration(inactive, "jira", true);
    for tenant_id in [inactive, 987_654] {
        let token = app.token(tenant_id);
        let list = app
            .client
            .get(app.url(LIST))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(status_and_code(list).await, (403, json!("forbidden")));
        let store = app
            .client
            .post(app.url(STORE))
            .bearer_auth(&token)
            .json(&json!({"integration_id": integration, "entity_type": "jira_issues", "raw_data": {}}))
            .send()
            .await
            .expect("request");
        assert_eq!(status_and_code(store).await, (403, json!("forbidden")));
    }
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
}

#[tokio::test]
async fn a_tenant_deactivated_after_storing_records_cannot_list_them() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("leaving");
    let body =
        json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {}});
    assert_eq!(app.post_json(STORE, &tenant, &body).await.status(), 201);
    assert_eq!(app.get_as(LIST, &tenant).await.status(), 200);
    app.execute(&format!(
        "UPDATE tenants SET active = false WHERE id = {}",
        tenant.id
    ));
    let list = app.get_as(LIST, &tenant).await;
    assert_eq!(status_and_code(list).await, (403, json!("forbidden")));
}

#[tokio::test]
async fn operations_routes_need_no_token() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}
