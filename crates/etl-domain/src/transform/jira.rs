//! Jira issue (REST v2 or v3, Cloud or Server) → `work_items` row.

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::jira_history::history_rows;
use super::rows::WORK_ITEMS;
use super::tables::{Row, Table};
use super::{adf, Entity, Raw, Source, TransformError, WorkItemRow};
use crate::json_text::RawObject;
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

/// A number, or a string holding one (custom fields arrive both ways), read
/// from its exact text with a correctly rounding parser.
fn number(value: &RawValue, field: &str) -> Result<Option<f64>, TransformError> {
    let text = value.get();
    let (digits, quoted) = match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(inner) => (inner, true),
            Err(_) => return Err(TransformError::wrong_type(field, "a number")),
        },
        Some(b'-' | b'0'..=b'9') => (text.to_owned(), false),
        Some(b'n') => return Ok(None),
        _ => return Err(TransformError::wrong_type(field, "a number")),
    };
    let digits = digits.trim();
    if quoted && digits.is_empty() {
        return Ok(None);
    }
    match digits.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(Some(n)),
        Ok(_) => Err(TransformError::invalid(
            field,
            format!("`{digits}` is out of range"),
        )),
        Err(_) => Err(TransformError::invalid(
            field,
            format!("`{digits}` is not a number"),
        )),
    }
}

/// An issue read from its stored text in one pass: every field as a tree
/// but the custom ones, which keep their exact text (their numbers may hold
/// more digits than a float).
struct IssueText<'a> {
    doc: Value,
    custom: Vec<(String, &'a RawValue)>,
}

/// The top-level object: `fields` through [`FieldsSeed`], the rest as trees.
struct IssueVisitor;

impl<'de> Visitor<'de> for IssueVisitor {
    type Value = IssueText<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut doc = JsonObject::new();
        let mut custom = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "fields" {
                let (fields, raw) = map.next_value_seed(FieldsSeed)?;
                doc.insert(key, fields);
                custom = raw;
            } else {
                doc.insert(key, map.next_value()?);
            }
        }
        Ok(IssueText {
            doc: Value::Object(doc),
            custom,
        })
    }
}

/// `fields`: the `customfield_*` values kept as text, the others as trees.
/// Anything but an object reads as null (the transform then names
/// `fields` as missing).
struct FieldsSeed;

impl<'de> DeserializeSeed<'de> for FieldsSeed {
    type Value = (Value, Vec<(String, &'de RawValue)>);

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed {
    type Value = (Value, Vec<(String, &'de RawValue)>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut plain = JsonObject::new();
        let mut raw: Vec<(String, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.starts_with("customfield_") {
                let value: &'de RawValue = map.next_value()?;
                raw.retain(|(k, _)| *k != key);
                raw.push((key, value));
            } else {
                plain.insert(key, map.next_value()?);
            }
        }
        Ok((Value::Object(plain), raw))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok((Value::Null, Vec::new()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }
}

/// One pass over the text: no value is parsed twice.
fn parse_issue(text: &str) -> Result<IssueText<'_>, TransformError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut deserializer, IssueVisitor)
        .map_err(|_| TransformError::wrong_type("raw_data", "an object"))
}

/// `jira_issues`: an issue → its `work_items` row and, when it came with
/// its changelog (`expand=changelog`), a `work_item_changes` row per item
/// (and a `work_item_histories` row per history without items).
pub struct JiraIssues;

impl Entity for JiraIssues {
    fn name(&self) -> &'static str {
        "jira_issues"
    }

    fn table(&self) -> &'static Table {
        &WORK_ITEMS
    }

    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError> {
        let issue = parse_issue(source.raw_data)?;
        let mut item = build(
            &issue.doc,
            issue.custom,
            source.integration_id,
            &source.settings.custom_fields,
        )?;
        item.raw_data_id = source.raw_data_id;
        let mut rows = vec![Row::of(&item)?];
        if let Some(histories) = issue.doc.pointer("/changelog/histories") {
            let Value::Array(histories) = histories else {
                return Err(TransformError::wrong_type("changelog.histories", "a list"));
            };
            for (i, history) in histories.iter().enumerate() {
                let path = format!("changelog.histories[{i}]");
                history_rows(history, &path, &item.external_id, source, &mut rows)?;
            }
        }
        Ok(rows)
    }
}

/// The embedded changelog's `total` (how many histories the issue has),
/// or as many as it holds when it says none; `None` without a changelog.
fn changelog_total(raw: &Raw<'_>) -> Result<Option<i32>, TransformError> {
    let Some(changelog) = raw.get("changelog") else {
        return Ok(None);
    };
    if !changelog.is_object() {
        return Err(TransformError::wrong_type("changelog", "an object"));
    }
    let held = match raw.get("changelog.histories") {
        None => 0,
        Some(Value::Array(histories)) => histories.len(),
        Some(_) => return Err(TransformError::wrong_type("changelog.histories", "a list")),
    };
    let total = raw.int("changelog.total")?;
    let held = i32::try_from(held)
        .map_err(|_| TransformError::invalid("changelog.histories", "holds too many histories"))?;
    Ok(Some(total.unwrap_or(held).max(held)))
}

/// Transforms an issue from its stored JSON text (the worker's way in):
/// custom fields keep every digit.
pub fn transform_text(
    text: &str,
    integration_id: i32,
    mappings: &CustomFieldMappings,
) -> Result<WorkItemRow, TransformError> {
    let issue = parse_issue(text)?;
    build(&issue.doc, issue.custom, integration_id, mappings)
}

/// Transforms an issue already parsed into a tree.
pub fn transform(
    raw_data: &Value,
    integration_id: i32,
    mappings: &CustomFieldMappings,
) -> Result<WorkItemRow, TransformError> {
    let custom: Vec<(String, Box<RawValue>)> = raw_data
        .get("fields")
        .and_then(Value::as_object)
        .map(|fields| {
            fields
                .iter()
                .filter(|(k, _)| k.starts_with("customfield_"))
                .filter_map(|(k, v)| Some((k.clone(), serde_json::value::to_raw_value(v).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let custom = custom.iter().map(|(k, v)| (k.clone(), &**v)).collect();
    build(raw_data, custom, integration_id, mappings)
}

fn build(
    raw_data: &Value,
    mut custom: Vec<(String, &RawValue)>,
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
    custom.retain(|(_, v)| v.get() != "null");
    custom.sort_by(|a, b| a.0.cmp(&b.0));
    let story_points = match &mappings.story_points {
        Some(field) => match custom.iter().find(|(k, _)| k == field) {
            Some((_, value)) => number(value, &format!("fields.{field}"))?,
            None => None,
        },
        None => None,
    };
    let custom_fields = RawObject::from_entries(custom.iter().map(|(k, v)| (k.as_str(), *v)))
        .map_err(|e| TransformError::invalid("fields", e))?;
    let row = WorkItemRow {
        integration_id,
        external_id,
        key: raw.string("key")?,
        project_key: raw.string("fields.project.key")?,
        summary,
        description,
        issue_type: raw.string("fields.issuetype.name")?,
        status: raw.string("fields.status.name")?,
        status_category: raw.string("fields.status.statusCategory.key")?,
        status_id: raw.optional_id("fields.status.id")?,
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
        changelog_total: changelog_total(&raw)?,
        raw_data_id: None,
    };
    // A value its column cannot hold fails this record, not the load.
    if let Some(over) = row.oversized() {
        return Err(over.error(over.source));
    }
    Ok(row)
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
            row.custom_fields.get(),
            r#"{"customfield_10014":"SHOP-0","customfield_10016":5.0}"#,
            "every non-null custom field"
        );
    }

    #[test]
    fn from_text_custom_fields_and_story_points_keep_every_digit() {
        let text = r#"{"id": "7", "fields": {"summary": "s",
            "customfield_10016": 90.28571428571429,
            "customfield_2": 12345678901234567890123,
            "customfield_3": {"v": 1e-320}, "customfield_4": null}}"#;
        let row = transform_text(text, 1, &points()).expect("valid");
        assert_eq!(
            row.custom_fields.get(),
            r#"{"customfield_10016":90.28571428571429,"customfield_2":12345678901234567890123,"customfield_3":{"v": 1e-320}}"#
        );
        assert_eq!(row.story_points, Some(90.285_714_285_714_29));
        assert_eq!(
            transform_text("[1]", 1, &points())
                .expect_err("array")
                .field,
            "raw_data"
        );
    }

    #[test]
    fn values_the_table_cannot_hold_fail_the_record_naming_the_field() {
        let mut raw = issue();
        raw["id"] = json!("9".repeat(256));
        let err = transform(&raw, 1, &points()).expect_err("too long");
        assert_eq!(
            (err.code.as_str(), err.field.as_str()),
            ("value_too_long", "id")
        );
        let mut raw = issue();
        raw["fields"]["customfield_10016"] = json!("1e400");
        let err = transform(&raw, 1, &points()).expect_err("out of range");
        assert_eq!(err.field, "fields.customfield_10016");
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
