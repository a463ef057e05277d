//! The Jira and GitHub use cases shared by the HTTP facade and the workers
//! (SPEC §7): the transform and load jobs as [`JobHandler`]s, and the
//! transform step itself, which the HTTP dry run calls too. The job
//! machinery (`etl-jobs`) runs these handlers without knowing any entity
//! type; this crate links no AMQP client.

use std::collections::HashMap;

use etl_domain::json_text::{jsonb_text_len_bound, push_array};
use etl_domain::transform::{
    self, jira::CustomFieldMappings, PullRequestRow, TransformError, WorkItemRow,
};
use etl_domain::{
    IntegrationId, JobErrorCode, JobPayload, JobPriority, JobType, RawRecordId, TenantId,
    TransformerKind,
};
use etl_store::jobs::{self, Job};
use etl_store::raw_records::{self, RawRecord, RawRecordOutline};
use etl_store::{integrations, loaders, PgConnection, QueryError};
use serde::Serialize;
use serde_json::{json, Value};

use etl_domain::DEFAULT_MAX_MESSAGE_BYTES;
use etl_handlers::{Handlers, JobFailure, JobHandler};

/// One record a transform refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    pub raw_data_id: i32,
    #[serde(flatten)]
    pub error: TransformError,
}

/// A transformed row of either final table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FinalRow {
    WorkItem(WorkItemRow),
    PullRequest(PullRequestRow),
}

/// Rows and refusals of one transform.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Transformed {
    /// Final-table rows, as load jobs carry them.
    pub records: Vec<FinalRow>,
    pub errors: Vec<RecordError>,
}

/// Transforms records (all of the kind's entity type). Reads the
/// integrations' settings for custom field mappings; writes nothing.
pub fn transform_records(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    kind: TransformerKind,
    records: &[RawRecord],
) -> Result<Transformed, QueryError> {
    let mut integration_ids: Vec<i32> = records.iter().map(|r| r.integration_id).collect();
    integration_ids.sort_unstable();
    integration_ids.dedup();
    let integration_ids: Vec<IntegrationId> = integration_ids
        .into_iter()
        .map(IntegrationId::new)
        .collect();
    let mappings: HashMap<i32, CustomFieldMappings> =
        integrations::find_many_for_tenant(conn, tenant_id, &integration_ids)?
            .into_iter()
            .map(|i| (i.id, CustomFieldMappings::from_settings(&i.settings)))
            .collect();
    let unmapped = CustomFieldMappings::default();
    let mut out = Transformed::default();
    for record in records {
        let row = match kind {
            TransformerKind::JiraIssues => {
                let mapping = mappings.get(&record.integration_id).unwrap_or(&unmapped);
                transform::jira::transform_text(
                    record.raw_data.as_str(),
                    record.integration_id,
                    mapping,
                )
                .map(|mut row| {
                    row.raw_data_id = Some(record.id);
                    FinalRow::WorkItem(row)
                })
            }
            TransformerKind::GithubPrs => {
                transform::github::transform_text(record.raw_data.as_str(), record.integration_id)
                    .map(|mut row| {
                        row.raw_data_id = Some(record.id);
                        FinalRow::PullRequest(row)
                    })
            }
        };
        match row {
            Ok(row) => out.records.push(row),
            Err(error) => out.errors.push(RecordError {
                raw_data_id: record.id,
                error,
            }),
        }
    }
    Ok(out)
}

/// Most stored document bytes a transform holds at once (documents of up
/// to `ETL_MAX_BODY_BYTES` each are read a chunk at a time).
pub const TRANSFORM_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Transforms the records outlined (all of the kind's entity type), reading
/// their documents at most [`TRANSFORM_CHUNK_BYTES`] (stored) at a time.
pub fn transform_outlined(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    kind: TransformerKind,
    outlines: &[RawRecordOutline],
) -> Result<Transformed, QueryError> {
    let mut out = Transformed::default();
    for chunk in raw_records::chunk_by_size(outlines, TRANSFORM_CHUNK_BYTES) {
        let records = raw_records::find_many_for_tenant(conn, tenant_id, &chunk)?;
        let part = transform_records(conn, tenant_id, kind, &records)?;
        out.records.extend(part.records);
        out.errors.extend(part.errors);
    }
    Ok(out)
}

/// Room kept in a message for everything but the rows (the SPEC §6
/// fields around `transformed_data`).
const MESSAGE_ENVELOPE_BYTES: usize = 1024;

/// The payloads of the load jobs a transform writes: its rows, serialised
/// straight from the typed rows (no `serde_json::Value` in between), in as
/// few jobs as fit messages of `max_message_bytes` (counting the spaces
/// PostgreSQL adds when the relay reads the payload back). Also answers the
/// raw records whose row alone would not fit.
fn load_payloads(
    rows: &[FinalRow],
    max_message_bytes: usize,
) -> Result<(Vec<String>, Vec<i32>), JobFailure> {
    let budget = max_message_bytes.saturating_sub(MESSAGE_ENVELOPE_BYTES);
    let mut payloads = Vec::new();
    let mut too_large = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut chunk_bytes = 0;
    let flush = |chunk: &mut Vec<String>, payloads: &mut Vec<String>| {
        if chunk.is_empty() {
            return;
        }
        let mut payload = String::from("{\"transformed_data\":");
        push_array(&mut payload, chunk.iter().map(String::as_str));
        payload.push('}');
        payloads.push(payload);
        chunk.clear();
    };
    for row in rows {
        let text = serde_json::to_string(row).map_err(|e| {
            JobFailure::permanent(
                JobErrorCode::UnserialisableRow,
                "A transformed row cannot be written as JSON.",
            )
            .caused_by(e)
        })?;
        // The row's bytes, a separating comma and its space.
        let bytes = jsonb_text_len_bound(&text) + 2;
        if bytes > budget {
            too_large.extend(row.raw_data_id());
            continue;
        }
        if chunk_bytes + bytes > budget {
            flush(&mut chunk, &mut payloads);
            chunk_bytes = 0;
        }
        chunk_bytes += bytes;
        chunk.push(text);
    }
    flush(&mut chunk, &mut payloads);
    Ok((payloads, too_large))
}

impl FinalRow {
    fn raw_data_id(&self) -> Option<i32> {
        match self {
            Self::WorkItem(row) => row.raw_data_id,
            Self::PullRequest(row) => row.raw_data_id,
        }
    }
}

fn kind_of(job: &Job) -> Result<TransformerKind, JobFailure> {
    TransformerKind::parse(&job.entity_type)
        .map_err(|e| JobFailure::permanent(JobErrorCode::NoTransformer, format!("entity_type {e}")))
}

/// A row the table refuses for its content (a constraint it breaks) will
/// never load: no retry. A database that cannot take it now (SPEC §5's
/// transient faults) or an error the kind does not tell is retried.
fn load_error(error: QueryError) -> JobFailure {
    match etl_store::Fault::known(&error) {
        Some(etl_store::Fault::Content) => JobFailure::permanent(
            JobErrorCode::InvalidRow,
            "The final table refused a row of this job (a constraint it breaks).",
        )
        .caused_by(error.to_string()),
        _ => database(error),
    }
}

fn database(error: QueryError) -> JobFailure {
    JobFailure::database(error)
}

/// `transform` jobs: read the job's raw records (the tenant's only), mark
/// them processing, transform each (a refused one becomes `failed` with
/// `{code, message, field}`), and write a load job with the rows, all in
/// the job's transaction. The rows go into as many load jobs as messages
/// of `max_message_bytes` need.
pub struct TransformHandler {
    pub max_message_bytes: usize,
}

impl Default for TransformHandler {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl JobHandler for TransformHandler {
    fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Value, JobFailure> {
        let kind = kind_of(job)?;
        let ids = Self::raw_ids(job).map_err(|e| {
            JobFailure::permanent(
                JobErrorCode::BadPayload,
                format!("payload.raw_data_ids: {e}"),
            )
        })?;
        // Outlines first: the documents are then read a bounded number of
        // bytes at a time, whatever their size.
        let records: Vec<RawRecordOutline> =
            raw_records::outlines_for_tenant(conn, job.tenant(), &RawRecordId::all(&ids))
                .map_err(database)?
                .into_iter()
                .filter(|r| {
                    r.entity_type == kind.as_str()
                        && r.status() != etl_domain::ProcessingStatus::Skipped
                })
                .collect();
        // `/pipeline/process` already moved its records to processing; only
        // pending ones are updated (an update rewrites the whole row, and a
        // completed record stays completed).
        let taken: Vec<i32> = records
            .iter()
            .filter(|r| r.status() == etl_domain::ProcessingStatus::Pending)
            .map(|r| r.id)
            .collect();
        raw_records::mark_processing(conn, &taken).map_err(database)?;
        let transformed =
            transform_outlined(conn, job.tenant(), kind, &records).map_err(database)?;
        for refused in &transformed.errors {
            let details = serde_json::to_value(&refused.error).unwrap_or(Value::Null);
            raw_records::mark_failed(
                conn,
                etl_domain::RawRecordId::new(refused.raw_data_id),
                &details,
            )
            .map_err(database)?;
        }
        let priority = JobPriority::new(i64::from(job.priority.unwrap_or(5))).unwrap_or_default();
        let (payloads, too_large) = load_payloads(&transformed.records, self.max_message_bytes)?;
        for raw_data_id in &too_large {
            let details = json!({
                "code": JobErrorCode::TooLarge,
                "message": format!(
                    "The transformed record does not fit one message of ETL_MAX_MESSAGE_BYTES ({} bytes).",
                    self.max_message_bytes
                ),
                "field": "raw_data",
            });
            raw_records::mark_failed(conn, etl_domain::RawRecordId::new(*raw_data_id), &details)
                .map_err(database)?;
        }
        let mut load_job_ids = Vec::with_capacity(payloads.len());
        for payload in &payloads {
            let id = jobs::insert_json(
                conn,
                job.tenant(),
                JobType::Load,
                &kind.entity_type(),
                payload,
                priority,
            )
            .map_err(database)?;
            load_job_ids.push(id);
        }
        Ok(json!({
            "records": ids.len(),
            "found": records.len(),
            "transformed": transformed.records.len() - too_large.len(),
            "failed": transformed.errors.len() + too_large.len(),
            "load_job_id": load_job_ids.first(),
            "load_job_ids": load_job_ids,
        }))
    }
}

impl TransformHandler {
    /// The job's `payload.raw_data_ids`, read as a transform payload.
    fn raw_ids(job: &Job) -> Result<Vec<i32>, serde_json::Error> {
        match JobPayload::parse(JobType::Transform, job.payload.as_str())? {
            JobPayload::Transform { raw_data_ids } => Ok(raw_data_ids),
            _ => unreachable!("parsed as a transform payload"),
        }
    }
}

/// `load` jobs: upsert the rows and mark their raw records completed, in one
/// statement of the job's transaction.
pub struct LoadHandler;

impl JobHandler for LoadHandler {
    fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Value, JobFailure> {
        use etl_store::Connection as _;
        let kind = kind_of(job)?;
        let table = match kind {
            TransformerKind::JiraIssues => loaders::FinalTable::WorkItems,
            TransformerKind::GithubPrs => loaders::FinalTable::PullRequests,
        };
        // The rows stay in PostgreSQL: unpacked from the job's own row (the
        // claim did not even fetch them). The one statement runs in a
        // savepoint, so that a row the table refuses costs only the
        // savepoint: then the rows are judged one by one, the refused ones
        // fail alone and the others load.
        let fast = conn.transaction(|conn| {
            loaders::load_job_rows(conn, table, job.tenant(), job.job_id(), &[])
        });
        let (loaded, errors) = match fast {
            Ok(loaded) => (loaded, Vec::new()),
            // The database cannot take it now: the whole job is retried.
            Err(error) if etl_store::Fault::known(&error) == Some(etl_store::Fault::Transient) => {
                return Err(database(error))
            }
            Err(error) => {
                let rows = loaders::job_rows(conn, job.job_id()).map_err(database)?;
                let mut refused = refused_rows(kind, &rows);
                if refused.is_empty() {
                    // Nothing we can see ahead (a trigger, say): the rows
                    // the table refuses on their own are found by trying
                    // halves, each in a savepoint rolled back.
                    let alone = rows_refused_alone(conn, table, job, rows.len())?;
                    refused = alone
                        .into_iter()
                        .map(|index| RefusedRow {
                            index,
                            raw_data_id: raw_data_id_of(&rows[index]),
                            error: TransformError::invalid(
                                "row",
                                "the final table refused this row (a value or constraint it does not take)",
                            ),
                        })
                        .collect();
                }
                if refused.is_empty() {
                    return Err(load_error(error));
                }
                tracing::warn!(job_id = job.id, refused = refused.len(), %error, "load job: rows refused by the final table fail alone");
                let skip: Vec<i64> = refused
                    .iter()
                    .filter_map(|r| i64::try_from(r.index + 1).ok())
                    .collect();
                let loaded = loaders::load_job_rows(conn, table, job.tenant(), job.job_id(), &skip)
                    .map_err(load_error)?;
                let mut errors = Vec::new();
                for row in refused {
                    match row.raw_data_id {
                        Some(raw_id) => {
                            let details = serde_json::to_value(&row.error).unwrap_or(Value::Null);
                            raw_records::fail_processing(
                                conn,
                                job.tenant(),
                                &[RawRecordId::new(raw_id)],
                                &details,
                            )
                            .map_err(database)?;
                        }
                        None => errors.push(json!({
                            "index": row.index,
                            "code": row.error.code,
                            "message": row.error.message,
                            "field": row.error.field,
                        })),
                    }
                }
                (loaded, errors)
            }
        };
        let counts = loaded.counts;
        Ok(json!({
            "records": counts.inserted + counts.updated + counts.unchanged + counts.duplicates,
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "duplicates": counts.duplicates,
            "raw_records_completed": loaded.raw_records_completed,
            "errors": errors,
        }))
    }
}

/// The positions of the rows of a load job that the final table refuses
/// when loaded on their own; the others load together. Halves are tried in
/// savepoints that are rolled back: a few statements for a few bad rows.
fn rows_refused_alone(
    conn: &mut PgConnection,
    table: loaders::FinalTable,
    job: &Job,
    count: usize,
) -> Result<Vec<usize>, JobFailure> {
    use etl_store::Connection as _;
    // Whether the rows in `range` load when every other row is skipped.
    let loads = |conn: &mut PgConnection, range: std::ops::Range<usize>| {
        let skip: Vec<i64> = (0..count)
            .filter(|i| !range.contains(i))
            .filter_map(|i| i64::try_from(i + 1).ok())
            .collect();
        let mut loaded = false;
        let tried = conn.transaction::<(), QueryError, _>(|conn| {
            loaders::load_job_rows(conn, table, job.tenant(), job.job_id(), &skip)?;
            loaded = true;
            Err(QueryError::RollbackTransaction)
        });
        match tried {
            Err(error) if etl_store::Fault::known(&error) == Some(etl_store::Fault::Transient) => {
                Err(database(error))
            }
            _ => Ok(loaded),
        }
    };
    let mut refused = Vec::new();
    // Ranges still to try (a stack: the first half is tried first).
    let mut ranges = Vec::new();
    ranges.push(0..count);
    while let Some(range) = ranges.pop() {
        if range.is_empty() || loads(conn, range.clone())? {
            continue;
        }
        if range.len() == 1 {
            refused.push(range.start);
            continue;
        }
        let middle = range.start + range.len() / 2;
        ranges.push(middle..range.end);
        ranges.push(range.start..middle);
    }
    refused.sort_unstable();
    Ok(refused)
}

/// The raw record a stored row came from (`raw_data_id`), if any.
fn raw_data_id_of(row: &etl_store::JsonText) -> Option<i32> {
    #[derive(serde::Deserialize)]
    struct Provenance {
        raw_data_id: Option<i32>,
    }
    serde_json::from_str::<Provenance>(row.as_str())
        .ok()
        .and_then(|p| p.raw_data_id)
}

/// A row of a load job that its final table would refuse.
struct RefusedRow {
    /// Position in `transformed_data`, from 0.
    index: usize,
    raw_data_id: Option<i32>,
    error: TransformError,
}

/// The rows of a load job that cannot be loaded.
fn refused_rows(kind: TransformerKind, rows: &[etl_store::JsonText]) -> Vec<RefusedRow> {
    rows.iter()
        .enumerate()
        .filter_map(|(index, row)| {
            let (raw_data_id, error) = judge_row(kind, row.as_str())?;
            Some(RefusedRow {
                index,
                raw_data_id,
                error,
            })
        })
        .collect()
}

/// Why the final table would refuse a row (not of its shape, or a value
/// longer than its column), with the raw record the row came from; `None`
/// when it fits. A row from a raw record is named by its source field, one
/// sent by `POST /load` by its column.
fn judge_row(kind: TransformerKind, text: &str) -> Option<(Option<i32>, TransformError)> {
    let parsed = match kind {
        TransformerKind::JiraIssues => {
            serde_json::from_str::<WorkItemRow>(text).map(|row| (row.raw_data_id, row.oversized()))
        }
        TransformerKind::GithubPrs => serde_json::from_str::<PullRequestRow>(text)
            .map(|row| (row.raw_data_id, row.oversized())),
    };
    match parsed {
        Ok((raw_data_id, over)) => {
            let over = over?;
            let field = if raw_data_id.is_some() {
                over.source
            } else {
                over.column
            };
            Some((raw_data_id, over.error(field)))
        }
        Err(error) => {
            // A row not of the table's shape still names its raw record.
            let raw_data_id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("raw_data_id").and_then(Value::as_i64))
                .and_then(|id| i32::try_from(id).ok());
            let error = TransformError {
                code: JobErrorCode::InvalidRow.as_str().to_owned(),
                message: error.to_string(),
                field: "transformed_data".to_owned(),
            };
            Some((raw_data_id, error))
        }
    }
}

/// The handlers of a process that runs the pipeline, with the default
/// message limit.
pub fn handlers() -> Handlers {
    handlers_for(DEFAULT_MAX_MESSAGE_BYTES)
}

/// The handlers of a process that runs the pipeline, writing no load job
/// whose message would pass `max_message_bytes`.
pub fn handlers_for(max_message_bytes: usize) -> Handlers {
    Handlers::default()
        .with(JobType::Transform, TransformHandler { max_message_bytes })
        .with(JobType::Load, LoadHandler)
}

#[cfg(test)]
mod tests {
    use etl_domain::transform::WorkItemRow;

    use super::*;

    fn row(external_id: &str, summary: &str) -> FinalRow {
        let row: WorkItemRow = serde_json::from_value(json!({
            "integration_id": 1, "external_id": external_id, "key": format!("K-{external_id}"),
            "summary": summary, "raw_data_id": 7
        }))
        .expect("a work item row");
        FinalRow::WorkItem(row)
    }

    #[test]
    fn the_load_payload_fast_path_is_a_typed_load_payload() {
        let rows = [row("1", "a, b: c"), row("2", "d")];
        let (payloads, too_large) = load_payloads(&rows, 1 << 20).expect("payloads");
        assert!(too_large.is_empty());
        let [payload] = payloads.as_slice() else {
            panic!("one job: {payloads:?}");
        };
        let Ok(JobPayload::Load {
            transformed_data,
            load_options,
        }) = JobPayload::parse(JobType::Load, payload)
        else {
            panic!("not a load payload: {payload}");
        };
        assert_eq!(transformed_data.len(), 2);
        assert_eq!(load_options, None);
        let first: WorkItemRow = serde_json::from_str(transformed_data[0].get()).expect("a row");
        assert_eq!(first.summary, "a, b: c");
    }

    #[test]
    fn load_payloads_split_to_fit_and_refuse_a_row_that_alone_cannot() {
        let rows: Vec<FinalRow> = (0..10)
            .map(|i| row(&i.to_string(), &"x".repeat(500)))
            .collect();
        let limit = MESSAGE_ENVELOPE_BYTES + 2000;
        let (payloads, too_large) = load_payloads(&rows, limit).expect("payloads");
        assert!(payloads.len() >= 4, "{}", payloads.len());
        assert!(too_large.is_empty());
        for payload in &payloads {
            assert!(jsonb_text_len_bound(payload) <= limit, "{}", payload.len());
        }
        let huge = [row("big", &"y".repeat(5000))];
        let (payloads, too_large) = load_payloads(&huge, limit).expect("payloads");
        assert!(payloads.is_empty());
        assert_eq!(too_large, [7]);
    }
}
