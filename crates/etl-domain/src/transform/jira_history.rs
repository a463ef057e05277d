//! Jira history (SPEC §7.1): changelog histories → `work_item_changes` (one
//! row per item, every item kept) and `work_item_histories` (a history
//! without items, known by no change); statuses → `work_item_statuses`. A history comes
//! embedded in its issue (`expand=changelog`) or alone from the changelog
//! endpoint (`jira_issue_changelogs`, its issue named by
//! `extraction_metadata.issue_id`): the same history either way is one set
//! of rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rows::first_oversized;
use super::tables::{check_row, field_names, Feeds, FinalRow, Row, Table};
use super::{Entity, Oversized, Raw, Source, TransformError};

/// A row of `work_item_changes`: one item of one history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItemChangeRow {
    pub integration_id: i32,
    /// The issue's `id`.
    pub work_item_external_id: String,
    /// The history's `id`.
    pub changelog_id: String,
    /// The item's place in the history's `items`, from 0.
    pub item_index: i32,
    pub field: String,
    pub field_type: Option<String>,
    pub from_value: Option<String>,
    pub from_string: Option<String>,
    pub to_value: Option<String>,
    pub to_string: Option<String>,
    /// accountId (Cloud) or name (Server); null when the history has no
    /// author.
    pub author: Option<String>,
    pub author_name: Option<String>,
    /// The history's `created`.
    pub changed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `work_item_changes` (SPEC §7.1).
pub static WORK_ITEM_CHANGES: Table = Table {
    name: "work_item_changes",
    key: &["integration_id", "changelog_id", "item_index"],
    columns: &[
        ("integration_id", "int4"),
        ("work_item_external_id", "text"),
        ("changelog_id", "text"),
        ("item_index", "int4"),
        ("field", "text"),
        ("field_type", "text"),
        ("from_value", "text"),
        ("from_string", "text"),
        ("to_value", "text"),
        ("to_string", "text"),
        ("author", "text"),
        ("author_name", "text"),
        ("changed_at", "timestamptz"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[],
    version: None,
    derived: &[],
    feeds: Feeds {
        work_item: Some("work_item_external_id"),
        ..Feeds::NOTHING
    },
    check: check_row::<WorkItemChangeRow>,
    fields: field_names::<WorkItemChangeRow>,
};

impl FinalRow for WorkItemChangeRow {
    const TABLE: &'static Table = &WORK_ITEM_CHANGES;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            (
                "work_item_external_id",
                "id",
                255,
                Some(&self.work_item_external_id),
            ),
            ("changelog_id", "id", 255, Some(&self.changelog_id)),
        ])
    }
}

/// A row of `work_item_histories`: a history seen without items (the
/// others are known by their changes), for how complete an issue's
/// changelog is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItemHistoryRow {
    pub integration_id: i32,
    pub work_item_external_id: String,
    pub changelog_id: String,
    pub changed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `work_item_histories`: the histories without items known per issue.
pub static WORK_ITEM_HISTORIES: Table = Table {
    name: "work_item_histories",
    key: &["integration_id", "changelog_id"],
    columns: &[
        ("integration_id", "int4"),
        ("work_item_external_id", "text"),
        ("changelog_id", "text"),
        ("changed_at", "timestamptz"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[],
    version: None,
    derived: &[],
    feeds: Feeds {
        work_item: Some("work_item_external_id"),
        ..Feeds::NOTHING
    },
    check: check_row::<WorkItemHistoryRow>,
    fields: field_names::<WorkItemHistoryRow>,
};

impl FinalRow for WorkItemHistoryRow {
    const TABLE: &'static Table = &WORK_ITEM_HISTORIES;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            (
                "work_item_external_id",
                "id",
                255,
                Some(&self.work_item_external_id),
            ),
            ("changelog_id", "id", 255, Some(&self.changelog_id)),
        ])
    }
}

/// A row of `work_item_statuses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItemStatusRow {
    pub integration_id: i32,
    /// The status's `id`.
    pub external_id: String,
    pub name: Option<String>,
    /// `statusCategory.key`: `new`, `indeterminate`, `done`, …
    pub category: Option<String>,
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `work_item_statuses` (SPEC §7.1).
pub static WORK_ITEM_STATUSES: Table = Table {
    name: "work_item_statuses",
    key: &["integration_id", "external_id"],
    columns: &[
        ("integration_id", "int4"),
        ("external_id", "text"),
        ("name", "text"),
        ("category", "text"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[],
    version: None,
    derived: &[],
    feeds: Feeds {
        status: Some("external_id"),
        ..Feeds::NOTHING
    },
    check: check_row::<WorkItemStatusRow>,
    fields: field_names::<WorkItemStatusRow>,
};

impl FinalRow for WorkItemStatusRow {
    const TABLE: &'static Table = &WORK_ITEM_STATUSES;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            ("external_id", "id", 255, Some(&self.external_id)),
            (
                "category",
                "statusCategory.key",
                50,
                self.category.as_deref(),
            ),
        ])
    }
}

/// A user's stable id (`accountId` on Cloud, `name` on Server) and display
/// name, at `path`.
pub(crate) fn user(
    raw: &Raw<'_>,
    path: &str,
) -> Result<(Option<String>, Option<String>), TransformError> {
    let id = match raw.string(&format!("{path}.accountId"))? {
        Some(id) => Some(id),
        None => raw.string(&format!("{path}.name"))?,
    };
    Ok((id, raw.string(&format!("{path}.displayName"))?))
}

/// A changelog value (`from`, `to`, …): text, or a number sent bare.
fn item_text(item: &Value, key: &str, path: &str) -> Result<Option<String>, TransformError> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(TransformError::wrong_type(
            &format!("{path}.{key}"),
            "a string",
        )),
    }
}

/// The rows of one history of issue `issue_id`; `path` is where the
/// history sits in the raw record (`changelog.histories[2]`, or empty for
/// a history stored alone), for the errors.
pub(crate) fn history_rows(
    history: &Value,
    path: &str,
    issue_id: &str,
    source: &Source<'_>,
    rows: &mut Vec<Row>,
) -> Result<(), TransformError> {
    let at = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let raw = Raw::new(history).map_err(|_| {
        TransformError::wrong_type(if path.is_empty() { "raw_data" } else { path }, "an object")
    })?;
    // Errors name the field where it sits in the raw record (every
    // message starts with its field).
    let prefixed = |e: TransformError| {
        let field = at(&e.field);
        TransformError {
            message: e.message.replacen(&e.field, &field, 1),
            field,
            ..e
        }
    };
    let changelog_id = raw.id("id").map_err(prefixed)?;
    let (author, author_name) = user(&raw, "author").map_err(prefixed)?;
    let changed_at = raw.time("created").map_err(prefixed)?;
    let history_row = WorkItemHistoryRow {
        integration_id: source.integration_id,
        work_item_external_id: issue_id.to_owned(),
        changelog_id: changelog_id.clone(),
        changed_at,
        raw_data_id: source.raw_data_id,
    };
    if let Some(over) = history_row.oversized() {
        return Err(over.error(&at(over.source)));
    }
    let items = match raw.get("items") {
        None => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(TransformError::wrong_type(&at("items"), "a list")),
    };
    // A history with items is known by its change rows; only one without
    // any needs a row of its own to count towards its issue's changelog.
    if items.is_empty() {
        rows.push(Row::of(&history_row)?);
    }
    for (index, item) in items.iter().enumerate() {
        let item_path = at(&format!("items[{index}]"));
        if !item.is_object() {
            return Err(TransformError::wrong_type(&item_path, "an object"));
        }
        let field = match item.get("field") {
            Some(Value::String(field)) => field.clone(),
            None | Some(Value::Null) => {
                return Err(TransformError::missing(&format!("{item_path}.field")))
            }
            Some(_) => {
                return Err(TransformError::wrong_type(
                    &format!("{item_path}.field"),
                    "a string",
                ))
            }
        };
        let item_index = i32::try_from(index)
            .map_err(|_| TransformError::invalid(&at("items"), "has too many items"))?;
        rows.push(Row::of(&WorkItemChangeRow {
            integration_id: source.integration_id,
            work_item_external_id: issue_id.to_owned(),
            changelog_id: changelog_id.clone(),
            item_index,
            field,
            field_type: item_text(item, "fieldtype", &item_path)?,
            from_value: item_text(item, "from", &item_path)?,
            from_string: item_text(item, "fromString", &item_path)?,
            to_value: item_text(item, "to", &item_path)?,
            to_string: item_text(item, "toString", &item_path)?,
            author: author.clone(),
            author_name: author_name.clone(),
            changed_at,
            raw_data_id: source.raw_data_id,
        })?);
    }
    Ok(())
}

/// `jira_issue_changelogs`: one history as the changelog endpoint lists
/// it; its issue is `extraction_metadata.issue_id`.
pub struct JiraIssueChangelogs;

impl Entity for JiraIssueChangelogs {
    fn name(&self) -> &'static str {
        "jira_issue_changelogs"
    }

    fn table(&self) -> &'static Table {
        &WORK_ITEM_CHANGES
    }

    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError> {
        const PARENT: &str = "extraction_metadata.issue_id";
        let metadata: Value = match source.extraction_metadata {
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => Value::Null,
        };
        let issue_id = match metadata.get("issue_id") {
            None | Some(Value::Null) => return Err(TransformError::missing(PARENT)),
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => {
                return Err(TransformError::wrong_type(
                    PARENT,
                    "a non-empty string or an integer",
                ))
            }
        };
        if issue_id.chars().count() > 255 {
            return Err(TransformError {
                code: "value_too_long".to_owned(),
                message: format!(
                    "is {} characters long; work_item_external_id holds at most 255",
                    issue_id.chars().count()
                ),
                field: PARENT.to_owned(),
            });
        }
        let history: Value = serde_json::from_str(source.raw_data)
            .map_err(|_| TransformError::wrong_type("raw_data", "an object"))?;
        let mut rows = Vec::new();
        history_rows(&history, "", &issue_id, source, &mut rows)?;
        Ok(rows)
    }
}

/// `jira_statuses`: one status as `GET /rest/api/2/status` lists them.
pub struct JiraStatuses;

impl Entity for JiraStatuses {
    fn name(&self) -> &'static str {
        "jira_statuses"
    }

    fn table(&self) -> &'static Table {
        &WORK_ITEM_STATUSES
    }

    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError> {
        let status: Value = serde_json::from_str(source.raw_data)
            .map_err(|_| TransformError::wrong_type("raw_data", "an object"))?;
        let raw = Raw::new(&status)?;
        let row = WorkItemStatusRow {
            integration_id: source.integration_id,
            external_id: raw.id("id")?,
            name: raw.string("name")?,
            category: raw.string("statusCategory.key")?,
            raw_data_id: source.raw_data_id,
        };
        if let Some(over) = row.oversized() {
            return Err(over.error(over.source));
        }
        Ok(vec![Row::of(&row)?])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::transform::IntegrationSettings;

    fn source<'a>(
        text: &'a str,
        metadata: Option<&'a str>,
        settings: &'a IntegrationSettings,
    ) -> Source<'a> {
        Source {
            raw_data: text,
            extraction_metadata: metadata,
            integration_id: 3,
            raw_data_id: Some(9),
            settings,
        }
    }

    fn changes(rows: &[Row]) -> Vec<WorkItemChangeRow> {
        rows.iter()
            .filter(|r| r.table == &WORK_ITEM_CHANGES)
            .map(|r| serde_json::from_str(&r.text).expect("a change row"))
            .collect()
    }

    fn history() -> Value {
        json!({
            "id": "10500",
            "author": {"accountId": "5b10", "displayName": "Dana"},
            "created": "2024-01-16T09:30:00.000+0100",
            "items": [
                {"field": "status", "fieldtype": "jira", "from": "10000", "fromString": "To Do", "to": "3", "toString": "In Progress"},
                {"field": "Labels", "fieldtype": "jira", "from": null, "fromString": "", "to": null, "toString": "a"},
                {"field": "Labels", "fieldtype": "jira", "from": null, "fromString": "a", "to": null, "toString": "a b"}
            ]
        })
    }

    #[test]
    fn a_standalone_history_gives_every_item() {
        let settings = IntegrationSettings::default();
        let text = history().to_string();
        let rows = JiraIssueChangelogs
            .transform(&source(&text, Some(r#"{"issue_id": 10001}"#), &settings))
            .expect("rows");
        assert_eq!(rows.len(), 3, "three items (the history is known by them)");
        let changes = changes(&rows);
        assert_eq!(
            changes.iter().map(|c| c.item_index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let first = &changes[0];
        assert_eq!(first.work_item_external_id, "10001");
        assert_eq!(first.changelog_id, "10500");
        assert_eq!(first.field, "status");
        assert_eq!(first.field_type.as_deref(), Some("jira"));
        assert_eq!(first.from_value.as_deref(), Some("10000"));
        assert_eq!(first.from_string.as_deref(), Some("To Do"));
        assert_eq!(first.to_value.as_deref(), Some("3"));
        assert_eq!(first.to_string.as_deref(), Some("In Progress"));
        assert_eq!(first.author.as_deref(), Some("5b10"));
        assert_eq!(first.author_name.as_deref(), Some("Dana"));
        assert_eq!(
            first.changed_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-01-16T08:30:00+00:00")
        );
        assert_eq!(first.raw_data_id, Some(9));
        assert_eq!(changes[1].field, changes[2].field, "both Labels items kept");
    }

    #[test]
    fn a_standalone_history_without_its_issue_fails_naming_the_metadata() {
        let settings = IntegrationSettings::default();
        let text = history().to_string();
        for metadata in [None, Some("{}"), Some(r#"{"issue_id": null}"#)] {
            let error = JiraIssueChangelogs
                .transform(&source(&text, metadata, &settings))
                .expect_err("no parent");
            assert_eq!(error.code, "missing_field");
            assert_eq!(error.field, "extraction_metadata.issue_id");
        }
        let error = JiraIssueChangelogs
            .transform(&source(&text, Some(r#"{"issue_id": [1]}"#), &settings))
            .expect_err("a list is no id");
        assert_eq!(error.code, "wrong_type");
    }

    #[test]
    fn a_history_without_items_or_author_still_counts_as_a_history() {
        let settings = IntegrationSettings::default();
        let text =
            json!({"id": 77, "created": "2024-01-16T09:30:00.000+0000", "items": []}).to_string();
        let rows = JiraIssueChangelogs
            .transform(&source(&text, Some(r#"{"issue_id": "1"}"#), &settings))
            .expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].table, &WORK_ITEM_HISTORIES);
        let text = json!({"id": "78", "items": [{"field": "x"}]}).to_string();
        let rows = JiraIssueChangelogs
            .transform(&source(&text, Some(r#"{"issue_id": "1"}"#), &settings))
            .expect("rows");
        let change = &changes(&rows)[0];
        assert_eq!(change.author, None);
        assert_eq!(change.changed_at, None);
    }

    #[test]
    fn a_bad_item_names_its_place() {
        let settings = IntegrationSettings::default();
        let text = json!({"id": "1", "items": [{"field": "a"}, {"fieldtype": "jira"}]}).to_string();
        let error = JiraIssueChangelogs
            .transform(&source(&text, Some(r#"{"issue_id": "1"}"#), &settings))
            .expect_err("no field");
        assert_eq!(error.field, "items[1].field");
        assert_eq!(error.code, "missing_field");
        let text = json!({"items": []}).to_string();
        let error = JiraIssueChangelogs
            .transform(&source(&text, Some(r#"{"issue_id": "1"}"#), &settings))
            .expect_err("no id");
        assert_eq!(error.field, "id");
    }

    #[test]
    fn a_status_gives_its_category() {
        let settings = IntegrationSettings::default();
        let text = json!({"id": "3", "name": "進行中", "statusCategory": {"id": 4, "key": "indeterminate"}})
            .to_string();
        let rows = JiraStatuses
            .transform(&source(&text, None, &settings))
            .expect("a row");
        let row: WorkItemStatusRow = serde_json::from_str(&rows[0].text).expect("status row");
        assert_eq!(row.external_id, "3");
        assert_eq!(row.name.as_deref(), Some("進行中"));
        assert_eq!(row.category.as_deref(), Some("indeterminate"));
        let error = JiraStatuses
            .transform(&source("{}", None, &settings))
            .expect_err("no id");
        assert_eq!(error.field, "id");
    }
}
