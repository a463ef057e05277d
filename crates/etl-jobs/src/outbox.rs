//! From a job row to its message (SPEC §6 bodies).

use etl_domain::{EntityType, JobMessage, JobPayload, JobPriority, JobType};
use etl_queue::OutgoingMessage;
use etl_store::jobs::OutboxJob;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The message of a job row, or why the row cannot make one.
///
/// A load job's rows (about 1 MB) go into its body as the text PostgreSQL
/// sent, checked to be an array of objects but not parsed into values:
/// the body is byte for byte what encoding the equivalent [`JobMessage`]
/// would give, up to whitespace inside the rows.
pub fn message_for(job: OutboxJob) -> Result<OutgoingMessage, String> {
    let entity_type =
        EntityType::parse(job.entity_type.clone()).map_err(|e| format!("entity_type {e}"))?;
    let priority = JobPriority::new(i64::from(job.priority.unwrap_or(5)))
        .map_err(|e| format!("priority {e}"))?;
    let job_type: JobType = job
        .job_type
        .parse()
        .map_err(|_| format!("unknown job_type `{}`", job.job_type))?;
    if job_type == JobType::Load {
        let body = load_body(&job, &entity_type, priority)?;
        return Ok(OutgoingMessage {
            job_id: job.id,
            job_type,
            priority,
            body,
        });
    }
    let payload = JobPayload::parse(job_type, &job.payload).map_err(|e| format!("payload: {e}"))?;
    let message = match payload {
        JobPayload::Extract {
            integration_id,
            payload,
        } => JobMessage::Extract {
            job_id: job.id,
            tenant_id: job.tenant_id,
            entity_type,
            integration_id,
            payload,
            priority,
            created_at: job.created_at,
        },
        JobPayload::Transform { raw_data_ids } => JobMessage::Transform {
            job_id: job.id,
            tenant_id: job.tenant_id,
            entity_type,
            raw_data_ids,
            priority,
        },
        JobPayload::Load { .. } => unreachable!("load messages are spliced above"),
    };
    OutgoingMessage::encode(&message).map_err(|e| e.to_string())
}

/// `JobMessage::Load`'s body, field for field, with the stored rows
/// spliced in.
fn load_body(
    job: &OutboxJob,
    entity_type: &EntityType,
    priority: JobPriority,
) -> Result<Vec<u8>, String> {
    #[derive(Deserialize)]
    struct StoredPayload<'a> {
        #[serde(borrow)]
        transformed_data: Option<&'a RawValue>,
    }
    #[derive(Serialize)]
    struct LoadBody<'a> {
        job_type: JobType,
        job_id: i32,
        tenant_id: i32,
        entity_type: &'a EntityType,
        transformed_data: &'a RawValue,
        priority: JobPriority,
    }
    let stored: StoredPayload<'_> =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let rows = stored
        .transformed_data
        .ok_or("payload.transformed_data: missing field")?;
    // Only the shape is checked (each row is itself left unparsed).
    let each: Vec<&RawValue> =
        serde_json::from_str(rows.get()).map_err(|e| format!("payload.transformed_data: {e}"))?;
    if let Some(i) = each.iter().position(|row| !row.get().starts_with('{')) {
        return Err(format!("payload.transformed_data[{i}]: expected an object"));
    }
    serde_json::to_vec(&LoadBody {
        job_type: JobType::Load,
        job_id: job.id,
        tenant_id: job.tenant_id,
        entity_type,
        transformed_data: rows,
        priority,
    })
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::{json, Value};

    use super::*;

    fn job(job_type: &str, payload: &str) -> OutboxJob {
        OutboxJob {
            id: 7,
            tenant_id: 3,
            job_type: job_type.to_owned(),
            entity_type: "jira_issues".to_owned(),
            priority: Some(2),
            created_at: NaiveDate::from_ymd_opt(2026, 1, 2)
                .and_then(|d| d.and_hms_opt(3, 4, 5))
                .expect("valid"),
            payload: payload.to_owned(),
        }
    }

    #[test]
    fn a_load_body_decodes_as_the_equivalent_job_message() {
        // As PostgreSQL prints jsonb: spaces after separators.
        let stored = r#"{"transformed_data": [{"external_id": "1", "summary": "Ünïcode ✓ \"q\""}, {"external_id": "2", "labels": ["a"]}]}"#;
        let message = message_for(job("load", stored)).expect("message");
        assert_eq!(message.job_id, 7);
        assert_eq!(message.job_type, JobType::Load);
        assert_eq!(message.priority.get(), 2);
        let decoded: JobMessage = serde_json::from_slice(&message.body).expect("a JobMessage");
        let rows: Value = serde_json::from_str(stored).expect("json");
        let expected = JobMessage::Load {
            job_id: 7,
            tenant_id: 3,
            entity_type: EntityType::parse("jira_issues").expect("valid"),
            transformed_data: serde_json::from_value(rows["transformed_data"].clone())
                .expect("objects"),
            priority: JobPriority::new(2).expect("valid"),
        };
        assert_eq!(decoded, expected);
        // The same JSON document as encoding the message itself, and the
        // same field order (job_type first).
        let ours: Value = serde_json::from_slice(&message.body).expect("json");
        let theirs = serde_json::to_value(&expected).expect("json");
        assert_eq!(ours, theirs);
        let body = String::from_utf8(message.body).expect("utf-8");
        let encoded = serde_json::to_string(&expected).expect("json");
        let order = |json: &str| -> Vec<usize> {
            [
                "job_type",
                "job_id",
                "tenant_id",
                "entity_type",
                "transformed_data",
                "priority",
            ]
            .iter()
            .map(|key| json.find(&format!("\"{key}\":")).expect("key"))
            .collect()
        };
        assert!(order(&body).windows(2).all(|w| w[0] < w[1]), "{body}");
        assert!(order(&encoded).windows(2).all(|w| w[0] < w[1]), "{encoded}");
    }

    #[test]
    fn load_payloads_without_an_array_of_objects_are_refused() {
        for (payload, why) in [
            ("{}", "payload.transformed_data: missing field"),
            (
                r#"{"transformed_data": {"a": 1}}"#,
                "payload.transformed_data: invalid type",
            ),
            (
                r#"{"transformed_data": [{"a": 1}, 2]}"#,
                "payload.transformed_data[1]: expected an object",
            ),
            (
                r#"{"transformed_data": [null]}"#,
                "payload.transformed_data[0]: expected an object",
            ),
        ] {
            let error = message_for(job("load", payload)).expect_err(payload);
            assert!(error.starts_with(why), "{payload}: {error}");
        }
    }

    #[test]
    fn transform_and_extract_bodies_are_encoded_job_messages() {
        let transform =
            message_for(job("transform", r#"{"raw_data_ids": [1, 2]}"#)).expect("message");
        let decoded: Value = serde_json::from_slice(&transform.body).expect("json");
        assert_eq!(
            decoded,
            json!({"job_type": "transform", "job_id": 7, "tenant_id": 3,
                   "entity_type": "jira_issues", "raw_data_ids": [1, 2], "priority": 2})
        );
        let extract = message_for(job(
            "extract",
            r#"{"integration_id": 4, "payload": {"jql": "project = X"}}"#,
        ))
        .expect("message");
        let decoded: Value = serde_json::from_slice(&extract.body).expect("json");
        assert_eq!(decoded["integration_id"], 4);
        assert_eq!(decoded["payload"], json!({"jql": "project = X"}));
        assert_eq!(decoded["created_at"], "2026-01-02T03:04:05");
        assert!(message_for(job("transform", r#"{"raw_data_ids": "x"}"#)).is_err());
        assert!(message_for(job("unknown", "{}")).is_err());
    }
}
