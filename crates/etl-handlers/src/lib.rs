//! The contract between the job machinery (`etl-jobs`) and the use cases
//! that plug into it (`etl-pipeline`): what a job of one type does
//! ([`JobHandler`]), how it fails ([`JobFailure`]), and the registry a
//! process runs ([`Handlers`]). No transport here: a crate that only
//! implements handlers (and the HTTP facade that calls them) links no AMQP
//! client.

use std::collections::HashMap;
use std::sync::Arc;

use etl_domain::{JobErrorCode, JobType};
use etl_store::jobs::Job;
use etl_store::PgConnection;
use serde_json::json;

/// Why a job's run failed. `code` and `message` (a sentence of ours) are
/// shown to clients in the job's `error_details`; `cause` (driver or panic
/// text) only goes to the log, with the job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub code: JobErrorCode,
    pub message: String,
    pub cause: Option<String>,
    /// Worth another attempt (a dependency hiccup) or not (bad input).
    pub retryable: bool,
}

impl JobFailure {
    pub fn retryable(code: JobErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            cause: None,
            retryable: true,
        }
    }

    pub fn permanent(code: JobErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            cause: None,
            retryable: false,
        }
    }

    /// Keeps `cause` for the log, out of what clients see.
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// The database failed under the job: worth another attempt.
    pub fn database(cause: impl std::fmt::Display) -> Self {
        Self::retryable(
            JobErrorCode::DatabaseError,
            "The database failed while this job ran; it is retried.",
        )
        .caused_by(cause)
    }

    /// The job's `error_details` for this failure.
    pub fn details(&self) -> serde_json::Value {
        json!({"code": self.code, "message": self.message})
    }
}

/// What a job of one type does. `run` gets the connection inside the
/// transaction that will also mark the job completed: everything it writes
/// commits with that status, or not at all.
pub trait JobHandler: Send + Sync + 'static {
    /// Does the work; returns the job's `result` (counts).
    fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<serde_json::Value, JobFailure>;
}

/// The handler of each job type this process runs.
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: HashMap<JobType, Arc<dyn JobHandler>>,
}

impl Handlers {
    pub fn with(mut self, job_type: JobType, handler: impl JobHandler) -> Self {
        self.by_type.insert(job_type, Arc::new(handler));
        self
    }

    pub fn job_types(&self) -> Vec<JobType> {
        let mut types: Vec<JobType> = self.by_type.keys().copied().collect();
        types.sort_by_key(|t| t.as_str());
        types
    }

    pub fn get(&self, job_type: JobType) -> Option<Arc<dyn JobHandler>> {
        self.by_type.get(&job_type).cloned()
    }
}
