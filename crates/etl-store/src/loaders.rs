//! Set-based loading into the final tables (SPEC §7).
//!
//! One statement per table and batch of rows, generated from the table's
//! declaration in the domain ([`etl_domain::transform::Table`]):
//! PostgreSQL unpacks the rows (bound by a transform, or read in place from
//! a load job's payload) and upserts them on the table's key. Before that, duplicates of one key inside the batch are
//! resolved (the newest `source_updated_at` wins; on a tie, the later one),
//! because one statement may not touch a row twice. A row is only updated when the incoming record is not older than
//! the stored one *and* differs from it, so loading the same data twice
//! leaves the table as after once, and an older copy changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Jsonb, Nullable, Text};
use etl_domain::transform::{self, Table};
use etl_domain::TenantId;
use serde::Serialize;

use crate::tenants::ActiveTenant;

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

/// Where a load statement reads its rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowsFrom {
    /// `$2`: a JSON array of rows, bound (a transform loading its own rows).
    Bound,
    /// Load job `$2`'s `payload.transformed_data`, read in place.
    Job,
}

/// The load statement of `table`: its rows (less those at the 1-based
/// positions `$3`), the newest copy of each key kept, upserted; for a load
/// job, the raw records behind every row (older copies' too) marked
/// `completed`. Answers the counts and what the rows touched (the work
/// items and statuses whose derived figures they feed, before and after).
fn load_sql(table: &Table, from: RowsFrom) -> String {
    let record = table
        .columns
        .iter()
        .map(|(c, t)| format!("{c} {t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let source = match from {
        RowsFrom::Bound => "jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(elem, ord)",
        RowsFrom::Job => {
            "etl_job_queue j,
                        jsonb_array_elements(j.payload->'transformed_data') WITH ORDINALITY AS e(elem, ord)"
        }
    };
    let job_filter = match from {
        RowsFrom::Bound => "",
        RowsFrom::Job => "j.id = $2::int4 AND",
    };
    let key = table.key.join(", ");
    let newest_first = match table.version {
        Some(version) => format!("{version} DESC NULLS LAST, ord DESC"),
        None => "ord DESC".to_owned(),
    };
    let upsert = upsert_sql(table);
    let completed = match from {
        RowsFrom::Bound => "SELECT 1 WHERE false".to_owned(),
        RowsFrom::Job => "UPDATE raw_extraction_data
                    SET processing_status = 'completed', processed_at = now(), error_details = NULL
                  WHERE tenant_id = $1
                    AND id IN (SELECT raw_data_id FROM rows WHERE raw_data_id IS NOT NULL)
                    AND processing_status IS DISTINCT FROM 'completed'
                    AND processing_status IS DISTINCT FROM 'skipped'
                 RETURNING 1"
            .to_owned(),
    };
    // What the rows feed, from the rows actually written (a row loaded
    // unchanged changes no figure): the work items they belong to, the
    // statuses they are in and, for a row updated, the status it leaves
    // (read from the statement's snapshot, before the upsert).
    let touched_items = match table.feeds.work_item {
        Some(_) => "(SELECT jsonb_agg(DISTINCT jsonb_build_array(integration_id, fed_item))
                      FROM written)"
            .to_owned(),
        None => "NULL::jsonb".to_owned(),
    };
    let touched_statuses = match table.feeds.status {
        Some(column) => {
            let same_key = table
                .key
                .iter()
                .map(|k| format!("t.{k} = w.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "(SELECT jsonb_agg(DISTINCT jsonb_build_array(integration_id, status))
                    FROM (SELECT integration_id, fed_status AS status FROM written
                          UNION ALL
                          SELECT w.integration_id,
                                 (SELECT t.{column} FROM {name} t
                                   WHERE t.tenant_id = $1 AND {same_key})
                            FROM written w WHERE NOT w.inserted) AS s
                   WHERE status IS NOT NULL)",
                name = table.name
            )
        }
        None => "NULL::jsonb".to_owned(),
    };
    let touched_keys = match table.feeds.work_item_key {
        Some(_) => "(SELECT jsonb_agg(DISTINCT fed_key) FROM written WHERE fed_key IS NOT NULL)",
        None => "NULL::jsonb",
    };
    let touched_pull_requests = match table.feeds.pull_request {
        Some(_) => {
            "(SELECT jsonb_agg(DISTINCT jsonb_build_array(integration_id, fed_repository, fed_number))
                FROM written WHERE fed_repository IS NOT NULL AND fed_number IS NOT NULL)"
        }
        None => "NULL::jsonb",
    };
    let touched_links = if table.feeds.links {
        touched_pull_requests
    } else {
        "NULL::jsonb"
    };
    format!(
        "WITH rows AS MATERIALIZED (
             SELECT rec.*, e.ord
               FROM {source},
                    jsonb_to_record(e.elem) AS rec({record})
              WHERE {job_filter} NOT (e.ord = ANY($3::int8[]))),
         newest AS MATERIALIZED (
             SELECT DISTINCT ON ({key}) *
               FROM rows
              ORDER BY {key}, {newest_first}),
         written AS ({upsert}),
         completed AS ({completed})
         SELECT (SELECT count(*) FROM rows) AS rows,
                (SELECT count(*) FROM newest) AS keys,
                (SELECT count(*) FROM written WHERE inserted) AS inserted,
                (SELECT count(*) FROM written) AS written,
                (SELECT count(*) FROM completed) AS completed,
                {touched_items}::text AS touched_items,
                {touched_statuses}::text AS touched_statuses,
                {touched_keys}::text AS touched_keys,
                {touched_pull_requests}::text AS touched_pull_requests,
                {touched_links}::text AS touched_links"
    )
}

/// `INSERT … SELECT … FROM newest ON CONFLICT …` for `table`: a copy
/// older than the stored row (by the table's version column) or equal to
/// it changes nothing.
fn upsert_sql(table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let select = table
        .columns
        .iter()
        .map(|(c, _)| match table.defaults.iter().find(|(d, _)| d == c) {
            Some((_, default)) => format!("COALESCE(r.{c}, {default})"),
            None => format!("r.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let is_key = |c: &str| table.key.contains(&c);
    // Key columns never change; raw_data_id follows the newest copy but
    // does not by itself make a row "different".
    let compared: Vec<&str> = names
        .iter()
        .copied()
        .filter(|c| !is_key(c) && *c != "raw_data_id")
        .collect();
    let set = names
        .iter()
        .filter(|c| !is_key(c))
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
    let not_older = match table.version {
        Some(v) => format!("(EXCLUDED.{v} IS NULL OR t.{v} IS NULL OR EXCLUDED.{v} >= t.{v}) AND"),
        None => String::new(),
    };
    format!(
        "INSERT INTO {name} AS t (tenant_id, {columns})
         SELECT $1, {select} FROM newest AS r
         ON CONFLICT (tenant_id, {key}) DO UPDATE
            SET {set}, loaded_at = now()
          WHERE {not_older} ROW({ours}) IS DISTINCT FROM ROW({theirs})
         RETURNING (xmax = 0) AS inserted, {key}, {fed_item} AS fed_item, {fed_status} AS fed_status,
                   {fed_key} AS fed_key, {fed_repository} AS fed_repository, {fed_number} AS fed_number",
        fed_item = table.feeds.work_item.unwrap_or("NULL::text"),
        fed_status = table.feeds.status.unwrap_or("NULL::text"),
        fed_key = table.feeds.work_item_key.unwrap_or("NULL::text"),
        fed_repository = table.feeds.pull_request.map_or("NULL::text", |(r, _)| r),
        fed_number = table.feeds.pull_request.map_or("NULL::int4", |(_, n)| n),
        name = table.name,
        columns = names.join(", "),
        key = table.key.join(", "),
    )
}

/// What one load did: its rows' counts, how many raw records it marked
/// `completed` (a load job does; a transform completes its own), and the
/// work items and statuses its rows feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobLoad {
    pub counts: LoadCounts,
    pub raw_records_completed: usize,
    #[serde(skip)]
    pub touched: Touched,
}

/// What a load's rows feed (`derive::recompute`): the (integration, work
/// item external id) and (integration, status id) pairs of SPEC §7.1's
/// figures, the work-item keys that links may wait for, and the
/// (integration, repository, number) of pull requests whose figures and
/// links they change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    pub work_items: BTreeSet<(i32, String)>,
    pub statuses: BTreeSet<(i32, String)>,
    pub work_item_keys: BTreeSet<String>,
    pub pull_requests: BTreeSet<(i32, String, i32)>,
    /// Of those, the pull requests whose own rows were written: their
    /// links follow their keys.
    pub pull_request_links: BTreeSet<(i32, String, i32)>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.work_items.is_empty()
            && self.statuses.is_empty()
            && self.work_item_keys.is_empty()
            && self.pull_requests.is_empty()
            && self.pull_request_links.is_empty()
    }

    pub fn extend(&mut self, other: Touched) {
        self.work_items.extend(other.work_items);
        self.statuses.extend(other.statuses);
        self.work_item_keys.extend(other.work_item_keys);
        self.pull_requests.extend(other.pull_requests);
        self.pull_request_links.extend(other.pull_request_links);
    }

    /// A JSON array of the statement's answer, as a set (none: empty).
    fn parse<T: serde::de::DeserializeOwned + Ord>(text: Option<&str>) -> BTreeSet<T> {
        text.and_then(|t| serde_json::from_str::<Vec<T>>(t).ok())
            .map(|items| items.into_iter().collect())
            .unwrap_or_default()
    }
}

impl std::ops::AddAssign for LoadCounts {
    fn add_assign(&mut self, other: Self) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.duplicates += other.duplicates;
    }
}

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
    #[diesel(sql_type = Nullable<Text>)]
    touched_items: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    touched_statuses: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    touched_keys: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    touched_pull_requests: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    touched_links: Option<String>,
}

impl Counted {
    fn into_load(self) -> JobLoad {
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        JobLoad {
            counts: LoadCounts {
                inserted: count(self.inserted),
                updated: count(self.written - self.inserted),
                unchanged: count(self.keys - self.written),
                duplicates: count(self.rows - self.keys),
            },
            raw_records_completed: count(self.completed),
            touched: Touched {
                work_items: Touched::parse(self.touched_items.as_deref()),
                statuses: Touched::parse(self.touched_statuses.as_deref()),
                work_item_keys: Touched::parse(self.touched_keys.as_deref()),
                pull_requests: Touched::parse(self.touched_pull_requests.as_deref()),
                pull_request_links: Touched::parse(self.touched_links.as_deref()),
            },
        }
    }
}

/// The load statement of `table` reading rows `from`, built once per
/// process.
fn cached_sql(table: &'static Table, from: RowsFrom) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<(&'static str, bool), &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .entry((table.name, from == RowsFrom::Job))
        // One string per table and source, for the life of the process.
        .or_insert_with(|| Box::leak(load_sql(table, from).into_boxed_str()))
}

/// Runs load job `job_id`: upserts the rows it carries
/// (`payload.transformed_data`) into `table` straight from its row, and
/// marks their raw records `completed`, in one statement. PostgreSQL
/// unpacks, de-duplicates and upserts the rows, so the payload never
/// travels to the worker and back. Rows whose position (1-based) is in
/// `skip` are left out, as if the job did not carry them.
pub fn load_job_rows(
    conn: &mut PgConnection,
    table: &'static Table,
    tenant_id: TenantId,
    job_id: etl_domain::JobId,
    skip: &[i64],
) -> QueryResult<JobLoad> {
    let counted: Counted = diesel::sql_query(cached_sql(table, RowsFrom::Job))
        .bind::<Int4, _>(tenant_id.get())
        .bind::<Int4, _>(job_id.get())
        .bind::<Array<BigInt>, _>(skip)
        .get_result(conn)?;
    Ok(counted.into_load())
}

/// Upserts `rows` (a JSON array of rows of `table`, as a transform writes
/// them) for `tenant_id`, in one statement: the newest copy of each key
/// kept, an older or equal copy changing nothing. Does not touch raw
/// records.
pub fn load_rows(
    conn: &mut PgConnection,
    table: &'static Table,
    tenant_id: TenantId,
    rows: &JsonText,
) -> QueryResult<JobLoad> {
    let counted: Counted = diesel::sql_query(cached_sql(table, RowsFrom::Bound))
        .bind::<Int4, _>(tenant_id.get())
        .bind::<Jsonb, _>(rows)
        .bind::<Array<BigInt>, _>(&[] as &[i64])
        .get_result(conn)?;
    Ok(counted.into_load())
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

#[derive(QueryableByName)]
struct Listed {
    #[diesel(sql_type = Jsonb)]
    data: JsonText,
}

/// `to_char` format of an API timestamp: RFC 3339 in UTC with `Z`.
const API_TIME: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

/// `to_jsonb(t)` of a row of `table` with every timestamp written as the
/// API writes them (`loaded_at` is a plain `timestamp`, in UTC by the
/// session's zone).
fn row_json(table: &Table) -> String {
    let mut times: Vec<String> = table
        .columns
        .iter()
        .chain(table.derived)
        .filter(|(_, t)| *t == "timestamptz")
        .map(|(c, _)| format!("'{c}', to_char(t.{c} AT TIME ZONE 'UTC', {API_TIME})"))
        .collect();
    times.push(format!("'loaded_at', to_char(t.loaded_at, {API_TIME})"));
    format!(
        "(to_jsonb(t) - 'tenant_id') || jsonb_build_object({})",
        times.join(", ")
    )
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
        row = row_json(table),
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
        &transform::WORK_ITEMS,
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
        &transform::PULL_REQUESTS,
        tenant.id(),
        [("repository", repository), ("state", state)],
        after_id,
        limit,
    )
}

/// A change as the API answers it (SPEC §7.4), from `work_item_changes c`
/// and `key`, its work item's key (null while the issue is not loaded).
fn change_json(key: &str) -> String {
    format!(
        "jsonb_build_object(
            'id', c.id, 'work_item_key', {key}, 'changelog_id', c.changelog_id,
            'item_index', c.item_index, 'field', c.field, 'field_type', c.field_type,
            'from_value', c.from_value, 'from_string', c.from_string,
            'to_value', c.to_value, 'to_string', c.to_string,
            'author', c.author, 'author_name', c.author_name,
            'changed_at', to_char(c.changed_at AT TIME ZONE 'UTC', {API_TIME}))"
    )
}

/// `GET /work-items/{id}`: the tenant's work item with its derived
/// columns and its `status` changes, oldest first (at most
/// [`etl_domain::WORK_ITEM_CHANGES_MAX`]); `None` when the tenant has no
/// such item.
pub fn find_work_item(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: i32,
) -> QueryResult<Option<JsonText>> {
    let sql = format!(
        "SELECT {row} || jsonb_build_object('changes', COALESCE(
                    (SELECT jsonb_agg({change}
                                      ORDER BY c.changed_at NULLS LAST, c.changelog_id, c.item_index)
                       FROM (SELECT * FROM work_item_changes c
                              WHERE c.tenant_id = t.tenant_id AND c.integration_id = t.integration_id
                                AND c.work_item_external_id = t.external_id AND c.field = 'status'
                              ORDER BY c.changed_at NULLS LAST, c.changelog_id, c.item_index
                              LIMIT $3) c),
                    '[]'::jsonb)) AS data
           FROM work_items t
          WHERE t.tenant_id = $1 AND t.id = $2",
        row = row_json(&transform::WORK_ITEMS),
        change = change_json("t.key"),
    );
    let row: Option<Listed> = diesel::sql_query(sql)
        .bind::<Int4, _>(tenant.id().get())
        .bind::<Int4, _>(id)
        .bind::<BigInt, _>(etl_domain::WORK_ITEM_CHANGES_MAX)
        .get_result(conn)
        .optional()?;
    Ok(row.map(|r| r.data))
}

/// `GET /work-item-changes`: a page of the tenant's changes by id, of one
/// work item's key and one field when given.
pub fn list_work_item_changes(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    work_item_key: Option<&str>,
    field: Option<&str>,
    after_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<JsonText>> {
    let sql = format!(
        "SELECT {change} AS data
           FROM work_item_changes c
           LEFT JOIN work_items w
             ON w.tenant_id = c.tenant_id AND w.integration_id = c.integration_id
            AND w.external_id = c.work_item_external_id
          WHERE c.tenant_id = $1
            AND ($2::text IS NULL OR w.key = $2)
            AND ($3::text IS NULL OR c.field = $3)
            AND ($4::int8 IS NULL OR c.id > $4)
          ORDER BY c.id LIMIT $5",
        change = change_json("w.key"),
    );
    let rows: Vec<Listed> = diesel::sql_query(sql)
        .bind::<Int4, _>(tenant.id().get())
        .bind::<Nullable<Text>, _>(work_item_key)
        .bind::<Nullable<Text>, _>(field)
        .bind::<Nullable<BigInt>, _>(after_id)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|r| r.data).collect())
}

/// `GET /pull-requests/{id}`: the tenant's pull request with its derived
/// columns, its commits (by `authored_at`) and reviews (by
/// `submitted_at`), at most [`etl_domain::PULL_REQUEST_CHILDREN_MAX`] of
/// each, and its links; `None` when the tenant has no such pull request.
pub fn find_pull_request(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: i32,
) -> QueryResult<Option<JsonText>> {
    let time = |column: &str| format!("to_char({column} AT TIME ZONE 'UTC', {API_TIME})");
    let sql = format!(
        "SELECT {row} || jsonb_build_object(
                    'commits', COALESCE((
                        SELECT jsonb_agg(jsonb_build_object(
                                   'id', c.id, 'sha', c.sha, 'author_login', c.author_login,
                                   'author_name', c.author_name, 'author_email', c.author_email,
                                   'authored_at', {authored}, 'committed_at', {committed},
                                   'message', c.message) ORDER BY c.authored_at NULLS LAST, c.id)
                          FROM (SELECT * FROM pull_request_commits c
                                 WHERE c.tenant_id = t.tenant_id AND c.integration_id = t.integration_id
                                   AND c.repository = t.repository AND c.pull_number = t.number
                                 ORDER BY c.authored_at NULLS LAST, c.id LIMIT $3) c), '[]'::jsonb),
                    'reviews', COALESCE((
                        SELECT jsonb_agg(jsonb_build_object(
                                   'id', v.id, 'external_id', v.external_id, 'reviewer', v.reviewer,
                                   'state', v.state, 'submitted_at', {submitted}, 'body', v.body,
                                   'commit_sha', v.commit_sha) ORDER BY v.submitted_at NULLS LAST, v.id)
                          FROM (SELECT * FROM pull_request_reviews v
                                 WHERE v.pull_number = t.number AND v.repository = t.repository
                                   AND v.integration_id = t.integration_id
                                   AND v.tenant_id + 0 = t.tenant_id
                                 ORDER BY v.submitted_at NULLS LAST, v.id LIMIT $3) v), '[]'::jsonb),
                    'work_items', COALESCE((
                        SELECT jsonb_agg(jsonb_build_object(
                                   'work_item_key', l.work_item_key, 'found_in', l.found_in,
                                   'work_item_id', l.work_item_id) ORDER BY l.id)
                          FROM (SELECT * FROM pull_request_work_items l
                                 WHERE l.pull_request_id = t.id ORDER BY l.id LIMIT $3) l), '[]'::jsonb)) AS data
           FROM pull_requests t
          WHERE t.tenant_id = $1 AND t.id = $2",
        row = row_json(&transform::PULL_REQUESTS),
        authored = time("c.authored_at"),
        committed = time("c.committed_at"),
        submitted = time("v.submitted_at"),
    );
    let row: Option<Listed> = diesel::sql_query(sql)
        .bind::<Int4, _>(tenant.id().get())
        .bind::<Int4, _>(id)
        .bind::<BigInt, _>(etl_domain::PULL_REQUEST_CHILDREN_MAX)
        .get_result(conn)
        .optional()?;
    Ok(row.map(|r| r.data))
}
