//! Rows of the final tables as transformers produce them and load jobs
//! carry them (`transformed_data`). Timestamps are UTC instants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::tables::{check_row, field_names, Feeds, FinalRow, Table};
use super::TransformError;
use crate::json_text::RawObject;

/// A row of `work_items` (from a Jira issue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItemRow {
    /// The integration the record came through.
    pub integration_id: i32,
    /// The Jira issue id.
    pub external_id: String,
    pub key: Option<String>,
    pub project_key: Option<String>,
    pub summary: String,
    pub description: Option<String>,
    pub issue_type: Option<String>,
    pub status: Option<String>,
    /// `new`, `indeterminate` or `done` (statusCategory.key).
    pub status_category: Option<String>,
    /// `fields.status.id`: the status, whatever the site calls it.
    pub status_id: Option<String>,
    pub priority: Option<String>,
    /// accountId (Cloud) or name (Server); null when unassigned.
    pub assignee: Option<String>,
    pub assignee_name: Option<String>,
    pub reporter: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub parent_key: Option<String>,
    pub source_created_at: Option<DateTime<Utc>>,
    pub source_updated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub story_points: Option<f64>,
    /// Every non-null `customfield_*` of the issue.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: RawObject,
    /// The embedded changelog's `total` (null when the issue came without
    /// one): the changelog is complete once that many histories are known.
    pub changelog_total: Option<i32>,
    /// The raw record it came from, when it came from one.
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `work_items` (SPEC §7, §7.1).
pub static WORK_ITEMS: Table = Table {
    name: "work_items",
    key: &["integration_id", "external_id"],
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
        ("status_id", "text"),
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
        ("changelog_total", "int4"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[("labels", "'{}'::text[]"), ("custom_fields", "'{}'::jsonb")],
    version: Some("source_updated_at"),
    derived: &[
        ("first_in_progress_at", "timestamptz"),
        ("changelog_complete", "bool"),
        ("lead_time_s", "int8"),
        ("cycle_time_s", "int8"),
    ],
    feeds: Feeds {
        work_item: Some("external_id"),
        status: Some("status_id"),
        work_item_key: Some("key"),
        ..Feeds::NOTHING
    },
    check: check_row::<WorkItemRow>,
    fields: field_names::<WorkItemRow>,
};

impl FinalRow for WorkItemRow {
    const TABLE: &'static Table = &WORK_ITEMS;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        WorkItemRow::oversized(self)
    }
}

/// `open`, `closed` or `merged` (merged when `merged_at` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    Open,
    Closed,
    Merged,
}

impl PrState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Merged => "merged",
        }
    }
}

/// A row of `pull_requests` (from a GitHub pull request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestRow {
    pub integration_id: i32,
    /// The GitHub pull request id.
    pub external_id: String,
    /// `owner/name` of the base repository.
    pub repository: Option<String>,
    pub number: Option<i32>,
    pub title: Option<String>,
    pub state: PrState,
    /// Null when the source predates drafts.
    pub draft: Option<bool>,
    pub author: Option<String>,
    pub base_ref: Option<String>,
    pub head_ref: Option<String>,
    pub head_sha: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub source_created_at: Option<DateTime<Utc>>,
    pub source_updated_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged_at: Option<DateTime<Utc>>,
    /// Counts are null when the source omits them (list responses do).
    pub additions: Option<i32>,
    pub deletions: Option<i32>,
    pub changed_files: Option<i32>,
    pub commits: Option<i32>,
    pub comments: Option<i32>,
    pub review_comments: Option<i32>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    /// The work-item keys the transform found (SPEC §7.3), each once with
    /// where it was found first; a row without them (as `POST /load` may
    /// send) leaves the pull request's links as they are.
    #[serde(default)]
    pub work_item_keys: Option<Vec<super::links::FoundKey>>,
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `pull_requests` (SPEC §7, §7.2).
pub static PULL_REQUESTS: Table = Table {
    name: "pull_requests",
    key: &["integration_id", "external_id"],
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
        ("body", "text"),
        ("html_url", "text"),
        ("merge_commit_sha", "text"),
        ("work_item_keys", "jsonb"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[("labels", "'{}'::text[]")],
    version: Some("source_updated_at"),
    derived: &[
        ("first_commit_at", "timestamptz"),
        ("first_review_at", "timestamptz"),
        ("approved_at", "timestamptz"),
        ("coding_time_s", "int8"),
        ("pickup_time_s", "int8"),
        ("review_time_s", "int8"),
    ],
    feeds: Feeds {
        pull_request: Some(("repository", "number")),
        links: true,
        ..Feeds::NOTHING
    },
    check: check_row::<PullRequestRow>,
    fields: field_names::<PullRequestRow>,
};

impl FinalRow for PullRequestRow {
    const TABLE: &'static Table = &PULL_REQUESTS;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        PullRequestRow::oversized(self)
    }
}

/// A value longer than its final-table column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// The column (`external_id`), as `POST /load` rows name it.
    pub column: &'static str,
    /// Where the value comes from in the source record (`id`).
    pub source: &'static str,
    pub max: usize,
    pub actual: usize,
}

impl Oversized {
    /// `value_too_long`, naming `field`.
    pub fn error(&self, field: &str) -> TransformError {
        TransformError {
            code: "value_too_long".to_owned(),
            message: format!(
                "is {} characters long; {} holds at most {}",
                self.actual, self.column, self.max
            ),
            field: field.to_owned(),
        }
    }
}

/// The first of `(column, source, limit, value)` whose value is too long.
pub(crate) fn first_oversized(
    checks: &[(&'static str, &'static str, usize, Option<&str>)],
) -> Option<Oversized> {
    checks.iter().find_map(|&(column, source, max, value)| {
        let actual = value?.chars().count();
        (actual > max).then_some(Oversized {
            column,
            source,
            max,
            actual,
        })
    })
}

impl WorkItemRow {
    /// The first value `work_items` cannot hold (its `varchar` limits).
    pub fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            ("external_id", "id", 255, Some(&self.external_id)),
            ("key", "key", 255, self.key.as_deref()),
            (
                "project_key",
                "fields.project.key",
                255,
                self.project_key.as_deref(),
            ),
            (
                "status_category",
                "fields.status.statusCategory.key",
                50,
                self.status_category.as_deref(),
            ),
            (
                "status_id",
                "fields.status.id",
                255,
                self.status_id.as_deref(),
            ),
            (
                "parent_key",
                "fields.parent.key",
                255,
                self.parent_key.as_deref(),
            ),
        ])
    }
}

impl PullRequestRow {
    /// The first value `pull_requests` cannot hold (its `varchar` limits).
    pub fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            ("external_id", "id", 255, Some(&self.external_id)),
            (
                "repository",
                "base.repo.full_name",
                255,
                self.repository.as_deref(),
            ),
            ("head_sha", "head.sha", 64, self.head_sha.as_deref()),
            (
                "merge_commit_sha",
                "merge_commit_sha",
                64,
                self.merge_commit_sha.as_deref(),
            ),
        ])
    }
}
