//! From a job row to its message (SPEC §6 bodies).

use etl_domain::{EntityType, JobMessage, JobPriority, JobType, JsonObject};
use etl_store::jobs::Job;
use serde_json::Value;

/// The message of a job row, or why the row cannot make one. Takes the row
/// by value: a load job's rows move into the message instead of being
/// copied.
pub fn message_for(mut job: Job) -> Result<JobMessage, String> {
    let entity_type =
        EntityType::parse(job.entity_type.clone()).map_err(|e| format!("entity_type {e}"))?;
    let priority = JobPriority::new(i64::from(job.priority.unwrap_or(5)))
        .map_err(|e| format!("priority {e}"))?;
    let job_type = job
        .job_type()
        .ok_or_else(|| format!("unknown job_type `{}`", job.job_type))?;
    let (job_id, tenant_id, created_at) = (job.id, job.tenant_id, job.created_at);
    let mut payload = std::mem::take(&mut job.payload);
    let mut field = |name: &str| {
        payload
            .get_mut(name)
            .map(Value::take)
            .unwrap_or(Value::Null)
    };
    Ok(match job_type {
        JobType::Extract => JobMessage::Extract {
            job_id,
            tenant_id,
            entity_type,
            integration_id: serde_json::from_value(field("integration_id"))
                .map_err(|e| format!("payload.integration_id: {e}"))?,
            payload: serde_json::from_value::<JsonObject>(field("payload")).unwrap_or_default(),
            priority,
            created_at,
        },
        JobType::Transform => JobMessage::Transform {
            job_id,
            tenant_id,
            entity_type,
            raw_data_ids: serde_json::from_value(field("raw_data_ids"))
                .map_err(|e| format!("payload.raw_data_ids: {e}"))?,
            priority,
        },
        JobType::Load => JobMessage::Load {
            job_id,
            tenant_id,
            entity_type,
            transformed_data: serde_json::from_value(field("transformed_data"))
                .map_err(|e| format!("payload.transformed_data: {e}"))?,
            priority,
        },
    })
}
