//! Retention (SPEC §11) on backdated rows: exactly the finished rows past
//! their age go, in batches, under one lock; a dry run deletes nothing;
//! final rows outlive their raw records.

use diesel::prelude::*;
use etl_store::retention::{self, PassError, PassMode, PrunedKind, RetentionPolicy};
use etl_store::test_support::{poll_blocking, TestDatabase};
use etl_store::SimpleConnection;

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .expect("count")
        .n
}

/// Raw records and jobs on both sides of each rule; every external id and
/// job payload says whether retention must delete it (`go`) or keep it.
fn backdated(conn: &mut PgConnection) {
    conn.batch_execute(
        "INSERT INTO tenants (name) VALUES ('acme');
         INSERT INTO integrations (tenant_id, provider, name)
              SELECT id, 'jira', 'j' FROM tenants;
         INSERT INTO raw_extraction_data
                (tenant_id, integration_id, entity_type, external_id, raw_data,
                 processing_status, created_at, processed_at)
         SELECT t.id, i.id, 'jira_issues', r.external_id, '{}', r.status,
                LOCALTIMESTAMP - make_interval(days => r.created_days),
                LOCALTIMESTAMP - make_interval(days => r.processed_days)
           FROM tenants t JOIN integrations i ON i.tenant_id = t.id,
                (VALUES ('go-completed-40d',        'completed',  50, 40),
                        ('go-skipped-31d',          'skipped',    31, 31),
                        ('keep-completed-29d',      'completed',  50, 29),
                        ('keep-failed-100d',        'failed',    100, 100),
                        ('keep-pending-100d',       'pending',   100, 100),
                        ('keep-processing-100d',    'processing', 100, 100))
                AS r(external_id, status, created_days, processed_days);
         -- processed_at NULL: the age counts from created_at.
         INSERT INTO raw_extraction_data
                (tenant_id, integration_id, entity_type, external_id, raw_data,
                 processing_status, created_at, processed_at)
         SELECT t.id, i.id, 'jira_issues', r.external_id, '{}', 'completed',
                LOCALTIMESTAMP - make_interval(days => r.created_days), NULL
           FROM tenants t JOIN integrations i ON i.tenant_id = t.id,
                (VALUES ('go-unprocessed-created-40d', 40),
                        ('keep-unprocessed-created-2d', 2)) AS r(external_id, created_days);
         INSERT INTO etl_job_queue
                (tenant_id, job_type, entity_type, payload, status, scheduled_at, completed_at)
         SELECT t.id, 'extract', 'jira_issues', jsonb_build_object('case', j.name), j.status,
                LOCALTIMESTAMP - make_interval(days => j.scheduled_days),
                LOCALTIMESTAMP - make_interval(days => j.completed_days)
           FROM tenants t,
                (VALUES ('go-completed-15d',   'completed', 20, 15),
                        ('keep-completed-13d', 'completed', 20, 13),
                        ('keep-failed-100d',   'failed',   100, 100),
                        ('keep-pending-100d',  'pending',  100, 100),
                        ('keep-queued-100d',   'queued',   100, 100),
                        ('keep-running-100d',  'running',  100, 100))
                AS j(name, status, scheduled_days, completed_days);
         INSERT INTO etl_job_queue
                (tenant_id, job_type, entity_type, payload, status, scheduled_at, completed_at)
         SELECT t.id, 'extract', 'jira_issues', jsonb_build_object('case', j.name), 'cancelled',
                LOCALTIMESTAMP - make_interval(days => j.scheduled_days), NULL
           FROM tenants t,
                (VALUES ('go-cancelled-scheduled-20d', 20),
                        ('keep-cancelled-scheduled-1d', 1)) AS j(name, scheduled_days);",
    )
    .expect("backdated rows");
}

fn left(conn: &mut PgConnection) -> (i64, i64, i64, i64) {
    (
        count(
            conn,
            "SELECT count(*) AS n FROM raw_extraction_data WHERE external_id LIKE 'go-%'",
        ),
        count(
            conn,
            "SELECT count(*) AS n FROM raw_extraction_data WHERE external_id LIKE 'keep-%'",
        ),
        count(
            conn,
            "SELECT count(*) AS n FROM etl_job_queue WHERE payload->>'case' LIKE 'go-%'",
        ),
        count(
            conn,
            "SELECT count(*) AS n FROM etl_job_queue WHERE payload->>'case' LIKE 'keep-%'",
        ),
    )
}

#[test]
fn a_dry_run_counts_and_deletes_nothing_then_a_pass_deletes_exactly_the_finished_and_old() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    backdated(&mut conn);
    assert_eq!(left(&mut conn), (3, 5, 2, 6));
    let policy = RetentionPolicy::default();
    let dry = retention::run_pass(&mut conn, policy, PassMode::DryRun, |_, _| {
        panic!("a dry run deletes nothing")
    })
    .expect("dry run");
    assert_eq!((dry.raw_records, dry.jobs), (3, 2));
    assert_eq!(left(&mut conn), (3, 5, 2, 6), "nothing deleted");
    let mut told = Vec::new();
    let pruned = retention::run_pass(&mut conn, policy, PassMode::Delete, |kind, n| {
        told.push((kind, n))
    })
    .expect("pass");
    assert_eq!((pruned.raw_records, pruned.jobs), (3, 2));
    assert_eq!(told, [(PrunedKind::RawRecords, 3), (PrunedKind::Jobs, 2)]);
    assert_eq!(left(&mut conn), (0, 5, 0, 6), "exactly the rows §11 names");
    let again = retention::run_pass(&mut conn, policy, PassMode::Delete, |_, _| {}).expect("pass");
    assert_eq!((again.raw_records, again.jobs), (0, 0));
}

#[test]
fn zero_days_turns_a_rule_off() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    backdated(&mut conn);
    let raw_only = RetentionPolicy::from_days(30, 0);
    let pruned =
        retention::run_pass(&mut conn, raw_only, PassMode::Delete, |_, _| {}).expect("pass");
    assert_eq!((pruned.raw_records, pruned.jobs), (3, 0));
    assert_eq!(left(&mut conn), (0, 5, 2, 6));
    let jobs_only = RetentionPolicy::from_days(0, 14);
    let pruned =
        retention::run_pass(&mut conn, jobs_only, PassMode::Delete, |_, _| {}).expect("pass");
    assert_eq!((pruned.raw_records, pruned.jobs), (0, 2));
}

#[test]
fn batches_walk_the_table_once_and_final_rows_outlive_their_raw_records() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    backdated(&mut conn);
    // 2,500 more old completed records (three batches), one of which a
    // work item came from.
    conn.batch_execute(
        "INSERT INTO raw_extraction_data
                (tenant_id, integration_id, entity_type, external_id, raw_data,
                 processing_status, created_at, processed_at)
         SELECT t.id, i.id, 'jira_issues', 'go-bulk-' || g, '{}', 'completed',
                LOCALTIMESTAMP - interval '90 days', LOCALTIMESTAMP - interval '90 days'
           FROM tenants t JOIN integrations i ON i.tenant_id = t.id, generate_series(1, 2500) g;
         INSERT INTO work_items (tenant_id, integration_id, external_id, summary, raw_data_id)
         SELECT tenant_id, integration_id, external_id, 'kept', id
           FROM raw_extraction_data WHERE external_id = 'go-bulk-7';",
    )
    .expect("bulk");
    let mut batches = Vec::new();
    let pruned = retention::run_pass(
        &mut conn,
        RetentionPolicy::default(),
        PassMode::Delete,
        |kind, n| {
            if kind == PrunedKind::RawRecords {
                batches.push(n)
            }
        },
    )
    .expect("pass");
    assert_eq!(pruned.raw_records, 2503);
    assert!(
        batches
            .iter()
            .all(|&n| n as i64 <= retention::PRUNE_BATCH_ROWS),
        "{batches:?}"
    );
    assert!(batches.len() >= 3, "{batches:?}");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM work_items WHERE summary = 'kept' AND raw_data_id IS NOT NULL"),
        1,
        "the final row stays, its provenance with it"
    );
}

#[test]
fn one_process_prunes_at_a_time() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    backdated(&mut conn);
    let mut other = db.connect();
    // Another process is in the middle of a pass: it holds the lock.
    other
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({})",
            retention::PRUNE_LOCK_KEY
        ))
        .expect("lock");
    let busy = retention::run_pass(
        &mut conn,
        RetentionPolicy::default(),
        PassMode::Delete,
        |_, _| {},
    );
    assert!(matches!(busy, Err(PassError::Busy)), "{busy:?}");
    assert_eq!(left(&mut conn), (3, 5, 2, 6), "it deleted nothing");
    // A dry run changes nothing, so it needs no lock.
    let dry = retention::run_pass(
        &mut conn,
        RetentionPolicy::default(),
        PassMode::DryRun,
        |_, _| {},
    );
    assert!(dry.is_ok());
    drop(other);
    // The other session's end reaches the server a moment later.
    let pruned = poll_blocking(
        std::time::Duration::from_secs(10),
        || match retention::run_pass(
            &mut conn,
            RetentionPolicy::default(),
            PassMode::Delete,
            |_, _| {},
        ) {
            Ok(pruned) => Some(pruned),
            Err(PassError::Busy) => None,
            Err(error) => panic!("{error}"),
        },
    )
    .expect("the lock is free once its session ends");
    assert_eq!((pruned.raw_records, pruned.jobs), (3, 2));
    // The lock was given back: a second pass runs.
    assert!(retention::run_pass(
        &mut conn,
        RetentionPolicy::default(),
        PassMode::Delete,
        |_, _| {}
    )
    .is_ok());
}
