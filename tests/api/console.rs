//! `GET /api/v1/etl/stats` (SPEC §5 "Dashboard"): every figure equals what
//! SQL counts for the tenant, and no tenant sees another's.

use etl_tests::{json, TestApp, TestTenant};
use serde_json::{json, Value};

async fn store(app: &TestApp, tenant: &TestTenant, entity_type: &str, id: usize) -> i64 {
    let body = json!({"integration_id": tenant.integration, "entity_type": entity_type,
                      "raw_data": {"id": id.to_string(), "key": format!("S-{id}")}});
    let response = app
        .post_json("/api/v1/etl/raw-data/store", tenant, &body)
        .await;
    assert_eq!(response.status(), 201);
    json(response).await["record_id"].as_i64().expect("id")
}

async fn stats(app: &TestApp, tenant: &TestTenant) -> Value {
    let response = app.get_as("/api/v1/etl/stats", tenant).await;
    assert_eq!(response.status(), 200);
    json(response).await
}

/// `{kind: {status: N}}` as SQL counts it.
fn counted(app: &TestApp, sql: &str) -> Value {
    let mut conn = app.db.connect();
    use etl_store::test_support::diesel_prelude::*;
    #[derive(QueryableByName)]
    struct Cell {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let cells: Vec<Cell> = diesel::sql_query(sql).load(&mut conn).expect("count");
    let mut out = serde_json::Map::new();
    for cell in cells {
        out.entry(cell.kind)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(cell.status, json!(cell.n));
    }
    Value::Object(out)
}

/// The database's current minute, as seconds since the epoch (UTC).
fn this_minute(app: &TestApp) -> i64 {
    app.count("SELECT extract(epoch FROM date_trunc('minute', now() AT TIME ZONE 'UTC'))::int8")
}

/// A work item loaded one second into the minute starting at `minute`.
fn insert_work_item(app: &TestApp, tenant: &TestTenant, id: &str, minute: i64) {
    app.execute(&format!(
        "INSERT INTO work_items (tenant_id, integration_id, external_id, key, summary, loaded_at)
         VALUES ({}, {}, '{id}', 'K-{id}', 'loaded',
                 to_timestamp({minute} + 1) AT TIME ZONE 'UTC')",
        tenant.id, tenant.integration
    ));
}

fn rows_at(minutes: &[Value], minute: i64) -> i64 {
    let stamp = chrono::DateTime::from_timestamp(minute, 0).expect("time");
    minutes
        .iter()
        .find(|m| m["minute"].as_str().and_then(|t| t.parse().ok()) == Some(stamp))
        .map_or(0, |m| m["rows"].as_i64().expect("rows"))
}

#[tokio::test]
async fn stats_equal_sql_for_the_tenant_and_show_no_other_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let globex = app.tenant("globex");
    let mut jira = Vec::new();
    for i in 0..6 {
        jira.push(store(&app, &acme, "jira_issues", i).await);
    }
    for i in 0..2 {
        store(&app, &acme, "github_prs", i).await;
    }
    for i in 0..3 {
        store(&app, &globex, "jira_issues", 100 + i).await;
    }
    // Statuses change, records go: the counters follow every statement.
    app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'failed',
                error_details = jsonb_build_object('code', 'missing_field', 'message', 'no key ' || id)
          WHERE id IN ({}, {}, {})",
        jira[0], jira[1], jira[2]
    ));
    app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'failed',
                error_details = '{{\"code\": \"value_too_long\", \"message\": \"id too long\"}}'
          WHERE id = {}",
        jira[3]
    ));
    app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'completed' WHERE id = {}",
        jira[4]
    ));
    app.execute(&format!(
        "DELETE FROM raw_extraction_data WHERE id = {}",
        jira[5]
    ));
    app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'failed' WHERE tenant_id = {}",
        globex.id
    ));
    // Jobs: two extract jobs stay pending (no relay in this test).
    for _ in 0..2 {
        let response = app
            .post_json(
                "/api/v1/etl/pipeline",
                &acme,
                &json!({"entity_type": "jira_issues", "integration_id": acme.integration, "payload": {}}),
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    // Rows loaded this minute (two), five minutes ago, and two hours ago.
    let now = this_minute(&app);
    insert_work_item(&app, &acme, "a", now);
    insert_work_item(&app, &acme, "b", now);
    insert_work_item(&app, &acme, "c", now - 5 * 60);
    insert_work_item(&app, &acme, "old", now - 120 * 60);
    insert_work_item(&app, &globex, "g", now);

    let figures = stats(&app, &acme).await;
    let raw_sql = format!(
        "SELECT entity_type AS kind, processing_status AS status, count(*) AS n
           FROM raw_extraction_data WHERE tenant_id = {} GROUP BY 1, 2",
        acme.id
    );
    assert_eq!(figures["raw_records"], counted(&app, &raw_sql), "{figures}");
    assert_eq!(figures["raw_records"]["jira_issues"]["failed"], 4);
    assert_eq!(figures["raw_records"]["github_prs"]["pending"], 2);
    let jobs_sql = format!(
        "SELECT job_type AS kind, status, count(*) AS n
           FROM etl_job_queue WHERE tenant_id = {} GROUP BY 1, 2",
        acme.id
    );
    assert_eq!(figures["jobs"], counted(&app, &jobs_sql));
    assert_eq!(figures["jobs"]["extract"]["pending"], 2);
    assert_eq!(figures["outbox"]["pending"], 2);
    assert!(
        figures["outbox"]["oldest_pending_age_s"]
            .as_f64()
            .expect("age")
            >= 0.0
    );
    // The sample is one of the group's messages.
    let mut failures = figures["failures"].clone();
    let sample = failures[0]["sample"].take();
    assert!(
        jira[0..3]
            .iter()
            .any(|id| sample == json!(format!("no key {id}"))),
        "{sample}"
    );
    assert_eq!(
        failures,
        json!([
            {"entity_type": "jira_issues", "code": "missing_field", "count": 3, "sample": null},
            {"entity_type": "jira_issues", "code": "value_too_long", "count": 1,
             "sample": "id too long"},
        ])
    );
    let minutes = figures["loaded_per_minute"]
        .as_array()
        .expect("minutes")
        .clone();
    assert_eq!(minutes.len(), 60, "the last hour, minute by minute");
    let rows: Vec<i64> = minutes
        .iter()
        .map(|m| m["rows"].as_i64().expect("rows"))
        .collect();
    // By timestamp: the minute may have turned since `now` was read.
    assert_eq!(rows_at(&minutes, now), 2, "this minute: {minutes:?}");
    assert_eq!(
        rows_at(&minutes, now - 300),
        1,
        "five minutes ago: {rows:?}"
    );
    assert_eq!(rows.iter().sum::<i64>(), 3, "none older than the hour");
    let stamps: Vec<chrono::DateTime<chrono::Utc>> = minutes
        .iter()
        .map(|m| {
            let text = m["minute"].as_str().expect("minute");
            assert!(text.ends_with('Z'), "{text}");
            text.parse().expect("RFC 3339")
        })
        .collect();
    assert!(stamps.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 60));

    // The other tenant sees only its own.
    let theirs = stats(&app, &globex).await;
    assert_eq!(theirs["raw_records"], json!({"jira_issues": {"failed": 3}}));
    assert_eq!(theirs["jobs"], json!({}));
    assert_eq!(theirs["outbox"]["pending"], 0);
    assert_eq!(
        theirs["failures"],
        json!([{"entity_type": "jira_issues", "code": null, "count": 3, "sample": null}])
    );
    let their_rows: i64 = theirs["loaded_per_minute"]
        .as_array()
        .expect("minutes")
        .iter()
        .map(|m| m["rows"].as_i64().expect("rows"))
        .sum();
    assert_eq!(their_rows, 1);
    app.stop().await;
}

#[tokio::test]
async fn stats_need_a_token_of_an_active_tenant() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/etl/stats").await;
    assert_eq!(response.status(), 401);
    let inactive = app.create_tenant("asleep", false);
    let response = app
        .client
        .get(app.url("/api/v1/etl/stats"))
        .bearer_auth(app.token(inactive))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn stats_give_the_oldest_waiting_and_the_longest_running_jobs_ages() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let globex = app.tenant("globex");
    let idle = stats(&app, &acme).await;
    assert_eq!(
        idle["job_ages"],
        json!({"oldest_waiting_s": null, "oldest_running_s": null})
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app
            .post_json(
                "/api/v1/etl/pipeline",
                &acme,
                &json!({"entity_type": "jira_issues", "integration_id": acme.integration, "payload": {}}),
            )
            .await;
        assert_eq!(response.status(), 202);
        ids.push(json(response).await["job_id"].as_i64().expect("id"));
    }
    // One waits (pending, an hour old), one is queued (two hours old), one
    // runs (started ten minutes ago); another tenant's older job is not
    // theirs to see.
    app.execute(&format!(
        "UPDATE etl_job_queue SET created_at = LOCALTIMESTAMP - interval '1 hour' WHERE id = {}",
        ids[0]
    ));
    app.execute(&format!(
        "UPDATE etl_job_queue SET status = 'queued', created_at = LOCALTIMESTAMP - interval '2 hours'
          WHERE id = {}",
        ids[1]
    ));
    app.execute(&format!(
        "UPDATE etl_job_queue SET status = 'running', created_at = LOCALTIMESTAMP - interval '1 day',
                started_at = LOCALTIMESTAMP - interval '10 minutes', heartbeat_at = LOCALTIMESTAMP
          WHERE id = {}",
        ids[2]
    ));
    let figures = stats(&app, &acme).await;
    let waiting = figures["job_ages"]["oldest_waiting_s"]
        .as_f64()
        .expect("waiting");
    let running = figures["job_ages"]["oldest_running_s"]
        .as_f64()
        .expect("running");
    assert!((7200.0..7260.0).contains(&waiting), "{figures}");
    assert!((600.0..660.0).contains(&running), "{figures}");
    assert_eq!(
        stats(&app, &globex).await["job_ages"],
        json!({"oldest_waiting_s": null, "oldest_running_s": null})
    );
}
