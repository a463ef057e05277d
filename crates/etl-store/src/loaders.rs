//! Set-based loading into the final tables (SPEC §7).
//!
//! One statement per batch: the rows travel as one JSON array, unpacked by
//! `jsonb_to_recordset`, and are upserted on
//! `(tenant_id, integration_id, external_id)`. Before that, duplicates of one
//! key inside the batch are resolved (the newest `source_updated_at` wins;
//! on a tie, the later one), because one statement may not touch a row
//! twice. A row is only updated when the incoming record is not older than
//! the stored one *and* differs from it, so loading the same data twice
//! leaves the table as after once, and an older copy changes nothing.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int4, Jsonb};
use etl_domain::transform::{PullRequestRow, WorkItemRow};
use serde::Serialize;

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
    /// The upsert statement: `$1` tenant id, `$2` the rows as a JSON array.
    fn upsert_sql(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        let record = self
            .columns
            .iter()
            .map(|(c, t)| format!("{c} {t}"))
            .collect::<Vec<_>>()
            .join(", ");
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
             SELECT $1, {select} FROM jsonb_to_recordset($2) AS r({record})
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

#[derive(QueryableByName)]
struct Upserted {
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

/// Something a final table holds: its key and its version.
pub trait FinalRow: Serialize {
    fn key(&self) -> (i32, &str);
    fn updated_at(&self) -> Option<DateTime<Utc>>;
    fn raw_data_id(&self) -> Option<i32>;
}

impl FinalRow for WorkItemRow {
    fn key(&self) -> (i32, &str) {
        (self.integration_id, &self.external_id)
    }
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.source_updated_at
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
}

impl FinalRow for PullRequestRow {
    fn key(&self) -> (i32, &str) {
        (self.integration_id, &self.external_id)
    }
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.source_updated_at
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
}

/// The newest copy of each key, in first-seen order.
pub fn newest_per_key<R: FinalRow>(rows: &[R]) -> Vec<&R> {
    let mut index: HashMap<(i32, &str), usize> = HashMap::new();
    let mut kept: Vec<&R> = Vec::new();
    for row in rows {
        match index.get(&row.key()) {
            Some(&at) => {
                // Later wins ties: a re-extraction of the same version.
                if row.updated_at() >= kept[at].updated_at() {
                    kept[at] = row;
                }
            }
            None => {
                index.insert(row.key(), kept.len());
                kept.push(row);
            }
        }
    }
    kept
}

fn upsert<R: FinalRow>(
    conn: &mut PgConnection,
    sql: &str,
    tenant_id: i32,
    rows: &[R],
) -> QueryResult<LoadCounts> {
    let newest = newest_per_key(rows);
    let duplicates = rows.len() - newest.len();
    if newest.is_empty() {
        return Ok(LoadCounts::default());
    }
    let payload = serde_json::to_value(&newest)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let written: Vec<Upserted> = diesel::sql_query(sql)
        .bind::<Int4, _>(tenant_id)
        .bind::<Jsonb, _>(payload)
        .load(conn)?;
    let inserted = written.iter().filter(|w| w.inserted).count();
    Ok(LoadCounts {
        inserted,
        updated: written.len() - inserted,
        unchanged: newest.len() - written.len(),
        duplicates,
    })
}

/// Upserts work items of one tenant in one statement.
pub fn load_work_items(
    conn: &mut PgConnection,
    tenant_id: i32,
    rows: &[WorkItemRow],
) -> QueryResult<LoadCounts> {
    static SQL: OnceLock<String> = OnceLock::new();
    upsert(
        conn,
        SQL.get_or_init(|| WORK_ITEMS.upsert_sql()),
        tenant_id,
        rows,
    )
}

/// Upserts pull requests of one tenant in one statement.
pub fn load_pull_requests(
    conn: &mut PgConnection,
    tenant_id: i32,
    rows: &[PullRequestRow],
) -> QueryResult<LoadCounts> {
    static SQL: OnceLock<String> = OnceLock::new();
    upsert(
        conn,
        SQL.get_or_init(|| PULL_REQUESTS.upsert_sql()),
        tenant_id,
        rows,
    )
}

/// Marks the raw records behind loaded rows `completed` (those not final
/// already), in the load's transaction.
pub fn complete_raw_records(
    conn: &mut PgConnection,
    tenant_id: i32,
    ids: &[i32],
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE raw_extraction_data
            SET processing_status = 'completed', processed_at = now(), error_details = NULL
          WHERE tenant_id = $1 AND id = ANY($2)
            AND processing_status IS DISTINCT FROM 'completed'
            AND processing_status IS DISTINCT FROM 'skipped'",
    )
    .bind::<Int4, _>(tenant_id)
    .bind::<Array<Int4>, _>(ids)
    .execute(conn)
}

#[derive(QueryableByName)]
struct Listed {
    #[diesel(sql_type = Jsonb)]
    data: serde_json::Value,
}

/// A page of a final table for one tenant, oldest first: every column but
/// `tenant_id`, as JSON. `filters` are (column, value) pairs that must match.
fn list(
    conn: &mut PgConnection,
    table: &Table,
    tenant_id: i32,
    filters: [(&str, Option<&str>); 2],
    after_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<serde_json::Value>> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    let [(first, first_value), (second, second_value)] = filters;
    let sql = format!(
        "SELECT to_jsonb(t) - 'tenant_id' AS data FROM {table} t
          WHERE tenant_id = $1
            AND ($2::text IS NULL OR {first} = $2)
            AND ($3::text IS NULL OR {second} = $3)
            AND ($4::int4 IS NULL OR id > $4)
          ORDER BY id LIMIT $5",
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
    tenant_id: i32,
    project_key: Option<&str>,
    status: Option<&str>,
    after_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<serde_json::Value>> {
    list(
        conn,
        &WORK_ITEMS,
        tenant_id,
        [("project_key", project_key), ("status", status)],
        after_id,
        limit,
    )
}

/// `GET /pull-requests`: by repository and state.
pub fn list_pull_requests(
    conn: &mut PgConnection,
    tenant_id: i32,
    repository: Option<&str>,
    state: Option<&str>,
    after_id: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<serde_json::Value>> {
    list(
        conn,
        &PULL_REQUESTS,
        tenant_id,
        [("repository", repository), ("state", state)],
        after_id,
        limit,
    )
}
