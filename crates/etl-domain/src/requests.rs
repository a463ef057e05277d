//! Request bodies of the HTTP API (SPEC §5), with the seed's field names.
//! Unknown fields are ignored, as the seed's pydantic models did.

use serde::{Deserialize, Serialize};

use crate::json_text::{CleanBody, IngestChange, JsonPath, RawObject, Segment};
use crate::status::{ProcessingStatus, ReportedJobStatus};
use crate::values::{
    check_count, BatchSize, EntityType, ErrorCodeName, ExternalId, JobPriority, RawDataIds,
    TransformerKind, ValueError,
};

/// `POST /raw-data/store`: one raw API response to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreRawDataRequest {
    /// One of the tenant's active integrations.
    pub integration_id: i32,
    pub entity_type: EntityType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<ExternalId>,
    /// The source's JSON object, stored unchanged (as text: every digit
    /// of every number is kept).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw_data: RawObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub extraction_metadata: Option<RawObject>,
    /// Where U+0000 was removed from `raw_data` and `extraction_metadata`
    /// (filled in by [`CleanBody::removed`], never read from the body).
    #[serde(skip)]
    pub ingest_changes: Vec<IngestChange>,
}

/// Free-form fields of a stored record, where U+0000 is removed.
fn is_raw_field(segment: Option<&Segment>) -> bool {
    matches!(segment, Some(Segment::Key(k)) if k == "raw_data" || k == "extraction_metadata")
}

impl CleanBody for StoreRawDataRequest {
    fn removed(&mut self, places: &[JsonPath]) {
        self.ingest_changes = places
            .iter()
            .filter(|p| is_raw_field(p.segments().first()))
            .map(|p| IngestChange::removed_nul(p.to_string()))
            .collect();
    }
}

impl CleanBody for StoreBatchRequest {
    fn identifier(path: &JsonPath) -> bool {
        match path.segments() {
            [Segment::Key(records), Segment::Index(_), rest @ ..] if records == "records" => {
                StoreRawDataRequest::identifier(&JsonPath(rest.to_vec()))
            }
            _ => false,
        }
    }

    /// `records[3].raw_data`.
    fn field_depth() -> usize {
        3
    }

    fn removed(&mut self, places: &[JsonPath]) {
        // One pass over the places, each to its record's bucket.
        let mut mine: Vec<Vec<JsonPath>> = vec![Vec::new(); self.records.0.len()];
        for place in places {
            if let [Segment::Key(r), Segment::Index(n), ..] = place.segments() {
                if r == "records" {
                    if let Some(bucket) = mine.get_mut(*n) {
                        bucket.push(place.skip(2));
                    }
                }
            }
        }
        for (record, places) in self.records.0.iter_mut().zip(mine) {
            record.removed(&places);
        }
    }
}

/// `POST /raw-data/store-batch`: `{"records": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreBatchRequest {
    pub records: RecordBatch,
}

/// 1–1000 records, stored all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "Vec<StoreRawDataRequest>",
    into = "Vec<StoreRawDataRequest>"
)]
pub struct RecordBatch(Vec<StoreRawDataRequest>);

impl RecordBatch {
    pub const MAX: usize = 1000;

    pub fn new(records: Vec<StoreRawDataRequest>) -> Result<Self, ValueError> {
        check_count(records.len(), 1, Self::MAX)?;
        Ok(Self(records))
    }

    pub fn records(&self) -> &[StoreRawDataRequest] {
        &self.0
    }

    pub fn into_records(self) -> Vec<StoreRawDataRequest> {
        self.0
    }
}

impl TryFrom<Vec<StoreRawDataRequest>> for RecordBatch {
    type Error = ValueError;
    fn try_from(value: Vec<StoreRawDataRequest>) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<RecordBatch> for Vec<StoreRawDataRequest> {
    fn from(value: RecordBatch) -> Self {
        value.0
    }
}

/// `PUT /raw-data/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateStatusRequest {
    pub status: ProcessingStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error_details: Option<serde_json::Value>,
}

/// `POST /transform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransformRequest {
    pub raw_data_ids: RawDataIds,
    pub entity_type: TransformerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_options: Option<TransformOptions>,
}

/// Options of a transform request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransformOptions {
    /// Transform now and answer with the result; store nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /load`: rows already in the final table's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoadRequest {
    pub entity_type: TransformerKind,
    /// Rows kept as their text, so every digit reaches the table.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>, min_items = 1))]
    pub transformed_data: Vec<RawObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub load_options: Option<RawObject>,
}

/// `POST /pipeline`: ask the extraction service to extract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ETLPipelineRequest {
    pub entity_type: TransformerKind,
    pub integration_id: i32,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: RawObject,
    #[serde(default)]
    pub priority: JobPriority,
}

/// `POST /pipeline/process`: queue transforms of every pending raw record of
/// one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineProcessRequest {
    pub entity_type: TransformerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<i32>,
    #[serde(default)]
    pub batch_size: BatchSize,
}

/// `POST /raw-data/replay`: the tenant's failed raw records of one type
/// (of one integration, of one error code, when given) back to pending and
/// queued for transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayRequest {
    pub entity_type: TransformerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<i32>,
    /// Only records whose `error_details.code` is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, min_length = 1, max_length = 100))]
    pub error_code: Option<ErrorCodeName>,
}

impl CleanBody for ReplayRequest {
    fn identifier(path: &JsonPath) -> bool {
        matches!(path.segments(), [Segment::Key(k)] if k == "entity_type" || k == "error_code")
    }
}

/// `PUT /jobs/{id}/status`, sent by an external worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateJobStatusRequest {
    pub status: ReportedJobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error_details: Option<serde_json::Value>,
}

impl CleanBody for UpdateStatusRequest {}

impl CleanBody for TransformRequest {}

impl CleanBody for LoadRequest {}

impl CleanBody for ETLPipelineRequest {}

impl CleanBody for PipelineProcessRequest {}

impl CleanBody for UpdateJobStatusRequest {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn store_request_needs_integration_entity_type_and_object_raw_data() {
        let ok: StoreRawDataRequest = parse(json!({
            "integration_id": 1, "entity_type": "jira_issues", "raw_data": {"id": "1"}
        }))
        .expect("valid");
        assert_eq!(ok.external_id, None);
        assert_eq!(ok.extraction_metadata, None);

        for missing in ["integration_id", "entity_type", "raw_data"] {
            let mut body = json!({"integration_id": 1, "entity_type": "x", "raw_data": {}});
            body.as_object_mut().map(|o| o.remove(missing));
            let err = parse::<StoreRawDataRequest>(body).expect_err("missing field");
            assert!(err.contains(missing), "{err}");
        }
    }

    #[test]
    fn store_request_rejects_wrong_types() {
        for body in [
            json!({"integration_id": "1", "entity_type": "x", "raw_data": {}}),
            json!({"integration_id": 1.5, "entity_type": "x", "raw_data": {}}),
            json!({"integration_id": 4_294_967_296_i64, "entity_type": "x", "raw_data": {}}),
            json!({"integration_id": 1, "entity_type": "X", "raw_data": {}}),
            json!({"integration_id": 1, "entity_type": "x", "raw_data": []}),
            json!({"integration_id": 1, "entity_type": "x", "raw_data": "{}"}),
            json!({"integration_id": 1, "entity_type": "x", "raw_data": {}, "external_id": 5}),
            json!({"integration_id": 1, "entity_type": "x", "raw_data": {}, "extraction_metadata": [1]}),
            json!({"integration_id": 1, "entity_type": "x", "raw_data": {}, "external_id": "e".repeat(256)}),
        ] {
            assert!(
                parse::<StoreRawDataRequest>(body.clone()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn store_request_accepts_null_optionals_and_ignores_unknown_fields() {
        let ok: StoreRawDataRequest = parse(json!({
            "integration_id": 1, "entity_type": "x", "raw_data": {},
            "external_id": null, "extraction_metadata": null, "surprise": true
        }))
        .expect("valid");
        assert_eq!(ok.external_id, None);
    }

    #[test]
    fn batch_holds_1_to_1000_records() {
        let record = json!({"integration_id": 1, "entity_type": "x", "raw_data": {}});
        assert!(parse::<StoreBatchRequest>(json!({"records": []})).is_err());
        assert!(parse::<StoreBatchRequest>(json!({"records": vec![record.clone(); 1000]})).is_ok());
        assert!(parse::<StoreBatchRequest>(json!({"records": vec![record; 1001]})).is_err());
        assert!(parse::<StoreBatchRequest>(json!({})).is_err());
    }

    #[test]
    fn status_update_accepts_only_known_statuses() {
        let ok: UpdateStatusRequest =
            parse(json!({"status": "failed", "error_details": {"why": "x"}})).expect("valid");
        assert_eq!(ok.status, ProcessingStatus::Failed);
        assert!(parse::<UpdateStatusRequest>(json!({"status": "done"})).is_err());
        assert!(parse::<UpdateStatusRequest>(json!({})).is_err());
    }

    #[test]
    fn transform_request_needs_ids_and_a_transformable_entity_type() {
        let ok: TransformRequest =
            parse(json!({"raw_data_ids": [1, 2], "entity_type": "github_prs"})).expect("valid");
        assert_eq!(ok.transform_options, None);
        let dry: TransformRequest = parse(json!({
            "raw_data_ids": [1], "entity_type": "jira_issues", "transform_options": {"dry_run": true}
        }))
        .expect("valid");
        assert_eq!(dry.transform_options.map(|o| o.dry_run), Some(true));
        assert!(parse::<TransformRequest>(
            json!({"raw_data_ids": [], "entity_type": "github_prs"})
        )
        .is_err());
        let err =
            parse::<TransformRequest>(json!({"raw_data_ids": [1], "entity_type": "confluence"}))
                .expect_err("no transformer");
        assert!(
            err.contains("jira_issues, jira_issue_changelogs, jira_statuses, github_prs"),
            "{err}"
        );
    }

    #[test]
    fn pipeline_request_defaults_priority_to_5_and_bounds_it() {
        let ok: ETLPipelineRequest = parse(json!({
            "entity_type": "jira_issues", "integration_id": 3, "payload": {"jql": "project = X"}
        }))
        .expect("valid");
        assert_eq!(ok.priority.get(), 5);
        for bad in [0, 11] {
            assert!(parse::<ETLPipelineRequest>(json!({
                "entity_type": "jira_issues", "integration_id": 3, "payload": {}, "priority": bad
            }))
            .is_err());
        }
    }

    #[test]
    fn pipeline_process_defaults_batch_size() {
        let ok: PipelineProcessRequest =
            parse(json!({"entity_type": "jira_issues"})).expect("valid");
        assert_eq!(ok.batch_size.get(), 100);
        assert_eq!(ok.integration_id, None);
        assert!(parse::<PipelineProcessRequest>(
            json!({"entity_type": "jira_issues", "batch_size": 0})
        )
        .is_err());
    }

    #[test]
    fn load_request_needs_objects() {
        assert!(parse::<LoadRequest>(
            json!({"entity_type": "github_prs", "transformed_data": [{}]})
        )
        .is_ok());
        assert!(parse::<LoadRequest>(
            json!({"entity_type": "github_prs", "transformed_data": [1]})
        )
        .is_err());
    }

    #[test]
    fn job_status_report_allows_running_completed_failed() {
        for ok in ["running", "completed", "failed"] {
            assert!(parse::<UpdateJobStatusRequest>(json!({"status": ok})).is_ok());
        }
        for bad in ["queued", "pending", "cancelled"] {
            assert!(parse::<UpdateJobStatusRequest>(json!({"status": bad})).is_err());
        }
    }
}
