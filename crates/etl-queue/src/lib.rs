//! RabbitMQ adapter of the ETL service (SPEC §6).
//!
//! Shaped like a Vector component: [`AmqpConfig`] (plain data with
//! documented defaults) builds a [`Broker`] (the runtime object: one
//! connection, a confirmed publishing channel, consumers on channels of
//! their own). Building declares the topology, so a broker that exists is
//! ready to use; a queue declared elsewhere with other arguments is reported
//! by name ([`QueueError::Topology`]).
//!
//! Publishing waits for the broker's confirm; a nack and an unroutable
//! message are errors of their own. Consumers never ack by themselves: the
//! caller acks once the job's effects are committed.

mod broker;
pub mod topology;

pub use broker::{AmqpConfig, Broker, Delivery, JobConsumer, OutgoingMessage};
pub use topology::{queue_name, routing_key, QueueType};

/// What can go wrong talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(#[source] lapin::Error),
    #[error("declaring `{name}` failed (declared elsewhere with other arguments?): {source}")]
    Topology {
        name: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ channel error: {0}")]
    Channel(#[source] lapin::Error),
    #[error("RabbitMQ refused (nacked) the message of job {job_id}")]
    Nacked { job_id: i32 },
    #[error("RabbitMQ could not route the message of job {job_id} to any queue")]
    Unroutable { job_id: i32 },
    #[error("cannot encode the message of job {job_id}: {source}")]
    Encode {
        job_id: i32,
        #[source]
        source: serde_json::Error,
    },
}

impl QueueError {
    /// Whether the broker itself closed the channel with an AMQP error (a
    /// message over its `max_message_size`, say), rather than the
    /// connection going away.
    pub fn closed_by_broker(&self) -> bool {
        match self {
            Self::Channel(error) | Self::Connect(error) => {
                matches!(error.kind(), lapin::ErrorKind::ProtocolError(_))
            }
            _ => false,
        }
    }
}
