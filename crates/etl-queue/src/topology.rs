//! The topology of SPEC §6, which the extraction service relies on too:
//! exchange `etl.direct` (direct) routes `extract`, `transform` and `load`
//! to the queues of the same names under `etl.`; those queues allow
//! priorities 0–10 and dead-letter into `etl.dlx` (fanout), which feeds
//! `etl.failed`. Everything is durable.

use etl_domain::JobType;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::QueueError;

/// The direct exchange every job message is published to.
pub const EXCHANGE: &str = "etl.direct";
/// The fanout exchange job queues dead-letter into.
pub const DEAD_LETTER_EXCHANGE: &str = "etl.dlx";
/// Where dead-lettered messages end up.
pub const FAILED_QUEUE: &str = "etl.failed";
/// Job queues declare `x-max-priority` of this.
pub const MAX_PRIORITY: i32 = 10;

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

/// The arguments every job queue is declared with. Clients declaring the
/// queues themselves must use exactly these.
pub fn job_queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-max-priority"),
        AMQPValue::LongInt(MAX_PRIORITY),
    );
    arguments.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(DEAD_LETTER_EXCHANGE)),
    );
    arguments
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares (idempotently) the whole topology. A declaration that conflicts
/// with an existing one closes the channel; the error names what conflicted.
pub async fn declare(channel: &Channel) -> Result<(), QueueError> {
    let named = |name: &str| {
        let name = name.to_owned();
        move |source| QueueError::Topology { name, source }
    };
    channel
        .exchange_declare(
            EXCHANGE,
            ExchangeKind::Direct,
            durable_exchange(),
            FieldTable::default(),
        )
        .await
        .map_err(named(EXCHANGE))?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE,
            ExchangeKind::Fanout,
            durable_exchange(),
            FieldTable::default(),
        )
        .await
        .map_err(named(DEAD_LETTER_EXCHANGE))?;
    channel
        .queue_declare(FAILED_QUEUE, durable_queue(), FieldTable::default())
        .await
        .map_err(named(FAILED_QUEUE))?;
    channel
        .queue_bind(
            FAILED_QUEUE,
            DEAD_LETTER_EXCHANGE,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(named(FAILED_QUEUE))?;
    for job_type in JobType::ALL {
        let queue = queue_name(*job_type);
        channel
            .queue_declare(queue, durable_queue(), job_queue_arguments())
            .await
            .map_err(named(queue))?;
        channel
            .queue_bind(
                queue,
                EXCHANGE,
                routing_key(*job_type),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(named(queue))?;
    }
    Ok(())
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

    #[test]
    fn job_queues_allow_priority_10_and_dead_letter_to_the_dlx() {
        let arguments = job_queue_arguments();
        let inner = arguments.inner();
        assert_eq!(inner.get("x-max-priority"), Some(&AMQPValue::LongInt(10)));
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("etl.dlx".into()))
        );
    }
}
