//! The topology of SPEC §6, which the extraction service relies on too:
//! exchange `etl.direct` (direct) routes `extract`, `transform` and `load`
//! to the queues of the same names under `etl.`; those queues allow
//! priorities 0–10 and dead-letter into `etl.dlx` (fanout), which feeds
//! `etl.failed`. Everything is durable.
//!
//! The queues are classic by default; with [`QueueType::Quorum`]
//! (`ETL_QUEUE_TYPE=quorum`) the three job queues and `etl.failed` are
//! quorum queues, replicated across a RabbitMQ cluster: the job queues take
//! `x-delivery-limit` ([`DELIVERY_LIMIT`]) and dead-letter as before, and
//! leave `x-max-priority` out, which RabbitMQ 3.x's quorum queues refuse
//! (they deliver in order of arrival; priorities are kept on the messages
//! and honoured again by a broker whose quorum queues take them).

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

/// Quorum job queues dead-letter a message delivered this many times
/// without an ack (a crash loop), rather than redeliver it forever.
pub const DELIVERY_LIMIT: i32 = 20;

/// Which kind of queue the topology declares (`ETL_QUEUE_TYPE`). A
/// deployment switches kind only on fresh queues: RabbitMQ refuses to
/// redeclare a queue as another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// Single-node queues with priorities (SPEC §6's default).
    #[default]
    Classic,
    /// Raft-replicated queues that survive the loss of a node.
    Quorum,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            other => Err(format!("must be classic or quorum, not {other:?}")),
        }
    }
}

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
pub fn job_queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut arguments = failed_queue_arguments(queue_type);
    let (name, value) = match queue_type {
        QueueType::Classic => ("x-max-priority", MAX_PRIORITY),
        QueueType::Quorum => ("x-delivery-limit", DELIVERY_LIMIT),
    };
    arguments.insert(ShortString::from(name), AMQPValue::LongInt(value));
    arguments.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(DEAD_LETTER_EXCHANGE)),
    );
    arguments
}

/// The arguments `etl.failed` is declared with: only its kind (every job
/// queue's arguments start with these).
pub fn failed_queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
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
pub async fn declare(channel: &Channel, queue_type: QueueType) -> Result<(), QueueError> {
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
        .queue_declare(
            FAILED_QUEUE,
            durable_queue(),
            failed_queue_arguments(queue_type),
        )
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
            .queue_declare(queue, durable_queue(), job_queue_arguments(queue_type))
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
        let arguments = job_queue_arguments(QueueType::Classic);
        let inner = arguments.inner();
        assert_eq!(inner.get("x-max-priority"), Some(&AMQPValue::LongInt(10)));
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("etl.dlx".into()))
        );
        assert_eq!(inner.get("x-queue-type"), None);
        assert!(failed_queue_arguments(QueueType::Classic)
            .inner()
            .is_empty());
    }

    #[test]
    fn quorum_job_queues_limit_deliveries_and_dead_letter_without_priorities() {
        let arguments = job_queue_arguments(QueueType::Quorum);
        let inner = arguments.inner();
        assert_eq!(
            inner.get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(inner.get("x-delivery-limit"), Some(&AMQPValue::LongInt(20)));
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("etl.dlx".into()))
        );
        assert_eq!(inner.get("x-max-priority"), None);
        let failed = failed_queue_arguments(QueueType::Quorum);
        assert_eq!(
            failed.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert!("stream".parse::<QueueType>().is_err());
    }
}
