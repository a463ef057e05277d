//! The Jira and GitHub use cases shared by the HTTP facade and the workers
//! (SPEC §7): the transform and load jobs as [`JobHandler`]s, and the
//! transform step itself, which the HTTP dry run calls too. The job
//! machinery (`etl-jobs`) runs these handlers without knowing any entity
//! type; this crate links no AMQP client.

use std::collections::{BTreeMap, HashMap};

use etl_domain::json_text::push_array;
use etl_domain::transform::{self, IntegrationSettings, Row, Source, Table, TransformError};
use etl_domain::{
    IntegrationId, JobErrorCode, JobPayload, JobType, RawRecordId, TenantId, TransformerKind,
};
use etl_handlers::{Handlers, JobFailure, JobHandler};
use etl_store::jobs::Job;
use etl_store::loaders::{self, JobLoad, LoadCounts, Touched};
use etl_store::raw_records::{self, RawRecord, RawRecordOutline};
use etl_store::{derive, integrations, JsonText, PgConnection, QueryError, QueryResult};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// One record a transform refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    pub raw_data_id: i32,
    #[serde(flatten)]
    pub error: TransformError,
}

/// The rows one raw record gave (none, one, or many in several tables).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRows {
    pub raw_data_id: i32,
    pub rows: Vec<Row>,
}

/// Rows and refusals of one transform.
#[derive(Debug, Clone, Default)]
pub struct Transformed {
    pub records: Vec<RecordRows>,
    pub errors: Vec<RecordError>,
}

impl Transformed {
    /// A dry run's answer: the rows of the entity type's own table (those
    /// `POST /load` takes), and the refusals.
    pub fn preview(&self, kind: TransformerKind) -> Preview<'_> {
        let table = kind.entity().table();
        Preview {
            records: self
                .records
                .iter()
                .flat_map(|r| &r.rows)
                .filter(|row| row.table == table)
                .filter_map(|row| serde_json::from_str::<&RawValue>(&row.text).ok())
                .collect(),
            errors: &self.errors,
        }
    }
}

/// `{records, errors}` of a dry run.
#[derive(Debug, Serialize)]
pub struct Preview<'a> {
    pub records: Vec<&'a RawValue>,
    pub errors: &'a [RecordError],
}

/// The settings of the integrations `records` came through (the tenant's
/// only).
fn settings_for(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    records: &[RawRecord],
) -> Result<HashMap<i32, IntegrationSettings>, QueryError> {
    let mut integration_ids: Vec<i32> = records.iter().map(|r| r.integration_id).collect();
    integration_ids.sort_unstable();
    integration_ids.dedup();
    let integration_ids: Vec<IntegrationId> = integration_ids
        .into_iter()
        .map(IntegrationId::new)
        .collect();
    Ok(
        integrations::find_many_for_tenant(conn, tenant_id, &integration_ids)?
            .into_iter()
            .map(|i| (i.id, IntegrationSettings::from_settings(&i.settings)))
            .collect(),
    )
}

/// One record's rows, or why it cannot be transformed.
fn transform_one(
    kind: TransformerKind,
    settings: &HashMap<i32, IntegrationSettings>,
    record: &RawRecord,
) -> Result<RecordRows, RecordError> {
    let unset = IntegrationSettings::default();
    let source = Source {
        raw_data: record.raw_data.as_str(),
        extraction_metadata: record.extraction_metadata.as_ref().map(JsonText::as_str),
        integration_id: record.integration_id,
        raw_data_id: Some(record.id),
        settings: settings.get(&record.integration_id).unwrap_or(&unset),
    };
    match kind.entity().transform(&source) {
        Ok(rows) => Ok(RecordRows {
            raw_data_id: record.id,
            rows,
        }),
        Err(error) => Err(RecordError {
            raw_data_id: record.id,
            error,
        }),
    }
}

/// Transforms records (all of the kind's entity type). Reads the
/// integrations' settings; writes nothing.
pub fn transform_records(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    kind: TransformerKind,
    records: &[RawRecord],
) -> Result<Transformed, QueryError> {
    let settings = settings_for(conn, tenant_id, records)?;
    let mut out = Transformed::default();
    for record in records {
        match transform_one(kind, &settings, record) {
            Ok(rows) => out.records.push(rows),
            Err(error) => out.errors.push(error),
        }
    }
    Ok(out)
}

/// Most bytes of transformed rows a transform job holds before it loads
/// them (a record with a long history gives many times its size in rows).
pub const LOAD_BATCH_BYTES: usize = 512 * 1024;

/// Most stored document bytes a transform holds at once (documents of up
/// to `ETL_MAX_BODY_BYTES` each are read a chunk at a time).
pub const TRANSFORM_CHUNK_BYTES: usize = 2 * 1024 * 1024;

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

fn is_transient(error: &QueryError) -> bool {
    etl_store::Fault::known(error) == Some(etl_store::Fault::Transient)
}

/// What loads did, per table and in all.
#[derive(Debug, Clone, Default)]
struct Loaded {
    by_table: BTreeMap<&'static str, LoadCounts>,
    touched: Touched,
}

impl Loaded {
    fn add(&mut self, table: &'static Table, load: JobLoad) {
        *self.by_table.entry(table.name).or_default() += load.counts;
        self.touched.extend(load.touched);
    }

    fn extend(&mut self, other: Loaded) {
        for (table, counts) in other.by_table {
            *self.by_table.entry(table).or_default() += counts;
        }
        self.touched.extend(other.touched);
    }
}

/// Loads the rows of `records` into their tables, one statement per table
/// (in the registry's order, so that jobs take row locks table by table
/// alike).
fn load_records(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    records: &[&RecordRows],
) -> QueryResult<Loaded> {
    let mut loaded = Loaded::default();
    for table in transform::TABLES {
        let texts: Vec<&str> = records
            .iter()
            .flat_map(|r| &r.rows)
            .filter(|row| row.table == *table)
            .map(|row| row.text.as_str())
            .collect();
        if texts.is_empty() {
            continue;
        }
        let mut array = String::with_capacity(texts.iter().map(|t| t.len() + 1).sum::<usize>() + 2);
        push_array(&mut array, texts);
        let load = loaders::load_rows(conn, table, tenant_id, &JsonText(array))?;
        loaded.add(table, load);
    }
    Ok(loaded)
}

/// Loads the rows of `records`, all of a record's rows or none: a record
/// whose rows a table refuses (for reasons no check sees ahead) fails
/// alone, found by loading halves in savepoints rolled back. Answers what
/// loaded and the records refused.
fn load_each_whole(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    records: &[RecordRows],
) -> Result<(Loaded, Vec<RecordError>), JobFailure> {
    use etl_store::Connection as _;
    let all: Vec<&RecordRows> = records.iter().collect();
    let fast = conn.transaction(|conn| load_records(conn, tenant_id, &all));
    let error = match fast {
        Ok(loaded) => return Ok((loaded, Vec::new())),
        Err(error) if is_transient(&error) => return Err(database(error)),
        Err(error) => error,
    };
    let refused = refused_alone(conn, records.len(), |conn, range| {
        let part: Vec<&RecordRows> = records[range].iter().collect();
        load_records(conn, tenant_id, &part).map(|_| ())
    })?;
    if refused.is_empty() {
        return Err(load_error(error));
    }
    tracing::warn!(refused = refused.len(), %error, "transform: records whose rows a final table refuses fail alone");
    let kept: Vec<&RecordRows> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused.contains(i))
        .map(|(_, r)| r)
        .collect();
    let loaded = load_records(conn, tenant_id, &kept).map_err(load_error)?;
    let errors = refused
        .into_iter()
        .map(|i| RecordError {
            raw_data_id: records[i].raw_data_id,
            error: TransformError::invalid(
                "raw_data",
                "a final table refused this record's rows (a value or constraint it does not take)",
            ),
        })
        .collect();
    Ok((loaded, errors))
}

/// `transform` jobs: read the job's raw records (the tenant's only), mark
/// them processing, transform each (a refused one becomes `failed` with
/// `{code, message, field}`), load every record's rows into their tables
/// and complete the records, then recompute what the rows feed: all in the
/// job's transaction, so a record's rows in every table commit together
/// with its status (SPEC §8).
#[derive(Debug, Clone, Copy, Default)]
pub struct TransformHandler;

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
        let table = kind.entity().table();
        let mut loaded = Loaded::default();
        let (mut transformed, mut failed, mut rowless) = (0, 0, 0);
        // Documents are read a bounded number of bytes at a time, and their
        // rows loaded whenever they pass LOAD_BATCH_BYTES.
        let mut flush = |conn: &mut PgConnection, part: &mut Transformed| {
            let (part_loaded, refused) = load_each_whole(conn, job.tenant(), &part.records)?;
            loaded.extend(part_loaded);
            for refusal in part.errors.iter().chain(&refused) {
                let details = serde_json::to_value(&refusal.error).unwrap_or(Value::Null);
                raw_records::mark_failed(conn, RawRecordId::new(refusal.raw_data_id), &details)
                    .map_err(database)?;
            }
            failed += part.errors.len() + refused.len();
            let done: Vec<&RecordRows> = part
                .records
                .iter()
                .filter(|r| !refused.iter().any(|e| e.raw_data_id == r.raw_data_id))
                .collect();
            transformed += done.len();
            rowless += done
                .iter()
                .filter(|r| !r.rows.iter().any(|row| row.table == table))
                .count();
            let done: Vec<RawRecordId> = done
                .iter()
                .map(|r| RawRecordId::new(r.raw_data_id))
                .collect();
            raw_records::complete(conn, job.tenant(), &done).map_err(database)?;
            *part = Transformed::default();
            Ok::<_, JobFailure>(())
        };
        for chunk in raw_records::chunk_by_size(&records, TRANSFORM_CHUNK_BYTES) {
            let documents =
                raw_records::find_many_for_tenant(conn, job.tenant(), &chunk).map_err(database)?;
            let settings = settings_for(conn, job.tenant(), &documents).map_err(database)?;
            let mut part = Transformed::default();
            let mut bytes = 0;
            for document in &documents {
                match transform_one(kind, &settings, document) {
                    Ok(rows) => {
                        bytes += rows.rows.iter().map(|r| r.text.len()).sum::<usize>();
                        part.records.push(rows);
                    }
                    Err(error) => part.errors.push(error),
                }
                if bytes >= LOAD_BATCH_BYTES {
                    flush(conn, &mut part)?;
                    bytes = 0;
                }
            }
            flush(conn, &mut part)?;
        }
        derive::recompute(conn, job.tenant(), &loaded.touched).map_err(|e| {
            if is_transient(&e) {
                database(e)
            } else {
                load_error(e)
            }
        })?;
        let own = loaded.by_table.get(table.name).copied().unwrap_or_default();
        Ok(json!({
            "records": ids.len(),
            "found": records.len(),
            "transformed": transformed,
            "failed": failed,
            "inserted": own.inserted,
            "updated": own.updated,
            "unchanged": own.unchanged + rowless,
            "duplicates": own.duplicates,
            "tables": loaded.by_table,
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

/// `load` jobs (`POST /load`: rows transformed elsewhere): upsert the rows
/// into the entity type's table and mark their raw records completed, in
/// one statement of the job's transaction; then recompute what they feed.
pub struct LoadHandler;

impl JobHandler for LoadHandler {
    fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Value, JobFailure> {
        use etl_store::Connection as _;
        let table = kind_of(job)?.entity().table();
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
            Err(error) if is_transient(&error) => return Err(database(error)),
            Err(error) => {
                let rows = loaders::job_rows(conn, job.job_id()).map_err(database)?;
                let mut refused = refused_rows(table, &rows);
                if refused.is_empty() {
                    // Nothing we can see ahead (a trigger, say): the rows
                    // the table refuses on their own are found by trying
                    // halves, each in a savepoint rolled back.
                    let count = rows.len();
                    let alone = refused_alone(conn, count, |conn, range| {
                        let skip = positions_outside(count, &range);
                        loaders::load_job_rows(conn, table, job.tenant(), job.job_id(), &skip)
                            .map(|_| ())
                    })?;
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
        derive::recompute(conn, job.tenant(), &loaded.touched).map_err(|e| {
            if is_transient(&e) {
                database(e)
            } else {
                load_error(e)
            }
        })?;
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

/// The 1-based positions of `0..count` outside `range` (the rows a trial
/// load skips).
fn positions_outside(count: usize, range: &std::ops::Range<usize>) -> Vec<i64> {
    (0..count)
        .filter(|i| !range.contains(i))
        .filter_map(|i| i64::try_from(i + 1).ok())
        .collect()
}

/// The positions among `0..count` of the items that do not load on
/// their own (`loads` fails for a range holding them), the others loading
/// together. Each trial runs in a savepoint that is rolled back: a few
/// statements for a few bad items. A transient fault ends the search (the
/// job is retried).
fn refused_alone(
    conn: &mut PgConnection,
    count: usize,
    mut loads: impl FnMut(&mut PgConnection, std::ops::Range<usize>) -> QueryResult<()>,
) -> Result<Vec<usize>, JobFailure> {
    use etl_store::Connection as _;
    let mut trial = |conn: &mut PgConnection, range: std::ops::Range<usize>| {
        let mut loaded = false;
        let tried = conn.transaction::<(), QueryError, _>(|conn| {
            loads(conn, range)?;
            loaded = true;
            Err(QueryError::RollbackTransaction)
        });
        match tried {
            Err(error) if is_transient(&error) => Err(database(error)),
            _ => Ok(loaded),
        }
    };
    let mut refused = Vec::new();
    // Ranges still to try (a stack: the first half is tried first).
    let mut ranges = Vec::new();
    ranges.push(0..count);
    while let Some(range) = ranges.pop() {
        if range.is_empty() || trial(conn, range.clone())? {
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

/// The rows of a load job that its table would refuse: not of its shape,
/// or a value longer than its column.
fn refused_rows(table: &'static Table, rows: &[JsonText]) -> Vec<RefusedRow> {
    rows.iter()
        .enumerate()
        .filter_map(|(index, row)| {
            let error = match (table.check)(row.as_str()) {
                Ok(checked) => {
                    let over = checked.oversized?;
                    // A row from a raw record names the source's field; one
                    // sent by `POST /load`, its column.
                    let field = if checked.raw_data_id.is_some() {
                        over.source
                    } else {
                        over.column
                    };
                    over.error(field)
                }
                Err(error) => error,
            };
            Some(RefusedRow {
                index,
                raw_data_id: raw_data_id_of(row),
                error,
            })
        })
        .collect()
}

/// The handlers of a process that runs the pipeline.
pub fn handlers() -> Handlers {
    Handlers::default()
        .with(JobType::Transform, TransformHandler)
        .with(JobType::Load, LoadHandler)
}
