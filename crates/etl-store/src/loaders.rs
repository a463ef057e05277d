//! Set-based loading into the final tables (SPEC §7).
//!
//! One statement per load job: PostgreSQL unpacks the rows from the job's
//! own payload and upserts them on `(tenant_id, integration_id,
//! external_id)`. Before that, duplicates of one key inside the batch are
//! resolved (the newest `source_updated_at` wins; on a tie, the later one),
//! because one statement may not touch a row twice. A row is only updated when the incoming record is not older than
//! the stored one *and* differs from it, so loading the same data twice
//! leaves the table as after once, and an older copy changes nothing.

use crate::tenants::ActiveTenant;
use std::sync::OnceLock;

use diesel::prelude::*;
use diesel::sql_types::{Int4, Jsonb};
use etl_domain::TenantId;
use serde::Serialize;

use crate::json_text::JsonText;

/// What a load did, reported in the job's `result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoadCounts {
    pub inserted: usize,
    pub updated: usize,
    /// Already stored, as new or newer.
    pub unchanged: usize,
    /// Older copies of a key that a newer one in the same batch replaced.
    pub duplicates: usize,
}

/// A final table: its name and its loaded columns with their SQL types.
struct Table {
    name: &'static str,
    /// (column, type in jsonb_to_recordset)
    columns: &'static [(&'static str, &'static str)],
    /// Columns with a NOT NULL default that JSON may leave null.
    defaults: &'static [(&'static str, &'static str)],
}

const WORK_ITEMS: Table = Table {
    name: "work_items",
    columns: &[
        ("integration_id", "int4"),
        ("external_id", "text"),
        ("key", "text"),
        ("project_key", "text"),
        ("summary", "text"),
        ("description", "text"),
        ("issue_type", "text"),
        ("status", "text"),
        ("status_category", "text"),
        ("priority", "text"),
        ("assignee", "text"),
        ("assignee_name", "text"),
        ("reporter", "text"),
        ("labels", "text[]"),
        ("parent_key", "text"),
        ("source_created_at", "timestamptz"),
        ("source_updated_at", "timestamptz"),
        ("resolved_at", "timestamptz"),
        ("story_points", "float8"),
        ("custom_fields", "jsonb"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[("labels", "'{}'::text[]"), ("custom_fields", "'{}'::jsonb")],
};

const PULL_REQUESTS: Table = Table {
    name: "pull_requests",
    columns: &[
        ("integration_id", "int4"),
        ("external_id", "text"),
        ("repository", "text"),
        ("number", "int4"),
        ("title", "text"),
        ("state", "text"),
        ("draft", "bool"),
        ("author", "text"),
        ("base_ref", "text"),
        ("head_ref", "text"),
        ("head_sha", "text"),
        ("labels", "text[]"),
        ("source_created_at", "timestamptz"),
        ("source_updated_at", "timestamptz"),
        ("closed_at", "timestamptz"),
        ("merged_at", "timestamptz"),
        ("additions", "int4"),
        ("deletions", "int4"),
        ("changed_files", "int4"),
        ("commits", "int4"),
        ("comments", "int4"),
        ("review_comments", "int4"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[("labels", "'{}'::text[]")],
};

impl Table {
    /// The whole of a load job `$2` for tenant `$1` in one statement, so its
    /// payload is unpacked once: its rows read straight from the job's
    /// payload, the newest copy of each key kept, upserted, and the raw
    /// records behind every row (older copies' too) marked `completed`.
    /// Answers the counts.
    fn load_job_sql(&self) -> String {
        let record = self.record_definition();
        let upsert = self.upsert_from("newest AS r");
        format!(
            "WITH rows AS MATERIALIZED (
                 SELECT rec.*, e.ord
                   FROM etl_job_queue j,
                        jsonb_array_elements(j.payload->'transformed_data') WITH ORDINALITY AS e(elem, ord),
                        jsonb_to_record(e.elem) AS rec({record})
                  WHERE j.id = $2 AND NOT (e.ord = ANY($3::int8[]))),
             newest AS MATERIALIZED (
                 SELECT DISTINCT ON (integration_id, external_id) *
                   FROM rows
                  ORDER BY integration_id, external_id, source_updated_at DESC NULLS LAST, ord DESC),
             written AS ({upsert}),
             completed AS (
                 UPDATE raw_extraction_data
                    SET processing_status = 'completed', processed_at = now(), error_details = NULL
                  WHERE tenant_id = $1
                    AND id IN (SELECT raw_data_id FROM rows WHERE raw_data_id IS NOT NULL)
                    AND processing_status IS DISTINCT FROM 'completed'
                    AND processing_status IS DISTINCT FROM 'skipped'
                 RETURNING 1)
             SELECT (SELECT count(*) FROM rows) AS rows,
                    (SELECT count(*) FROM newest) AS keys,
                    (SELECT count(*) FROM written WHERE inserted) AS inserted,
                    (SELECT count(*) FROM written) AS written,
                    (SELECT count(*) FROM completed) AS completed"
        )
    }

    fn record_definition(&self) -> String {
        self.columns
            .iter()
            .map(|(c, t)| format!("{c} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `INSERT … SELECT … FROM {source} ON CONFLICT …`, where `source`
    /// yields rows aliased `r` with the table's loaded columns.
    fn upsert_from(&self, source: &str) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        let select = self
            .columns
            .iter()
            .map(|(c, _)| match self.defaults.iter().find(|(d, _)| d == c) {
                Some((_, default)) => format!("COALESCE(r.{c}, {default})"),
                None => format!("r.{c}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        // Key columns never change; raw_data_id follows the newest copy but
        // does not by itself make a row "different".
        let compared: Vec<&str> = names
            .iter()
            .copied()
            .filter(|c| !matches!(*c, "integration_id" | "external_id" | "raw_data_id"))
            .collect();
        let set = names
            .iter()
            .filter(|c| !matches!(**c, "integration_id" | "external_id"))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ours = compared
            .iter()
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let theirs = compared
            .iter()
            .map(|c| format!("EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {table} AS t (tenant_id, {columns})
             SELECT $1, {select} FROM {source}
             ON CONFLICT (tenant_id, integration_id, external_id) DO UPDATE
                SET {set}, loaded_at = now()
              WHERE (EXCLUDED.source_updated_at IS NULL OR t.source_updated_at IS NULL
                     OR EXCLUDED.source_updated_at >= t.source_updated_at)
                AND ROW({ours}) IS DISTINCT FROM ROW({theirs})
             RETURNING (xmax = 0) AS inserted",
            table = self.name,
            columns = names.join(", "),
        )
    }
}

/// What a load job did: its rows' counts, and how many raw records it
/// marked `completed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobLoad {
    pub counts: LoadCounts,
    pub raw_records_completed: usize,
}

/// Runs load job `job_id`: upserts the rows it carries
/// (`payload.transformed_data`) straight from its row, and marks their
/// raw records `completed`, in one statement. PostgreSQL unpacks,
/// de-duplicates and upserts the rows, so the payload never travels to the
/// worker and back. Rows whose position (1-based) is in `skip` are left
/// out, as if the job did not carry them.
pub fn load_job_rows(
    conn: &mut PgConnection,
    entity: FinalTable,
    tenant_id: TenantId,
    job_id: etl_domain::JobId,
    skip: &[i64],
) -> QueryResult<JobLoad> {
    let job_id = job_id.get();
    let tenant_id = tenant_id.get();
    use diesel::sql_types::{Array, BigInt};
    static WORK_ITEMS_SQL: OnceLock<String> = OnceLock::new();
    static PULL_REQUESTS_SQL: OnceLock<String> = OnceLock::new();
    let sql = match entity {
        FinalTable::WorkItems => WORK_ITEMS_SQL.get_or_init(|| WORK_ITEMS.load_job_sql()),
        FinalTable::PullRequests => PULL_REQUESTS_SQL.get_or_init(|| PULL_REQUESTS.load_job_sql()),
    };
    #[derive(QueryableByName)]
    struct Counted {
        #[diesel(sql_type = BigInt)]
        rows: i64,
        #[diesel(sql_type = BigInt)]
        keys: i64,
        #[diesel(sql_type = BigInt)]
        inserted: i64,
        #[diesel(sql_type = BigInt)]
        written: i64,
        #[diesel(sql_type = BigInt)]
        completed: i64,
    }
    let counted: Counted = diesel::sql_query(sql)
        .bind::<Int4, _>(tenant_id)
        .bind::<Int4, _>(job_id)
        .bind::<Array<BigInt>, _>(skip)
        .get_result(conn)?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(JobLoad {
        counts: LoadCounts {
            inserted: count(counted.inserted),
            updated: count(counted.written - counted.inserted),
            unchanged: count(counted.keys - counted.written),
            duplicates: count(counted.rows - counted.keys),
        },
        raw_records_completed: count(counted.completed),
    })
}

/// The text of each row a load job carries, in order (read only when a
/// load failed and its rows must be judged one by one).
pub fn job_rows(conn: &mut PgConnection, job_id: etl_domain::JobId) -> QueryResult<Vec<JsonText>> {
    let job_id = job_id.get();
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Jsonb)]
        row: JsonText,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT e.elem AS row
           FROM etl_job_queue j,
                jsonb_array_elements(j.payload->'transformed_data') WITH ORDINALITY AS e(elem, ord)
          WHERE j.id = $1
          ORDER BY e.ord",
    )
    .bind::<Int4, _>(job_id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.row).collect())
}

/// The final tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalTable {
    WorkItems,
    PullRequests,
}

impl FinalTable {
    fn table(self) -> &'static Table {
        match self {
            Self::WorkItems => &WORK_ITEMS,
            Self::PullRequests => &PULL_REQUESTS,
        }
    }

    /// The table's name in the database.
    pub fn name(self) -> &'static str {
        self.table().name
    }

    /// The columns a load writes, with their types as rows are unpacked
    /// (`jsonb_to_record`): declared once, here; a test holds them to the
    /// migrated table and to the domain's row type.
    pub fn loaded_columns(self) -> &'static [(&'static str, &'static str)] {
        self.table().columns
    }
}

#[derive(QueryableByName)]
struct Listed {
    #[diesel(sql_type = Jsonb)]
    data: JsonText,
}

/// `to_char` format of an API timestamp: RFC 3339 in UTC with `Z`.
const API_TIME: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

impl Table {
    /// `to_jsonb(t)` with every timestamp written as the API writes them
    /// (`loaded_at` is a plain `timestamp`, in UTC by the session's zone).
    fn row_json(&self) -> String {
        let mut times: Vec<String> = self
            .columns
            .iter()
            .filter(|(_, t)| *t == "timestamptz")
            .map(|(c, _)| format!("'{c}', to_char(t.{c} AT TIME ZONE 'UTC', {API_TIME})"))
            .collect();
        times.push(format!("'loaded_at', to_char(t.loaded_at, {API_TIME})"));
        format!(
            "(to_jsonb(t) - 'tenant_id') || jsonb_build_object({})",
            times.join(", ")
        )
    }
}

/// A page of a final table for one tenant, oldest first: every column but
/// `tenant_id`, as JSON text (custom fields keep every digit).
/// `filters` are (column, value) pairs that must match.
fn list(
    conn: &mut PgConnection,
    table: &Table,
    tenant_id: TenantId,
    filters: [(&str, Option<&str>); 2],
    after_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<JsonText>> {
    let tenant_id = tenant_id.get();
    use diesel::sql_types::{BigInt, Nullable, Text};
    let [(first, first_value), (second, second_value)] = filters;
    let sql = format!(
        "SELECT {row} AS data FROM {table} t
          WHERE tenant_id = $1
            AND ($2::text IS NULL OR {first} = $2)
            AND ($3::text IS NULL OR {second} = $3)
            AND ($4::int4 IS NULL OR id > $4)
          ORDER BY id LIMIT $5",
        row = table.row_json(),
        table = table.name,
    );
    let rows: Vec<Listed> = diesel::sql_query(sql)
        .bind::<Int4, _>(tenant_id)
        .bind::<Nullable<Text>, _>(first_value)
        .bind::<Nullable<Text>, _>(second_value)
        .bind::<Nullable<Int4>, _>(after_id)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|r| r.data).collect())
}

/// `GET /work-items`: by project key and status.
pub fn list_work_items(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    project_key: Option<&str>,
    status: Option<&str>,
    after_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<JsonText>> {
    list(
        conn,
        &WORK_ITEMS,
        tenant.id(),
        [("project_key", project_key), ("status", status)],
        after_id,
        limit,
    )
}

/// `GET /pull-requests`: by repository and state.
pub fn list_pull_requests(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    repository: Option<&str>,
    state: Option<&str>,
    after_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<JsonText>> {
    list(
        conn,
        &PULL_REQUESTS,
        tenant.id(),
        [("repository", repository), ("state", state)],
        after_id,
        limit,
    )
}
