//! The operator's console through the real server (SPEC §5): replaying
//! failed raw records and the per-tenant figures of `GET /stats`.

use std::time::Duration;

use etl_tests::{poll_until, TestTenant};
use serde_json::{json, Value};

use crate::harness::{Harness, Mode};

/// Marks records failed with `code`, as a failed transform leaves them.
fn fail(h: &Harness, ids: &[i64], code: &str) {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    h.app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'failed',
                error_details = jsonb_build_object('code', '{code}', 'message', 'failed with {code}')
          WHERE id IN ({list})"
    ));
}

fn failed_among(h: &Harness, ids: &[i64]) -> i64 {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    h.app.count(&format!(
        "SELECT count(*) FROM raw_extraction_data WHERE id IN ({list}) AND processing_status = 'failed'"
    ))
}

async fn replay(h: &Harness, tenant: &TestTenant, body: Value) -> (u16, Value) {
    let response = h
        .app
        .post_json("/api/v1/etl/raw-data/replay", tenant, &body)
        .await;
    let status = response.status().as_u16();
    (status, etl_tests::json(response).await)
}

fn work_items_of(h: &Harness, tenant: &TestTenant) -> i64 {
    h.app.count(&format!(
        "SELECT count(*) FROM work_items WHERE tenant_id = {}",
        tenant.id
    ))
}

#[tokio::test]
async fn replay_by_error_code_moves_only_those_records_of_this_tenant_and_they_load() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("replayer");
    let mine = h.tenant.clone();
    let other = h.app.tenant("other");
    let ids = h.store_issues(&mine, 0, 5, 10).await;
    let theirs = h.store_issues(&other, 100, 2, 10).await;
    fail(&h, &ids[0..2], "missing_field");
    fail(&h, &ids[2..3], "value_too_long");
    fail(&h, &theirs, "missing_field");

    let (status, body) = replay(
        &h,
        &mine,
        json!({"entity_type": "jira_issues", "error_code": "missing_field"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["records"], 2, "{body}");
    assert_eq!(body["job_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(failed_among(&h, &ids[0..2]), 0, "both left failed");
    assert_eq!(failed_among(&h, &ids[2..3]), 1, "another code stays");
    assert_eq!(failed_among(&h, &theirs), 2, "another tenant's stay");
    // The two stored but never processed stay pending.
    assert_eq!(
        h.app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE id IN ({}, {}) AND processing_status = 'pending'",
            ids[3], ids[4]
        )),
        2
    );
    let job = body["job_ids"][0].as_i64().expect("job id");
    h.wait_for_status(job, "completed").await;
    let loaded = poll_until(Duration::from_secs(20), || async {
        (work_items_of(&h, &mine) == 2).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "the replayed records load");
    // Their old error is gone with the failure.
    assert_eq!(
        h.app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE id IN ({}, {})
               AND processing_status = 'completed' AND error_details IS NULL",
            ids[0], ids[1]
        )),
        2
    );

    // Without a code: every failed record of the type.
    let (status, body) = replay(&h, &mine, json!({"entity_type": "jira_issues"})).await;
    assert_eq!((status, body["records"].clone()), (202, json!(1)), "{body}");
    // Nothing left: 202, no job.
    let (status, body) = replay(&h, &mine, json!({"entity_type": "jira_issues"})).await;
    assert_eq!(status, 202);
    assert_eq!(body["records"], 0);
    assert_eq!(body["job_ids"], json!([]));
    assert_eq!(failed_among(&h, &theirs), 2);
    assert_eq!(work_items_of(&h, &other), 0);
    h.stop().await;
}

#[tokio::test]
async fn replay_refuses_what_it_cannot_do_and_changes_nothing() {
    let h = Harness::start(Mode::Amqp).await;
    let mine = h.tenant.clone();
    let other = h.app.tenant("other");
    let ids = h.store_issues(&mine, 0, 2, 10).await;
    fail(&h, &ids, "missing_field");
    for (body, field) in [
        (json!({"entity_type": "confluence_pages"}), "entity_type"),
        (
            json!({"entity_type": "jira_issues", "error_code": ""}),
            "error_code",
        ),
        (
            json!({"entity_type": "jira_issues", "error_code": "a\u{0}b"}),
            "error_code",
        ),
        (
            json!({"entity_type": "jira_issues", "integration_id": other.integration}),
            "integration_id",
        ),
    ] {
        let (status, answer) = replay(&h, &mine, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let named = answer["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["field"] == field);
        assert!(named, "{body} names {field}: {answer}");
    }
    assert_eq!(failed_among(&h, &ids), 2, "nothing moved");
    assert_eq!(h.app.count("SELECT count(*) FROM etl_job_queue"), 0);
    h.stop().await;
}

/// The pruner's count in `/metrics` for `kind`.
async fn pruned_in_metrics(h: &Harness, kind: &str) -> i64 {
    let text = h.app.get("/metrics").await.text().await.expect("metrics");
    let prefix = format!("etl_retention_rows_pruned_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_pruner_deletes_a_million_old_records_in_the_background_while_ingest_goes_on() {
    use etl_jobs::pruner::RetentionConfig;
    let h = Harness::start_with_retention(
        Mode::Postgres,
        RetentionConfig {
            every: Duration::from_millis(200),
            ..RetentionConfig::default()
        },
    )
    .await;
    let mine = h.tenant.clone();
    h.app.execute(&format!(
        "INSERT INTO raw_extraction_data
                (tenant_id, integration_id, entity_type, external_id, raw_data,
                 processing_status, created_at, processed_at)
         SELECT {}, {}, 'jira_issues', 'old-' || g, '{{}}', 'completed',
                LOCALTIMESTAMP - interval '40 days', LOCALTIMESTAMP - interval '40 days'
           FROM generate_series(1, 1000000) AS g",
        mine.id, mine.integration
    ));
    let old = "SELECT count(*) FROM raw_extraction_data WHERE external_id LIKE 'old-%'";
    // Store until the pruner is seen at work, then a hundred more beside it.
    let mut stored = Vec::new();
    let mut beside = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while beside < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pruner never started: {}",
            h.app.get("/metrics").await.text().await.unwrap_or_default()
        );
        stored.extend(h.store_issues(&mine, stored.len(), 1, 10).await);
        if pruned_in_metrics(&h, "raw_records").await > 0 {
            beside += 1;
        }
    }
    let left = h.app.count(old);
    assert!(
        left > 0 && left < 1_000_000,
        "the stores ran while the prune did ({left} old records left)"
    );
    let done = poll_until(Duration::from_secs(300), || async {
        (h.app.count(old) == 0).then_some(())
    })
    .await;
    assert!(done.is_some(), "every old record is pruned");
    // Counted as each batch commits; the last count follows its commit.
    let counted = poll_until(Duration::from_secs(10), || async {
        (pruned_in_metrics(&h, "raw_records").await == 1_000_000).then_some(())
    })
    .await;
    assert!(counted.is_some(), "/metrics counts every pruned row");
    // What was stored meanwhile is all there, pending.
    assert_eq!(
        h.app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {} AND processing_status = 'pending'",
            mine.id
        )),
        stored.len() as i64
    );
    h.stop().await;
}
