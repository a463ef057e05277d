//! SPEC §4: the error format on every failure path.

use std::time::{Duration, Instant};

use etl_http::HttpConfig;
use etl_tests::{json, TcpProxy, TestApp};
use reqwest::Method;
use serde_json::json;

const STORE: &str = "/api/v1/etl/raw-data/store";

#[tokio::test]
async fn malformed_json_answers_400() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    for body in ["{", "{\"integration_id\": 1,}", "nope", ""] {
        let response = app
            .authed(Method::POST, STORE, &tenant)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{body:?}");
        let error = json(response).await;
        assert_eq!(error["code"], "malformed_json");
        assert!(error["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

#[tokio::test]
async fn a_body_without_json_content_type_answers_415() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body = json!({"integration_id": tenant.integration, "entity_type": "x", "raw_data": {}})
        .to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app.authed(Method::POST, STORE, &tenant).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 415, "{content_type:?}");
        assert_eq!(json(response).await["code"], "unsupported_media_type");
    }
    let with_charset = app
        .authed(Method::POST, STORE, &tenant)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(with_charset.status(), 201);
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 1);
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_and_stores_nothing() {
    let app = TestApp::builder()
        .http(HttpConfig {
            max_body_bytes: 64 * 1024,
            workers: Some(1),
            ..HttpConfig::default()
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    let big = "x".repeat(100 * 1024);
    let body =
        json!({"integration_id": tenant.integration, "entity_type": "x", "raw_data": {"big": big}});
    let response = app.post_json(STORE, &tenant, &body).await;
    assert_eq!(response.status(), 413);
    assert_eq!(json(response).await["code"], "payload_too_large");
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 0);
    // Just under the limit passes.
    let small = json!({"integration_id": tenant.integration, "entity_type": "x", "raw_data": {"s": "x".repeat(60 * 1024)}});
    assert_eq!(app.post_json(STORE, &tenant, &small).await.status(), 201);
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after_without_hanging() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let db = etl_store::test_support::TestDatabase::migrated();
    let url = format!("postgres://postgres@{}/{}", proxy.address, db.name());
    let app = TestApp::builder().database_url(url).spawn().await;
    // Tenants live in the database behind the proxy.
    let tenant_id = {
        let mut conn = db.connect();
        etl_store::tenants::insert(
            &mut conn,
            &etl_store::tenants::NewTenant {
                name: "acme",
                active: true,
            },
        )
        .expect("tenant")
        .id
    };
    let token = app.token(tenant_id);
    let list = |app: &TestApp| {
        app.client
            .get(app.url("/api/v1/etl/raw-data?entity_type=jira_issues"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(list(&app).await.expect("request").status(), 200);

    proxy.cut();
    let started = Instant::now();
    let response = list(&app).await.expect("request");
    // Bounded by the harness pool's 2 s checkout timeout, with margin.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert!(response.headers().get("x-request-id").is_some());
    let error = json(response).await;
    assert_eq!(error["code"], "service_unavailable");
    let detail = error["detail"].as_str().unwrap_or_default().to_lowercase();
    for internal in ["diesel", "pq", "connection refused", "r2d2", "sql"] {
        assert!(!detail.contains(internal), "no internal text: {detail}");
    }

    proxy.restore();
    let recovered = etl_tests::poll_until(Duration::from_secs(10), || async {
        let response = list(&app).await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "answers again once the database is back"
    );
}

#[tokio::test]
async fn error_responses_carry_the_request_id() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/etl/raw-data?entity_type=x").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("x-request-id").is_some());
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_records_stored() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let body =
        json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {}});
    assert_eq!(app.post_json(STORE, &tenant, &body).await.status(), 201);
    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("etl_http_requests_total{")
                && l.contains("route=\"/api/v1/etl/raw-data/store\"")
                && l.contains("status=\"201\"")),
        "{text}"
    );
    assert!(
        text.contains("etl_http_request_duration_seconds_bucket"),
        "{text}"
    );
    for method in ["BREW", "X-ONE", "X-TWO"] {
        let method = Method::from_bytes(method.as_bytes()).expect("a method token");
        let response = reqwest::Client::new()
            .request(method, app.url("/health"))
            .send()
            .await
            .expect("sent");
        assert!(response.status().is_client_error());
    }
    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(!text.contains("BREW") && !text.contains("X-ONE"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "etl_raw_records_stored_total{entity_type=\"jira_issues\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_naming_the_allowed_one() {
    let app = TestApp::spawn().await;
    for (method, path, allowed) in [
        (Method::DELETE, "/api/v1/etl/jobs", "GET"),
        (Method::GET, STORE, "POST"),
        (Method::POST, "/health", "GET"),
        (Method::PATCH, "/api/v1/etl/jobs/1/status", "PUT"),
    ] {
        let response = reqwest::Client::new()
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allowed)
        );
        let body = json(response).await;
        assert_eq!(body["code"], "method_not_allowed");
        assert!(body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(allowed));
    }
}

#[tokio::test]
async fn a_store_writer_that_cannot_work_shows_in_ready_answers_503_and_recovers() {
    use etl_http::store_writer::{StoreWriter, StoreWriterConfig};
    // The writer's threads reach PostgreSQL through a proxy of their own;
    // the rest of the server goes straight to it.
    let db = etl_store::test_support::TestDatabase::migrated();
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let mut config = etl_store::PoolConfig::new(format!(
        "postgres://postgres@{}/{}",
        proxy.address,
        db.name()
    ));
    config.checkout_timeout = Duration::from_secs(1);
    let writer = StoreWriter::start(etl_store::build_pool(&config), StoreWriterConfig::default());
    let app = TestApp::builder()
        .database(db)
        .state(move |state| state.with_store_writer(writer))
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    let record = json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
                        "raw_data": {"id": "1"}});
    assert_eq!(app.get("/ready").await.status(), 200);
    assert_eq!(app.post_json(STORE, &tenant, &record).await.status(), 201);

    proxy.cut();
    // The writers keep their state (checked about once a second while idle).
    let ready = etl_tests::poll_until(Duration::from_secs(10), || async {
        let ready = app.get("/ready").await;
        (ready.status() == 503).then_some(ready)
    })
    .await
    .expect("/ready turned 503");
    let ready = json(ready).await;
    assert_eq!(ready["checks"]["store_writer"], "down");
    assert_eq!(ready["checks"]["database"], "ok");
    // Twenty stores at once: each answered 503 about one checkout timeout
    // (1 s) later, none queued behind the others' timeouts.
    let started = Instant::now();
    let stores = (0..20).map(|_| app.post_json(STORE, &tenant, &record));
    for response in futures_util::future::join_all(stores).await {
        assert_eq!(response.status(), 503);
        assert!(response.headers().get("retry-after").is_some());
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    proxy.restore();
    let recovered = etl_tests::poll_until(Duration::from_secs(10), || async {
        (app.get("/ready").await.status() == 200).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "ready again without a restart");
    assert_eq!(app.post_json(STORE, &tenant, &record).await.status(), 201);
    assert_eq!(app.count("SELECT count(*) FROM raw_extraction_data"), 2);
}
