//! Set-based upserts into the final tables.

use chrono::{TimeZone, Utc};
use etl_domain::transform::{
    PrState, PullRequestRow, Table, WorkItemRow, PULL_REQUESTS, WORK_ITEMS,
};
use etl_store::integrations::{self, NewIntegration};
use etl_store::loaders::{self, JobLoad, LoadCounts};
use etl_store::raw_records::{self, NewRawRecord};
use etl_store::tenants::{self, NewTenant};
use etl_store::test_support::{active_tenant, TestDatabase};
use serde_json::json;

fn setup(db: &TestDatabase) -> (etl_store::PgConnection, i32, i32) {
    let mut conn = db.connect();
    let (tenant, integration) = tenant_with_integration(&mut conn, "acme");
    (conn, tenant, integration)
}

/// A tenant named `name` with one Jira integration: (tenant, integration).
fn tenant_with_integration(conn: &mut etl_store::PgConnection, name: &str) -> (i32, i32) {
    let tenant = tenants::insert(conn, &NewTenant { name, active: true })
        .expect("tenant")
        .id;
    let integration = integrations::insert(
        conn,
        &NewIntegration {
            tenant_id: tenant,
            provider: "jira",
            name: "j",
            active: true,
            settings: json!({}),
        },
    )
    .expect("integration")
    .id;
    (tenant, integration)
}

fn item(integration: i32, id: &str, summary: &str, day: u32) -> WorkItemRow {
    WorkItemRow {
        integration_id: integration,
        external_id: id.to_owned(),
        key: Some(format!("K-{id}")),
        project_key: Some("K".to_owned()),
        summary: summary.to_owned(),
        description: None,
        issue_type: Some("Bug".to_owned()),
        status: Some("Done".to_owned()),
        status_category: Some("done".to_owned()),
        status_id: Some("10002".to_owned()),
        priority: None,
        assignee: None,
        assignee_name: None,
        reporter: None,
        labels: vec!["a".to_owned(), "ü".to_owned()],
        parent_key: None,
        source_created_at: Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
        source_updated_at: Some(Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()),
        resolved_at: None,
        story_points: Some(3.0),
        custom_fields: etl_domain::RawObject::from_text(r#"{"customfield_1": [1]}"#.to_owned())
            .expect("object"),
        changelog_total: None,
        raw_data_id: None,
    }
}

/// Runs a load job carrying `rows` the way a worker does: the rows written
/// into a job's payload, then loaded from it.
fn load_job<R: serde::Serialize>(
    conn: &mut etl_store::PgConnection,
    table: &'static Table,
    tenant: i32,
    rows: &[R],
) -> JobLoad {
    use etl_domain::{EntityType, JobPriority, JobType};
    use etl_store::jobs::{self, NewJob};
    let entity = etl_domain::TransformerKind::all()
        .find(|kind| kind.entity().table() == table)
        .expect("an entity type loads the table")
        .as_str();
    let job = jobs::insert(
        conn,
        &NewJob::new(
            tenant,
            JobType::Load,
            &EntityType::parse(entity).expect("valid"),
            json!({"transformed_data": rows}),
            JobPriority::default(),
        ),
    )
    .expect("job");
    loaders::load_job_rows(
        conn,
        table,
        etl_domain::TenantId::new(tenant),
        job.job_id(),
        &[],
    )
    .expect("load")
}

fn load<R: serde::Serialize>(
    conn: &mut etl_store::PgConnection,
    table: &'static Table,
    tenant: i32,
    rows: &[R],
) -> LoadCounts {
    load_job(conn, table, tenant, rows).counts
}

fn items(conn: &mut etl_store::PgConnection, tenant: i32, rows: &[WorkItemRow]) -> LoadCounts {
    load(conn, &WORK_ITEMS, tenant, rows)
}

fn prs(conn: &mut etl_store::PgConnection, tenant: i32, rows: &[PullRequestRow]) -> LoadCounts {
    load(conn, &PULL_REQUESTS, tenant, rows)
}

fn counts(inserted: usize, updated: usize, unchanged: usize, duplicates: usize) -> LoadCounts {
    LoadCounts {
        inserted,
        updated,
        unchanged,
        duplicates,
    }
}

#[test]
fn loads_insert_then_update_newer_and_ignore_older_or_equal() {
    let db = TestDatabase::migrated();
    let (mut conn, tenant, integration) = setup(&db);
    let door = active_tenant(&mut conn, tenant);
    let first = vec![
        item(integration, "1", "one", 2),
        item(integration, "2", "two", 2),
    ];
    assert_eq!(items(&mut conn, tenant, &first), counts(2, 0, 0, 0));
    let snapshot = loaders::list_work_items(&mut conn, door, None, None, None, 100)
        .map(trees)
        .expect("list");
    // The same data again changes nothing, loaded_at included.
    assert_eq!(items(&mut conn, tenant, &first), counts(0, 0, 2, 0));
    assert_eq!(
        loaders::list_work_items(&mut conn, door, None, None, None, 100)
            .map(trees)
            .expect("list"),
        snapshot
    );
    // An older copy changes nothing; a newer one updates.
    let older = vec![item(integration, "1", "stale", 1)];
    assert_eq!(items(&mut conn, tenant, &older), counts(0, 0, 1, 0));
    let newer = vec![item(integration, "1", "fresh", 3)];
    assert_eq!(items(&mut conn, tenant, &newer), counts(0, 1, 0, 0));
    let rows = loaders::list_work_items(&mut conn, door, None, None, None, 100)
        .map(trees)
        .expect("list");
    assert_eq!(rows[0]["summary"], "fresh");
    assert_eq!(rows[0]["labels"], json!(["a", "ü"]));
    assert_eq!(rows[0]["custom_fields"], json!({"customfield_1": [1]}));
    assert_eq!(rows[1]["summary"], "two");
    assert!(rows[0].get("tenant_id").is_none());
}

#[test]
fn duplicates_in_one_batch_resolve_to_the_newest() {
    let db = TestDatabase::migrated();
    let (mut conn, tenant, integration) = setup(&db);
    let door = active_tenant(&mut conn, tenant);
    let batch = vec![
        item(integration, "1", "middle", 2),
        item(integration, "1", "newest", 3),
        item(integration, "1", "oldest", 1),
    ];
    assert_eq!(items(&mut conn, tenant, &batch), counts(1, 0, 0, 2));
    let rows = loaders::list_work_items(&mut conn, door, None, None, None, 100)
        .map(trees)
        .expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["summary"], "newest");
}

#[test]
fn pull_requests_load_and_filter_by_repository_and_state() {
    let db = TestDatabase::migrated();
    let (mut conn, tenant, integration) = setup(&db);
    let door = active_tenant(&mut conn, tenant);
    let pr = |id: &str, repo: &str, state: PrState| PullRequestRow {
        integration_id: integration,
        external_id: id.to_owned(),
        repository: Some(repo.to_owned()),
        number: Some(1),
        title: Some("t".to_owned()),
        state,
        draft: None,
        author: Some("dependabot[bot]".to_owned()),
        base_ref: Some("main".to_owned()),
        head_ref: None,
        head_sha: None,
        labels: vec![],
        source_created_at: None,
        source_updated_at: None,
        closed_at: None,
        merged_at: None,
        additions: None,
        deletions: None,
        changed_files: None,
        commits: None,
        comments: None,
        review_comments: None,
        body: None,
        html_url: None,
        merge_commit_sha: None,
        work_item_keys: None,
        raw_data_id: None,
    };
    let batch = vec![
        pr("1", "a/x", PrState::Open),
        pr("2", "a/x", PrState::Merged),
        pr("3", "b/y", PrState::Open),
    ];
    assert_eq!(prs(&mut conn, tenant, &batch), counts(3, 0, 0, 0));
    // No timestamps: the same rows again are unchanged, a changed one updates.
    assert_eq!(prs(&mut conn, tenant, &batch), counts(0, 0, 3, 0));
    let merged =
        loaders::list_pull_requests(&mut conn, door, Some("a/x"), Some("merged"), None, 100)
            .map(trees)
            .expect("list");
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0]["external_id"], "2");
    assert_eq!(merged[0]["additions"], serde_json::Value::Null);
    let page = loaders::list_pull_requests(
        &mut conn,
        door,
        None,
        None,
        merged[0]["id"].as_i64().map(|i| i as i32),
        100,
    )
    .map(trees)
    .expect("list");
    assert_eq!(page.len(), 1);
    let (other, _) = tenant_with_integration(&mut conn, "globex");
    let other = active_tenant(&mut conn, other);
    assert!(
        loaders::list_pull_requests(&mut conn, other, None, None, None, 100)
            .map(trees)
            .expect("list")
            .is_empty()
    );
}

#[test]
fn a_load_job_is_loaded_from_its_own_row_newest_copy_first() {
    use etl_domain::{EntityType, JobPriority, JobType};
    use etl_store::jobs::{self, NewJob};
    let db = TestDatabase::migrated();
    let (mut conn, tenant, integration) = setup(&db);
    let door = active_tenant(&mut conn, tenant);
    let rows = vec![
        item(integration, "1", "middle", 2),
        item(integration, "2", "only", 2),
        item(integration, "1", "newest", 3),
        item(integration, "1", "oldest", 1),
    ];
    let job = jobs::insert(
        &mut conn,
        &NewJob::new(
            tenant,
            JobType::Load,
            &EntityType::parse("jira_issues").expect("valid"),
            json!({"transformed_data": rows}),
            JobPriority::default(),
        ),
    )
    .expect("job");
    let counts = loaders::load_job_rows(
        &mut conn,
        &WORK_ITEMS,
        etl_domain::TenantId::new(tenant),
        job.job_id(),
        &[],
    )
    .expect("load")
    .counts;
    assert_eq!(
        counts,
        LoadCounts {
            inserted: 2,
            updated: 0,
            unchanged: 0,
            duplicates: 2
        }
    );
    let stored = loaders::list_work_items(&mut conn, door, None, None, None, 100)
        .map(trees)
        .expect("list");
    assert_eq!(stored[0]["summary"], "newest");
    assert_eq!(stored[0]["labels"], json!(["a", "ü"]));
    // The same job again changes nothing.
    let again = loaders::load_job_rows(
        &mut conn,
        &WORK_ITEMS,
        etl_domain::TenantId::new(tenant),
        job.job_id(),
        &[],
    )
    .expect("load")
    .counts;
    assert_eq!(
        again,
        LoadCounts {
            inserted: 0,
            updated: 0,
            unchanged: 2,
            duplicates: 2
        }
    );
}

/// Raw records of `tenant`, `processing` as a transform leaves them.
fn processing_records(
    conn: &mut etl_store::PgConnection,
    tenant: i32,
    integration: i32,
    count: usize,
) -> Vec<i32> {
    use diesel::RunQueryDsl;
    let records: Vec<NewRawRecord> = (0..count)
        .map(|i| NewRawRecord {
            tenant_id: tenant,
            integration_id: integration,
            entity_type: "jira_issues".to_owned(),
            external_id: Some(i.to_string()),
            raw_data: etl_store::JsonText::of(&json!({"id": i.to_string()})),
            ingest_changes: etl_store::JsonText("[]".to_owned()),
            extraction_metadata: None,
        })
        .collect();
    let ids: Vec<i32> = raw_records::insert_checked_many(conn, &records)
        .expect("raw records")
        .into_iter()
        .map(|id| id.expect("checked"))
        .collect();
    diesel::sql_query("UPDATE raw_extraction_data SET processing_status = 'processing'")
        .execute(conn)
        .expect("processing");
    ids
}

fn status_of(conn: &mut etl_store::PgConnection, tenant: i32, id: i32) -> (String, bool) {
    let door = active_tenant(conn, tenant);
    let record = raw_records::find_for_tenant(conn, door, etl_domain::RawRecordId::new(id))
        .expect("read")
        .expect("exists");
    (
        record.processing_status.unwrap_or_default(),
        record.processed_at.is_some(),
    )
}

#[test]
fn a_load_job_completes_the_raw_records_behind_its_rows_and_only_its_tenants() {
    let db = TestDatabase::migrated();
    let (mut conn, tenant, integration) = setup(&db);
    let (other, other_integration) = tenant_with_integration(&mut conn, "other");
    let ours = processing_records(&mut conn, tenant, integration, 3);
    let theirs = processing_records(&mut conn, other, other_integration, 1);
    let with_raw = |id: &str, summary: &str, day: u32, raw: i32| WorkItemRow {
        raw_data_id: Some(raw),
        ..item(integration, id, summary, day)
    };
    // Two copies of one key (both raw records are done with), a row naming
    // another tenant's record, and a row naming none.
    let rows = vec![
        with_raw("1", "older", 1, ours[0]),
        with_raw("1", "newer", 2, ours[1]),
        with_raw("2", "two", 1, theirs[0]),
        item(integration, "3", "three", 1),
    ];
    let loaded = load_job(&mut conn, &WORK_ITEMS, tenant, &rows);
    assert_eq!(loaded.counts, counts(3, 0, 0, 1));
    assert_eq!(loaded.raw_records_completed, 2);
    let statuses: Vec<(String, bool)> = [
        (tenant, ours[0]),
        (tenant, ours[1]),
        (tenant, ours[2]),
        (other, theirs[0]),
    ]
    .into_iter()
    .map(|(t, id)| status_of(&mut conn, t, id))
    .collect();
    let (done, waiting) = (
        ("completed".to_owned(), true),
        ("processing".to_owned(), false),
    );
    assert_eq!(statuses, [done.clone(), done, waiting.clone(), waiting]);
    // Loading again completes nothing more.
    let again = load_job(&mut conn, &WORK_ITEMS, tenant, &rows);
    assert_eq!(again.counts, counts(0, 0, 3, 1));
    assert_eq!(again.raw_records_completed, 0);
}

#[test]
fn final_rows_outlive_the_raw_records_they_came_from() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::migrated();
    let (mut conn, tenant, integration) = setup(&db);
    let door = active_tenant(&mut conn, tenant);
    let raw = processing_records(&mut conn, tenant, integration, 1)[0];
    let row = WorkItemRow {
        raw_data_id: Some(raw),
        ..item(integration, "1", "one", 1)
    };
    load(&mut conn, &WORK_ITEMS, tenant, &[row]);
    // Retention purges raw records; the final row keeps its provenance.
    diesel::sql_query(format!("DELETE FROM raw_extraction_data WHERE id = {raw}"))
        .execute(&mut conn)
        .expect("purge");
    let rows = loaders::list_work_items(&mut conn, door, None, None, None, 100)
        .map(trees)
        .expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["raw_data_id"], raw);
}

/// Listed rows as trees, for reading their fields in assertions.
fn trees(rows: Vec<etl_store::JsonText>) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| serde_json::from_str(r.as_str()).expect("listed rows are JSON"))
        .collect()
}

/// Each final table is declared once (`etl_domain::transform::Table`):
/// its loaded and derived columns must be the migrated table's, with
/// matching types, its key a unique constraint, and its loaded columns
/// exactly the fields of the domain's row type.
#[test]
fn declared_tables_match_the_migrated_tables_and_the_domain_rows() {
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl as _};
    use etl_domain::transform;
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        udt_name: String,
    }
    #[derive(QueryableByName)]
    struct Unique {
        #[diesel(sql_type = Text)]
        columns: String,
    }
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    // Columns the database fills itself, or the tenant from the job.
    let own = ["id", "tenant_id", "loaded_at"];
    for table in transform::TABLES {
        let columns: Vec<Column> = diesel::sql_query(
            "SELECT column_name::text, udt_name::text FROM information_schema.columns
              WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind::<Text, _>(table.name)
        .load(&mut conn)
        .expect("columns");
        assert!(!columns.is_empty(), "{} is not migrated", table.name);
        let declared: Vec<(&str, &str)> =
            table.columns.iter().chain(table.derived).copied().collect();
        for (name, kind) in &declared {
            let column = columns
                .iter()
                .find(|c| c.column_name == *name)
                .unwrap_or_else(|| {
                    panic!("{}.{name} is declared but not in the table", table.name)
                });
            let fits = match *kind {
                "text" => ["text", "varchar"].contains(&column.udt_name.as_str()),
                "text[]" => column.udt_name == "_text",
                other => column.udt_name == other,
            };
            assert!(
                fits,
                "{}.{name}: declared {kind}, migrated {}",
                table.name, column.udt_name
            );
        }
        for column in &columns {
            assert!(
                own.contains(&column.column_name.as_str())
                    || declared.iter().any(|(name, _)| *name == column.column_name),
                "{}.{} is in the table but not declared",
                table.name,
                column.column_name
            );
        }
        let unique: Vec<Unique> = diesel::sql_query(
            "SELECT string_agg(a.attname, ',' ORDER BY k.ord)::text AS columns
               FROM pg_constraint c
               CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
              WHERE c.conrelid = $1::regclass AND c.contype = 'u'
              GROUP BY c.oid",
        )
        .bind::<Text, _>(table.name)
        .load(&mut conn)
        .expect("constraints");
        let key = format!("tenant_id,{}", table.key.join(","));
        assert!(
            unique.iter().any(|u| u.columns == key),
            "{}: no unique constraint on ({key})",
            table.name
        );
        let mut fields: Vec<&str> = (table.fields)().to_vec();
        fields.sort_unstable();
        let mut names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        assert_eq!(fields, names, "{}: the domain row's fields", table.name);
    }
}
