//! Job message bodies as they travel on RabbitMQ (SPEC §6). They keep the
//! seed's fields and add `job_id`; `job_type` is the tag.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::json_text::RawObject;
use crate::status::JobType;
use crate::values::{EntityType, JobPriority, JsonObject};

/// The body of a job message. Serialised with `job_type` first:
/// `{"job_type":"transform","job_id":…,…}`.
///
/// Read it with `serde_json` (an extract job's `payload` is kept as its
/// text, which only `serde_json` can hand over).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "job_type", rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobMessage {
    /// For the extraction service: go and extract.
    Extract {
        job_id: i32,
        tenant_id: i32,
        entity_type: EntityType,
        integration_id: i32,
        /// The client's object as it sent it (every digit kept).
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        payload: RawObject,
        priority: JobPriority,
        created_at: NaiveDateTime,
    },
    /// Transform these raw records.
    Transform {
        job_id: i32,
        tenant_id: i32,
        entity_type: EntityType,
        raw_data_ids: Vec<i32>,
        priority: JobPriority,
    },
    /// Load these transformed rows.
    Load {
        job_id: i32,
        tenant_id: i32,
        entity_type: EntityType,
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        transformed_data: Vec<JsonObject>,
        priority: JobPriority,
    },
}

impl<'de> Deserialize<'de> for JobMessage {
    /// Serde's internally tagged enums buffer their fields, which loses the
    /// text of `payload`; so the tag is read first, then the body again as
    /// its variant.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tag {
            job_type: JobType,
        }
        #[derive(Deserialize)]
        struct Extract {
            job_id: i32,
            tenant_id: i32,
            entity_type: EntityType,
            integration_id: i32,
            payload: RawObject,
            priority: JobPriority,
            created_at: NaiveDateTime,
        }
        #[derive(Deserialize)]
        struct Transform {
            job_id: i32,
            tenant_id: i32,
            entity_type: EntityType,
            raw_data_ids: Vec<i32>,
            priority: JobPriority,
        }
        #[derive(Deserialize)]
        struct Load {
            job_id: i32,
            tenant_id: i32,
            entity_type: EntityType,
            transformed_data: Vec<JsonObject>,
            priority: JobPriority,
        }
        use serde::de::Error as _;
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let tag: Tag = serde_json::from_str(text).map_err(D::Error::custom)?;
        let message = match tag.job_type {
            JobType::Extract => serde_json::from_str(text).map(|m: Extract| Self::Extract {
                job_id: m.job_id,
                tenant_id: m.tenant_id,
                entity_type: m.entity_type,
                integration_id: m.integration_id,
                payload: m.payload,
                priority: m.priority,
                created_at: m.created_at,
            }),
            JobType::Transform => serde_json::from_str(text).map(|m: Transform| Self::Transform {
                job_id: m.job_id,
                tenant_id: m.tenant_id,
                entity_type: m.entity_type,
                raw_data_ids: m.raw_data_ids,
                priority: m.priority,
            }),
            JobType::Load => serde_json::from_str(text).map(|m: Load| Self::Load {
                job_id: m.job_id,
                tenant_id: m.tenant_id,
                entity_type: m.entity_type,
                transformed_data: m.transformed_data,
                priority: m.priority,
            }),
        };
        message.map_err(D::Error::custom)
    }
}

impl JobMessage {
    pub fn job_id(&self) -> i32 {
        match self {
            Self::Extract { job_id, .. }
            | Self::Transform { job_id, .. }
            | Self::Load { job_id, .. } => *job_id,
        }
    }

    pub fn job_type(&self) -> crate::status::JobType {
        match self {
            Self::Extract { .. } => crate::status::JobType::Extract,
            Self::Transform { .. } => crate::status::JobType::Transform,
            Self::Load { .. } => crate::status::JobType::Load,
        }
    }

    pub fn priority(&self) -> JobPriority {
        match self {
            Self::Extract { priority, .. }
            | Self::Transform { priority, .. }
            | Self::Load { priority, .. } => *priority,
        }
    }
}

/// What a job row's `payload` holds, one variant per job type, so the job
/// type follows from the payload and cannot disagree with it. Stored as
/// the variant's fields (`{"raw_data_ids": […]}`), its objects as their
/// own text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum JobPayload {
    /// What the extraction service is to extract.
    Extract {
        integration_id: i32,
        payload: RawObject,
    },
    /// The raw records to transform.
    Transform { raw_data_ids: Vec<i32> },
    /// Rows in final-table shape, and the client's options (`POST /load`).
    Load {
        transformed_data: Vec<RawObject>,
        load_options: Option<RawObject>,
    },
}

impl JobPayload {
    pub fn job_type(&self) -> JobType {
        match self {
            Self::Extract { .. } => JobType::Extract,
            Self::Transform { .. } => JobType::Transform,
            Self::Load { .. } => JobType::Load,
        }
    }

    /// The payload as stored (JSON text).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("a payload serialises"))
    }

    /// Reads a stored payload as the given job type's.
    pub fn parse(job_type: JobType, text: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Extract {
            integration_id: i32,
            payload: RawObject,
        }
        #[derive(Deserialize)]
        struct Transform {
            raw_data_ids: Vec<i32>,
        }
        #[derive(Deserialize)]
        struct Load {
            transformed_data: Vec<RawObject>,
            #[serde(default)]
            load_options: Option<RawObject>,
        }
        Ok(match job_type {
            JobType::Extract => {
                let Extract {
                    integration_id,
                    payload,
                } = serde_json::from_str(text)?;
                Self::Extract {
                    integration_id,
                    payload,
                }
            }
            JobType::Transform => {
                let Transform { raw_data_ids } = serde_json::from_str(text)?;
                Self::Transform { raw_data_ids }
            }
            JobType::Load => {
                let Load {
                    transformed_data,
                    load_options,
                } = serde_json::from_str(text)?;
                Self::Load {
                    transformed_data,
                    load_options,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_payload_round_trips_as_its_job_type_and_keeps_every_digit() {
        let object = |text: &str| RawObject::from_text(text.to_owned()).expect("object");
        let payloads = [
            JobPayload::Extract {
                integration_id: 7,
                payload: object(r#"{"jql":"project = X","n":1.000000000000000000001}"#),
            },
            JobPayload::Transform {
                raw_data_ids: vec![1, 2, 3],
            },
            JobPayload::Load {
                transformed_data: vec![object(
                    r#"{"external_id":"1","story_points":12345678901234567890}"#,
                )],
                load_options: None,
            },
        ];
        for payload in payloads {
            let text = payload.to_text();
            assert_eq!(
                JobPayload::parse(payload.job_type(), &text).ok(),
                Some(payload.clone())
            );
        }
        assert_eq!(
            JobPayload::Transform {
                raw_data_ids: vec![4]
            }
            .to_text(),
            r#"{"raw_data_ids":[4]}"#
        );
        assert!(JobPayload::parse(JobType::Transform, r#"{"raw_data_ids":"x"}"#).is_err());
        assert!(JobPayload::parse(JobType::Load, r#"{"raw_data_ids":[1]}"#).is_err());
    }

    fn entity(name: &str) -> EntityType {
        EntityType::parse(name).expect("valid entity type")
    }

    #[test]
    fn messages_carry_exactly_the_seed_fields_plus_job_id() {
        let created_at = chrono::DateTime::from_timestamp(1_700_000_000, 0)
            .expect("valid")
            .naive_utc();
        let extract = JobMessage::Extract {
            job_id: 1,
            tenant_id: 2,
            entity_type: entity("jira_issues"),
            integration_id: 3,
            payload: RawObject::from_text(r#"{"jql":"x","n":1e400}"#.to_owned()).expect("object"),
            priority: JobPriority::default(),
            created_at,
        };
        // The client's payload travels as its text: a number beyond f64
        // keeps its digits.
        assert_eq!(
            serde_json::to_string(&extract).expect("serialises"),
            r#"{"job_type":"extract","job_id":1,"tenant_id":2,"entity_type":"jira_issues","integration_id":3,"payload":{"jql":"x","n":1e400},"priority":5,"created_at":"2023-11-14T22:13:20"}"#
        );
        let transform = JobMessage::Transform {
            job_id: 4,
            tenant_id: 2,
            entity_type: entity("github_prs"),
            raw_data_ids: vec![7, 8],
            priority: JobPriority::new(1).expect("valid"),
        };
        assert_eq!(
            serde_json::to_value(&transform).expect("serialises"),
            json!({"job_id": 4, "tenant_id": 2, "job_type": "transform", "entity_type": "github_prs",
                   "raw_data_ids": [7, 8], "priority": 1})
        );
        let load = JobMessage::Load {
            job_id: 5,
            tenant_id: 2,
            entity_type: entity("github_prs"),
            transformed_data: vec![],
            priority: JobPriority::new(10).expect("valid"),
        };
        assert_eq!(
            serde_json::to_value(&load).expect("serialises"),
            json!({"job_id": 5, "tenant_id": 2, "job_type": "load", "entity_type": "github_prs",
                   "transformed_data": [], "priority": 10})
        );
        for message in [extract, transform, load] {
            let text = serde_json::to_string(&message).expect("serialises");
            assert_eq!(
                serde_json::from_str::<JobMessage>(&text).expect("parses"),
                message
            );
        }
    }
}
