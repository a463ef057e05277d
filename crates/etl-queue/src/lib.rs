//! RabbitMQ adapter of the ETL service (placeholder until the job-queue issue
//! lands): the names of the topology of SPEC §6, which both the adapter and
//! the extraction service must agree on.

/// The direct exchange every job message is published to.
pub const EXCHANGE: &str = "etl.direct";
/// The fanout exchange queues dead-letter into.
pub const DEAD_LETTER_EXCHANGE: &str = "etl.dlx";
/// Where dead-lettered messages end up.
pub const FAILED_QUEUE: &str = "etl.failed";
/// Queues declare `x-max-priority` of this.
pub const MAX_PRIORITY: u8 = 10;

use etl_domain::JobType;

/// The routing key (and binding) of a job type's messages.
pub fn routing_key(job_type: JobType) -> &'static str {
    job_type.as_str()
}

/// The durable queue a job type's messages wait in: `etl.<job type>`.
pub fn queue_name(job_type: JobType) -> &'static str {
    match job_type {
        JobType::Extract => "etl.extract",
        JobType::Transform => "etl.transform",
        JobType::Load => "etl.load",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_type_has_its_queue_and_routing_key() {
        for job_type in JobType::ALL {
            assert_eq!(
                queue_name(*job_type),
                format!("etl.{}", routing_key(*job_type))
            );
        }
    }
}
