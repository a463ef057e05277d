//! The migrations against a real PostgreSQL: they round-trip, and the seed's
//! tables come out exactly as SPEC §2.1 says.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use etl_store::migrations;
use etl_store::test_support::TestDatabase;

#[derive(QueryableByName, Debug, PartialEq)]
struct Column {
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
    #[diesel(sql_type = Nullable<Text>)]
    column_default: Option<String>,
}

fn columns(conn: &mut PgConnection, table: &str) -> Vec<Column> {
    diesel::sql_query(
        "SELECT column_name::text,
                CASE WHEN character_maximum_length IS NOT NULL
                     THEN data_type || '(' || character_maximum_length || ')'
                     ELSE data_type END AS data_type,
                is_nullable::text, column_default::text
           FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = $1
          ORDER BY ordinal_position",
    )
    .bind::<Text, _>(table)
    .load(conn)
    .expect("reading information_schema")
}

fn public_tables(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        tablename: String,
    }
    diesel::sql_query(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .load::<Table>(conn)
    .expect("listing tables")
    .into_iter()
    .map(|t| t.tablename)
    .collect()
}

/// (name, type, nullable, default) as information_schema spells them.
type Expected<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

fn assert_columns(conn: &mut PgConnection, table: &str, expected: &[Expected<'_>]) {
    let actual = columns(conn, table);
    for (name, data_type, nullable, default) in expected {
        let column = actual
            .iter()
            .find(|c| c.column_name == *name)
            .unwrap_or_else(|| panic!("{table}.{name} is missing"));
        assert_eq!(column.data_type, *data_type, "{table}.{name} type");
        assert_eq!(column.is_nullable, *nullable, "{table}.{name} nullability");
        match default {
            Some(default) => assert_eq!(
                column.column_default.as_deref(),
                Some(*default),
                "{table}.{name} default"
            ),
            None => {
                // A serial's default is its sequence; other columns have none.
                if *name != "id" {
                    assert_eq!(column.column_default, None, "{table}.{name} default");
                }
            }
        }
    }
}

#[test]
fn seed_tables_match_the_spec_column_by_column() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    assert_columns(
        &mut conn,
        "raw_extraction_data",
        &[
            ("id", "integer", "NO", None),
            ("tenant_id", "integer", "NO", None),
            ("integration_id", "integer", "NO", None),
            ("entity_type", "character varying(50)", "NO", None),
            ("external_id", "character varying(255)", "YES", None),
            ("raw_data", "jsonb", "NO", None),
            ("extraction_metadata", "jsonb", "YES", None),
            (
                "processing_status",
                "character varying(20)",
                "YES",
                Some("'pending'::character varying"),
            ),
            ("error_details", "jsonb", "YES", None),
            (
                "created_at",
                "timestamp without time zone",
                "YES",
                Some("now()"),
            ),
            ("processed_at", "timestamp without time zone", "YES", None),
        ],
    );
    assert_columns(
        &mut conn,
        "etl_job_queue",
        &[
            ("id", "integer", "NO", None),
            ("tenant_id", "integer", "NO", None),
            ("job_type", "character varying(50)", "NO", None),
            ("entity_type", "character varying(50)", "NO", None),
            ("payload", "jsonb", "NO", None),
            ("priority", "integer", "YES", Some("5")),
            (
                "status",
                "character varying(20)",
                "YES",
                Some("'pending'::character varying"),
            ),
            (
                "scheduled_at",
                "timestamp without time zone",
                "YES",
                Some("now()"),
            ),
            ("started_at", "timestamp without time zone", "YES", None),
            ("completed_at", "timestamp without time zone", "YES", None),
            ("error_details", "jsonb", "YES", None),
            ("retry_count", "integer", "YES", Some("0")),
            ("max_retries", "integer", "YES", Some("3")),
        ],
    );
    assert_columns(
        &mut conn,
        "tenants",
        &[
            ("id", "integer", "NO", None),
            ("name", "text", "NO", None),
            ("active", "boolean", "NO", Some("true")),
            (
                "created_at",
                "timestamp without time zone",
                "YES",
                Some("now()"),
            ),
        ],
    );
    assert_columns(
        &mut conn,
        "integrations",
        &[
            ("id", "integer", "NO", None),
            ("tenant_id", "integer", "NO", None),
            ("provider", "character varying(50)", "NO", None),
            ("name", "text", "NO", None),
            ("active", "boolean", "NO", Some("true")),
            ("settings", "jsonb", "NO", Some("'{}'::jsonb")),
            (
                "created_at",
                "timestamp without time zone",
                "YES",
                Some("now()"),
            ),
        ],
    );
}

#[test]
fn ids_are_serial_and_foreign_keys_point_at_their_tables() {
    #[derive(QueryableByName, Debug, PartialEq)]
    struct ForeignKey {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        foreign_table: String,
    }
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let mut keys: Vec<ForeignKey> = diesel::sql_query(
        "SELECT tc.table_name::text, kcu.column_name::text, ccu.table_name::text AS foreign_table
           FROM information_schema.table_constraints tc
           JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
           JOIN information_schema.constraint_column_usage ccu USING (constraint_schema, constraint_name)
          WHERE tc.constraint_type = 'FOREIGN KEY'
            AND tc.table_name IN ('integrations', 'raw_extraction_data', 'etl_job_queue',
                                  'work_items', 'pull_requests')",
    )
    .load(&mut conn)
    .expect("reading constraints");
    keys.sort_by(|a, b| (&a.table_name, &a.column_name).cmp(&(&b.table_name, &b.column_name)));
    let keys: Vec<(&str, &str, &str)> = keys
        .iter()
        .map(|k| {
            (
                k.table_name.as_str(),
                k.column_name.as_str(),
                k.foreign_table.as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("etl_job_queue", "tenant_id", "tenants"),
            ("integrations", "tenant_id", "tenants"),
            ("pull_requests", "integration_id", "integrations"),
            ("pull_requests", "tenant_id", "tenants"),
            ("raw_extraction_data", "integration_id", "integrations"),
            ("raw_extraction_data", "tenant_id", "tenants"),
            // raw_data_id is provenance, not a foreign key: raw records may
            // be purged while the final rows stay.
            ("work_items", "integration_id", "integrations"),
            ("work_items", "tenant_id", "tenants"),
        ]
    );
    for table in [
        "tenants",
        "integrations",
        "raw_extraction_data",
        "etl_job_queue",
    ] {
        let id = columns(&mut conn, table)
            .into_iter()
            .find(|c| c.column_name == "id")
            .expect("id column");
        assert_eq!(
            id.column_default.as_deref(),
            Some(format!("nextval('{table}_id_seq'::regclass)").as_str()),
            "{table}.id is serial"
        );
    }
}

#[test]
fn seed_indexes_exist_on_the_spec_columns() {
    #[derive(QueryableByName)]
    struct Index {
        #[diesel(sql_type = Text)]
        indexdef: String,
    }
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    for (name, table, columns) in [
        (
            "idx_raw_data_tenant_type",
            "raw_extraction_data",
            "(tenant_id, entity_type)",
        ),
        (
            "idx_raw_data_status",
            "raw_extraction_data",
            "(processing_status)",
        ),
        (
            "idx_raw_data_external_id",
            "raw_extraction_data",
            "(external_id)",
        ),
        (
            "idx_etl_queue_tenant_status",
            "etl_job_queue",
            "(tenant_id, status)",
        ),
        (
            "idx_etl_queue_priority",
            "etl_job_queue",
            "(priority, scheduled_at)",
        ),
        (
            "idx_etl_queue_type",
            "etl_job_queue",
            "(job_type, entity_type)",
        ),
    ] {
        let index: Index = diesel::sql_query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname = $1",
        )
        .bind::<Text, _>(name)
        .get_result(&mut conn)
        .unwrap_or_else(|e| panic!("index {name} is missing: {e}"));
        assert_eq!(
            index.indexdef,
            format!("CREATE INDEX {name} ON public.{table} USING btree {columns}")
        );
    }
}

#[test]
fn final_tables_are_unique_on_tenant_integration_and_external_id() {
    #[derive(QueryableByName)]
    struct Index {
        #[diesel(sql_type = Text)]
        indexdef: String,
    }
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    for table in ["work_items", "pull_requests"] {
        let found: Vec<Index> = diesel::sql_query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1",
        )
        .bind::<Text, _>(table)
        .load(&mut conn)
        .expect("reading indexes");
        assert!(
            found.iter().any(|i| i.indexdef
                == format!(
                    "CREATE UNIQUE INDEX {table}_source_key ON public.{table} \
                     USING btree (tenant_id, integration_id, external_id)"
                )),
            "{table} has no unique key on (tenant_id, integration_id, external_id)"
        );
    }
}

#[test]
fn every_migration_reverts_and_applies_again() {
    let db = TestDatabase::empty();
    let mut conn = db.connect();
    let applied = migrations::run_pending(&mut conn).expect("first apply");
    assert!(applied.len() >= 3, "applied {applied:?}");
    let tables_after_apply = public_tables(&mut conn);
    assert!(tables_after_apply.contains(&"raw_extraction_data".to_owned()));

    let status = migrations::status(&mut conn).expect("status");
    assert!(status.iter().all(|m| m.applied), "{status:?}");
    assert!(!migrations::has_pending(&mut conn).expect("pending"));

    let reverted = migrations::revert_all(&mut conn).expect("revert all");
    assert_eq!(reverted.len(), applied.len());
    assert_eq!(
        public_tables(&mut conn),
        ["__diesel_schema_migrations"],
        "every down.sql drops what its up.sql made"
    );
    let status = migrations::status(&mut conn).expect("status");
    assert!(status.iter().all(|m| !m.applied), "{status:?}");

    let reapplied = migrations::run_pending(&mut conn).expect("second apply");
    assert_eq!(reapplied, applied);
    assert_eq!(public_tables(&mut conn), tables_after_apply);
}

#[test]
fn revert_last_undoes_only_the_newest_migration() {
    let db = TestDatabase::empty();
    let mut conn = db.connect();
    let applied = migrations::run_pending(&mut conn).expect("apply");
    let newest = applied.last().cloned();
    assert_eq!(migrations::revert_last(&mut conn).expect("revert"), newest);
    let status = migrations::status(&mut conn).expect("status");
    let pending: Vec<_> = status.iter().filter(|m| !m.applied).collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(Some(&pending[0].version), newest.as_ref());
    assert_eq!(
        migrations::run_pending(&mut conn).expect("redo"),
        newest.into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn drop_all_tables_leaves_an_empty_schema() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    migrations::drop_all_tables(&mut conn).expect("drop");
    assert!(public_tables(&mut conn).is_empty());
    assert!(migrations::has_pending(&mut conn).expect("pending"));
    migrations::run_pending(&mut conn).expect("apply again");
}

#[test]
fn create_database_if_missing_creates_once() {
    let db = TestDatabase::empty();
    let url = migrations::DatabaseUrl::parse(db.url()).expect("valid");
    assert!(!migrations::create_database_if_missing(&url).expect("exists already"));
    let missing =
        migrations::DatabaseUrl::parse(&url.with_database(&format!("{}_extra", db.name())))
            .expect("valid");
    let created = migrations::create_database_if_missing(&missing).expect("create");
    // Clean up what we made before asserting, so a failure leaves nothing behind.
    let mut conn = db.connect();
    diesel::sql_query(format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        missing.database_name()
    ))
    .execute(&mut conn)
    .expect("drop extra database");
    assert!(created);
}

#[test]
fn large_payloads_are_compressed_with_lz4() {
    #[derive(QueryableByName)]
    struct Method {
        #[diesel(sql_type = Text)]
        method: String,
    }
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let methods: Vec<Method> = diesel::sql_query(
        "SELECT attrelid::regclass::text || '.' || attname || '=' || attcompression::text AS method
           FROM pg_attribute
          WHERE (attrelid, attname) IN (('etl_job_queue'::regclass, 'payload'),
                                        ('raw_extraction_data'::regclass, 'raw_data'))
          ORDER BY 1",
    )
    .load(&mut conn)
    .expect("reading compression");
    let methods: Vec<&str> = methods.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(
        methods,
        ["etl_job_queue.payload=l", "raw_extraction_data.raw_data=l"]
    );
}

#[test]
fn raw_records_fill_their_pages_and_jobs_keep_room_for_updates() {
    #[derive(QueryableByName)]
    struct Options {
        #[diesel(sql_type = Text)]
        options: String,
    }
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let options: Vec<Options> = diesel::sql_query(
        "SELECT relname || '=' || coalesce(array_to_string(reloptions, ','), '') AS options
           FROM pg_class
          WHERE relname IN ('etl_job_queue', 'raw_extraction_data')
          ORDER BY 1",
    )
    .load(&mut conn)
    .expect("reading storage options");
    let options: Vec<&str> = options.iter().map(|o| o.options.as_str()).collect();
    // Migration 10's half-empty raw pages are undone by migration 11.
    assert_eq!(
        options,
        ["etl_job_queue=fillfactor=70", "raw_extraction_data="]
    );
}

/// SPEC §8: migrations at start run without the request timeouts, wait for
/// their locks in bounded, retried steps, and so never stall ingest longer
/// than that bound.
#[test]
fn a_migration_waiting_for_a_lock_retries_without_stalling_ingest() {
    let db = TestDatabase::empty();
    let mut setup = db.connect();
    migrations::run_pending(&mut setup).expect("apply");
    let newest = migrations::revert_last(&mut setup)
        .expect("revert")
        .expect("a migration");
    setup
        .batch_execute("INSERT INTO tenants (name) VALUES ('acme')")
        .expect("tenant");
    // An open transaction that writes to the job and final tables, as a
    // slow job would: the newest migration (an index on the one, columns
    // of the other) must wait for it.
    let mut holder = db.connect();
    holder
        .batch_execute(
            "BEGIN; LOCK TABLE etl_job_queue, work_items IN ROW EXCLUSIVE MODE;
             INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
             SELECT id, 'extract', 'jira_issues', '{}' FROM tenants",
        )
        .expect("holder");
    let url = db.url().to_owned();
    let migrator = std::thread::spawn(move || {
        let mut conn = etl_store::connect(&url).expect("connect");
        // A request's statement timeout on this session: migrations ignore it.
        conn.batch_execute("SET statement_timeout = '100ms'")
            .expect("set");
        let applied =
            migrations::run_pending_with(&mut conn, std::time::Duration::from_millis(200))
                .expect("applied once the lock is free");
        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = Text)]
            statement_timeout: String,
        }
        let restored: Setting =
            diesel::sql_query("SELECT current_setting('statement_timeout') AS statement_timeout")
                .get_result(&mut conn)
                .expect("setting");
        (applied, restored.statement_timeout)
    });
    // While the migration waits and retries, ingest goes on: each insert
    // waits at most one lock timeout behind it (its own bound is 5 s).
    let mut ingest = db.connect();
    ingest
        .batch_execute("SET statement_timeout = '5s'")
        .expect("set");
    // Inserts for a second, while the migration asks for its lock several
    // times (every 200 ms and more).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut inserted = 0;
    while std::time::Instant::now() < until {
        ingest
            .batch_execute(
                "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
                 SELECT id, 'extract', 'jira_issues', '{}' FROM tenants;
                 UPDATE work_items SET summary = summary WHERE false",
            )
            .expect("ingest is not stalled by the waiting migration");
        inserted += 1;
    }
    assert!(inserted > 1);
    assert!(!migrator.is_finished(), "the migration waits for the lock");
    holder.batch_execute("COMMIT").expect("commit");
    let (applied, restored) = migrator.join().expect("migrator");
    assert_eq!(applied, [newest]);
    assert_eq!(restored, "100ms");
    let status = migrations::status(&mut setup).expect("status");
    assert!(status.iter().all(|m| m.applied));
}
