//! SPEC §5 job routes, seen through the API and the job table (the queue
//! side is tested in the queue tests).

use etl_tests::{json, TestApp, TestTenant};
use reqwest::Method;
use serde_json::{json, Value};

async fn pipeline(app: &TestApp, tenant: &TestTenant, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/etl/pipeline", tenant, &body).await
}

async fn new_extract_job(app: &TestApp, tenant: &TestTenant) -> i64 {
    let response = pipeline(
        app,
        tenant,
        json!({"entity_type": "jira_issues", "integration_id": tenant.integration, "payload": {"jql": "project = X"}}),
    )
    .await;
    assert_eq!(response.status(), 202);
    let body = json(response).await;
    assert_eq!(body["status"], "queued");
    body["job_id"].as_i64().expect("job_id")
}

async fn job(app: &TestApp, tenant: &TestTenant, id: i64) -> Value {
    let response = app.get_as(&format!("/api/v1/etl/jobs/{id}"), tenant).await;
    assert_eq!(response.status(), 200);
    json(response).await
}

async fn post(app: &TestApp, tenant: &TestTenant, path: &str) -> reqwest::Response {
    app.authed(Method::POST, path, tenant)
        .send()
        .await
        .expect("request")
}

async fn report(app: &TestApp, tenant: &TestTenant, id: i64, body: Value) -> reqwest::Response {
    app.authed(
        Method::PUT,
        &format!("/api/v1/etl/jobs/{id}/status"),
        tenant,
    )
    .json(&body)
    .send()
    .await
    .expect("request")
}

#[tokio::test]
async fn pipeline_writes_an_extract_job_with_the_request_in_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let id = new_extract_job(&app, &tenant).await;
    let job = job(&app, &tenant, id).await;
    assert_eq!(job["job_type"], "extract");
    assert_eq!(job["entity_type"], "jira_issues");
    assert_eq!(job["tenant_id"], tenant.id);
    assert_eq!(job["priority"], 5);
    assert_eq!(job["payload"]["integration_id"], tenant.integration);
    assert_eq!(job["payload"]["payload"], json!({"jql": "project = X"}));
    assert!(["pending", "queued"].contains(&job["status"].as_str().unwrap_or_default()));
    for column in [
        "scheduled_at",
        "started_at",
        "completed_at",
        "error_details",
        "retry_count",
        "max_retries",
        "result",
    ] {
        assert!(job.get(column).is_some(), "the job shows {column}");
    }
}

#[tokio::test]
async fn pipeline_validates_entity_type_priority_and_integration() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let other = app.tenant("globex");
    let base =
        json!({"entity_type": "jira_issues", "integration_id": tenant.integration, "payload": {}});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (
            with("entity_type", json!("confluence_pages")),
            "entity_type",
        ),
        (with("priority", json!(0)), "priority"),
        (with("priority", json!(11)), "priority"),
        (with("payload", json!([])), "payload"),
        (
            with("integration_id", json!(other.integration)),
            "integration_id",
        ),
    ] {
        let response = pipeline(&app, &tenant, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(json(response).await["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM etl_job_queue"), 0);
    let urgent = pipeline(&app, &tenant, with("priority", json!(1))).await;
    assert_eq!(urgent.status(), 202);
}

#[tokio::test]
async fn load_writes_a_load_job_and_refuses_unknown_entity_types() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let row = json!({"integration_id": tenant.integration, "external_id": "1", "state": "open"});
    let response = app
        .post_json(
            "/api/v1/etl/load",
            &tenant,
            &json!({"entity_type": "github_prs", "transformed_data": [row]}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = json(response).await["job_id"].as_i64().expect("job_id");
    let job = job(&app, &tenant, id).await;
    assert_eq!(job["job_type"], "load");
    assert_eq!(job["payload"]["transformed_data"], json!([row]));
    let other = app.tenant("globex");
    let foreign = json!({"integration_id": other.integration, "external_id": "1", "state": "open"});
    for (body, field) in [
        (
            json!({"entity_type": "gitlab_mrs", "transformed_data": [row]}),
            "entity_type",
        ),
        (
            json!({"entity_type": "github_prs", "transformed_data": []}),
            "transformed_data",
        ),
        (
            json!({"entity_type": "github_prs", "transformed_data": [1]}),
            "transformed_data[0]",
        ),
        (
            json!({"entity_type": "github_prs", "transformed_data": [row, {"integration_id": 1, "external_id": "2"}]}),
            "transformed_data[1].state",
        ),
        (
            json!({"entity_type": "github_prs", "transformed_data": [row, {"integration_id": 1, "external_id": "2", "state": "gone"}]}),
            "transformed_data[1].state",
        ),
        (
            json!({"entity_type": "github_prs", "transformed_data": [foreign]}),
            "transformed_data[0].integration_id",
        ),
    ] {
        let response = app.post_json("/api/v1/etl/load", &tenant, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(json(response).await["errors"][0]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn pipeline_process_queues_pending_records_in_batches_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let records: Vec<Value> = (0..25)
        .map(|i| json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {"id": i}}))
        .collect();
    let stored = json(
        app.post_json(
            "/api/v1/etl/raw-data/store-batch",
            &tenant,
            &json!({"records": records}),
        )
        .await,
    )
    .await;
    let response = app
        .post_json(
            "/api/v1/etl/pipeline/process",
            &tenant,
            &json!({"entity_type": "jira_issues", "batch_size": 10}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body = json(response).await;
    assert_eq!(body["status"], "queued");
    assert_eq!(body["records"], 25);
    let job_ids = body["job_ids"].as_array().expect("job ids").clone();
    assert_eq!(job_ids.len(), 3);
    let mut covered = Vec::new();
    for id in &job_ids {
        let job = job(&app, &tenant, id.as_i64().expect("id")).await;
        assert_eq!(job["job_type"], "transform");
        covered.extend(
            job["payload"]["raw_data_ids"]
                .as_array()
                .expect("ids")
                .clone(),
        );
    }
    assert_eq!(Value::Array(covered), stored["record_ids"]);
    // The records are taken: a second call finds nothing more to queue.
    let again = json(
        app.post_json(
            "/api/v1/etl/pipeline/process",
            &tenant,
            &json!({"entity_type": "jira_issues"}),
        )
        .await,
    )
    .await;
    assert_eq!(again["records"], 0);
    assert_eq!(again["job_ids"], json!([]));
}

#[tokio::test]
async fn jobs_list_filters_pages_and_is_tenant_scoped() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let other = app.tenant("globex");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(new_extract_job(&app, &tenant).await);
    }
    new_extract_job(&app, &other).await;
    let page = json(
        app.get_as("/api/v1/etl/jobs?job_type=extract&limit=2", &tenant)
            .await,
    )
    .await;
    assert_eq!(page.as_array().map(Vec::len), Some(2));
    assert_eq!(page[0]["id"], ids[0]);
    let rest = json(
        app.get_as(&format!("/api/v1/etl/jobs?after_id={}", ids[1]), &tenant)
            .await,
    )
    .await;
    let rest: Vec<i64> = rest
        .as_array()
        .expect("list")
        .iter()
        .map(|j| j["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(rest, ids[2..]);
    let loads = json(app.get_as("/api/v1/etl/jobs?job_type=load", &tenant).await).await;
    assert_eq!(loads, json!([]));
    for query in [
        "status=paused",
        "job_type=export",
        "limit=0",
        "entity_type=Bad",
        "after_id=x",
    ] {
        let response = app
            .get_as(&format!("/api/v1/etl/jobs?{query}"), &tenant)
            .await;
        assert_eq!(response.status(), 422, "{query}");
    }
    let foreign = app
        .get_as(&format!("/api/v1/etl/jobs/{}", ids[0]), &other)
        .await;
    assert_eq!(foreign.status(), 404);
}

#[tokio::test]
async fn cancel_stops_unstarted_jobs_only() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let id = new_extract_job(&app, &tenant).await;
    let response = post(&app, &tenant, &format!("/api/v1/etl/jobs/{id}/cancel")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["status"], "cancelled");
    let again = post(&app, &tenant, &format!("/api/v1/etl/jobs/{id}/cancel")).await;
    assert_eq!(again.status(), 409);
    assert_eq!(json(again).await["code"], "conflict");
    // A cancelled job takes no reports.
    assert_eq!(
        report(&app, &tenant, id, json!({"status": "running"}))
            .await
            .status(),
        409
    );

    let running = new_extract_job(&app, &tenant).await;
    assert_eq!(
        report(&app, &tenant, running, json!({"status": "running"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&app, &tenant, &format!("/api/v1/etl/jobs/{running}/cancel"))
            .await
            .status(),
        409
    );
    let other = app.tenant("globex");
    assert_eq!(
        post(&app, &other, &format!("/api/v1/etl/jobs/{running}/cancel"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn external_reports_move_a_job_and_stamp_its_times() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let id = new_extract_job(&app, &tenant).await;
    let running = json(report(&app, &tenant, id, json!({"status": "running"})).await).await;
    assert_eq!(running["status"], "running");
    assert!(running["started_at"].is_string());
    let done = json(report(&app, &tenant, id, json!({"status": "completed"})).await).await;
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    assert_eq!(
        report(&app, &tenant, id, json!({"status": "failed"}))
            .await
            .status(),
        409
    );
    let bad = report(&app, &tenant, id, json!({"status": "queued"})).await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn a_reported_failure_stays_failed_until_retried() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let id = new_extract_job(&app, &tenant).await;
    let running = report(&app, &tenant, id, json!({"status": "running"})).await;
    assert_eq!(running.status(), 200);
    let failed = json(
        report(
            &app,
            &tenant,
            id,
            json!({"status": "failed", "error_details": {"why": "token expired"}}),
        )
        .await,
    )
    .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_details"], json!({"why": "token expired"}));
    assert_eq!(job(&app, &tenant, id).await["status"], "failed");

    let retried = post(&app, &tenant, &format!("/api/v1/etl/jobs/{id}/retry")).await;
    assert_eq!(retried.status(), 200);
    let retried = json(retried).await;
    assert!(["pending", "queued"].contains(&retried["status"].as_str().unwrap_or_default()));
    assert_eq!(retried["retry_count"], 0);
    // Only failed jobs may be retried.
    assert_eq!(
        post(&app, &tenant, &format!("/api/v1/etl/jobs/{id}/retry"))
            .await
            .status(),
        409
    );
    assert_eq!(
        post(&app, &tenant, "/api/v1/etl/jobs/999999/retry")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn reports_follow_the_extract_job_rules() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    // Finishing a job nobody claimed is refused, and changes nothing.
    let id = new_extract_job(&app, &tenant).await;
    for status in ["completed", "failed"] {
        let refused = report(&app, &tenant, id, json!({"status": status})).await;
        assert_eq!(refused.status(), 409, "{status} from pending");
        assert_eq!(json(refused).await["code"], "conflict");
    }
    assert_eq!(job(&app, &tenant, id).await["status"], "pending");
    // From queued (the relay published it), one claim wins; a second is 409.
    app.execute(&format!(
        "UPDATE etl_job_queue SET status = 'queued' WHERE id = {id}"
    ));
    assert_eq!(
        report(&app, &tenant, id, json!({"status": "running"}))
            .await
            .status(),
        200
    );
    let second = report(&app, &tenant, id, json!({"status": "running"})).await;
    assert_eq!(second.status(), 409);
    let detail = json(second).await["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("running"), "{detail}");
    assert_eq!(
        report(&app, &tenant, id, json!({"status": "completed"}))
            .await
            .status(),
        200
    );
    let done = job(&app, &tenant, id).await;
    assert_eq!(done["status"], "completed");
    assert!(done["started_at"].is_string() && done["completed_at"].is_string());
}

#[tokio::test]
async fn transform_and_load_jobs_take_no_reports() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let raw_id = store_issue(&app, &tenant, "1").await;
    let transform = app
        .post_json(
            "/api/v1/etl/transform",
            &tenant,
            &json!({"raw_data_ids": [raw_id], "entity_type": "jira_issues"}),
        )
        .await;
    assert_eq!(transform.status(), 202);
    let transform_id = json(transform).await["job_id"].as_i64().expect("job id");
    let load_id = new_load_job(&app, &tenant, 1).await;
    for id in [transform_id, load_id] {
        for status in ["running", "completed", "failed"] {
            let refused = report(&app, &tenant, id, json!({"status": status})).await;
            assert_eq!(refused.status(), 409, "job {id}: {status}");
            let body = json(refused).await;
            assert_eq!(body["code"], "conflict");
            assert!(body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("extract"));
        }
        assert_eq!(job(&app, &tenant, id).await["status"], "pending");
    }
}

/// Stores a small Jira issue with external id `id`; answers its record id.
async fn store_issue(app: &TestApp, tenant: &TestTenant, id: &str) -> i64 {
    let stored = app
        .post_json(
            "/api/v1/etl/raw-data/store",
            tenant,
            &json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
                    "raw_data": {"id": id, "key": format!("A-{id}"), "fields": {"summary": "s"}}}),
        )
        .await;
    assert_eq!(stored.status(), 201);
    json(stored).await["record_id"].as_i64().expect("record_id")
}

/// Writes a load job of `rows` work items through `POST /load`.
async fn new_load_job(app: &TestApp, tenant: &TestTenant, rows: usize) -> i64 {
    let rows: Vec<Value> = (0..rows)
        .map(|i| {
            json!({"integration_id": tenant.integration, "external_id": format!("{i}"),
                   "key": format!("A-{i}"), "summary": "loaded as is"})
        })
        .collect();
    let response = app
        .post_json(
            "/api/v1/etl/load",
            tenant,
            &json!({"entity_type": "jira_issues", "transformed_data": rows}),
        )
        .await;
    assert_eq!(response.status(), 202);
    json(response).await["job_id"].as_i64().expect("job id")
}

#[tokio::test]
async fn cancelling_a_transform_job_gives_its_records_back_to_pending() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    for i in 0..3 {
        store_issue(&app, &tenant, &i.to_string()).await;
    }
    let processed = app
        .post_json(
            "/api/v1/etl/pipeline/process",
            &tenant,
            &json!({"entity_type": "jira_issues"}),
        )
        .await;
    assert_eq!(processed.status(), 202);
    let processed = json(processed).await;
    assert_eq!(processed["records"], 3);
    let job_id = processed["job_ids"][0].as_i64().expect("a job");
    let processing = format!(
        "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {} AND processing_status = 'processing'",
        tenant.id
    );
    assert_eq!(app.count(&processing), 3);

    let cancelled = post(&app, &tenant, &format!("/api/v1/etl/jobs/{job_id}/cancel")).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.count(&processing), 0);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {} AND processing_status = 'pending'",
            tenant.id
        )),
        3
    );
    // A later call takes them again.
    let again = app
        .post_json(
            "/api/v1/etl/pipeline/process",
            &tenant,
            &json!({"entity_type": "jira_issues"}),
        )
        .await;
    assert_eq!(json(again).await["records"], 3);
}

#[tokio::test]
async fn cancelling_a_load_job_gives_its_records_back_to_pending() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let raw_id = store_issue(&app, &tenant, "7").await;
    // As a transform leaves it: the record processing, a load job naming it.
    app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'processing' WHERE id = {raw_id}"
    ));
    let load = app
        .post_json(
            "/api/v1/etl/load",
            &tenant,
            &json!({"entity_type": "jira_issues", "transformed_data": [
                {"integration_id": tenant.integration, "external_id": "7", "key": "A-7",
                 "summary": "s", "raw_data_id": raw_id}]}),
        )
        .await;
    assert_eq!(load.status(), 202);
    let load_id = json(load).await["job_id"].as_i64().expect("job id");
    assert_eq!(
        post(&app, &tenant, &format!("/api/v1/etl/jobs/{load_id}/cancel"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE id = {raw_id} AND processing_status = 'pending'"
        )),
        1
    );
}

#[tokio::test]
async fn a_job_list_carries_the_count_of_a_load_jobs_rows_not_the_rows() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    let id = new_load_job(&app, &tenant, 3).await;
    let listed = json(app.get_as("/api/v1/etl/jobs?job_type=load", &tenant).await).await;
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["payload"]["transformed_rows"], 3);
    assert!(listed[0]["payload"].get("transformed_data").is_none());
    let whole = job(&app, &tenant, id).await;
    assert_eq!(
        whole["payload"]["transformed_data"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(whole["payload"]["transformed_data"][2]["key"], "A-2");

    // 200 load jobs of 1000 rows each (about 100 KB of rows apiece, made in
    // SQL for speed): a page of them all stays small.
    app.execute(&format!(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
         SELECT {tenant}, 'load', 'jira_issues',
                jsonb_build_object('transformed_data',
                    (SELECT jsonb_agg(jsonb_build_object(
                         'integration_id', {integration}, 'external_id', r::text,
                         'key', 'A-' || r, 'summary', repeat('x', 80)))
                       FROM generate_series(1, 1000) AS r))
           FROM generate_series(1, 200)",
        tenant = tenant.id,
        integration = tenant.integration,
    ));
    let page = app
        .get_as("/api/v1/etl/jobs?job_type=load&limit=1000", &tenant)
        .await;
    assert_eq!(page.status(), 200);
    let text = page.text().await.expect("body");
    assert!(text.len() < 1024 * 1024, "{} bytes", text.len());
    let page: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(page.as_array().map(Vec::len), Some(201));
    assert_eq!(page[200]["payload"]["transformed_rows"], 1000);
}

#[tokio::test]
async fn a_load_whose_rows_cannot_fit_one_message_is_413_and_stores_nothing() {
    let app = TestApp::builder()
        .state(|state| state.with_max_message_bytes(64 * 1024))
        .spawn()
        .await;
    let tenant = app.tenant("acme");
    // Rows of about 110 KB: far under ETL_MAX_BODY_BYTES, over a message.
    let fits = new_load_job(&app, &tenant, 10).await;
    assert!(fits > 0);
    let rows: Vec<Value> = (0..1000)
        .map(|i| json!({"integration_id": tenant.integration, "external_id": format!("{i}"), "key": "K", "summary": "s", "labels": ["a","b","c","d","e","f","g","h","i","j"]}))
        .collect();
    let sent = serde_json::to_string(&rows).expect("JSON").len();
    assert!(sent < 128 * 1024, "{sent}");
    let refused = app
        .post_json(
            "/api/v1/etl/load",
            &tenant,
            &json!({"entity_type": "jira_issues", "transformed_data": rows}),
        )
        .await;
    assert_eq!(refused.status(), 413);
    let body = json(refused).await;
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("ETL_MAX_MESSAGE_BYTES"));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM etl_job_queue WHERE tenant_id = {}",
            tenant.id
        )),
        1
    );
}

#[tokio::test]
async fn every_job_keeps_the_request_id_of_the_request_that_created_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme");
    // A client's own x-request-id is kept…
    let response = app
        .authed(Method::POST, "/api/v1/etl/pipeline", &tenant)
        .header("x-request-id", "extractor-run-7")
        .json(&json!({"entity_type": "jira_issues", "integration_id": tenant.integration, "payload": {}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 202);
    let id = json(response).await["job_id"].as_i64().expect("id");
    assert_eq!(
        job(&app, &tenant, id).await["request_id"],
        "extractor-run-7"
    );
    // …and one the service made up is the one its answer names.
    let response = app
        .post_json(
            "/api/v1/etl/load",
            &tenant,
            &json!({"entity_type": "jira_issues", "transformed_data": [
                {"integration_id": tenant.integration, "external_id": "1", "key": "A-1", "summary": "s"}]}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let made_up = response
        .headers()
        .get("x-request-id")
        .expect("header")
        .to_str()
        .expect("text")
        .to_owned();
    let id = json(response).await["job_id"].as_i64().expect("id");
    assert_eq!(job(&app, &tenant, id).await["request_id"], made_up.as_str());
    // /pipeline/process stamps every job it writes with its request.
    let records: Vec<Value> = (0..5)
        .map(|i| json!({"integration_id": tenant.integration, "entity_type": "jira_issues", "raw_data": {"id": i}}))
        .collect();
    let stored = app
        .post_json(
            "/api/v1/etl/raw-data/store-batch",
            &tenant,
            &json!({"records": records}),
        )
        .await;
    assert!(stored.status().is_success());
    let response = app
        .authed(Method::POST, "/api/v1/etl/pipeline/process", &tenant)
        .header("x-request-id", "process-1")
        .json(&json!({"entity_type": "jira_issues", "batch_size": 2}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 202);
    let ids = json(response).await["job_ids"]
        .as_array()
        .expect("ids")
        .clone();
    assert_eq!(ids.len(), 3);
    for id in ids {
        let shown = job(&app, &tenant, id.as_i64().expect("id")).await;
        assert_eq!(shown["request_id"], "process-1");
    }
    // Lists show it too (every column).
    let listed = json(
        app.get_as("/api/v1/etl/jobs?job_type=extract", &tenant)
            .await,
    )
    .await;
    assert_eq!(listed[0]["request_id"], "extractor-run-7", "{listed}");
}
