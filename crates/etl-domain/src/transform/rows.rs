//! Rows of the final tables as transformers produce them and load jobs
//! carry them (`transformed_data`). Timestamps are UTC instants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// The raw record it came from, when it came from one.
    #[serde(default)]
    pub raw_data_id: Option<i32>,
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
    pub raw_data_id: Option<i32>,
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
fn first_oversized(
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
        ])
    }
}
