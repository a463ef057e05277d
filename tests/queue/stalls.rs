//! SPEC §8 "No job holds up another": a job whose message the broker
//! refuses is retried with backoff, then `failed` with `unpublishable`,
//! while the jobs behind it are published.

use std::time::Duration;

use etl_tests::poll_until;
use etl_tests::rabbit::rabbitmqctl;
use serde_json::json;

use crate::harness::{Harness, Mode};

/// Waits until `ids` are all `queued` (published and confirmed).
async fn all_queued(h: &Harness, ids: &[i64]) -> bool {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql =
        format!("SELECT count(*) FROM etl_job_queue WHERE id IN ({list}) AND status = 'queued'");
    poll_until(Duration::from_secs(30), || async {
        (h.app.count(&sql) == ids.len() as i64).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn a_job_the_broker_nacks_ends_unpublishable_and_the_jobs_behind_it_flow() {
    let h = Harness::start(Mode::Amqp).await;
    let vhost = h.vhost.as_ref().expect("amqp mode");
    // The extract queue takes nothing: RabbitMQ nacks every message for it.
    vhost.set_queue_policy(
        "refuse-extract",
        "^etl\\.extract$",
        r#"{"max-length": 0, "overflow": "reject-publish"}"#,
    );
    let refused = h.extract_job(1).await;
    let mut behind = Vec::new();
    for _ in 0..50 {
        behind.push(h.load_job().await);
    }
    assert!(
        all_queued(&h, &behind).await,
        "the 50 jobs behind were published"
    );
    let failed = h.wait_for_status(refused, "failed").await;
    assert_eq!(failed["error_details"]["code"], "unpublishable");
    assert_eq!(failed["retry_count"], failed["max_retries"], "{failed}");
    let message = failed["error_details"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !message.contains("PRECONDITION") && !message.is_empty(),
        "{message}"
    );
    assert_eq!(vhost.depth("etl.load"), 50);
    h.stop().await;
}

/// Lowers the node's `max_message_size` for as long as it lives, then puts
/// the old value back (also when the test fails).
struct MaxMessageSize {
    old: String,
}

impl MaxMessageSize {
    fn lower_to(bytes: usize) -> Self {
        let old = rabbitmqctl(&["eval", "application:get_env(rabbit, max_message_size)."]);
        let old = old
            .trim()
            .trim_start_matches("{ok,")
            .trim_end_matches('}')
            .to_owned();
        assert!(old.parse::<u64>().is_ok(), "max_message_size reads {old}");
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, max_message_size, {bytes})."),
        ]);
        Self { old }
    }
}

impl Drop for MaxMessageSize {
    fn drop(&mut self) {
        rabbitmqctl(&[
            "eval",
            &format!(
                "application:set_env(rabbit, max_message_size, {}).",
                self.old
            ),
        ]);
    }
}

#[tokio::test]
async fn a_message_over_the_brokers_limit_ends_unpublishable_and_the_jobs_behind_it_flow() {
    let h = Harness::start(Mode::Amqp).await;
    // 3 MiB: above every other test's messages, below the rows sent here.
    let _limit = MaxMessageSize::lower_to(3 * 1024 * 1024);
    let rows: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            json!({"integration_id": h.tenant.integration, "external_id": format!("{i}"),
                   "state": "open", "title": "t".repeat(100_000)})
        })
        .collect();
    let large = h
        .load_job_with(json!({"entity_type": "github_prs", "transformed_data": rows}))
        .await;
    let mut behind = Vec::new();
    for _ in 0..50 {
        behind.push(h.extract_job(5).await);
    }
    assert!(
        all_queued(&h, &behind).await,
        "the 50 jobs behind were published"
    );
    let failed = h.wait_for_status(large, "failed").await;
    assert_eq!(failed["error_details"]["code"], "unpublishable", "{failed}");
    let vhost = h.vhost.as_ref().expect("amqp mode");
    assert_eq!(vhost.depth("etl.extract"), 50);
    assert_eq!(vhost.depth("etl.load"), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_job_over_etl_max_message_bytes_fails_unpublishable_without_being_sent() {
    // The relay's own limit: the message is never offered to the broker.
    let h = Harness::start_with_max_message_bytes(Mode::Amqp, 64 * 1024).await;
    // Written in SQL, as a job could be by an older version: 200 KB of rows.
    h.app.execute(&format!(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
         VALUES ({}, 'load', 'github_prs',
                 jsonb_build_object('transformed_data',
                     jsonb_build_array(jsonb_build_object('title', repeat('x', 200000)))))",
        h.tenant.id
    ));
    let id = h.app.count("SELECT max(id)::int8 FROM etl_job_queue");
    h.wake();
    let behind = h.extract_job(5).await;
    assert!(all_queued(&h, &[behind]).await);
    let failed = h.wait_for_status(id, "failed").await;
    assert_eq!(failed["error_details"]["code"], "unpublishable");
    assert!(failed["error_details"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("ETL_MAX_MESSAGE_BYTES"));
    assert_eq!(h.vhost.as_ref().map(|v| v.depth("etl.load")), Some(0));
    h.stop().await;
}

async fn process(h: &Harness) -> serde_json::Value {
    let response = h
        .app
        .post_json(
            "/api/v1/etl/pipeline/process",
            &h.tenant,
            &json!({"entity_type": "jira_issues"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    etl_tests::json(response).await
}

async fn work_items(h: &Harness) -> i64 {
    h.app
        .count("SELECT count(*) FROM work_items WHERE summary IS NOT NULL")
}

/// SPEC §8: a transform job loads its rows itself, in the transaction that
/// completes its records; no message carries them, so no row is too large
/// for one and no load job is written.
#[tokio::test]
async fn a_transform_loads_its_rows_itself_whatever_the_message_limit() {
    let limit = 16 * 1024;
    let mut h = Harness::start_with_max_message_bytes(Mode::Amqp, limit).await;
    h.pipeline_worker("loads-itself");
    h.store_issues(&h.tenant, 0, 30, 2000).await;
    let large = h.store_issues(&h.tenant, 0, 1, 40_000).await[0];
    h.app.execute(&format!(
        "UPDATE raw_extraction_data SET raw_data = jsonb_set(raw_data, '{{id}}', '\"big\"') WHERE id = {large}"
    ));
    let job_id = process(&h).await["job_ids"][0].as_i64().expect("a job");
    let done = h.wait_for_status(job_id, "completed").await;
    assert_eq!(done["result"]["failed"], 0, "{done}");
    assert_eq!(done["result"]["inserted"], 31, "{done}");
    assert_eq!(work_items(&h).await, 31, "loaded when the job completed");
    assert_eq!(
        h.app
            .count("SELECT count(*) FROM etl_job_queue WHERE job_type = 'load'"),
        0,
        "no load job"
    );
    assert_eq!(
        h.app.count(
            "SELECT count(*) FROM raw_extraction_data WHERE processing_status = 'completed'"
        ),
        31
    );
    h.stop().await;
}

#[tokio::test]
async fn a_transform_naming_completed_records_leaves_them_completed() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.transform_worker("transforms-only");
    let ids = h.store_issues(&h.tenant, 0, 3, 10).await;
    h.app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'completed' WHERE tenant_id = {}",
        h.tenant.id
    ));
    let response = h
        .app
        .post_json(
            "/api/v1/etl/transform",
            &h.tenant,
            &json!({"raw_data_ids": ids, "entity_type": "jira_issues"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let job_id = etl_tests::json(response).await["job_id"]
        .as_i64()
        .expect("job");
    let done = h.wait_for_status(job_id, "completed").await;
    assert_eq!(done["result"]["transformed"], 3, "{done}");
    let completed = format!(
        "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {} AND processing_status = 'completed'",
        h.tenant.id
    );
    assert_eq!(
        h.app.count(&completed),
        3,
        "still completed, never processing"
    );
    h.stop().await;
}

#[tokio::test]
async fn cancelled_transform_records_are_loaded_by_a_later_process() {
    let h = Harness::start(Mode::Amqp).await;
    h.store_issues(&h.tenant, 0, 4, 10).await;
    // No worker yet: the job waits, queued, and is cancelled.
    let job_id = process(&h).await["job_ids"][0].as_i64().expect("a job");
    let cancelled = h
        .app
        .authed(
            reqwest::Method::POST,
            &format!("/api/v1/etl/jobs/{job_id}/cancel"),
            &h.tenant,
        )
        .send()
        .await
        .expect("request");
    assert_eq!(cancelled.status(), 200);
    let mut h = h;
    h.pipeline_worker("after-cancel");
    let again = process(&h).await;
    assert_eq!(again["records"], 4);
    let loaded = poll_until(Duration::from_secs(20), || async {
        (work_items(&h).await == 4).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "the records load after all");
    // The cancelled job never ran.
    assert_eq!(h.job(job_id).await["status"], "cancelled");
    h.stop().await;
}
