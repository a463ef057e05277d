//! The outbox relay: publishes committed, due `pending` jobs with publisher
//! confirms and marks them `queued` once confirmed. While RabbitMQ is down
//! jobs simply wait in the table; the relay reconnects with backoff and
//! jitter and publishes them when it returns.
//!
//! Several relays (one per process) may run: each leases the rows it
//! publishes (`lease_until`, taken under `FOR UPDATE SKIP LOCKED`), so a job
//! is published once. Should a relay die between the broker's confirm and
//! its bookkeeping, the lease expires and the job is published again; the
//! worker's claim makes the second message change nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etl_domain::{JobErrorCode, JobType};
use etl_queue::{AmqpConfig, Broker};
use etl_store::{jobs, Connection as _, PgPool};
use serde_json::json;
use tokio::sync::{watch, Notify};

use crate::db::db;
use crate::outbox::message_for;
use crate::{Backoff, QueueMetrics};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Most jobs published per round.
    pub batch: i64,
    /// Most stored (compressed) payload bytes published per round, at
    /// least one job: a 1000-row load job stores about 150 KB.
    pub max_bytes: i64,
    /// Longest wait between rounds when nothing wakes the relay.
    pub poll: Duration,
    /// How long a relay holds the jobs it is publishing.
    pub lease: Duration,
    /// Which job types to publish.
    pub job_types: Vec<JobType>,
    /// The largest message body published (`ETL_MAX_MESSAGE_BYTES`); a job
    /// whose message is larger fails `unpublishable` without being sent.
    pub max_message_bytes: usize,
    /// First and longest delay before a refused message is tried again
    /// (doubling, with jitter), like a failing job's.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `ETL_TENANT_MAX_IN_FLIGHT`: most queued and running transform and
    /// load jobs of one tenant; `None`: half the live worker slots (SPEC
    /// §12).
    pub tenant_max_in_flight: Option<i32>,
}

use crate::DEFAULT_MAX_MESSAGE_BYTES;

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 1000,
            max_bytes: 1024 * 1024,
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            job_types: JobType::ALL.to_vec(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            tenant_max_in_flight: None,
        }
    }
}

/// Whether the relay's broker connection is up, for `/ready`.
#[derive(Debug, Clone, Default)]
pub struct BrokerHealth(Arc<AtomicBool>);

impl BrokerHealth {
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }
}

pub struct Relay {
    pub pool: PgPool,
    pub amqp: AmqpConfig,
    pub config: RelayConfig,
    /// Poked when jobs are committed in this process.
    pub wake: Arc<Notify>,
    pub health: BrokerHealth,
    pub metrics: QueueMetrics,
}

impl Relay {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut broker: Option<Broker> = None;
        // Reset only once a round has published: a broker that accepts the
        // connection but then closes the channel every time is waited for
        // longer and longer, never hammered.
        let mut reconnect = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        // After the broker closed the channel on a batch, this many messages
        // go one per round: the one it then refuses is the one to blame.
        let mut one_by_one = 0_usize;
        while !*shutdown.borrow() {
            let connected = broker.as_ref().is_some_and(Broker::is_connected);
            self.health.set(connected);
            if !connected {
                if let Some(old) = broker.take() {
                    old.close().await;
                }
                match self.amqp.connect().await {
                    Ok(fresh) => {
                        tracing::info!("relay connected to RabbitMQ");
                        broker = Some(fresh);
                        continue;
                    }
                    Err(error) => {
                        let wait = reconnect.next_delay();
                        tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "relay cannot reach RabbitMQ; jobs wait in the outbox");
                        self.sleep(wait, &mut shutdown).await;
                        continue;
                    }
                }
            }
            let Some(live) = broker.as_ref() else {
                continue;
            };
            match self.round(live, one_by_one > 0).await {
                Ok(0) => self.idle(&mut shutdown).await,
                Ok(_) => {
                    one_by_one = one_by_one.saturating_sub(1);
                    reconnect.reset();
                }
                Err(RoundError::ClosedByBroker { suspects }) => {
                    one_by_one = one_by_one.saturating_sub(1).max(suspects);
                    let wait = reconnect.next_delay();
                    tracing::warn!(suspects, retry_in_ms = wait.as_millis() as u64, "the broker closed the publishing channel; publishing one by one to find the message it refuses");
                    broker = None;
                    self.sleep(wait, &mut shutdown).await;
                }
                Err(RoundError::Broker(error)) => {
                    let wait = reconnect.next_delay();
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "publishing failed; reconnecting");
                    broker = None;
                    self.sleep(wait, &mut shutdown).await;
                }
                Err(RoundError::Database(error)) => {
                    tracing::warn!(%error, "relay cannot reach PostgreSQL");
                    self.sleep(self.config.poll, &mut shutdown).await;
                }
            }
        }
        if let Some(broker) = broker {
            broker.close().await;
        }
    }

    /// Publishes one batch of due jobs (one job only when `alone`); returns
    /// how many it took.
    async fn round(&self, broker: &Broker, alone: bool) -> Result<usize, RoundError> {
        let (types, batch, max_bytes, lease, cap) = (
            self.config.job_types.clone(),
            if alone { 1 } else { self.config.batch },
            self.config.max_bytes,
            self.config.lease,
            self.config.tenant_max_in_flight,
        );
        let leased = db(&self.pool, move |conn| {
            Ok(jobs::lease_due(conn, &types, batch, max_bytes, lease, cap)?)
        })
        .await
        .map_err(RoundError::Database)?;
        let lease_until = leased.until;
        if leased.jobs.is_empty() {
            return Ok(0);
        }
        let taken = leased.jobs.len();
        let mut messages = Vec::with_capacity(taken);
        let mut unusable = Vec::new();
        for job in leased.jobs {
            let id = job.id;
            match message_for(job) {
                Ok(message) if message.body.len() > self.config.max_message_bytes => {
                    let why = format!(
                        "its message of {} bytes is larger than ETL_MAX_MESSAGE_BYTES ({} bytes)",
                        message.body.len(),
                        self.config.max_message_bytes
                    );
                    unusable.push((id, why));
                }
                Ok(message) => messages.push(message),
                Err(why) => unusable.push((id, why)),
            }
        }
        self.metrics.published.inc_by(messages.len() as u64);
        let outcomes = broker.publish(&messages).await;
        let mut confirmed = Vec::new();
        let mut refused = Vec::new();
        let mut released = Vec::new();
        let mut broken = None;
        let mut closed_by_broker = false;
        for (message, outcome) in messages.iter().zip(outcomes) {
            let job_id = message.job_id;
            match outcome {
                Ok(()) => confirmed.push(job_id),
                Err(error) => {
                    tracing::warn!(job_id, %error, "job not published");
                    match Refusal::of(&error) {
                        Refusal::Message => refused.push(job_id),
                        // Published alone, the message is the one refused.
                        Refusal::ChannelClosedByBroker if alone => refused.push(job_id),
                        // In a batch, any unconfirmed one may be: none is
                        // blamed, they go one by one next.
                        Refusal::ChannelClosedByBroker => {
                            closed_by_broker = true;
                            released.push(job_id);
                        }
                        Refusal::Connection => released.push(job_id),
                    }
                    if matches!(error, etl_queue::QueueError::Channel(_)) && broken.is_none() {
                        broken = Some(error);
                    }
                }
            }
        }
        let suspects = released.len();
        self.metrics.confirmed.inc_by(confirmed.len() as u64);
        self.metrics
            .nacked
            .inc_by((refused.len() + released.len()) as u64);
        let backoff = Backoff::new(self.config.retry_base, self.config.retry_max);
        db(&self.pool, move |conn| {
            jobs::mark_queued(conn, &confirmed, lease_until)?;
            jobs::release_lease(conn, &released, lease_until)?;
            let details = json!({
                "code": JobErrorCode::Unpublishable,
                "message": "RabbitMQ refused this job's message",
            });
            for id in refused {
                let outcome = conn.transaction(|conn| {
                    jobs::refuse_publication(
                        conn,
                        etl_domain::JobId::new(id),
                        lease_until,
                        &details,
                        |n| {
                            chrono::Duration::from_std(backoff.delay(u32::try_from(n).unwrap_or(1)))
                                .unwrap_or(chrono::Duration::seconds(1))
                        },
                    )
                })?;
                tracing::warn!(
                    job_id = id,
                    ?outcome,
                    "the broker refused the job's message"
                );
            }
            for (id, why) in unusable {
                // A row that cannot become a message never will: fail it.
                tracing::error!(job_id = id, %why, "job cannot be published");
                let details = json!({
                    "code": JobErrorCode::Unpublishable,
                    "message": format!("This job cannot be published: {why}."),
                });
                conn.transaction(|conn| {
                    jobs::fail_pending(conn, etl_domain::JobId::new(id), &details)
                })?;
            }
            Ok(())
        })
        .await
        .map_err(RoundError::Database)?;
        match broken {
            Some(_) if closed_by_broker => Err(RoundError::ClosedByBroker { suspects }),
            Some(error) => Err(RoundError::Broker(error)),
            None => Ok(taken),
        }
    }

    async fn idle(&self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(self.config.poll) => {}
            _ = shutdown.changed() => {}
        }
    }

    async fn sleep(&self, wait: Duration, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Whose fault a failed publication was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The broker refused this message itself (a nack, no queue took it).
    Message,
    /// The broker closed the channel (an AMQP error, such as a message over
    /// its `max_message_size`).
    ChannelClosedByBroker,
    /// The connection went away: no message is to blame.
    Connection,
}

impl Refusal {
    fn of(error: &etl_queue::QueueError) -> Self {
        use etl_queue::QueueError;
        match error {
            QueueError::Nacked { .. } | QueueError::Unroutable { .. } => Self::Message,
            QueueError::Channel(_) if error.closed_by_broker() => Self::ChannelClosedByBroker,
            _ => Self::Connection,
        }
    }
}

#[derive(Debug)]
enum RoundError {
    /// The broker closed the channel on one of `suspects` messages.
    ClosedByBroker {
        suspects: usize,
    },
    Broker(etl_queue::QueueError),
    Database(crate::JobsError),
}
