//! Transformers (SPEC §7): pure functions from a raw source object to a
//! final-table row. A record that cannot be transformed gets a
//! [`TransformError`] naming the field; it fails alone.
//!
//! They map on stable keys, never on display names: Jira sites name statuses
//! and issue types in their own language, so the category comes from
//! `statusCategory.key`.

mod adf;
pub mod github;
pub mod github_children;
pub mod jira;
pub mod jira_history;
pub mod links;
mod rows;
pub mod tables;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use github_children::{
    PullRequestCommitRow, PullRequestReviewRow, PULL_REQUEST_COMMITS, PULL_REQUEST_REVIEWS,
};
pub use jira_history::{
    WorkItemChangeRow, WorkItemHistoryRow, WorkItemStatusRow, WORK_ITEM_CHANGES,
    WORK_ITEM_HISTORIES, WORK_ITEM_STATUSES,
};
pub use rows::{Oversized, PrState, PullRequestRow, WorkItemRow, PULL_REQUESTS, WORK_ITEMS};
pub use tables::{CheckedRow, Feeds, FinalRow, Row, Table};

/// Every entity type the service transforms, each registered once. The
/// rest of the service finds an entity type here by name
/// ([`crate::TransformerKind`]) and never matches on names.
pub static ENTITIES: &[&dyn Entity] = &[
    &jira::JiraIssues,
    &jira_history::JiraIssueChangelogs,
    &jira_history::JiraStatuses,
    &github::GithubPrs,
    &github_children::GithubPrCommits,
    &github_children::GithubPrReviews,
];

/// Every final table a registered entity type loads.
pub static TABLES: &[&Table] = &[
    &WORK_ITEMS,
    &WORK_ITEM_CHANGES,
    &WORK_ITEM_HISTORIES,
    &WORK_ITEM_STATUSES,
    &PULL_REQUESTS,
    &PULL_REQUEST_COMMITS,
    &PULL_REQUEST_REVIEWS,
];

/// One entity type: how a raw record of it becomes rows of the final
/// tables. A record may give no row, one, or many in several tables; they
/// load together or not at all.
pub trait Entity: Send + Sync + 'static {
    /// Its `entity_type`.
    fn name(&self) -> &'static str;
    /// The table whose rows `POST /load` takes for this entity type and a
    /// dry run shows.
    fn table(&self) -> &'static Table;
    /// The rows of one raw record, or why it cannot be transformed.
    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError>;
}

/// What a transformer reads: one raw record and its integration's
/// settings.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The stored `raw_data` text.
    pub raw_data: &'a str,
    /// The stored `extraction_metadata` text, if any (where a child record
    /// names its parent).
    pub extraction_metadata: Option<&'a str>,
    pub integration_id: i32,
    /// The raw record's id, which every row carries.
    pub raw_data_id: Option<i32>,
    pub settings: &'a IntegrationSettings,
}

/// What transformers read from an integration's `settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationSettings {
    pub custom_fields: jira::CustomFieldMappings,
    pub issue_key_pattern: links::IssueKeyPattern,
}

impl IntegrationSettings {
    /// Reads an integration's `settings`: malformed custom field mappings
    /// map nothing; an invalid issue-key pattern fails the integration's
    /// pull requests (`bad_integration_setting`).
    pub fn from_settings(settings: &Value) -> Self {
        Self {
            custom_fields: jira::CustomFieldMappings::from_settings(settings),
            issue_key_pattern: links::IssueKeyPattern::from_settings(settings),
        }
    }
}

/// Why one record could not be transformed; stored in the raw row's
/// `error_details` as `{code, message, field}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct TransformError {
    /// `missing_field`, `wrong_type`, `invalid_value` or
    /// `bad_integration_setting`.
    pub code: String,
    /// A sentence that names the field (`fields.summary is required`): it
    /// is read alone, on the dashboard's failure samples say.
    pub message: String,
    /// Path of the offending field in the raw object, e.g. `fields.summary`.
    pub field: String,
}

impl TransformError {
    pub fn missing(field: &str) -> Self {
        Self {
            code: "missing_field".to_owned(),
            message: format!("{field} is required"),
            field: field.to_owned(),
        }
    }

    pub fn wrong_type(field: &str, expected: &str) -> Self {
        Self {
            code: "wrong_type".to_owned(),
            message: format!("{field} must be {expected}"),
            field: field.to_owned(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_value".to_owned(),
            message: format!("{field}: {}", message.into()),
            field: field.to_owned(),
        }
    }
}

/// Reads paths of a raw object, turning type mismatches into errors that
/// name the path.
pub(crate) struct Raw<'a> {
    root: &'a Value,
}

impl<'a> Raw<'a> {
    pub fn new(root: &'a Value) -> Result<Self, TransformError> {
        if root.is_object() {
            Ok(Self { root })
        } else {
            Err(TransformError::wrong_type("raw_data", "an object"))
        }
    }

    /// The value at a dotted path; `None` when absent or null.
    pub fn get(&self, path: &str) -> Option<&'a Value> {
        let mut value = self.root;
        for part in path.split('.') {
            value = value.get(part)?;
        }
        (!value.is_null()).then_some(value)
    }

    pub fn string(&self, path: &str) -> Result<Option<String>, TransformError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(TransformError::wrong_type(path, "a string")),
        }
    }

    pub fn required_string(&self, path: &str) -> Result<String, TransformError> {
        self.string(path)?
            .ok_or_else(|| TransformError::missing(path))
    }

    /// An id that sources send as a string or a number.
    pub fn id(&self, path: &str) -> Result<String, TransformError> {
        match self.get(path) {
            None => Err(TransformError::missing(path)),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            Some(_) => Err(TransformError::wrong_type(
                path,
                "a non-empty string or an integer",
            )),
        }
    }

    /// An id that may be absent: a string or an integer, as text.
    pub fn optional_id(&self, path: &str) -> Result<Option<String>, TransformError> {
        match self.get(path) {
            None => Ok(None),
            Some(_) => self.id(path).map(Some),
        }
    }

    pub fn bool(&self, path: &str) -> Result<Option<bool>, TransformError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(TransformError::wrong_type(path, "true or false")),
        }
    }

    pub fn int(&self, path: &str) -> Result<Option<i32>, TransformError> {
        match self.get(path) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| TransformError::wrong_type(path, "an integer")),
        }
    }

    /// A timestamp in Jira's (`…000+0000`) or RFC 3339 form.
    pub fn time(&self, path: &str) -> Result<Option<DateTime<Utc>>, TransformError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(text)) => parse_time(text).map(Some).ok_or_else(|| {
                TransformError::invalid(path, format!("`{text}` is not a timestamp"))
            }),
            Some(_) => Err(TransformError::wrong_type(path, "a timestamp string")),
        }
    }
}

/// Parses `2024-01-15T10:00:00.000+0000` (Jira), RFC 3339
/// (`2024-01-15T10:00:00Z`, GitHub) and a bare date (`2024-01-15`, as UTC
/// midnight).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(time) = DateTime::<FixedOffset>::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(naive.and_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Any JSON value, biased towards the shapes transformers look into.
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("id".to_owned()),
            Just("key".to_owned()),
            Just("fields".to_owned()),
            Just("summary".to_owned()),
            Just("state".to_owned()),
            Just("merged_at".to_owned()),
            Just("labels".to_owned()),
            Just("description".to_owned()),
            Just("updated".to_owned()),
            Just("customfield_10016".to_owned()),
            Just("base".to_owned()),
            Just("repo".to_owned()),
            "[a-z_]{1,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::String),
            Just(json!("2024-01-15T10:00:00.000+0000")),
            Just(json!("open")),
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn transformers_never_panic_on_arbitrary_json(raw in arbitrary_json()) {
            let mappings = jira::CustomFieldMappings { story_points: Some("customfield_10016".to_owned()) };
            let _ = jira::transform(&raw, 1, &mappings);
            let _ = github::transform(&raw, 1);
            let _ = jira::transform(&json!({"id": "1", "fields": raw.clone()}), 1, &mappings);
            let _ = github::transform(&json!({"id": 1, "state": "open", "base": raw}), 1);
        }
    }

    #[test]
    fn jira_and_rfc3339_timestamps_parse_to_the_same_instant() {
        let jira = parse_time("2024-01-15T10:00:00.000+0000").expect("jira form");
        let rfc = parse_time("2024-01-15T10:00:00Z").expect("rfc 3339");
        assert_eq!(jira, rfc);
        let offset = parse_time("2024-01-15T18:00:00.000+0800").expect("offset");
        assert_eq!(offset, rfc);
        let nz = parse_time("2011-12-14T16:35:00.000+1300").expect("+1300");
        assert_eq!(nz.to_rfc3339(), "2011-12-14T03:35:00+00:00");
        assert_eq!(
            parse_time("2011-12-14").map(|t| t.to_rfc3339()).as_deref(),
            Some("2011-12-14T00:00:00+00:00")
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }
}

#[cfg(test)]
mod error_tests {
    use super::TransformError;

    #[test]
    fn every_message_names_its_field() {
        assert_eq!(
            TransformError::missing("fields.summary").message,
            "fields.summary is required"
        );
        assert_eq!(
            TransformError::wrong_type("fields.labels", "an array").message,
            "fields.labels must be an array"
        );
        assert_eq!(
            TransformError::invalid("fields.created", "`x` is not a timestamp").message,
            "fields.created: `x` is not a timestamp"
        );
    }
}
