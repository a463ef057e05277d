//! Jira issue (REST v2 or v3, Cloud or Server) → `work_items` row.

use serde_json::Value;

use super::{adf, Raw, TransformError, WorkItemRow};
use crate::values::JsonObject;

/// How an integration's custom fields map onto named columns:
/// `{"story_points": "customfield_10016", …}` from its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomFieldMappings {
    pub story_points: Option<String>,
}

impl CustomFieldMappings {
    /// Reads `settings.custom_field_mappings`; anything malformed maps
    /// nothing.
    pub fn from_settings(settings: &Value) -> Self {
        let mappings = settings.get("custom_field_mappings");
        Self {
            story_points: mappings
                .and_then(|m| m.get("story_points"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// A user's stable id: `accountId` (Cloud) or `name` (Server).
fn user_id(raw: &Raw<'_>, path: &str) -> Result<Option<String>, TransformError> {
    match raw.string(&format!("{path}.accountId"))? {
        Some(id) => Ok(Some(id)),
        None => raw.string(&format!("{path}.name")),
    }
}

/// A number, or a string holding one (custom fields arrive both ways).
fn number(value: &Value, field: &str) -> Result<Option<f64>, TransformError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| TransformError::invalid(field, format!("`{s}` is not a number"))),
        _ => Err(TransformError::wrong_type(field, "a number")),
    }
}

pub fn transform(
    raw_data: &Value,
    integration_id: i32,
    mappings: &CustomFieldMappings,
) -> Result<WorkItemRow, TransformError> {
    let raw = Raw::new(raw_data)?;
    if !raw.get("fields").is_some_and(Value::is_object) {
        return Err(TransformError::missing("fields"));
    }
    let external_id = raw.id("id")?;
    let summary = raw.required_string("fields.summary")?;
    let description = match raw.get("fields.description") {
        None => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(doc @ Value::Object(_)) => Some(adf::to_text(doc)),
        Some(_) => {
            return Err(TransformError::wrong_type(
                "fields.description",
                "a string or a document",
            ))
        }
    };
    let labels = match raw.get("fields.labels") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|l| l.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TransformError::wrong_type("fields.labels", "a list of strings"))?,
        Some(_) => {
            return Err(TransformError::wrong_type(
                "fields.labels",
                "a list of strings",
            ))
        }
    };
    let fields = raw.get("fields").and_then(Value::as_object);
    let custom_fields: JsonObject = fields
        .map(|f| {
            f.iter()
                .filter(|(k, v)| k.starts_with("customfield_") && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let story_points = match &mappings.story_points {
        Some(field) => match custom_fields.get(field) {
            Some(value) => number(value, &format!("fields.{field}"))?,
            None => None,
        },
        None => None,
    };
    Ok(WorkItemRow {
        integration_id,
        external_id,
        key: raw.string("key")?,
        project_key: raw.string("fields.project.key")?,
        summary,
        description,
        issue_type: raw.string("fields.issuetype.name")?,
        status: raw.string("fields.status.name")?,
        status_category: raw.string("fields.status.statusCategory.key")?,
        priority: raw.string("fields.priority.name")?,
        assignee: user_id(&raw, "fields.assignee")?,
        assignee_name: raw.string("fields.assignee.displayName")?,
        reporter: match user_id(&raw, "fields.reporter")? {
            Some(id) => Some(id),
            None => raw.string("fields.reporter.displayName")?,
        },
        labels,
        parent_key: raw.string("fields.parent.key")?,
        source_created_at: raw.time("fields.created")?,
        source_updated_at: raw.time("fields.updated")?,
        resolved_at: raw.time("fields.resolutiondate")?,
        story_points,
        custom_fields,
        raw_data_id: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issue() -> Value {
        json!({
            "id": "10001", "key": "SHOP-1",
            "fields": {
                "summary": "Checkout times out",
                "description": "Plain v2 text",
                "project": {"key": "SHOP"},
                "issuetype": {"name": "故事", "subtask": false},
                "status": {"name": "已完成", "statusCategory": {"key": "done"}},
                "priority": {"name": "High"},
                "assignee": {"accountId": "5b10", "displayName": "Dana"},
                "reporter": {"name": "quinn", "displayName": "Quinn"},
                "labels": ["checkout", "perf"],
                "created": "2024-01-15T10:00:00.000+0000",
                "updated": "2024-02-01T16:45:12.345+0100",
                "resolutiondate": null,
                "customfield_10016": 5.0,
                "customfield_10020": null,
                "customfield_10014": "SHOP-0"
            }
        })
    }

    fn points() -> CustomFieldMappings {
        CustomFieldMappings {
            story_points: Some("customfield_10016".to_owned()),
        }
    }

    #[test]
    fn a_v2_issue_maps_every_column() {
        let row = transform(&issue(), 7, &points()).expect("valid");
        assert_eq!(row.integration_id, 7);
        assert_eq!(row.external_id, "10001");
        assert_eq!(row.key.as_deref(), Some("SHOP-1"));
        assert_eq!(row.project_key.as_deref(), Some("SHOP"));
        assert_eq!(row.summary, "Checkout times out");
        assert_eq!(row.description.as_deref(), Some("Plain v2 text"));
        assert_eq!(row.issue_type.as_deref(), Some("故事"));
        assert_eq!(
            row.status_category.as_deref(),
            Some("done"),
            "from the key, not the name"
        );
        assert_eq!(row.assignee.as_deref(), Some("5b10"));
        assert_eq!(row.assignee_name.as_deref(), Some("Dana"));
        assert_eq!(
            row.reporter.as_deref(),
            Some("quinn"),
            "Server users are named"
        );
        assert_eq!(row.labels, ["checkout", "perf"]);
        assert_eq!(row.story_points, Some(5.0));
        assert_eq!(
            row.source_updated_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-02-01T15:45:12.345+00:00")
        );
        assert_eq!(row.resolved_at, None);
        assert_eq!(
            row.custom_fields.keys().collect::<Vec<_>>(),
            ["customfield_10014", "customfield_10016"],
            "every non-null custom field"
        );
    }

    #[test]
    fn a_v3_description_is_flattened_from_adf() {
        let mut raw = issue();
        raw["fields"]["description"] = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "Line one"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "Line two"}]}
        ]});
        let row = transform(&raw, 1, &points()).expect("valid");
        assert_eq!(row.description.as_deref(), Some("Line one\nLine two"));
    }

    #[test]
    fn an_unassigned_issue_has_null_assignee() {
        let mut raw = issue();
        raw["fields"]["assignee"] = Value::Null;
        let row = transform(&raw, 1, &points()).expect("valid");
        assert_eq!((row.assignee, row.assignee_name), (None, None));
    }

    #[test]
    fn sub_tasks_and_epic_children_carry_their_parent() {
        let mut raw = issue();
        raw["fields"]["issuetype"] = json!({"name": "子任务", "subtask": true});
        raw["fields"]["parent"] = json!({"id": "1", "key": "SHOP-0"});
        assert_eq!(
            transform(&raw, 1, &points())
                .expect("valid")
                .parent_key
                .as_deref(),
            Some("SHOP-0")
        );
    }

    #[test]
    fn story_points_arrive_as_numbers_or_numeric_strings_and_only_when_mapped() {
        let mut raw = issue();
        raw["fields"]["customfield_10016"] = json!("-1");
        assert_eq!(
            transform(&raw, 1, &points()).expect("valid").story_points,
            Some(-1.0)
        );
        raw["fields"]["customfield_10016"] = json!("2.5");
        assert_eq!(
            transform(&raw, 1, &points()).expect("valid").story_points,
            Some(2.5)
        );
        raw["fields"]["customfield_10016"] = Value::Null;
        assert_eq!(
            transform(&raw, 1, &points()).expect("valid").story_points,
            None
        );
        raw["fields"]["customfield_10016"] = json!(8);
        assert_eq!(
            transform(&raw, 1, &CustomFieldMappings::default())
                .expect("valid")
                .story_points,
            None
        );
        raw["fields"]["customfield_10016"] = json!("lots");
        let err = transform(&raw, 1, &points()).expect_err("not a number");
        assert_eq!(err.field, "fields.customfield_10016");
    }

    #[test]
    fn mappings_come_from_integration_settings() {
        let settings = json!({"custom_field_mappings": {"story_points": "customfield_10024"}});
        assert_eq!(
            CustomFieldMappings::from_settings(&settings)
                .story_points
                .as_deref(),
            Some("customfield_10024")
        );
        assert_eq!(
            CustomFieldMappings::from_settings(&json!({})),
            CustomFieldMappings::default()
        );
    }

    #[test]
    fn broken_issues_fail_naming_the_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!([1]), "raw_data", "wrong_type"),
            (json!({"id": "1"}), "fields", "missing_field"),
            (
                json!({"key": "A-1", "fields": {"summary": "s"}}),
                "id",
                "missing_field",
            ),
            (
                json!({"id": "1", "fields": {}}),
                "fields.summary",
                "missing_field",
            ),
            (
                json!({"id": "1", "fields": {"summary": 5}}),
                "fields.summary",
                "wrong_type",
            ),
            (
                json!({"id": "1", "fields": {"summary": "s", "updated": 1}}),
                "fields.updated",
                "wrong_type",
            ),
            (
                json!({"id": "1", "fields": {"summary": "s", "created": "soon"}}),
                "fields.created",
                "invalid_value",
            ),
            (
                json!({"id": "1", "fields": {"summary": "s", "labels": "a"}}),
                "fields.labels",
                "wrong_type",
            ),
        ];
        for (raw, field, code) in cases {
            let err = transform(&raw, 1, &points()).expect_err("broken");
            assert_eq!(
                (err.field.as_str(), err.code.as_str()),
                (field, code),
                "{raw}"
            );
        }
    }

    #[test]
    fn numeric_ids_become_strings() {
        let mut raw = issue();
        raw["id"] = json!(10001);
        assert_eq!(
            transform(&raw, 1, &points()).expect("valid").external_id,
            "10001"
        );
    }
}
