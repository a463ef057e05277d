//! `AmqpConfig` (plain data) builds a `Broker` (one connection, a confirmed
//! publishing channel); consumers and deliveries that are settled
//! explicitly.

use std::time::Duration;

use etl_domain::{JobMessage, JobPriority, JobType};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::topology::{self, queue_name, routing_key, EXCHANGE};
use crate::QueueError;

/// How to reach RabbitMQ. Plain data; [`AmqpConfig::connect`] builds the
/// runtime [`Broker`].
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (`RABBITMQ_URL`).
    pub url: String,
    /// Shown in RabbitMQ's management UI; default `etl-server`.
    pub connection_name: String,
    /// Unacked deliveries a consumer holds at most; default 10.
    pub prefetch: u16,
    /// Longest wait for the TCP connection and handshake; default 5 s.
    pub connect_timeout: Duration,
    /// PEM certificates trusted for `amqps://` besides the system roots
    /// (`ETL_TLS_CA_FILE`). The broker's certificate and host name are
    /// always verified; a failure is a connection error, never a fallback
    /// to plain AMQP.
    pub tls_ca_pem: Option<String>,
    /// Classic or quorum queues (`ETL_QUEUE_TYPE`); default classic.
    pub queue_type: topology::QueueType,
}

impl AmqpConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection_name: "etl-server".to_owned(),
            prefetch: 10,
            connect_timeout: Duration::from_secs(5),
            tls_ca_pem: None,
            queue_type: topology::QueueType::Classic,
        }
    }

    /// Declares the queues as `queue_type` (SPEC §6, `ETL_QUEUE_TYPE`).
    pub fn with_queue_type(mut self, queue_type: topology::QueueType) -> Self {
        self.queue_type = queue_type;
        self
    }

    /// Trusts these PEM certificates too (for `amqps://`).
    pub fn with_tls_ca(mut self, pem: Option<String>) -> Self {
        self.tls_ca_pem = pem;
        self
    }

    /// Connects, declares the topology and opens a confirmed publishing
    /// channel. Must run inside a tokio runtime.
    pub async fn connect(&self) -> Result<Broker, QueueError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.clone().into())
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.tls_ca_pem.clone(),
        };
        let connecting = Connection::connect_with_config(&self.url, properties, tls);
        let connection = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(connected) => connected.map_err(QueueError::Connect)?,
            Err(_) => {
                return Err(QueueError::Connect(lapin::Error::from(
                    lapin::ErrorKind::IOError(std::sync::Arc::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out connecting to RabbitMQ",
                    ))),
                )))
            }
        };
        // A failed declaration closes its channel, so it gets one of its own.
        let setup = connection
            .create_channel()
            .await
            .map_err(QueueError::Channel)?;
        topology::declare(&setup, self.queue_type).await?;
        let _ = setup.close(200, "topology declared").await;
        let publisher = connection
            .create_channel()
            .await
            .map_err(QueueError::Channel)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(QueueError::Channel)?;
        Ok(Broker {
            connection,
            publisher,
            prefetch: self.prefetch,
        })
    }
}

/// A job message ready to publish, its body already JSON (SPEC §6). Built
/// from a [`JobMessage`] with [`OutgoingMessage::encode`], or by a caller
/// that writes the same JSON without one (the relay splices a load job's
/// stored rows into the body rather than parsing and re-encoding them).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub job_id: i32,
    pub job_type: JobType,
    pub priority: JobPriority,
    pub body: Vec<u8>,
}

impl OutgoingMessage {
    pub fn encode(message: &JobMessage) -> Result<Self, QueueError> {
        let job_id = message.job_id();
        Ok(Self {
            job_id,
            job_type: message.job_type(),
            priority: message.priority(),
            body: serde_json::to_vec(message)
                .map_err(|source| QueueError::Encode { job_id, source })?,
        })
    }
}

/// A live connection to RabbitMQ.
pub struct Broker {
    connection: Connection,
    publisher: Channel,
    prefetch: u16,
}

impl Broker {
    /// Whether the connection and the publishing channel are up.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }

    /// Publishes job messages and waits until the broker confirms each.
    /// Returns one outcome per message, in order.
    pub async fn publish(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            pending.push(self.start_publish(message).await);
        }
        let mut outcomes = Vec::with_capacity(messages.len());
        for (message, started) in messages.iter().zip(pending) {
            let job_id = message.job_id;
            let outcome = match started {
                Err(error) => Err(error),
                Ok(confirm) => match confirm.await {
                    Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => Ok(()),
                    Ok(Confirmation::Ack(Some(_))) => Err(QueueError::Unroutable { job_id }),
                    Ok(Confirmation::Nack(_)) => Err(QueueError::Nacked { job_id }),
                    Err(error) => Err(QueueError::Channel(error)),
                },
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn start_publish(
        &self,
        message: &OutgoingMessage,
    ) -> Result<lapin::publisher_confirm::PublisherConfirm, QueueError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(ShortString::from(message.job_id.to_string()))
            .with_priority(message.priority.amqp_priority());
        self.publisher
            .basic_publish(
                EXCHANGE,
                routing_key(message.job_type),
                // Mandatory: a message no queue takes comes back as an error
                // instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                properties,
            )
            .await
            .map_err(QueueError::Channel)
    }

    /// Consumes a job type's queue on a channel of its own, holding at most
    /// `prefetch` unacked deliveries.
    pub async fn consume(&self, job_type: JobType, tag: &str) -> Result<JobConsumer, QueueError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(QueueError::Channel)?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(QueueError::Channel)?;
        let consumer = channel
            .basic_consume(
                queue_name(job_type),
                tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(QueueError::Channel)?;
        Ok(JobConsumer {
            consumer,
            _channel: channel,
        })
    }

    /// How many consumers read each work queue now (`serve --dev` warns when
    /// another deployment on the same vhost would take its jobs).
    pub async fn consumer_counts(&self) -> Result<Vec<(&'static str, u32)>, QueueError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(QueueError::Channel)?;
        let mut counts = Vec::new();
        for job_type in [JobType::Transform, JobType::Load] {
            let name = queue_name(job_type);
            let queue = channel
                .queue_declare(
                    name,
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(QueueError::Channel)?;
            counts.push((name, queue.consumer_count()));
        }
        let _ = channel.close(200, "consumers counted").await;
        Ok(counts)
    }

    /// Closes the connection, then waits (a few seconds at most) for its
    /// I/O thread to end: a thread that outlived the tokio runtime it uses
    /// would log I/O errors after a clean shutdown.
    pub async fn close(self) {
        let _ = self.connection.close(200, "shutting down").await;
        drop(self.publisher);
        let (ended, io_thread_ended) = tokio::sync::oneshot::channel();
        let connection = self.connection;
        let joined = std::thread::Builder::new()
            .name("lapin-close".to_owned())
            .spawn(move || {
                // Blocks until the connection's I/O thread has ended.
                let _ = connection.run();
                let _ = ended.send(());
            });
        if joined.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), io_thread_ended).await;
        }
    }
}

/// Deliveries of one queue.
pub struct JobConsumer {
    consumer: lapin::Consumer,
    // Kept so the channel lives as long as the consumer.
    _channel: Channel,
}

impl JobConsumer {
    /// The next delivery; `None` once the consumer or its connection closed.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let next = self.consumer.next().await?;
        Some(
            next.map(|inner| Delivery { inner })
                .map_err(QueueError::Channel),
        )
    }
}

/// One delivered message. Ack it only once its effects are committed.
pub struct Delivery {
    inner: lapin::message::Delivery,
}

impl Delivery {
    pub fn body(&self) -> &[u8] {
        &self.inner.data
    }

    /// The job id from `message_id`, falling back to the body's `job_id`.
    pub fn job_id(&self) -> Option<i32> {
        self.inner
            .properties
            .message_id()
            .as_ref()
            .and_then(|id| id.as_str().parse().ok())
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&self.inner.data)
                    .ok()?
                    .get("job_id")?
                    .as_i64()
                    .and_then(|id| i32::try_from(id).ok())
            })
    }

    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    pub async fn ack(&self) -> Result<(), QueueError> {
        self.inner
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(QueueError::Channel)
    }

    /// Rejects without requeueing: the queue dead-letters the message to
    /// `etl.failed`.
    pub async fn dead_letter(&self) -> Result<(), QueueError> {
        self.inner
            .nack(BasicNackOptions {
                requeue: false,
                ..BasicNackOptions::default()
            })
            .await
            .map(drop)
            .map_err(QueueError::Channel)
    }

    /// Gives the message back to the queue (e.g. on shutdown).
    pub async fn requeue(&self) -> Result<(), QueueError> {
        self.inner
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .map(drop)
            .map_err(QueueError::Channel)
    }
}
