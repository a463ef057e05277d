//! `/health`, `/ready`, unknown routes and request ids.

use std::time::Duration;

use etl_tests::{poll_until, TcpProxy, TestApp};
use serde_json::Value;

#[tokio::test]
async fn health_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn ready_answers_200_when_the_database_answers() {
    let app = TestApp::spawn().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn ready_answers_503_while_the_database_is_cut_off_and_recovers_without_restart() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let db_name = etl_store::test_support::TestDatabase::migrated();
    // The server reaches its database only through the proxy.
    let url = format!("postgres://postgres@{}/{}", proxy.address, db_name.name());
    let app = TestApp::builder().database_url(url).spawn().await;
    assert_eq!(app.get("/ready").await.status(), 200);

    proxy.cut();
    let down = poll_until(Duration::from_secs(10), || async {
        let response = app.get("/ready").await;
        (response.status() == 503).then_some(response)
    })
    .await
    .expect("/ready turns 503 while the database is unreachable");
    assert!(down.headers().get("retry-after").is_some());
    let body: Value = down.json().await.expect("json");
    assert_eq!(body["checks"]["database"], "down");
    assert_eq!(body["code"], "service_unavailable");
    // Health is about the process, not its dependencies.
    assert_eq!(app.get("/health").await.status(), 200);

    proxy.restore();
    let up = poll_until(Duration::from_secs(10), || async {
        (app.get("/ready").await.status() == 200).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "/ready turns 200 again once the database is back"
    );
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = TestApp::spawn().await;
    let response = app.get("/no/such/route").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "not_found");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let first = app.get("/health").await;
    let second = app.get("/no/such/route").await;
    let id = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .expect("x-request-id header")
    };
    assert_ne!(id(&first), id(&second), "each request gets its own id");
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("request");
    assert_eq!(id(&echoed), "client-chosen-42");
}

#[tokio::test]
async fn ready_answers_503_while_migrations_are_pending() {
    let empty = etl_store::test_support::TestDatabase::empty();
    let app = TestApp::builder().database_url(empty.url()).spawn().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["database"], "migrations_pending");
}

#[tokio::test]
async fn openapi_document_lists_every_route_without_a_token() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/etl/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/v1/etl/openapi.json", "get"),
        ("/api/v1/etl/raw-data/store", "post"),
        ("/api/v1/etl/raw-data/store-batch", "post"),
        ("/api/v1/etl/raw-data", "get"),
        ("/api/v1/etl/raw-data/{id}", "get"),
        ("/api/v1/etl/raw-data/{id}/status", "put"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        if path.starts_with("/api/v1/etl/raw-data") {
            for status in ["401", "403", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
            assert!(
                operation["security"].is_array(),
                "{method} {path} needs a token"
            );
        }
    }
    let schemas = &doc["components"]["schemas"];
    for name in [
        "StoreRawDataRequest",
        "StoreBatchRequest",
        "RawDataResponse",
        "RawDataDetail",
        "ErrorBody",
        "EntityType",
    ] {
        assert!(schemas[name].is_object(), "schema {name}");
    }
    assert_eq!(schemas["EntityType"]["pattern"], "^[a-z0-9_]+$");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// Every `$ref` in a JSON document, with where it was found.
fn refs<'a>(value: &'a Value, at: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref" {
                    if let Some(target) = inner.as_str() {
                        found.push((at.clone(), target));
                    }
                } else {
                    refs(inner, format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                refs(inner, format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_ref_of_the_openapi_document_resolves_and_timestamps_are_date_times() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .get("/api/v1/etl/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 20, "the document uses references");
    for (at, target) in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: external reference {target}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: {target} does not resolve"
        );
    }
    let detail = &doc["components"]["schemas"]["RawDataDetail"]["properties"];
    assert_eq!(detail["created_at"]["format"], "date-time");
    assert!(
        detail["ingest_changes"].is_object(),
        "ingest_changes is documented"
    );
}

#[tokio::test]
async fn every_secured_operation_documents_the_shared_error_answers() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .get("/api/v1/etl/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let needs_token = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            assert_eq!(
                needs_token,
                path.starts_with("/api/v1/etl/") && path != "/api/v1/etl/openapi.json",
                "{method} {path}"
            );
            if !needs_token {
                continue;
            }
            secured += 1;
            for status in ["401", "403", "500", "503"] {
                let response = &operation["responses"][status];
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} documents {status}"
                );
            }
            assert!(operation["responses"]["503"]["headers"]["Retry-After"].is_object());
        }
    }
    // The 16 of SPEC §5 before the console, `/raw-data/replay`, `/stats`,
    // and §7.4's `/work-items/{id}`, `/work-item-changes`,
    // `/pull-requests/{id}` and `/flow-metrics`.
    assert_eq!(secured, 22, "every secured route");
}

#[tokio::test]
async fn docs_and_its_assets_answer_without_a_token_and_name_no_other_host() {
    let app = TestApp::spawn().await;
    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let mut assets = 0;
    for part in html.split(['"', '\'']) {
        if !part.starts_with("/docs/") {
            continue;
        }
        let asset = app.get(part).await;
        assert_eq!(asset.status(), 200, "{part}");
        let kind = asset
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let expected = match part.rsplit('.').next() {
            Some("js") => "javascript",
            Some("css") => "text/css",
            _ => "image/png",
        };
        assert!(kind.contains(expected), "{part}: {kind}");
        assert!(!asset.bytes().await.expect("body").is_empty());
        assets += 1;
    }
    assert_eq!(assets, 4, "icon, style, bundle and starter script");
    let init = app.get("/docs/init.js").await.text().await.expect("js");
    assert!(init.contains("/api/v1/etl/openapi.json") && !init.contains("http"));
    let missing = app.get("/docs/swagger-ui-bundle.js.map").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(etl_tests::json(missing).await["code"], "not_found");
}
