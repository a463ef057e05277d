//! Status enums and the rules for moving between them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::values::ValueError;

/// Declares a lowercase-named enum with `as_str`, `FromStr`, `Display` and
/// serde, all agreeing on one spelling.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            const EXPECTED: &'static str = concat!($($text, " "),+);

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    other => Err(ValueError::Unknown {
                        value: other.to_owned(),
                        expected: Self::EXPECTED.trim_end().to_owned(),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> &'static str {
                value.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Where a raw record is in its processing (`raw_extraction_data.processing_status`).
    ProcessingStatus {
        /// Stored, not yet taken by a transform.
        Pending => "pending",
        /// Taken by a transform job.
        Processing => "processing",
        /// Loaded into its final table. Final.
        Completed => "completed",
        /// Could not be transformed or loaded; `error_details` says why.
        Failed => "failed",
        /// Deliberately not processed. Final.
        Skipped => "skipped",
    }
);

named_enum!(
    /// A job's life: `pending → queued → running → completed | failed`, or
    /// `cancelled` before it runs.
    JobStatus {
        /// Written to the outbox, not yet confirmed by the broker.
        Pending => "pending",
        /// Published and confirmed by the broker.
        Queued => "queued",
        /// Claimed by a worker.
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

named_enum!(
    /// What a job does.
    JobType {
        /// Asks the extraction service to pull data from a source.
        Extract => "extract",
        /// Turns raw records into normalized rows.
        Transform => "transform",
        /// Upserts normalized rows into a final table.
        Load => "load",
    }
);

named_enum!(
    /// The statuses an external worker (the extraction service) may report
    /// through `PUT /jobs/{id}/status`.
    ReportedJobStatus {
        Running => "running",
        Completed => "completed",
        Failed => "failed",
    }
);

impl From<ReportedJobStatus> for JobStatus {
    fn from(value: ReportedJobStatus) -> Self {
        match value {
            ReportedJobStatus::Running => JobStatus::Running,
            ReportedJobStatus::Completed => JobStatus::Completed,
            ReportedJobStatus::Failed => JobStatus::Failed,
        }
    }
}

named_enum!(
    /// Why a job failed: `error_details.code` of a job (and of the raw
    /// records a job fails with it). Clients match on these.
    JobErrorCode {
        /// Its worker stopped beating (it died); the rescuer took it back.
        WorkerLost => "worker_lost",
        /// The broker refused its message, or it cannot become one.
        Unpublishable => "unpublishable",
        /// The database failed under it (retried).
        DatabaseError => "database_error",
        /// The worker failed under it, a panic say (retried).
        WorkerError => "worker_error",
        /// No handler of this process runs its job type.
        NoHandler => "no_handler",
        /// Its entity type has no transformer.
        NoTransformer => "no_transformer",
        /// Its payload is not of its job type's shape.
        BadPayload => "bad_payload",
        /// A row its final table refuses.
        InvalidRow => "invalid_row",
        /// A transformed row that cannot be written as JSON.
        UnserialisableRow => "unserialisable_row",
        /// A record whose row alone does not fit one message.
        TooLarge => "too_large",
    }
);

/// The outcome of asking to move a raw record from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The record is already in that status: nothing to do, not an error.
    Unchanged,
    /// The change is allowed.
    Allowed,
    /// The change is not allowed (a final status, or `failed` to anything but
    /// `pending`).
    Forbidden,
}

impl ProcessingStatus {
    /// `completed` and `skipped` are final: nothing moves a record out of them.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Skipped)
    }

    /// Whether `processed_at` is stamped when a record enters this status.
    pub fn stamps_processed_at(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    /// The transition rules of SPEC §5: setting the current status again is a
    /// no-op; final statuses never change; a failed record may only go back
    /// to `pending` (a retry); anything else is allowed.
    pub fn change_to(self, to: ProcessingStatus) -> StatusChange {
        if self == to {
            StatusChange::Unchanged
        } else if self.is_final() || (self == Self::Failed && to != Self::Pending) {
            StatusChange::Forbidden
        } else {
            StatusChange::Allowed
        }
    }
}

impl JobStatus {
    /// A finished job never runs again and never changes (but a failed one
    /// may be retried explicitly).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Only a job that has not started may be cancelled.
    pub fn is_cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Queued)
    }

    /// Whether an external worker may report `to` on a job in this status
    /// (SPEC §5): `running` only from `pending` or `queued` (a second claim
    /// is refused), `completed`/`failed` only from `running`.
    pub fn accepts_report(self, to: JobStatus) -> bool {
        match to {
            Self::Running => matches!(self, Self::Pending | Self::Queued),
            Self::Completed | Self::Failed => self == Self::Running,
            Self::Pending | Self::Queued | Self::Cancelled => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProcessingStatus::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in ProcessingStatus::ALL {
            assert_eq!(status.as_str().parse::<ProcessingStatus>(), Ok(*status));
            let json = serde_json::to_string(status).expect("serialises");
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(
                serde_json::from_str::<ProcessingStatus>(&json).expect("parses"),
                *status
            );
        }
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
        }
        for job_type in JobType::ALL {
            assert_eq!(job_type.as_str().parse::<JobType>(), Ok(*job_type));
        }
    }

    #[test]
    fn unknown_status_names_the_choices() {
        let err = "done".parse::<ProcessingStatus>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "`done` is not one of: pending processing completed failed skipped"
        );
        assert!(serde_json::from_str::<ProcessingStatus>("\"Pending\"").is_err());
        assert!(serde_json::from_str::<JobStatus>("\"paused\"").is_err());
        assert!(serde_json::from_str::<ReportedJobStatus>("\"queued\"").is_err());
    }

    #[test]
    fn setting_the_same_status_is_unchanged() {
        for status in ProcessingStatus::ALL {
            assert_eq!(status.change_to(*status), StatusChange::Unchanged);
        }
    }

    #[test]
    fn completed_and_skipped_are_final() {
        for from in [Completed, Skipped] {
            for to in ProcessingStatus::ALL.iter().filter(|to| **to != from) {
                assert_eq!(
                    from.change_to(*to),
                    StatusChange::Forbidden,
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn failed_may_only_go_back_to_pending() {
        assert_eq!(Failed.change_to(Pending), StatusChange::Allowed);
        for to in [Processing, Completed, Skipped] {
            assert_eq!(
                Failed.change_to(to),
                StatusChange::Forbidden,
                "failed → {to}"
            );
        }
    }

    #[test]
    fn pending_and_processing_may_go_anywhere() {
        for from in [Pending, Processing] {
            for to in ProcessingStatus::ALL.iter().filter(|to| **to != from) {
                assert_eq!(from.change_to(*to), StatusChange::Allowed, "{from} → {to}");
            }
        }
    }

    #[test]
    fn processed_at_is_stamped_on_completed_and_failed_only() {
        let stamped: Vec<_> = ProcessingStatus::ALL
            .iter()
            .filter(|s| s.stamps_processed_at())
            .collect();
        assert_eq!(stamped, [&Completed, &Failed]);
    }

    #[test]
    fn only_unstarted_jobs_are_cancellable() {
        let cancellable: Vec<_> = JobStatus::ALL
            .iter()
            .filter(|s| s.is_cancellable())
            .collect();
        assert_eq!(cancellable, [&JobStatus::Pending, &JobStatus::Queued]);
        assert!(JobStatus::Cancelled.is_finished());
        let reportable: Vec<(JobStatus, JobStatus)> = JobStatus::ALL
            .iter()
            .flat_map(|from| JobStatus::ALL.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| from.accepts_report(*to))
            .collect();
        use JobStatus as J;
        assert_eq!(
            reportable,
            [
                (J::Pending, J::Running),
                (J::Queued, J::Running),
                (J::Running, J::Completed),
                (J::Running, J::Failed),
            ]
        );
        assert!(!JobStatus::Running.is_finished());
    }

    #[test]
    fn job_error_codes_round_trip_as_snake_case_names() {
        for code in JobErrorCode::ALL {
            assert_eq!(code.as_str().parse::<JobErrorCode>(), Ok(*code));
            assert!(code
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
        }
    }

    #[test]
    fn reported_statuses_map_onto_job_statuses() {
        assert_eq!(
            JobStatus::from(ReportedJobStatus::Running),
            JobStatus::Running
        );
        assert_eq!(
            JobStatus::from(ReportedJobStatus::Failed),
            JobStatus::Failed
        );
        assert_eq!(
            JobStatus::from(ReportedJobStatus::Completed),
            JobStatus::Completed
        );
    }
}
