//! `raw_extraction_data`: source responses as received, one row per record,
//! with where each is in its processing.

use crate::tenants::ActiveTenant;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::{
    EntityType, IngestChange, PageLimit, ProcessingStatus, RawDataDetail, RawDataResponse,
    RawObject, RawRecordId, StatusChange, TenantId,
};

use crate::faults::Fault;
use crate::json_text::JsonText;
use crate::schema::raw_extraction_data as raw;

/// The NULL-as-default reading of the nullable status column: a check
/// constraint limits it to known names, and NULL is the column's default.
fn status_of(column: Option<&str>) -> ProcessingStatus {
    column
        .and_then(|s| s.parse().ok())
        .unwrap_or(ProcessingStatus::Pending)
}

/// A stored object's text as the wire type (it was an object when stored).
fn object(text: JsonText) -> Result<RawObject, String> {
    RawObject::from_text(text.into_string())
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = raw, check_for_backend(diesel::pg::Pg))]
pub struct RawRecord {
    pub id: i32,
    pub tenant_id: i32,
    pub integration_id: i32,
    pub entity_type: String,
    pub external_id: Option<String>,
    /// The stored text (numbers with every digit).
    pub raw_data: JsonText,
    pub extraction_metadata: Option<JsonText>,
    pub processing_status: Option<String>,
    pub error_details: Option<serde_json::Value>,
    pub created_at: Option<NaiveDateTime>,
    pub processed_at: Option<NaiveDateTime>,
    pub ingest_changes: serde_json::Value,
}

impl RawRecord {
    pub fn status(&self) -> ProcessingStatus {
        status_of(self.processing_status.as_deref())
    }

    /// The record as `GET /raw-data/{id}` answers it; fails only if the
    /// stored text is not an object, which the store never writes.
    pub fn into_detail(self) -> Result<RawDataDetail, String> {
        let processing_status = self.status();
        let ingest_changes: Vec<IngestChange> =
            serde_json::from_value(self.ingest_changes).map_err(|e| e.to_string())?;
        Ok(RawDataDetail {
            id: self.id,
            entity_type: self.entity_type,
            external_id: self.external_id,
            raw_data: object(self.raw_data)?,
            processing_status,
            created_at: self.created_at.unwrap_or_default().and_utc(),
            integration_id: self.integration_id,
            extraction_metadata: self.extraction_metadata.map(object).transpose()?,
            error_details: self.error_details,
            processed_at: self.processed_at.map(|t| t.and_utc()),
            ingest_changes,
        })
    }
}

/// The columns `GET /raw-data` lists, and no more.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = raw, check_for_backend(diesel::pg::Pg))]
pub struct RawRecordSummary {
    pub id: i32,
    pub entity_type: String,
    pub external_id: Option<String>,
    pub raw_data: JsonText,
    pub processing_status: Option<String>,
    pub created_at: Option<NaiveDateTime>,
}

impl RawRecordSummary {
    pub fn into_response(self) -> Result<RawDataResponse, String> {
        Ok(RawDataResponse {
            id: self.id,
            entity_type: self.entity_type,
            external_id: self.external_id,
            raw_data: object(self.raw_data)?,
            processing_status: status_of(self.processing_status.as_deref()),
            created_at: self.created_at.unwrap_or_default().and_utc(),
        })
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = raw)]
pub struct NewRawRecord {
    pub tenant_id: i32,
    pub integration_id: i32,
    pub entity_type: String,
    pub external_id: Option<String>,
    /// JSON text as received, U+0000 already removed.
    pub raw_data: JsonText,
    pub extraction_metadata: Option<JsonText>,
    /// JSON array of `{field, change}`.
    pub ingest_changes: JsonText,
}

/// Inserts many independent records in one statement (one transaction),
/// each only if its tenant and integration are active and the integration is
/// the tenant's. Returns, per input in order, the new id or `None` when that
/// record's checks failed. Used to coalesce concurrent single-record stores:
/// one commit for many requests, each still answered on its own.
pub fn insert_checked_many(
    conn: &mut PgConnection,
    records: &[NewRawRecord],
) -> QueryResult<Vec<Option<i32>>> {
    use diesel::sql_types::{Array, Int4, Int8, Jsonb, Nullable, Text};

    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = Int8)]
        ord: i64,
        #[diesel(sql_type = Int4)]
        id: i32,
    }

    if records.is_empty() {
        return Ok(Vec::new());
    }
    // Ids are drawn in `allowed` (materialised: drawn once per row, in input
    // order so that ids ascend as the records came) and inserted explicitly,
    // so each maps back to its input by `ord`. A data-modifying CTE runs even
    // when nothing references it.
    let inserted: Vec<Inserted> = diesel::sql_query(
        "WITH input AS (
             SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                                  $7::jsonb[])
                 WITH ORDINALITY AS u(tenant_id, integration_id, entity_type, external_id,
                                      raw_data, extraction_metadata, ingest_changes, ord)
         ),
         allowed AS MATERIALIZED (
             SELECT nextval('raw_extraction_data_id_seq')::int4 AS id, checked.*
               FROM (SELECT input.*
                       FROM input
                       JOIN integrations i ON i.id = input.integration_id
                                          AND i.tenant_id = input.tenant_id AND i.active
                       JOIN tenants t ON t.id = input.tenant_id AND t.active
                      ORDER BY input.ord) AS checked
         ),
         stored AS (
             INSERT INTO raw_extraction_data
                 (id, tenant_id, integration_id, entity_type, external_id, raw_data, extraction_metadata,
                  ingest_changes)
             SELECT id, tenant_id, integration_id, entity_type, external_id, raw_data, extraction_metadata,
                    ingest_changes
               FROM allowed
         )
         SELECT ord, id FROM allowed",
    )
    .bind::<Array<Int4>, _>(records.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(records.iter().map(|r| r.integration_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(records.iter().map(|r| r.entity_type.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        records.iter().map(|r| r.external_id.as_deref()).collect::<Vec<_>>(),
    )
    .bind::<Array<Jsonb>, _>(records.iter().map(|r| &r.raw_data).collect::<Vec<_>>())
    .bind::<Array<Nullable<Jsonb>>, _>(
        records.iter().map(|r| r.extraction_metadata.as_ref()).collect::<Vec<_>>(),
    )
    .bind::<Array<Jsonb>, _>(records.iter().map(|r| &r.ingest_changes).collect::<Vec<_>>())
    .load(conn)?;
    let mut ids = vec![None; records.len()];
    for row in inserted {
        if let Some(slot) = usize::try_from(row.ord - 1)
            .ok()
            .and_then(|i| ids.get_mut(i))
        {
            *slot = Some(row.id);
        }
    }
    Ok(ids)
}

/// Whose fault it is that storing `record` failed with `error`: from the
/// error itself when it tells (a kind Diesel names, a lost connection),
/// else from the SQLSTATE of the same insert tried again in a savepoint
/// that is rolled back ([`sqlstate_of_insert`]). A failure that does not
/// happen again was passing ([`Fault::Transient`]). Call it outside a
/// failed transaction, or inside one only after its savepoint rolled back.
pub fn fault_of_insert(
    conn: &mut PgConnection,
    record: &NewRawRecord,
    error: &diesel::result::Error,
) -> Fault {
    if let Some(fault) = Fault::known(error) {
        return fault;
    }
    match sqlstate_of_insert(conn, record) {
        Ok(Some(code)) => Fault::of_sqlstate(&code),
        Ok(None) => Fault::Transient,
        Err(again) => Fault::known(&again).unwrap_or(Fault::Internal),
    }
}

/// The SQLSTATE with which inserting `record` fails now, or `None` when it
/// succeeds; nothing is kept either way (a savepoint rolled back).
pub fn sqlstate_of_insert(
    conn: &mut PgConnection,
    record: &NewRawRecord,
) -> QueryResult<Option<String>> {
    use diesel::sql_types::{Int4, Nullable, Text};

    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Nullable<Text>)]
        sqlstate: Option<String>,
    }

    let mut found = None;
    let tried = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        let outcome: Outcome = diesel::sql_query(
            "SELECT etl_raw_insert_sqlstate($1, $2, $3, $4, $5, $6, $7) AS sqlstate",
        )
        .bind::<Int4, _>(record.tenant_id)
        .bind::<Int4, _>(record.integration_id)
        .bind::<Text, _>(&record.entity_type)
        .bind::<Nullable<Text>, _>(record.external_id.as_deref())
        .bind::<Text, _>(record.raw_data.as_str())
        .bind::<Nullable<Text>, _>(record.extraction_metadata.as_ref().map(JsonText::as_str))
        .bind::<Text, _>(record.ingest_changes.as_str())
        .get_result(conn)?;
        found = Some(outcome.sqlstate);
        Err(diesel::result::Error::RollbackTransaction)
    });
    match (tried, found) {
        (_, Some(sqlstate)) => Ok(sqlstate),
        (Err(error), None) => Err(error),
        (Ok(()), None) => Ok(None),
    }
}

/// The tenant's record with this id; another tenant's record reads as `None`,
/// exactly like a missing one.
pub fn find_for_tenant(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: RawRecordId,
) -> QueryResult<Option<RawRecord>> {
    let id = id.get();
    let tenant_id = tenant.id().get();
    raw::table
        .filter(raw::id.eq(id))
        .filter(raw::tenant_id.eq(tenant_id))
        .select(RawRecord::as_select())
        .first(conn)
        .optional()
}

/// A page of the tenant's records, oldest first.
#[derive(Debug, Clone)]
pub struct RawRecordFilter {
    pub entity_type: EntityType,
    pub status: Option<ProcessingStatus>,
    /// Keyset paging: only records with a larger id.
    pub after_id: Option<i32>,
    pub limit: PageLimit,
}

/// Lists only while the tenant is active (an inactive or missing tenant's
/// page is empty), so that a page costs the caller one statement: only an
/// empty page needs a second look at the tenant.
pub fn list_for_tenant(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    filter: &RawRecordFilter,
) -> QueryResult<Vec<RawRecordSummary>> {
    let tenant_id = tenant_id.get();
    use crate::schema::tenants;
    let mut query = raw::table
        .filter(raw::tenant_id.eq(tenant_id))
        .filter(diesel::dsl::exists(
            tenants::table
                .filter(tenants::id.eq(tenant_id))
                .filter(tenants::active),
        ))
        .filter(raw::entity_type.eq(filter.entity_type.as_str()))
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(raw::processing_status.eq(status.as_str()));
    }
    if let Some(after_id) = filter.after_id {
        query = query.filter(raw::id.gt(after_id));
    }
    query
        .order(raw::id.asc())
        .limit(filter.limit.get())
        .select(RawRecordSummary::as_select())
        .load(conn)
}

/// What a status change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusUpdate {
    /// No record of the tenant has this id.
    NotFound,
    /// The record already had this status; nothing was written.
    Unchanged,
    Updated,
    /// The rules forbid leaving the record's current status this way.
    Forbidden {
        current: ProcessingStatus,
    },
}

/// Moves one of the tenant's records to `to`, following the rules of
/// [`ProcessingStatus::change_to`]. Locks the row so that concurrent changes
/// are judged one after the other; call it inside a transaction.
pub fn update_status(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: RawRecordId,
    to: ProcessingStatus,
    error_details: Option<serde_json::Value>,
) -> QueryResult<StatusUpdate> {
    let id = id.get();
    let tenant_id = tenant.id().get();
    let current: Option<Option<String>> = raw::table
        .filter(raw::id.eq(id))
        .filter(raw::tenant_id.eq(tenant_id))
        .select(raw::processing_status)
        .for_update()
        .first(conn)
        .optional()?;
    let Some(current) = current else {
        return Ok(StatusUpdate::NotFound);
    };
    let current = status_of(current.as_deref());
    match current.change_to(to) {
        StatusChange::Unchanged => Ok(StatusUpdate::Unchanged),
        StatusChange::Forbidden => Ok(StatusUpdate::Forbidden { current }),
        StatusChange::Allowed => {
            // The database's clock, as every other stamp of the row.
            let processed_at = if to.stamps_processed_at() {
                "now()"
            } else {
                "NULL"
            };
            diesel::update(raw::table.find(id))
                .set((
                    raw::processing_status.eq(to.as_str()),
                    raw::error_details.eq(error_details),
                    raw::processed_at.eq(diesel::dsl::sql::<
                        diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
                    >(processed_at)),
                ))
                .execute(conn)?;
            Ok(StatusUpdate::Updated)
        }
    }
}

/// Which records a `/pipeline/process` or `/raw-data/replay` call takes:
/// the tenant's, of one type, optionally of one integration, from one
/// backlog.
#[derive(Debug, Clone)]
pub struct BacklogScope {
    pub tenant: ActiveTenant,
    pub entity_type: EntityType,
    pub integration_id: Option<i32>,
    pub backlog: Backlog,
}

/// The records a call queues for transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backlog {
    /// `pending` records (`/pipeline/process`).
    Pending,
    /// `failed` records, only those whose `error_details.code` is `code`
    /// when given (`/raw-data/replay`).
    Failed { code: Option<String> },
}

impl Backlog {
    fn status(&self) -> ProcessingStatus {
        match self {
            Backlog::Pending => ProcessingStatus::Pending,
            Backlog::Failed { .. } => ProcessingStatus::Failed,
        }
    }

    fn code(&self) -> Option<&str> {
        match self {
            Backlog::Pending => None,
            Backlog::Failed { code } => code.as_deref(),
        }
    }
}

/// The newest id in the scope's backlog, if any: the end of what one call
/// takes, so that records arriving (or failing) meanwhile do not keep it
/// going.
pub fn newest_in_backlog(
    conn: &mut PgConnection,
    scope: &BacklogScope,
) -> QueryResult<Option<i32>> {
    use diesel::dsl::{max, sql};
    use diesel::sql_types::{Bool, Nullable, Text};
    let mut query = raw::table
        .filter(raw::tenant_id.eq(scope.tenant.id().get()))
        .filter(raw::entity_type.eq(scope.entity_type.as_str()))
        .filter(raw::processing_status.eq(scope.backlog.status().as_str()))
        .select(max(raw::id))
        .into_boxed();
    if let Some(integration_id) = scope.integration_id {
        query = query.filter(raw::integration_id.eq(integration_id));
    }
    if let Some(code) = scope.backlog.code() {
        query = query.filter(
            sql::<Bool>("error_details->>'code' = ")
                .bind::<Nullable<Text>, _>(Some(code.to_owned())),
        );
    }
    query.first(conn)
}

/// Takes up to `limit` of the scope's backlog with ids in
/// `(after_id, up_to_id]`, oldest first: moves them to `processing` (so
/// that no other call queues them again; a failed record's `error_details`
/// are cleared, its failure being over) and returns their ids in order. Rows another transaction holds are skipped. Call inside the
/// transaction that creates their job.
pub fn take_backlog_batch(
    conn: &mut PgConnection,
    scope: &BacklogScope,
    (after_id, up_to_id): (i32, i32),
    limit: i64,
) -> QueryResult<Vec<i32>> {
    use diesel::sql_types::{BigInt, Int4, Nullable, Text};
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Int4)]
        id: i32,
    }
    let taken: Vec<Taken> = diesel::sql_query(
        "UPDATE raw_extraction_data
            SET processing_status = 'processing',
                error_details = CASE WHEN processing_status = 'failed' THEN NULL
                                     ELSE error_details END
          WHERE id IN (SELECT id FROM raw_extraction_data
                        WHERE tenant_id = $1 AND entity_type = $2
                          AND processing_status = $7
                          AND ($3::int4 IS NULL OR integration_id = $3)
                          AND ($8::text IS NULL OR error_details->>'code' = $8)
                          AND id > $4 AND id <= $5
                        ORDER BY id
                        LIMIT $6
                          FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind::<Int4, _>(scope.tenant.id().get())
    .bind::<Text, _>(scope.entity_type.as_str())
    .bind::<Nullable<Int4>, _>(scope.integration_id)
    .bind::<Int4, _>(after_id)
    .bind::<Int4, _>(up_to_id)
    .bind::<BigInt, _>(limit)
    .bind::<Text, _>(scope.backlog.status().as_str())
    .bind::<Nullable<Text>, _>(scope.backlog.code())
    .load(conn)?;
    let mut ids: Vec<i32> = taken.into_iter().map(|t| t.id).collect();
    // RETURNING follows no order.
    ids.sort_unstable();
    Ok(ids)
}

/// What is known of a record without reading its document: enough to
/// check a transform request's ids and to read the documents in chunks
/// bounded by bytes.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = raw, check_for_backend(diesel::pg::Pg))]
pub struct RawRecordOutline {
    pub id: i32,
    pub entity_type: String,
    pub processing_status: Option<String>,
    /// The document's stored size (`pg_column_size`: compressed when large).
    #[diesel(
        select_expression = diesel::dsl::sql::<diesel::sql_types::Integer>("pg_column_size(raw_data)"),
        select_expression_type = diesel::expression::SqlLiteral<diesel::sql_types::Integer>
    )]
    pub stored_bytes: i32,
}

impl RawRecordOutline {
    pub fn status(&self) -> ProcessingStatus {
        status_of(self.processing_status.as_deref())
    }
}

/// The outlines of the tenant's records among `ids`, by id (another
/// tenant's or missing ids are absent). Reads no document.
pub fn outlines_for_tenant(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    ids: &[RawRecordId],
) -> QueryResult<Vec<RawRecordOutline>> {
    let tenant_id = tenant_id.get();
    let ids = plain_ids(ids);
    raw::table
        .filter(raw::tenant_id.eq(tenant_id))
        .filter(raw::id.eq_any(ids))
        .order(raw::id.asc())
        .select(RawRecordOutline::as_select())
        .load(conn)
}

/// The ids as the table holds them.
fn plain_ids(ids: &[RawRecordId]) -> Vec<i32> {
    ids.iter().map(|id| id.get()).collect()
}

/// Splits outlines into runs of ids whose documents take at most about
/// `max_bytes` stored (at least one record per run), to read them a run
/// at a time.
pub fn chunk_by_size(outlines: &[RawRecordOutline], max_bytes: usize) -> Vec<Vec<RawRecordId>> {
    let mut chunks: Vec<Vec<RawRecordId>> = Vec::new();
    let mut bytes = 0_usize;
    for outline in outlines {
        let size = usize::try_from(outline.stored_bytes).unwrap_or(0);
        match chunks.last_mut() {
            Some(chunk) if bytes + size <= max_bytes => {
                chunk.push(RawRecordId::new(outline.id));
                bytes += size;
            }
            _ => {
                chunks.push(vec![RawRecordId::new(outline.id)]);
                bytes = size;
            }
        }
    }
    chunks
}

/// The tenant's records among `ids` (another tenant's or missing ids are
/// simply absent). Not locked: two transforms of one record load the same
/// row, and loads are idempotent.
pub fn find_many_for_tenant(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    ids: &[RawRecordId],
) -> QueryResult<Vec<RawRecord>> {
    let tenant_id = tenant_id.get();
    let ids = plain_ids(ids);
    raw::table
        .filter(raw::tenant_id.eq(tenant_id))
        .filter(raw::id.eq_any(ids))
        .order(raw::id.asc())
        .select(RawRecord::as_select())
        .load(conn)
}

/// Moves `pending` records to `processing` (a transform took them). Any
/// other status stays: a `completed` record named again by `/transform` is
/// transformed and loaded again (loads are idempotent) but never goes back
/// to `processing`.
pub fn mark_processing(conn: &mut PgConnection, ids: &[i32]) -> QueryResult<usize> {
    if ids.is_empty() {
        // The usual case for `/pipeline/process` batches: spare the round trip.
        return Ok(0);
    }
    diesel::update(
        raw::table.filter(raw::id.eq_any(ids)).filter(
            raw::processing_status
                .eq(ProcessingStatus::Pending.as_str())
                .or(raw::processing_status.is_null()),
        ),
    )
    .set(raw::processing_status.eq(ProcessingStatus::Processing.as_str()))
    .execute(conn)
}

/// Marks one record `failed` with why (a transform refused it). A final
/// record (`completed`, `skipped`) stays as it is.
pub fn mark_failed(
    conn: &mut PgConnection,
    id: RawRecordId,
    error_details: &serde_json::Value,
) -> QueryResult<usize> {
    let id = id.get();
    let final_statuses = [
        ProcessingStatus::Completed.as_str(),
        ProcessingStatus::Skipped.as_str(),
    ];
    diesel::update(
        raw::table.find(id).filter(
            raw::processing_status
                .ne_all(final_statuses)
                .or(raw::processing_status.is_null()),
        ),
    )
    .set((
        raw::processing_status.eq(ProcessingStatus::Failed.as_str()),
        raw::error_details.eq(error_details),
        raw::processed_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
}

/// Marks the tenant's records among `ids` `completed` (a transform loaded
/// their rows, or they gave none). A final record (`completed`,
/// `skipped`) stays as it is.
pub fn complete(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    ids: &[RawRecordId],
) -> QueryResult<usize> {
    let tenant_id = tenant_id.get();
    let ids = plain_ids(ids);
    if ids.is_empty() {
        return Ok(0);
    }
    let final_statuses = [
        ProcessingStatus::Completed.as_str(),
        ProcessingStatus::Skipped.as_str(),
    ];
    diesel::update(
        raw::table
            .filter(raw::tenant_id.eq(tenant_id))
            .filter(raw::id.eq_any(ids))
            .filter(
                raw::processing_status
                    .ne_all(final_statuses)
                    .or(raw::processing_status.is_null()),
            ),
    )
    .set((
        raw::processing_status.eq(ProcessingStatus::Completed.as_str()),
        raw::error_details.eq(None::<serde_json::Value>),
        raw::processed_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
}

/// Marks the tenant's records among `ids` that are still `processing` as
/// `failed` with why (their job failed for good).
pub fn fail_processing(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    ids: &[RawRecordId],
    error_details: &serde_json::Value,
) -> QueryResult<usize> {
    let tenant_id = tenant_id.get();
    let ids = plain_ids(ids);
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        raw::table
            .filter(raw::tenant_id.eq(tenant_id))
            .filter(raw::id.eq_any(ids))
            .filter(raw::processing_status.eq(ProcessingStatus::Processing.as_str())),
    )
    .set((
        raw::processing_status.eq(ProcessingStatus::Failed.as_str()),
        raw::error_details.eq(error_details),
        raw::processed_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outline(id: i32, stored_bytes: i32) -> RawRecordOutline {
        RawRecordOutline {
            id,
            entity_type: "jira_issues".to_owned(),
            processing_status: None,
            stored_bytes,
        }
    }

    #[test]
    fn chunks_hold_at_most_the_budget_and_at_least_one_record() {
        let outlines = [
            outline(1, 40),
            outline(2, 40),
            outline(3, 500),
            outline(4, 10),
        ];
        assert_eq!(
            chunk_by_size(&outlines, 100),
            vec![
                RawRecordId::all(&[1, 2]),
                RawRecordId::all(&[3]),
                RawRecordId::all(&[4])
            ]
        );
        assert_eq!(
            chunk_by_size(&outlines, 10_000),
            vec![RawRecordId::all(&[1, 2, 3, 4])]
        );
        assert!(chunk_by_size(&[], 100).is_empty());
    }
}
