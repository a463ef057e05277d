//! SPEC §8: within a transform or load job, a record its final table
//! refuses fails alone; the rest of the batch loads.

use etl_tests::json;
use serde_json::{json, Value};

use crate::harness::{Harness, Mode};

fn issue(id: &str) -> Value {
    json!({"id": id, "key": format!("K-{}", id.len()), "fields": {
        "summary": "s", "project": {"key": "K"},
        "customfield_1": 12345678901234567890123_u128.to_string(),
        "customfield_2": 0.1
    }})
}

/// The external ids of a final table's rows (`work-items`), sorted.
async fn loaded_keys(h: &Harness, table: &str) -> Vec<String> {
    let rows = json(
        h.app
            .get_as(&format!("/api/v1/etl/{table}"), &h.tenant)
            .await,
    )
    .await;
    let mut keys: Vec<String> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["external_id"].as_str().map(str::to_owned))
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn a_transform_batch_with_an_over_long_id_loads_the_others_and_fails_that_record() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("containment");
    let long_id = "9".repeat(256);
    let ids = ["1", long_id.as_str(), "3"];
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"integration_id": h.tenant.integration, "entity_type": "jira_issues", "raw_data": issue(id)}))
        .collect();
    let response = h
        .app
        .post_json(
            "/api/v1/etl/raw-data/store-batch",
            &h.tenant,
            &json!({"records": records}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let raw_ids = json(response).await["record_ids"].clone();
    let response = h
        .app
        .post_json(
            "/api/v1/etl/transform",
            &h.tenant,
            &json!({"entity_type": "jira_issues", "raw_data_ids": raw_ids}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let job_id = json(response).await["job_id"].as_i64().expect("job id");
    h.wait_for_status(job_id, "completed").await;

    assert_eq!(loaded_keys(&h, "work-items").await, ["1", "3"]);
    let statuses: Vec<Value> =
        futures_util::future::join_all(raw_ids.as_array().expect("ids").iter().map(|id| {
            let path = format!("/api/v1/etl/raw-data/{id}");
            let h = &h;
            async move { json(h.app.get_as(&path, &h.tenant).await).await }
        }))
        .await;
    assert_eq!(statuses[0]["processing_status"], "completed");
    assert_eq!(statuses[2]["processing_status"], "completed");
    assert_eq!(statuses[1]["processing_status"], "failed");
    assert_eq!(statuses[1]["error_details"]["code"], "value_too_long");
    assert_eq!(statuses[1]["error_details"]["field"], "id");
    assert!(statuses[1]["error_details"]["message"].is_string());
    h.stop().await;
}

#[tokio::test]
async fn a_load_row_the_table_refuses_is_listed_in_result_errors_and_the_others_load() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("containment");
    let integration = h.tenant.integration;
    let row = |external_id: String, head_sha: &str| json!({"integration_id": integration, "external_id": external_id, "state": "open", "head_sha": head_sha});
    let body = json!({"entity_type": "github_prs", "transformed_data": [
        row("1".into(), "abc"),
        row("x".repeat(300), "abc"),
        row("3".into(), &"f".repeat(65)),
        row("4".into(), "def"),
    ]});
    let job_id = h.load_job_with(body).await;
    let job = h.wait_for_status(job_id, "completed").await;
    assert_eq!(job["result"]["inserted"], 2, "{job}");
    let errors = job["result"]["errors"].as_array().expect("errors listed");
    let summary: Vec<(i64, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["index"].as_i64().unwrap_or(-1),
                e["code"].as_str().unwrap_or_default(),
                e["field"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "value_too_long", "external_id"),
            (2, "value_too_long", "head_sha")
        ]
    );
    assert_eq!(loaded_keys(&h, "pull-requests").await, ["1", "4"]);
    h.stop().await;
}

#[tokio::test]
async fn custom_fields_reach_the_final_table_with_every_digit() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("containment");
    let body = format!(
        r#"{{"integration_id":{},"entity_type":"jira_issues","raw_data":{{"id":"7","fields":{{"summary":"s",
            "customfield_1":12345678901234567890123,"customfield_2":90.28571428571429}}}}}}"#,
        h.tenant.integration
    );
    let response = h
        .app
        .post_text("/api/v1/etl/raw-data/store", &h.tenant, body)
        .await;
    assert_eq!(response.status(), 201);
    let raw_id = json(response).await["record_id"].clone();
    let response = h
        .app
        .post_json(
            "/api/v1/etl/transform",
            &h.tenant,
            &json!({"entity_type": "jira_issues", "raw_data_ids": [raw_id]}),
        )
        .await;
    let job_id = json(response).await["job_id"].as_i64().expect("job id");
    h.wait_for_status(job_id, "completed").await;
    let text = h
        .app
        .get_as("/api/v1/etl/work-items", &h.tenant)
        .await
        .text()
        .await
        .expect("body");
    assert!(
        text.contains(r#""customfield_1": 12345678901234567890123"#)
            && text.contains(r#""customfield_2": 90.28571428571429"#),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_load_row_of_the_wrong_shape_fails_its_raw_record_and_the_job_completes() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("containment");
    let github = h.app.create_integration(h.tenant.id, "github", true);
    let stored = json(
        h.app
            .post_json(
                "/api/v1/etl/raw-data/store",
                &h.tenant,
                &json!({"integration_id": github, "entity_type": "github_prs", "raw_data": {"id": 41}}),
            )
            .await,
    )
    .await;
    let raw_id = stored["record_id"].as_i64().expect("id");
    h.app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'processing' WHERE id = {raw_id}"
    ));
    let bad = json!({"integration_id": github, "external_id": "41", "state": "reopened", "raw_data_id": raw_id});
    let good = json!({"integration_id": github, "external_id": "42", "state": "open"});
    h.app.execute(&format!(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, max_retries)
         VALUES ({}, 'load', 'github_prs', '{}', 0)",
        h.tenant.id,
        json!({"transformed_data": [bad, good]})
    ));
    let job_id = h.app.count("SELECT max(id)::int8 FROM etl_job_queue");
    let job = h.wait_for_status(job_id, "completed").await;
    assert_eq!(job["result"]["inserted"], 1, "{job}");
    let record = json(
        h.app
            .get_as(&format!("/api/v1/etl/raw-data/{raw_id}"), &h.tenant)
            .await,
    )
    .await;
    assert_eq!(record["processing_status"], "failed");
    assert_eq!(record["error_details"]["code"], "invalid_row");
    h.stop().await;
}

/// SPEC §8 with a refusal nothing in the service can see ahead: a trigger
/// of this test's own database refuses two rows for their content; they
/// are found and fail alone, the other rows load.
#[tokio::test]
async fn load_rows_a_trigger_refuses_fail_alone_and_the_others_load() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.app.execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.external_id LIKE 'poison%' THEN
             RAISE EXCEPTION 'poisoned row' USING ERRCODE = '22023';
           END IF;
           RETURN NEW;
         END $$",
    );
    h.app.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON pull_requests
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    );
    h.pipeline_worker("containment");
    let integration = h.tenant.integration;
    let ids = ["1", "poison-a", "3", "4", "5", "poison-b", "7"];
    let rows: Vec<Value> = ids
        .iter()
        .map(|id| json!({"integration_id": integration, "external_id": id, "state": "open"}))
        .collect();
    let job_id = h
        .load_job_with(json!({"entity_type": "github_prs", "transformed_data": rows}))
        .await;
    let job = h.wait_for_status(job_id, "completed").await;
    let refused: Vec<i64> = job["result"]["errors"]
        .as_array()
        .expect("errors listed")
        .iter()
        .map(|e| e["index"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(refused, [1, 5], "{job}");
    assert_eq!(job["result"]["inserted"], 5, "{job}");
    assert_eq!(job["retry_count"], 0, "content is not retried");
    assert_eq!(
        loaded_keys(&h, "pull-requests").await,
        ["1", "3", "4", "5", "7"]
    );
    h.stop().await;
}
