//! The raw-record counters behind `GET /stats` (migration 9): whatever
//! statements change the table, from however many sessions, the counters
//! sum to what `count(*)` says; folding a gone session's counters keeps the
//! sums; the migration counts the records already there.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use etl_store::stats::{self, Count};
use etl_store::test_support::{active_tenant, poll_blocking, TestDatabase};
use etl_store::{migrations, SimpleConnection};

fn counted(conn: &mut PgConnection, tenant: i32) -> Vec<Count> {
    let mut cells: Vec<Count> = diesel::sql_query(format!(
        "SELECT entity_type AS kind, COALESCE(processing_status, 'pending') AS status, count(*) AS count
           FROM raw_extraction_data WHERE tenant_id = {tenant} GROUP BY 1, 2"
    ))
    .load(conn)
    .expect("count");
    cells.sort();
    cells
}

fn from_counters(conn: &mut PgConnection, tenant: i32) -> Vec<Count> {
    let tenant = active_tenant(conn, tenant);
    let figures = stats::for_tenant(conn, tenant).expect("stats");
    let mut cells = figures.raw_records;
    cells.sort();
    cells
}

fn setup(conn: &mut PgConnection) -> (i32, i32) {
    conn.batch_execute(
        "INSERT INTO tenants (name) VALUES ('acme'), ('globex');
         INSERT INTO integrations (tenant_id, provider, name)
              SELECT id, 'jira', 'j' FROM tenants;",
    )
    .expect("tenants");
    let ids: Vec<i64> = ["acme", "globex"]
        .iter()
        .map(|name| {
            #[derive(QueryableByName)]
            struct Id {
                #[diesel(sql_type = BigInt)]
                id: i64,
            }
            diesel::sql_query(format!(
                "SELECT id::int8 AS id FROM tenants WHERE name = '{name}'"
            ))
            .get_result::<Id>(conn)
            .expect("id")
            .id
        })
        .collect();
    (ids[0] as i32, ids[1] as i32)
}

fn insert_records(conn: &mut PgConnection, tenant: i32, entity_type: &str, n: usize) {
    conn.batch_execute(&format!(
        "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, raw_data)
         SELECT {tenant}, (SELECT id FROM integrations WHERE tenant_id = {tenant}),
                '{entity_type}', jsonb_build_object('n', g)
           FROM generate_series(1, {n}) AS g"
    ))
    .expect("insert");
}

#[test]
fn counters_follow_every_statement_from_every_session_and_survive_folding() {
    let db = TestDatabase::migrated();
    let mut a = db.connect();
    let (acme, globex) = setup(&mut a);
    let mut b = db.connect();
    insert_records(&mut a, acme, "jira_issues", 50);
    insert_records(&mut b, acme, "jira_issues", 30);
    insert_records(&mut b, acme, "github_prs", 7);
    insert_records(&mut a, globex, "jira_issues", 5);
    // Status moves in both sessions, some rolled back, a NULL status, deletes.
    a.batch_execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'processing'
          WHERE tenant_id = {acme} AND id % 3 = 0"
    ))
    .expect("update");
    b.batch_execute(&format!(
        "BEGIN;
         UPDATE raw_extraction_data SET processing_status = 'failed' WHERE tenant_id = {acme};
         ROLLBACK;
         UPDATE raw_extraction_data SET processing_status = 'completed'
          WHERE tenant_id = {acme} AND processing_status = 'processing' AND id % 2 = 0;
         UPDATE raw_extraction_data SET processing_status = NULL
          WHERE tenant_id = {acme} AND entity_type = 'github_prs' AND id % 2 = 1;
         UPDATE raw_extraction_data SET raw_data = '{{}}' WHERE tenant_id = {acme};"
    ))
    .expect("updates");
    a.batch_execute(&format!(
        "DELETE FROM raw_extraction_data WHERE tenant_id = {acme} AND id % 5 = 0"
    ))
    .expect("delete");
    assert_eq!(from_counters(&mut a, acme), counted(&mut a, acme));
    assert_eq!(from_counters(&mut a, globex), counted(&mut a, globex));
    let shards = |conn: &mut PgConnection| {
        conn.batch_execute("SELECT 1").expect("alive");
        diesel::sql_query(
            "SELECT 'shards' AS kind, '' AS status, count(DISTINCT shard) AS count FROM raw_record_counts",
        )
        .get_result::<Count>(conn)
        .expect("shards")
        .count
    };
    assert_eq!(shards(&mut a), 2, "one counter row set per session");
    // Session b ends; its counters are folded into shard 0.
    drop(b);
    // Its backend leaves pg_stat_activity a moment after the socket closes.
    let folded = poll_blocking(std::time::Duration::from_secs(10), || {
        let folded = stats::compact_counts(&mut a).expect("compact");
        (folded > 0).then_some(folded)
    });
    assert!(folded.is_some(), "the gone session's counters are folded");
    assert_eq!(from_counters(&mut a, acme), counted(&mut a, acme));
    assert_eq!(shards(&mut a), 2, "a's own and shard 0");
    // Folding again changes nothing.
    stats::compact_counts(&mut a).expect("compact");
    assert_eq!(from_counters(&mut a, acme), counted(&mut a, acme));
    // A TRUNCATE (no row triggers fire) empties the counters too.
    a.batch_execute("TRUNCATE raw_extraction_data")
        .expect("truncate");
    assert_eq!(from_counters(&mut a, acme), []);
}

#[test]
fn the_migration_counts_the_records_already_there() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let (acme, _) = setup(&mut conn);
    // Back to before migration 9 (and whatever came after it).
    loop {
        let reverted = migrations::revert_last(&mut conn)
            .expect("revert")
            .expect("migration 9 is applied");
        if reverted.ends_with("000009") {
            break;
        }
    }
    insert_records(&mut conn, acme, "jira_issues", 12);
    conn.batch_execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'failed' WHERE tenant_id = {acme} AND id % 4 = 0"
    ))
    .expect("update");
    migrations::run_pending(&mut conn).expect("migrate");
    assert_eq!(from_counters(&mut conn, acme), counted(&mut conn, acme));
    assert_eq!(
        counted(&mut conn, acme)
            .iter()
            .map(|c| c.count)
            .sum::<i64>(),
        12
    );
}

#[test]
fn job_and_loaded_minute_counters_follow_their_tables() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let (acme, _) = setup(&mut conn);
    conn.batch_execute(&format!(
        "SET TIME ZONE 'UTC';
         INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
         SELECT {acme}, CASE WHEN g % 2 = 0 THEN 'transform' ELSE 'load' END, 'jira_issues', '{{}}'
           FROM generate_series(1, 40) g;
         UPDATE etl_job_queue SET status = 'running' WHERE id % 3 = 0;
         UPDATE etl_job_queue SET status = 'completed' WHERE status = 'running' AND id % 2 = 0;
         UPDATE etl_job_queue SET heartbeat_at = now();
         DELETE FROM etl_job_queue WHERE id % 7 = 0;
         INSERT INTO work_items (tenant_id, integration_id, external_id, summary, loaded_at)
         SELECT {acme}, (SELECT id FROM integrations WHERE tenant_id = {acme}), g::text, 's',
                date_trunc('minute', LOCALTIMESTAMP) - (g % 3) * interval '1 minute'
           FROM generate_series(1, 30) g;
         UPDATE work_items SET loaded_at = date_trunc('minute', LOCALTIMESTAMP) WHERE external_id::int % 2 = 0;
         DELETE FROM work_items WHERE external_id::int % 5 = 0;"
    ))
    .expect("changes");
    let tenant = active_tenant(&mut conn, acme);
    let figures = stats::for_tenant(&mut conn, tenant).expect("stats");
    let mut jobs = figures.jobs;
    jobs.sort();
    let mut counted_jobs: Vec<Count> = diesel::sql_query(format!(
        "SELECT job_type AS kind, status, count(*) AS count FROM etl_job_queue
          WHERE tenant_id = {acme} GROUP BY 1, 2"
    ))
    .load(&mut conn)
    .expect("count");
    counted_jobs.sort();
    assert_eq!(jobs, counted_jobs);
    assert_eq!(
        figures.outbox_pending,
        counted_jobs
            .iter()
            .filter(|c| c.status == "pending")
            .map(|c| c.count)
            .sum::<i64>()
    );
    #[derive(QueryableByName)]
    struct Minute {
        #[diesel(sql_type = diesel::sql_types::Timestamp)]
        minute: chrono::NaiveDateTime,
        #[diesel(sql_type = BigInt)]
        rows: i64,
    }
    let by_sql: Vec<Minute> = diesel::sql_query(format!(
        "SELECT date_trunc('minute', loaded_at) AS minute, count(*) AS rows FROM work_items
          WHERE tenant_id = {acme} GROUP BY 1 ORDER BY 1"
    ))
    .load(&mut conn)
    .expect("minutes");
    assert_eq!(by_sql.iter().map(|m| m.rows).sum::<i64>(), 24);
    for minute in &by_sql {
        let shown = figures
            .loaded_per_minute
            .iter()
            .find(|m| m.minute == minute.minute)
            .map_or(0, |m| m.rows);
        assert_eq!(shown, minute.rows, "{}", minute.minute);
    }
    assert_eq!(
        figures
            .loaded_per_minute
            .iter()
            .map(|m| m.rows)
            .sum::<i64>(),
        24
    );
}
