//! The ETL service's domain: what clients send and receive, what travels on
//! the queue, and the rules that hold whatever the transport.
//!
//! This crate does no I/O and has no database, HTTP or AMQP library in its
//! dependency tree (`cargo xtask check` proves it), so other Rust services can
//! import it to speak the service's wire format.
//!
//! Values are parsed, not validated: every newtype here ([`EntityType`],
//! [`ExternalId`], [`JobPriority`], …) can only be built through a
//! constructor that checks it, and deserialising goes through that
//! constructor. A value that exists is valid.

pub mod auth;
pub mod json_text;
pub mod messages;
#[cfg(feature = "openapi")]
mod openapi;
pub mod requests;
pub mod responses;
pub mod status;
pub mod transform;
pub mod values;

/// `ETL_MAX_MESSAGE_BYTES`' default (SPEC §1): 8 MiB, half of RabbitMQ
/// 4's default `max_message_size`. No message the service publishes is
/// larger.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

pub use auth::Claims;
pub use json_text::{CleanBody, IngestChange, JsonPath, RawObject};
pub use messages::{JobMessage, JobPayload};
pub use requests::{
    ETLPipelineRequest, LoadRequest, PipelineProcessRequest, RecordBatch, ReplayRequest,
    StoreBatchRequest, StoreRawDataRequest, TransformOptions, TransformRequest,
    UpdateJobStatusRequest, UpdateStatusRequest,
};
pub use responses::{
    FailureStats, FlowMetrics, JobAgeStats, JobQueuedResponse, JobResponse, JobsQueuedResponse,
    MinuteStats, OutboxStats, Percentiles, PullRequest, PullRequestCommit, PullRequestDetail,
    PullRequestFlow, PullRequestLink, PullRequestReview, RawDataDetail, RawDataResponse,
    StatsResponse, StatusUpdatedResponse, StoreBatchResponse, StoreRawDataResponse, WorkItem,
    WorkItemChange, WorkItemDetail, WorkItemFlow, PULL_REQUEST_CHILDREN_MAX, WORK_ITEM_CHANGES_MAX,
};
pub use status::{
    JobErrorCode, JobStatus, JobType, ProcessingStatus, ReportedJobStatus, StatusChange,
};
pub use values::{
    BatchSize, EntityType, ErrorCodeName, ExternalId, IdempotencyKey, IntegrationId, JobId,
    JobPriority, JsonObject, PageLimit, RawDataIds, RawRecordId, TenantId, TransformerKind,
    ValueError,
};
