//! Repositories against a real, per-test PostgreSQL database.

use diesel::prelude::*;
use etl_domain::{
    EntityType, IntegrationId, JobPriority, JobStatus, JobType, PageLimit, ProcessingStatus,
};
use etl_store::integrations::{self, NewIntegration};
use etl_store::jobs::{self, JobFilter, NewJob};
use etl_store::raw_records::{self, NewRawRecord, RawRecordFilter, StatusUpdate};
use etl_store::tenants::{self, ActiveTenant, NewTenant};
use etl_store::test_support::{active_tenant, TestDatabase};
use etl_store::JsonText;
use serde_json::json;

struct Fixture {
    tenant: i32,
    other_tenant: i32,
    integration: i32,
    /// The tenants' proofs from the door, for the functions that ask for one.
    active: ActiveTenant,
    other_active: ActiveTenant,
}

fn fixture(conn: &mut PgConnection) -> Fixture {
    let tenant = tenants::insert(
        conn,
        &NewTenant {
            name: "acme",
            active: true,
        },
    )
    .expect("tenant");
    let other = tenants::insert(
        conn,
        &NewTenant {
            name: "globex",
            active: true,
        },
    )
    .expect("tenant");
    let integration = integrations::insert(
        conn,
        &NewIntegration {
            tenant_id: tenant.id,
            provider: "jira",
            name: "Acme Jira",
            active: true,
            settings: json!({}),
        },
    )
    .expect("integration");
    Fixture {
        tenant: tenant.id,
        other_tenant: other.id,
        integration: integration.id,
        active: active_tenant(conn, tenant.id),
        other_active: active_tenant(conn, other.id),
    }
}

/// Inserts records that all pass their checks, returning their ids.
fn insert(conn: &mut PgConnection, records: &[NewRawRecord]) -> Vec<i32> {
    raw_records::insert_checked_many(conn, records)
        .expect("insert")
        .into_iter()
        .map(|id| id.expect("the record passes its checks"))
        .collect()
}

fn entity(name: &str) -> EntityType {
    EntityType::parse(name).expect("valid entity type")
}

fn record(f: &Fixture, external_id: &str) -> NewRawRecord {
    NewRawRecord {
        tenant_id: f.tenant,
        integration_id: f.integration,
        entity_type: "jira_issues".to_owned(),
        external_id: Some(external_id.to_owned()),
        raw_data: JsonText::of(&json!({"id": external_id, "fields": {"summary": "Ünïcode ✓"}})),
        extraction_metadata: Some(JsonText::of(&json!({"page": 1}))),
        ingest_changes: JsonText("[]".to_owned()),
    }
}

#[test]
fn tenants_are_found_by_id_and_name_and_can_be_deactivated() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let tenant = tenants::find(&mut conn, f.tenant)
        .expect("query")
        .expect("exists");
    assert_eq!(tenant.name, "acme");
    assert!(tenant.active);
    assert!(tenant.created_at.is_some());
    assert_eq!(
        tenants::find_by_name(&mut conn, "globex")
            .expect("query")
            .map(|t| t.id),
        Some(f.other_tenant)
    );
    assert_eq!(
        tenants::set_active(&mut conn, f.tenant, false).expect("update"),
        1
    );
    assert!(
        !tenants::find(&mut conn, f.tenant)
            .expect("query")
            .expect("exists")
            .active
    );
    assert_eq!(tenants::find(&mut conn, 999_999).expect("query"), None);
}

#[test]
fn integrations_are_only_visible_to_their_tenant() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let mine = integrations::find_for_tenant(
        &mut conn,
        f.active,
        etl_domain::IntegrationId::new(f.integration),
    )
    .expect("query");
    assert_eq!(mine.map(|i| i.provider), Some("jira".to_owned()));
    assert_eq!(
        integrations::find_for_tenant(
            &mut conn,
            f.other_active,
            etl_domain::IntegrationId::new(f.integration)
        )
        .expect("query"),
        None
    );
    assert_eq!(
        integrations::active_ids_for_tenant(
            &mut conn,
            f.active,
            &[
                IntegrationId::new(f.integration),
                IntegrationId::new(424_242)
            ]
        )
        .expect("query"),
        [IntegrationId::new(f.integration)]
    );
    integrations::set_active(
        &mut conn,
        etl_domain::IntegrationId::new(f.integration),
        false,
    )
    .expect("deactivate");
    assert!(integrations::active_ids_for_tenant(
        &mut conn,
        f.active,
        &[IntegrationId::new(f.integration)]
    )
    .expect("query")
    .is_empty());
    assert_eq!(
        integrations::list_for_tenant(&mut conn, etl_domain::TenantId::new(f.tenant))
            .expect("list")
            .len(),
        1
    );
}

#[test]
fn integration_settings_must_be_an_object() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let refused = integrations::insert(
        &mut conn,
        &NewIntegration {
            tenant_id: f.tenant,
            provider: "github",
            name: "bad",
            active: true,
            settings: json!([1, 2]),
        },
    );
    assert!(refused.is_err());
}

#[test]
fn raw_records_insert_in_one_statement_and_return_ids_in_input_order() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let batch: Vec<_> = (0..250).map(|i| record(&f, &format!("ext-{i}"))).collect();
    let ids = insert(&mut conn, &batch);
    assert_eq!(ids.len(), 250);
    for (id, new) in ids.iter().zip(&batch) {
        let row =
            raw_records::find_for_tenant(&mut conn, f.active, etl_domain::RawRecordId::new(*id))
                .expect("query")
                .expect("stored");
        assert_eq!(row.external_id, new.external_id);
        assert_eq!(tree(&row.raw_data), tree(&new.raw_data));
        assert_eq!(row.status(), ProcessingStatus::Pending);
        assert!(row.created_at.is_some());
        assert_eq!(row.processed_at, None);
    }
    assert!(insert(&mut conn, &[]).is_empty());
}

#[test]
fn raw_records_of_another_tenant_read_as_missing() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let ids = insert(&mut conn, &[record(&f, "1")]);
    assert_eq!(
        raw_records::find_for_tenant(
            &mut conn,
            f.other_active,
            etl_domain::RawRecordId::new(ids[0])
        )
        .expect("query"),
        None
    );
    let filter = RawRecordFilter {
        entity_type: entity("jira_issues"),
        status: None,
        after_id: None,
        limit: PageLimit::default(),
    };
    assert!(raw_records::list_for_tenant(
        &mut conn,
        etl_domain::TenantId::new(f.other_tenant),
        &filter
    )
    .expect("list")
    .is_empty());
    assert_eq!(
        raw_records::update_status(
            &mut conn,
            f.other_active,
            etl_domain::RawRecordId::new(ids[0]),
            ProcessingStatus::Skipped,
            None
        )
        .expect("update"),
        StatusUpdate::NotFound
    );
    let row =
        raw_records::find_for_tenant(&mut conn, f.active, etl_domain::RawRecordId::new(ids[0]))
            .expect("query")
            .expect("row");
    assert_eq!(
        row.status(),
        ProcessingStatus::Pending,
        "another tenant changed nothing"
    );
}

#[test]
fn keyset_paging_returns_every_record_once_oldest_first() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let batch: Vec<_> = (0..23).map(|i| record(&f, &i.to_string())).collect();
    let ids = insert(&mut conn, &batch);
    let mut other = record(&f, "github");
    other.entity_type = "github_prs".to_owned();
    insert(&mut conn, &[other]);

    let mut seen = Vec::new();
    let mut after_id = None;
    loop {
        let filter = RawRecordFilter {
            entity_type: entity("jira_issues"),
            status: None,
            after_id,
            limit: PageLimit::new(5).expect("valid"),
        };
        let page =
            raw_records::list_for_tenant(&mut conn, etl_domain::TenantId::new(f.tenant), &filter)
                .expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after_id = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, ids);
}

#[test]
fn listing_filters_by_status() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let ids = insert(&mut conn, &[record(&f, "a"), record(&f, "b")]);
    raw_records::update_status(
        &mut conn,
        f.active,
        etl_domain::RawRecordId::new(ids[1]),
        ProcessingStatus::Failed,
        Some(json!({"code": "x"})),
    )
    .expect("update");
    let filter = RawRecordFilter {
        entity_type: entity("jira_issues"),
        status: Some(ProcessingStatus::Failed),
        after_id: None,
        limit: PageLimit::default(),
    };
    let failed =
        raw_records::list_for_tenant(&mut conn, etl_domain::TenantId::new(f.tenant), &filter)
            .expect("list");
    assert_eq!(failed.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1]]);
    let detail =
        raw_records::find_for_tenant(&mut conn, f.active, etl_domain::RawRecordId::new(ids[1]))
            .expect("find")
            .expect("exists");
    assert_eq!(detail.error_details, Some(json!({"code": "x"})));
}

#[test]
fn status_changes_follow_the_rules_and_stamp_processed_at() {
    use ProcessingStatus::*;
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let id = insert(&mut conn, &[record(&f, "s")])[0];
    let mut change = |to, details| {
        raw_records::update_status(
            &mut conn,
            f.active,
            etl_domain::RawRecordId::new(id),
            to,
            details,
        )
        .expect("update")
    };
    assert_eq!(change(Pending, None), StatusUpdate::Unchanged);
    assert_eq!(change(Processing, None), StatusUpdate::Updated);
    assert_eq!(
        change(Failed, Some(json!({"why": "bad"}))),
        StatusUpdate::Updated
    );
    assert_eq!(
        change(Completed, None),
        StatusUpdate::Forbidden { current: Failed }
    );
    assert_eq!(change(Pending, None), StatusUpdate::Updated);
    assert_eq!(change(Completed, None), StatusUpdate::Updated);
    assert_eq!(change(Completed, None), StatusUpdate::Unchanged);
    assert_eq!(
        change(Pending, None),
        StatusUpdate::Forbidden { current: Completed }
    );

    let row = raw_records::find_for_tenant(&mut conn, f.active, etl_domain::RawRecordId::new(id))
        .expect("query")
        .expect("row");
    assert_eq!(row.status(), Completed);
    assert!(row.processed_at.is_some(), "completed stamps processed_at");
}

#[test]
fn unknown_status_values_are_refused_by_the_database() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let refused = diesel::sql_query(format!(
        "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, raw_data, processing_status)
         VALUES ({}, {}, 'x', '{{}}', 'done')",
        f.tenant, f.integration
    ))
    .execute(&mut conn);
    assert!(refused.is_err());
}

#[test]
fn jobs_take_the_seed_defaults_and_filter_per_tenant() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let job = jobs::insert(
        &mut conn,
        &NewJob::new(
            f.tenant,
            JobType::Transform,
            &entity("jira_issues"),
            json!({"raw_data_ids": [1, 2]}),
            JobPriority::new(2).expect("valid"),
        ),
    )
    .expect("insert");
    assert_eq!(job.status(), JobStatus::Pending);
    assert_eq!(job.job_type(), Some(JobType::Transform));
    assert_eq!(job.priority, Some(2));
    assert_eq!(job.retry_count, Some(0));
    assert_eq!(job.max_retries, Some(3));
    assert!(job.scheduled_at.is_some());
    jobs::insert(
        &mut conn,
        &NewJob::new(
            f.tenant,
            JobType::Extract,
            &entity("github_prs"),
            json!({}),
            JobPriority::default(),
        ),
    )
    .expect("insert");

    let transforms = jobs::list_for_tenant(
        &mut conn,
        f.active,
        &JobFilter {
            job_type: Some(JobType::Transform),
            ..JobFilter::default()
        },
    )
    .expect("list");
    assert_eq!(
        transforms.iter().map(|j| j.id).collect::<Vec<_>>(),
        [job.id]
    );
    assert_eq!(
        jobs::list_for_tenant(&mut conn, f.active, &JobFilter::default())
            .expect("list")
            .len(),
        2
    );
    assert!(
        jobs::list_for_tenant(&mut conn, f.other_active, &JobFilter::default())
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        jobs::find_for_tenant(&mut conn, f.other_active, job.job_id()).expect("query"),
        None
    );
    assert_eq!(
        jobs::find_for_tenant(&mut conn, f.active, job.job_id())
            .expect("query")
            .map(|j| serde_json::from_str::<serde_json::Value>(j.payload.as_str()).expect("json")),
        Some(json!({"raw_data_ids": [1, 2]}))
    );
}

#[test]
fn pool_checkout_fails_fast_when_the_database_is_unreachable() {
    use std::time::Duration;
    // Port 1 on loopback refuses connections: nothing listens there.
    let pool = etl_store::build_pool(&etl_store::PoolConfig {
        database_url: "postgres://postgres@127.0.0.1:1/etl".to_owned(),
        max_size: 2,
        checkout_timeout: Duration::from_millis(300),
        statement_timeout: None,
        lock_timeout: None,
    });
    let started = std::time::Instant::now();
    assert!(pool.get().is_err());
    // Bounded by the checkout timeout, not by TCP or libpq defaults.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn demo_seed_is_idempotent() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let first = etl_store::seed::ensure_demo(&mut conn).expect("seed");
    let again = etl_store::seed::ensure_demo(&mut conn).expect("seed again");
    assert_eq!(first.tenant.id, again.tenant.id);
    assert_eq!(first.jira.id, again.jira.id);
    assert_eq!(first.github.id, again.github.id);
    assert_eq!(
        (first.jira.provider.as_str(), first.github.provider.as_str()),
        ("jira", "github")
    );
    assert_eq!(
        integrations::list_for_tenant(&mut conn, etl_domain::TenantId::new(first.tenant.id))
            .expect("list")
            .len(),
        2
    );
}

#[test]
fn checked_many_inserts_only_allowed_records_and_maps_ids_to_inputs() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let inactive_tenant = tenants::insert(
        &mut conn,
        &NewTenant {
            name: "gone",
            active: false,
        },
    )
    .expect("tenant");
    let inactive_tenants_integration = integrations::insert(
        &mut conn,
        &NewIntegration {
            tenant_id: inactive_tenant.id,
            provider: "jira",
            name: "j",
            active: true,
            settings: json!({}),
        },
    )
    .expect("integration");
    let mut foreign = record(&f, "foreign");
    foreign.tenant_id = f.other_tenant; // integration belongs to f.tenant
    let mut of_inactive = record(&f, "inactive-tenant");
    of_inactive.tenant_id = inactive_tenant.id;
    of_inactive.integration_id = inactive_tenants_integration.id;
    let mut no_metadata = record(&f, "plain");
    no_metadata.external_id = None;
    no_metadata.extraction_metadata = None;
    let inputs = vec![
        record(&f, "a"),
        foreign,
        record(&f, "b"),
        of_inactive,
        no_metadata,
    ];

    let ids = raw_records::insert_checked_many(&mut conn, &inputs).expect("insert");
    assert_eq!(
        ids.iter().map(Option::is_some).collect::<Vec<_>>(),
        [true, false, true, false, true]
    );
    for (input, id) in inputs.iter().zip(&ids) {
        let Some(id) = id else { continue };
        let row =
            raw_records::find_for_tenant(&mut conn, f.active, etl_domain::RawRecordId::new(*id))
                .expect("query")
                .expect("row");
        assert_eq!(row.external_id, input.external_id);
        assert_eq!(tree(&row.raw_data), tree(&input.raw_data));
        assert_eq!(
            row.extraction_metadata.as_ref().map(tree),
            input.extraction_metadata.as_ref().map(tree)
        );
    }
    let total: i64 = diesel::sql_query("SELECT count(*) AS n FROM raw_extraction_data")
        .get_result::<Count>(&mut conn)
        .expect("count")
        .n;
    assert_eq!(total, 3);
    assert!(raw_records::insert_checked_many(&mut conn, &[])
        .expect("empty")
        .is_empty());
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn idempotency_keys_are_forgotten_after_their_retention() {
    use etl_store::idempotency::{self, Claim};
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    assert_eq!(
        idempotency::claim(&mut conn, f.active, "r", "old").expect("claim"),
        Claim::Fresh
    );
    idempotency::record(&mut conn, f.active, "r", "old", 201, &json!({"id": 1})).expect("record");
    diesel::sql_query("UPDATE idempotency_keys SET created_at = now() - interval '2 days'")
        .execute(&mut conn)
        .expect("age it");
    assert_eq!(
        idempotency::claim(&mut conn, f.active, "r", "new").expect("claim"),
        Claim::Fresh
    );
    let cutoff = chrono::Utc::now().naive_utc() - chrono::Duration::days(1);
    assert_eq!(
        idempotency::forget_before(&mut conn, cutoff).expect("sweep"),
        1
    );
    // The old key is new again; the recent one still replays.
    assert_eq!(
        idempotency::claim(&mut conn, f.active, "r", "old").expect("claim"),
        Claim::Fresh
    );
    assert!(matches!(
        idempotency::claim(&mut conn, f.active, "r", "new").expect("claim"),
        Claim::Answered { .. }
    ));
}

#[test]
fn a_job_inserted_from_json_text_reads_back_like_any_other() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let id = jobs::insert_json(
        &mut conn,
        etl_domain::TenantId::new(f.tenant),
        JobType::Load,
        &entity("jira_issues"),
        r#"{"transformed_data": [{"external_id": "1", "summary": "Ünïcode ✓"}]}"#,
        JobPriority::new(3).expect("valid"),
        Some("req-42"),
    )
    .expect("insert");
    let job = jobs::find_for_tenant(&mut conn, f.active, etl_domain::JobId::new(id))
        .expect("query")
        .expect("stored");
    assert_eq!(job.status(), JobStatus::Pending);
    assert_eq!(job.job_type(), Some(JobType::Load));
    assert_eq!(job.entity_type, "jira_issues");
    assert_eq!(job.priority, Some(3));
    assert_eq!(job.max_retries, Some(3));
    assert_eq!(job.request_id.as_deref(), Some("req-42"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(job.payload.as_str()).expect("json"),
        json!({"transformed_data": [{"external_id": "1", "summary": "Ünïcode ✓"}]})
    );
    // Text that is not JSON is refused by the database, not stored.
    assert!(jobs::insert_json(
        &mut conn,
        etl_domain::TenantId::new(f.tenant),
        JobType::Load,
        &entity("jira_issues"),
        "{not json",
        JobPriority::default(),
        None,
    )
    .is_err());
}

#[test]
fn pending_records_are_taken_in_bounded_batches_oldest_first() {
    use diesel::connection::SimpleConnection;
    use raw_records::{Backlog, BacklogScope};
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let records: Vec<NewRawRecord> = (0..5).map(|i| record(&f, &i.to_string())).collect();
    let ids = insert(&mut conn, &records);
    let pr = NewRawRecord {
        entity_type: "github_prs".to_owned(),
        ..record(&f, "pr")
    };
    insert(&mut conn, &[pr]);
    diesel::sql_query(format!(
        "UPDATE raw_extraction_data SET processing_status = 'completed' WHERE id = {}",
        ids[1]
    ))
    .execute(&mut conn)
    .expect("complete one");
    let jira = entity("jira_issues");
    let scope = BacklogScope {
        tenant: f.active,
        entity_type: jira,
        integration_id: None,
        backlog: Backlog::Pending,
    };
    let newest = raw_records::newest_in_backlog(&mut conn, &scope)
        .expect("query")
        .expect("some pending");
    assert_eq!(newest, ids[4]);
    // Another transaction holds one of them.
    let mut other = db.connect();
    other
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM raw_extraction_data WHERE id = {} FOR UPDATE",
            ids[2]
        ))
        .expect("lock");
    let take = |conn: &mut PgConnection, after: i32| {
        raw_records::take_backlog_batch(conn, &scope, (after, newest), 2).expect("take")
    };
    assert_eq!(take(&mut conn, 0), [ids[0], ids[3]]);
    assert_eq!(take(&mut conn, ids[3]), [ids[4]]);
    assert!(take(&mut conn, ids[4]).is_empty());
    // Records stored after the call began are not its to take.
    let late = insert(&mut conn, &[record(&f, "late")])[0];
    other.batch_execute("ROLLBACK").expect("unlock");
    assert_eq!(take(&mut conn, 0), [ids[2]]);
    let status = |conn: &mut PgConnection, id: i32| {
        raw_records::find_for_tenant(conn, f.active, etl_domain::RawRecordId::new(id))
            .expect("read")
            .expect("exists")
            .processing_status
    };
    assert_eq!(status(&mut conn, ids[0]).as_deref(), Some("processing"));
    assert_eq!(status(&mut conn, ids[1]).as_deref(), Some("completed"));
    assert_eq!(status(&mut conn, late).as_deref(), Some("pending"));
    // Another tenant, or an integration without records, has nothing.
    for other_scope in [
        BacklogScope {
            tenant: f.other_active,
            ..scope.clone()
        },
        BacklogScope {
            integration_id: Some(f.integration + 1000),
            ..scope.clone()
        },
    ] {
        assert_eq!(
            raw_records::newest_in_backlog(&mut conn, &other_scope).expect("query"),
            None
        );
    }
}

/// JSON text as a tree: PostgreSQL writes `jsonb` with its own spacing.
fn tree(text: &JsonText) -> serde_json::Value {
    serde_json::from_str(text.as_str()).expect("JSON")
}

#[test]
fn the_rescuer_takes_only_a_job_whose_heartbeat_is_still_stale_by_the_databases_clock() {
    use std::time::Duration;
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let job = jobs::insert(
        &mut conn,
        &NewJob::new(
            f.tenant,
            JobType::Load,
            &entity("jira_issues"),
            json!({"transformed_data": []}),
            JobPriority::default(),
        ),
    )
    .expect("insert");
    jobs::claim(&mut conn, job.job_id(), "w1")
        .expect("claim")
        .expect("claimed");
    let minute = Duration::from_secs(60);
    let rescue = |conn: &mut PgConnection| {
        conn.transaction(|conn| {
            jobs::fail_attempt(
                conn,
                job.job_id(),
                jobs::AttemptBy::Rescuer {
                    stale_after: minute,
                },
                &json!({"code": "worker_lost"}),
                true,
                |_| chrono::Duration::seconds(1),
            )
        })
        .expect("rescue")
    };
    // Its heartbeat is fresh: not stale, and not rescued.
    assert!(jobs::stale_running(&mut conn, &[JobType::Load], minute)
        .expect("stale")
        .is_empty());
    assert_eq!(rescue(&mut conn), jobs::AttemptOutcome::NotOwned);
    // Two minutes old by the database's clock: rescued, due a second later.
    diesel::sql_query(format!(
        "UPDATE etl_job_queue SET heartbeat_at = now() - interval '2 minutes' WHERE id = {}",
        job.id
    ))
    .execute(&mut conn)
    .expect("backdating");
    assert_eq!(
        jobs::stale_running(&mut conn, &[JobType::Load], minute).expect("stale"),
        [job.id]
    );
    let jobs::AttemptOutcome::RetryAt(due) = rescue(&mut conn) else {
        panic!("not rescued");
    };
    let after = jobs::find(&mut conn, job.job_id())
        .expect("find")
        .expect("job");
    assert_eq!(after.scheduled_at, Some(due));
    assert!(due > after.created_at);
    assert_eq!(after.status(), JobStatus::Pending);
    assert_eq!(after.retry_count, Some(1));
    // A worker's report of a job that is no longer its own changes nothing.
    assert!(!jobs::heartbeat(&mut conn, job.job_id(), "w1").expect("heartbeat"));
}

#[test]
fn the_tenant_door_gives_a_proof_only_to_an_active_tenant() {
    use etl_domain::TenantId;
    use etl_store::tenants::TenantRefusal;
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let f = fixture(&mut conn);
    let acme = TenantId::new(f.tenant);
    let proof = tenants::activate(&mut conn, acme)
        .expect("read")
        .expect("acme is active");
    assert_eq!(proof.id(), acme);
    tenants::set_active(&mut conn, f.tenant, false).expect("deactivate");
    assert_eq!(
        tenants::activate(&mut conn, acme).expect("read"),
        Err(TenantRefusal::Inactive(acme))
    );
    let nobody = TenantId::new(f.other_tenant + 1000);
    assert_eq!(
        tenants::activate(&mut conn, nobody).expect("read"),
        Err(TenantRefusal::Missing(nobody))
    );
    assert_eq!(
        TenantRefusal::Inactive(acme).to_string(),
        format!("Tenant {} is inactive", f.tenant)
    );
}
