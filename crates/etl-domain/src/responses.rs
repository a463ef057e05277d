//! Response bodies of the HTTP API (SPEC §5), with the seed's field names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::json_text::{IngestChange, RawObject};
use crate::status::ProcessingStatus;

// Every timestamp the API answers is a `DateTime<Utc>`: RFC 3339 with `Z`
// (SPEC §5), as OpenAPI's `date-time` requires.

/// `201` of `POST /raw-data/store`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreRawDataResponse {
    pub status: String,
    pub record_id: i32,
    pub message: String,
}

impl StoreRawDataResponse {
    pub fn new(record_id: i32) -> Self {
        Self {
            status: "success".to_owned(),
            record_id,
            message: "Raw data stored successfully".to_owned(),
        }
    }
}

/// `201` of `POST /raw-data/store-batch`: ids in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreBatchResponse {
    pub status: String,
    pub record_ids: Vec<i32>,
    pub count: usize,
}

impl StoreBatchResponse {
    pub fn new(record_ids: Vec<i32>) -> Self {
        Self {
            status: "success".to_owned(),
            count: record_ids.len(),
            record_ids,
        }
    }
}

/// One raw record as listed by `GET /raw-data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawDataResponse {
    pub id: i32,
    pub entity_type: String,
    pub external_id: Option<String>,
    /// The stored text, every digit as sent.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw_data: RawObject,
    pub processing_status: ProcessingStatus,
    pub created_at: DateTime<Utc>,
}

/// One raw record as read by `GET /raw-data/{id}`: the fields of
/// [`RawDataResponse`] and every detail. (Not `#[serde(flatten)]`: a
/// flattened struct cannot hold JSON as text.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawDataDetail {
    pub id: i32,
    pub entity_type: String,
    pub external_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw_data: RawObject,
    pub processing_status: ProcessingStatus,
    pub created_at: DateTime<Utc>,
    pub integration_id: i32,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub extraction_metadata: Option<RawObject>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error_details: Option<serde_json::Value>,
    pub processed_at: Option<DateTime<Utc>>,
    /// What was changed on the way in (U+0000 removed); empty when nothing.
    pub ingest_changes: Vec<IngestChange>,
}

/// A row of `work_items` as `GET /work-items` and `GET /work-items/{id}`
/// answer it: every column but `tenant_id` (SPEC §7, §7.1). Answered from
/// the database's own JSON (custom fields keep every digit); this type
/// describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItem {
    pub id: i32,
    pub integration_id: i32,
    pub external_id: String,
    pub key: Option<String>,
    pub project_key: Option<String>,
    pub summary: String,
    pub description: Option<String>,
    pub issue_type: Option<String>,
    pub status: Option<String>,
    pub status_category: Option<String>,
    pub status_id: Option<String>,
    pub priority: Option<String>,
    pub assignee: Option<String>,
    pub assignee_name: Option<String>,
    pub reporter: Option<String>,
    pub labels: Vec<String>,
    pub parent_key: Option<String>,
    pub source_created_at: Option<DateTime<Utc>>,
    pub source_updated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub story_points: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: RawObject,
    /// The embedded changelog's `total`; null when the issue came without
    /// its changelog.
    pub changelog_total: Option<i32>,
    /// `resolved_at − source_created_at`, whole seconds rounded down; null
    /// until resolved.
    pub lead_time_s: Option<i64>,
    /// The earliest change of `status` into a status of category
    /// `indeterminate`.
    pub first_in_progress_at: Option<DateTime<Utc>>,
    /// `resolved_at − first_in_progress_at`, whole seconds rounded down;
    /// null unless both are set and it is not negative.
    pub cycle_time_s: Option<i64>,
    /// False while the embedded changelog holds fewer histories than its
    /// `total` and the missing ones have not arrived.
    pub changelog_complete: bool,
    pub raw_data_id: Option<i32>,
    pub loaded_at: DateTime<Utc>,
}

/// `200` of `GET /work-items/{id}`: the work item and its `status`
/// changes, oldest first (at most [`WORK_ITEM_CHANGES_MAX`]; the rest are
/// pages of `GET /work-item-changes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItemDetail {
    #[serde(flatten)]
    pub work_item: WorkItem,
    pub changes: Vec<WorkItemChange>,
}

/// Most status changes one `GET /work-items/{id}` lists.
pub const WORK_ITEM_CHANGES_MAX: i64 = 1000;

/// One item of a Jira changelog history (`GET /work-item-changes`, and
/// each of a work item's `changes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItemChange {
    pub id: i64,
    /// The work item's `key`; null while its issue has not been loaded.
    pub work_item_key: Option<String>,
    pub changelog_id: String,
    /// The item's place in its history, from 0.
    pub item_index: i32,
    pub field: String,
    pub field_type: Option<String>,
    pub from_value: Option<String>,
    pub from_string: Option<String>,
    pub to_value: Option<String>,
    pub to_string: Option<String>,
    pub author: Option<String>,
    pub author_name: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
}

/// A row of `pull_requests` as `GET /pull-requests` and
/// `GET /pull-requests/{id}` answer it: every column but `tenant_id`
/// (SPEC §7, §7.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequest {
    pub id: i32,
    pub integration_id: i32,
    pub external_id: String,
    pub repository: Option<String>,
    pub number: Option<i32>,
    pub title: Option<String>,
    pub state: crate::transform::PrState,
    pub draft: Option<bool>,
    pub author: Option<String>,
    pub base_ref: Option<String>,
    pub head_ref: Option<String>,
    pub head_sha: Option<String>,
    pub labels: Vec<String>,
    pub source_created_at: Option<DateTime<Utc>>,
    pub source_updated_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged_at: Option<DateTime<Utc>>,
    pub additions: Option<i32>,
    pub deletions: Option<i32>,
    pub changed_files: Option<i32>,
    pub commits: Option<i32>,
    pub comments: Option<i32>,
    pub review_comments: Option<i32>,
    pub body: Option<String>,
    pub html_url: Option<String>,
    pub merge_commit_sha: Option<String>,
    /// The work-item keys found in the title, head ref and body (the links
    /// are `work_items` of `GET /pull-requests/{id}`); null for a row
    /// loaded without them.
    pub work_item_keys: Option<Vec<crate::transform::links::FoundKey>>,
    /// The earliest `authored_at` of its commits.
    pub first_commit_at: Option<DateTime<Utc>>,
    /// The earliest review by someone other than the author, not a bot.
    pub first_review_at: Option<DateTime<Utc>>,
    /// The earliest `APPROVED` review by someone other than the author.
    pub approved_at: Option<DateTime<Utc>>,
    /// `source_created_at − first_commit_at`, whole seconds rounded down;
    /// null when an end is missing or it is negative (as the two below).
    pub coding_time_s: Option<i64>,
    /// `first_review_at − source_created_at`.
    pub pickup_time_s: Option<i64>,
    /// `merged_at − first_review_at`.
    pub review_time_s: Option<i64>,
    pub raw_data_id: Option<i32>,
    pub loaded_at: DateTime<Utc>,
}

/// `200` of `GET /pull-requests/{id}`: the pull request, its commits and
/// reviews (oldest first, at most [`PULL_REQUEST_CHILDREN_MAX`] of each)
/// and its links to work items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestDetail {
    #[serde(flatten)]
    pub pull_request: PullRequest,
    pub commits: Vec<PullRequestCommit>,
    pub reviews: Vec<PullRequestReview>,
    pub work_items: Vec<PullRequestLink>,
}

/// Most commits, reviews and links one `GET /pull-requests/{id}` lists.
pub const PULL_REQUEST_CHILDREN_MAX: i64 = 1000;

/// A commit of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestCommit {
    pub id: i64,
    pub sha: String,
    pub author_login: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub authored_at: Option<DateTime<Utc>>,
    pub committed_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

/// A review of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestReview {
    pub id: i64,
    pub external_id: String,
    pub reviewer: Option<String>,
    pub state: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub body: Option<String>,
    pub commit_sha: Option<String>,
}

/// A link from a pull request to a work item (SPEC §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestLink {
    pub work_item_key: String,
    pub found_in: crate::transform::links::FoundIn,
    /// The tenant's work item of that key; null while none is known.
    pub work_item_id: Option<i32>,
}

/// `200` of `GET /flow-metrics` (SPEC §7.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowMetrics {
    pub work_items: WorkItemFlow,
    pub pull_requests: PullRequestFlow,
}

/// Work items resolved in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItemFlow {
    pub count: i64,
    pub lead_time_s: Percentiles,
    pub cycle_time_s: Percentiles,
}

/// Pull requests merged in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestFlow {
    pub count: i64,
    pub coding_time_s: Percentiles,
    pub pickup_time_s: Percentiles,
    pub review_time_s: Percentiles,
}

/// PostgreSQL's `percentile_cont` of a figure in seconds; null over no
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p85: Option<f64>,
    pub p95: Option<f64>,
}

/// `200` of the status routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusUpdatedResponse {
    pub status: String,
    pub message: String,
}

impl StatusUpdatedResponse {
    pub fn new(status: ProcessingStatus) -> Self {
        Self {
            status: "success".to_owned(),
            message: format!("Status updated to {status}"),
        }
    }
}

/// `202` of the routes that create a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobQueuedResponse {
    pub status: String,
    pub job_id: i32,
}

impl JobQueuedResponse {
    pub fn new(job_id: i32) -> Self {
        Self {
            status: "queued".to_owned(),
            job_id,
        }
    }
}

/// Result of a dry-run transform: what would be loaded, and what would fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRunResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub records: Vec<RawObject>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub errors: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn store_responses_keep_the_seed_wording() {
        assert_eq!(
            serde_json::to_value(StoreRawDataResponse::new(7)).expect("serialises"),
            json!({"status": "success", "record_id": 7, "message": "Raw data stored successfully"})
        );
        assert_eq!(
            serde_json::to_value(StoreBatchResponse::new(vec![3, 4])).expect("serialises"),
            json!({"status": "success", "record_ids": [3, 4], "count": 2})
        );
        assert_eq!(
            serde_json::to_value(StatusUpdatedResponse::new(ProcessingStatus::Skipped))
                .expect("serialises"),
            json!({"status": "success", "message": "Status updated to skipped"})
        );
        assert_eq!(
            serde_json::to_value(JobQueuedResponse::new(9)).expect("serialises"),
            json!({"status": "queued", "job_id": 9})
        );
    }

    #[test]
    fn detail_answers_text_and_utc_timestamps() {
        let created_at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let raw_data =
            RawObject::from_text(r#"{"k": 12345678901234567890123}"#.to_owned()).expect("object");
        let detail = RawDataDetail {
            id: 1,
            entity_type: "jira_issues".into(),
            external_id: None,
            raw_data,
            processing_status: ProcessingStatus::Pending,
            created_at,
            integration_id: 2,
            extraction_metadata: None,
            error_details: None,
            processed_at: None,
            ingest_changes: vec![IngestChange::removed_nul("raw_data.k".to_owned())],
        };
        assert_eq!(
            serde_json::to_string(&detail).expect("serialises"),
            concat!(
                r#"{"id":1,"entity_type":"jira_issues","external_id":null,"#,
                r#""raw_data":{"k": 12345678901234567890123},"processing_status":"pending","#,
                r#""created_at":"2023-11-14T22:13:20Z","integration_id":2,"#,
                r#""extraction_metadata":null,"error_details":null,"processed_at":null,"#,
                r#""ingest_changes":[{"field":"raw_data.k","change":"removed_nul"}]}"#
            )
        );
    }
}

/// A job as `GET /jobs` and `GET /jobs/{id}` show it: every column of its
/// row, and `result` (counts) once it has run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResponse {
    pub id: i32,
    pub tenant_id: i32,
    pub job_type: String,
    pub entity_type: String,
    /// As stored (every digit kept). In a list, a load job's rows are
    /// replaced by `transformed_rows` (their count), and a payload or
    /// `load_options` over 64 KiB shows as `{"truncated": true, "bytes": N}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: crate::json_text::RawObject,
    pub priority: Option<i32>,
    pub status: crate::status::JobStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error_details: Option<serde_json::Value>,
    pub retry_count: Option<i32>,
    pub max_retries: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// When the broker confirmed the job's message.
    pub queued_at: Option<DateTime<Utc>>,
    /// Last sign of life of the worker running it.
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    /// Counts of a finished job (`inserted`, `updated`, `unchanged`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
    /// The `x-request-id` of the request that created the job (null for a
    /// job the service made itself).
    pub request_id: Option<String>,
}

/// `202` of `POST /pipeline/process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobsQueuedResponse {
    pub status: String,
    pub job_ids: Vec<i32>,
    /// Raw records the jobs cover.
    pub records: usize,
}

impl JobsQueuedResponse {
    pub fn new(job_ids: Vec<i32>, records: usize) -> Self {
        Self {
            status: "queued".to_owned(),
            job_ids,
            records,
        }
    }
}

/// `GET /stats`: one tenant's figures, for the dashboard (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsResponse {
    /// Raw records: `{entity_type: {status: N}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw_records: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
    /// Jobs: `{job_type: {status: N}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub jobs: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
    pub outbox: OutboxStats,
    /// How long the tenant's jobs have been waiting and running.
    pub job_ages: JobAgeStats,
    /// The failed raw records grouped by `error_details.code`, largest first.
    pub failures: Vec<FailureStats>,
    /// Final-table rows loaded in each of the last 60 minutes, oldest first.
    pub loaded_per_minute: Vec<MinuteStats>,
}

/// Jobs waiting for the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxStats {
    /// Jobs in status `pending`, due or waiting out a backoff.
    pub pending: i64,
    /// Seconds since the oldest of them was scheduled (0 without one).
    pub oldest_pending_age_s: f64,
}

/// The tenant's oldest unfinished jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobAgeStats {
    /// Seconds since the oldest job not yet running (`pending` or
    /// `queued`) was created; null without one.
    pub oldest_waiting_s: Option<f64>,
    /// Seconds since the longest-running job (`running`) started; null
    /// without one.
    pub oldest_running_s: Option<f64>,
}

/// One group of failed raw records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureStats {
    pub entity_type: String,
    /// `error_details.code`; null for records failed without one.
    pub code: Option<String>,
    pub count: i64,
    /// One record's `error_details.message`.
    pub sample: Option<String>,
}

/// Rows of the final tables whose `loaded_at` falls in one minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteStats {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    pub rows: i64,
}
