//! OpenAPI schemas of the validated newtypes and enums (feature `openapi`).
//! Written by hand because their serde goes through `try_from`, which the
//! derive cannot see; the values come from the same constants the parsers
//! use, so the document cannot drift from the code.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::requests::StoreRawDataRequest;
use crate::status::{JobStatus, JobType, ProcessingStatus, ReportedJobStatus};
use crate::values::{
    BatchSize, EntityType, ExternalId, IdempotencyKey, JobPriority, PageLimit, RawDataIds,
    TransformerKind,
};
use crate::RecordBatch;

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
}

fn one_of(description: &str, values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    string(description).enum_values(Some(values)).into()
}

fn integer(description: &str, min: i64, max: i64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .description(Some(description))
        .minimum(Some(min))
        .maximum(Some(max))
        .into()
}

macro_rules! schema {
    ($type:ty => $body:expr) => {
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                $body
            }
        }
        impl ToSchema for $type {}
    };
}

schema!(EntityType => string("Kind of record: 1–50 characters of [a-z0-9_]")
    .min_length(Some(1))
    .max_length(Some(EntityType::MAX_LEN))
    .pattern(Some("^[a-z0-9_]+$"))
    .into());
schema!(ExternalId => string("The record's id in its source system; no U+0000")
    .max_length(Some(ExternalId::MAX_LEN))
    .pattern(Some("^[^\\x00]*$"))
    .into());
schema!(IdempotencyKey => string(
    "1–255 visible ASCII characters (an HTTP header value); a repeat by the same tenant \
     returns the first answer and stores nothing new"
)
    .min_length(Some(1))
    .max_length(Some(IdempotencyKey::MAX_LEN))
    .pattern(Some("^[!-~]([ -~]*[!-~])?$"))
    .into());
schema!(TransformerKind => one_of(
    "An entity type that has a transformer",
    TransformerKind::names(),
));
schema!(ProcessingStatus => one_of(
    "Where a raw record is in its processing",
    ProcessingStatus::ALL.iter().map(|s| s.as_str()),
));
schema!(JobStatus => one_of("A job's status", JobStatus::ALL.iter().map(|s| s.as_str())));
schema!(JobType => one_of("What a job does", JobType::ALL.iter().map(|s| s.as_str())));
schema!(ReportedJobStatus => one_of(
    "A status an external worker may report",
    ReportedJobStatus::ALL.iter().map(|s| s.as_str()),
));
schema!(JobPriority => integer(
    "1 (most urgent) to 10; default 5",
    JobPriority::MIN.into(),
    JobPriority::MAX.into(),
));
schema!(PageLimit => integer("Rows per page; default 100", PageLimit::MIN, PageLimit::MAX));
schema!(BatchSize => integer("Records per job; default 100", BatchSize::MIN, BatchSize::MAX));
schema!(RawDataIds => ArrayBuilder::new()
    .items(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)))
    .min_items(Some(1))
    .max_items(Some(RawDataIds::MAX))
    .description(Some("Raw record ids, 1–1000"))
    .into());
schema!(RecordBatch => ArrayBuilder::new()
    .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(StoreRawDataRequest::name())))
    .min_items(Some(1))
    .max_items(Some(RecordBatch::MAX))
    .description(Some("1–1000 records, stored all or nothing"))
    .into());
