//! Starts a server with its relay, workers and rescuer as a test needs them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etl_domain::JobErrorCode;
use etl_jobs::pruner::RetentionConfig;
use etl_jobs::relay::{BrokerHealth, RelayConfig};
use etl_jobs::republisher::RepublisherConfig;
use etl_jobs::rescuer::RescuerConfig;
use etl_jobs::runtime::{Runtime, Transport};
use etl_jobs::worker::WorkerConfig;
use etl_jobs::{Handlers, JobFailure, JobHandler};
use etl_queue::AmqpConfig;
use etl_store::jobs::Job;
use etl_store::PgConnection;
use etl_tests::rabbit::TestVhost;
use etl_tests::{json, poll_until, TestApp, TestTenant};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Makes the relay's and workers' broker settings from the test's vhost.
type AmqpFor<'a> = dyn FnOnce(&TestVhost) -> AmqpConfig + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Amqp,
    Postgres,
}

/// What the test handler does with a job.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    Succeed,
    /// Fails every attempt, retryably.
    AlwaysFail,
    /// Fails its first attempt for good, succeeds afterwards.
    FailFirstPermanently,
    /// Works this long (a job's own work), then succeeds.
    SucceedAfter(Duration),
}

/// A load-job handler that records every run.
#[derive(Clone)]
pub struct Recorder {
    pub runs: Arc<Mutex<Vec<i32>>>,
    behaviour: Behaviour,
}

impl Recorder {
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            runs: Arc::default(),
            behaviour,
        }
    }

    pub fn runs(&self) -> Vec<i32> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn runs_of(&self, job_id: i64) -> usize {
        self.runs()
            .iter()
            .filter(|id| i64::from(**id) == job_id)
            .count()
    }
}

impl JobHandler for Recorder {
    fn run(&self, _conn: &mut PgConnection, job: &Job) -> Result<Value, JobFailure> {
        let earlier = {
            let mut runs = self
                .runs
                .lock()
                .map_err(|_| JobFailure::retryable(JobErrorCode::WorkerError, "lock"))?;
            let earlier = runs.iter().filter(|id| **id == job.id).count();
            runs.push(job.id);
            earlier
        };
        match self.behaviour {
            Behaviour::Succeed => Ok(json!({"inserted": 1})),
            Behaviour::AlwaysFail => Err(JobFailure::retryable(
                JobErrorCode::DatabaseError,
                "it always fails",
            )),
            Behaviour::FailFirstPermanently if earlier == 0 => Err(JobFailure::permanent(
                JobErrorCode::BadPayload,
                "the first run refuses",
            )),
            Behaviour::FailFirstPermanently => Ok(json!({"inserted": 1})),
            Behaviour::SucceedAfter(work) => {
                std::thread::sleep(work);
                Ok(json!({"inserted": 1}))
            }
        }
    }
}

pub struct Harness {
    pub app: TestApp,
    pub tenant: TestTenant,
    pub vhost: Option<TestVhost>,
    /// How the relay and workers reach the broker (amqp mode).
    amqp: Option<AmqpConfig>,
    wake: Arc<Notify>,
    /// The background tasks, composed as `etl-server` composes them.
    runtime: Option<Runtime>,
}

/// A tenant cap no test of the other machinery reaches: those tests
/// publish jobs with no worker to run them and count what the broker
/// holds. The fairness tests run with the production default (`None`).
const UNCAPPED: i32 = 100_000;

impl Harness {
    /// With the default tenant cap (SPEC §12: half the live worker slots),
    /// as `etl-server` runs.
    pub async fn start_fair(mode: Mode) -> Self {
        Self::start_with(
            mode,
            None,
            etl_jobs::DEFAULT_MAX_MESSAGE_BYTES,
            None,
            None,
            None,
        )
        .await
    }

    /// A server (and, in amqp mode, its relay) over fresh databases and a
    /// fresh vhost. The relay reaches RabbitMQ at `broker` (e.g. a proxy).
    pub async fn start(mode: Mode) -> Self {
        Self::start_with_broker(mode, None).await
    }

    pub async fn start_with_broker(mode: Mode, broker: Option<&str>) -> Self {
        Self::start_with(
            mode,
            broker,
            etl_jobs::DEFAULT_MAX_MESSAGE_BYTES,
            None,
            None,
            Some(UNCAPPED),
        )
        .await
    }

    /// Amqp mode with a republisher publishing again what stays `queued`
    /// for `after` (other harnesses run none).
    pub async fn start_with_republisher(after: Duration) -> Self {
        let mut harness = Self::start(Mode::Amqp).await;
        if let Some(runtime) = harness.runtime.as_mut() {
            runtime.spawn_republisher(RepublisherConfig::new(after));
        }
        harness
    }

    /// With `ETL_MAX_MESSAGE_BYTES` at `max_message_bytes`.
    pub async fn start_with_max_message_bytes(mode: Mode, max_message_bytes: usize) -> Self {
        Self::start_with(mode, None, max_message_bytes, None, None, Some(UNCAPPED)).await
    }

    /// Amqp mode, the relay and workers reaching the test's vhost as
    /// `amqp` says (made from the vhost's name: an `amqps://` URL through
    /// a TLS proxy, say).
    pub async fn start_with_amqp(amqp: impl FnOnce(&TestVhost) -> AmqpConfig) -> Self {
        Self::start_with(
            Mode::Amqp,
            None,
            etl_jobs::DEFAULT_MAX_MESSAGE_BYTES,
            Some(Box::new(amqp)),
            None,
            Some(UNCAPPED),
        )
        .await
    }

    /// With the retention pruner running as `config` says (other harnesses
    /// run none).
    pub async fn start_with_retention(mode: Mode, config: RetentionConfig) -> Self {
        Self::start_with(
            mode,
            None,
            etl_jobs::DEFAULT_MAX_MESSAGE_BYTES,
            None,
            Some(config),
            Some(UNCAPPED),
        )
        .await
    }

    async fn start_with(
        mode: Mode,
        broker: Option<&str>,
        max_message_bytes: usize,
        amqp: Option<Box<AmqpFor<'_>>>,
        retention: Option<RetentionConfig>,
        tenant_cap: Option<i32>,
    ) -> Self {
        let vhost = (mode == Mode::Amqp).then(TestVhost::create);
        let wake = Arc::new(Notify::new());
        let health = BrokerHealth::default();
        let metrics = etl_http::metrics::Metrics::new();
        let registry = metrics.registry().clone();
        let app = {
            let wake = wake.clone();
            let health = health.clone();
            let amqp = mode == Mode::Amqp;
            TestApp::builder()
                .state(move |state| {
                    let state = state
                        .with_jobs_notifier(wake)
                        .with_metrics(metrics)
                        .with_max_message_bytes(max_message_bytes);
                    if amqp {
                        state.with_check(etl_http::ReadinessCheck {
                            name: "rabbitmq",
                            is_up: Arc::new(move || health.is_up()),
                        })
                    } else {
                        state
                    }
                })
                .spawn()
                .await
        };
        let tenant = app.tenant("acme");
        let transport = match &vhost {
            Some(vhost) => Transport::Amqp(match amqp {
                Some(make) => make(vhost),
                None => AmqpConfig::new(vhost.url_at(broker.unwrap_or("127.0.0.1:5672"))),
            }),
            None => Transport::Postgres,
        };
        // Workers reach the broker as the relay does, except that they go
        // straight to it when the relay goes through a proxy a test cuts.
        let amqp = match (&transport, &vhost) {
            (Transport::Amqp(_), Some(vhost)) if broker.is_some() => {
                Some(AmqpConfig::new(vhost.url()))
            }
            (Transport::Amqp(config), _) => Some(config.clone()),
            _ => None,
        };
        let runtime = Runtime::builder(app.db.pool(), transport)
            .relay(RelayConfig {
                poll: Duration::from_millis(100),
                lease: Duration::from_secs(5),
                retry_base: Duration::from_millis(50),
                retry_max: Duration::from_millis(200),
                max_message_bytes,
                ..RelayConfig::default()
            })
            // Tests run the rescuer themselves (`rescue_once`).
            .rescuer(None)
            .republisher(None)
            .janitor(None)
            .retention(retention)
            .tenant_max_in_flight(tenant_cap)
            .metrics_every(Duration::from_millis(100))
            .registry(&registry)
            .jobs_created(wake.clone())
            .broker_health(health.clone())
            .start();
        Self {
            app,
            tenant,
            vhost,
            amqp,
            wake,
            runtime: Some(runtime),
        }
    }

    /// Stores `n` Jira issues for `tenant` through the API (external ids
    /// from `first`, summaries of `summary_bytes`); their record ids.
    pub async fn store_issues(
        &self,
        tenant: &TestTenant,
        first: usize,
        n: usize,
        summary_bytes: usize,
    ) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in first..first + n {
            let body = json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
                "raw_data": {"id": format!("{i}"), "key": format!("S-{i}"),
                             "fields": {"summary": "s".repeat(summary_bytes)}}});
            let response = self
                .app
                .post_json("/api/v1/etl/raw-data/store", tenant, &body)
                .await;
            assert_eq!(response.status(), 201);
            ids.push(json(response).await["record_id"].as_i64().expect("id"));
        }
        ids
    }

    /// Publishes `message` straight to this test's vhost, as another relay
    /// (or another deployment) would, and waits for the broker's confirm.
    pub async fn publish(&self, message: etl_queue::OutgoingMessage) {
        let vhost = self.vhost.as_ref().expect("amqp mode");
        let broker = AmqpConfig::new(vhost.url())
            .connect()
            .await
            .expect("broker");
        assert!(broker
            .publish(&[message])
            .await
            .into_iter()
            .all(|r| r.is_ok()));
        broker.close().await;
    }

    /// Tells the relay jobs were written behind the API's back.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts a worker running the real transform and load handlers.
    pub fn pipeline_worker(&mut self, name: &str) {
        let handlers = etl_pipeline::handlers();
        self.spawn_worker(name, handlers, 2);
    }

    /// Starts a worker running the real transform handler only.
    pub fn transform_worker(&mut self, name: &str) {
        let handlers = Handlers::default().with(
            etl_domain::JobType::Transform,
            etl_pipeline::TransformHandler,
        );
        self.spawn_worker(name, handlers, 2);
    }

    /// Starts a worker running `handler` for load jobs.
    pub fn worker(&mut self, name: &str, handler: Recorder, concurrency: usize) {
        self.worker_for(etl_domain::JobType::Load, name, handler, concurrency);
    }

    /// Starts a worker running `handler` for jobs of `job_type`.
    pub fn worker_for(
        &mut self,
        job_type: etl_domain::JobType,
        name: &str,
        handler: Recorder,
        concurrency: usize,
    ) {
        self.spawn_worker(
            name,
            Handlers::default().with(job_type, handler),
            concurrency,
        );
    }

    /// A worker with test-speed timings, on the broker in amqp mode or on
    /// the table in postgres mode.
    fn spawn_worker(&mut self, name: &str, handlers: Handlers, concurrency: usize) {
        let mut config = WorkerConfig::new(name);
        config.concurrency = concurrency;
        config.heartbeat = Duration::from_millis(200);
        config.retry_base = Duration::from_millis(50);
        config.retry_max = Duration::from_millis(200);
        config.poll = Duration::from_millis(50);
        let transport = match &self.amqp {
            Some(amqp) => Transport::Amqp(amqp.clone()),
            None => Transport::Postgres,
        };
        if let Some(runtime) = self.runtime.as_mut() {
            runtime.spawn_worker_on(&transport, handlers, config);
        }
    }

    pub fn rescuer_config() -> RescuerConfig {
        RescuerConfig {
            every: Duration::from_millis(100),
            stale_after: Duration::from_millis(500),
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
            ..RescuerConfig::default()
        }
    }

    /// Creates an extract job of `priority` through the API.
    pub async fn extract_job(&self, priority: i64) -> i64 {
        let body = json!({"entity_type": "jira_issues", "integration_id": self.tenant.integration,
                          "payload": {}, "priority": priority});
        let response = self
            .app
            .post_json("/api/v1/etl/pipeline", &self.tenant, &body)
            .await;
        assert_eq!(response.status(), 202);
        json(response).await["job_id"].as_i64().expect("job id")
    }

    /// Creates a load job through the API.
    pub async fn load_job(&self) -> i64 {
        self.load_job_with(json!({"entity_type": "github_prs", "transformed_data": [
            {"integration_id": self.tenant.integration, "external_id": "1", "state": "open"}
        ]}))
        .await
    }

    pub async fn load_job_with(&self, body: Value) -> i64 {
        let response = self
            .app
            .post_json("/api/v1/etl/load", &self.tenant, &body)
            .await;
        assert_eq!(response.status(), 202);
        json(response).await["job_id"].as_i64().expect("job id")
    }

    pub async fn job(&self, id: i64) -> Value {
        json(
            self.app
                .get_as(&format!("/api/v1/etl/jobs/{id}"), &self.tenant)
                .await,
        )
        .await
    }

    /// Waits until the job's status is `status` (at most 20 s).
    pub async fn wait_for_status(&self, id: i64, status: &str) -> Value {
        let found = poll_until(Duration::from_secs(20), || async {
            let job = self.job(id).await;
            (job["status"] == status).then_some(job)
        })
        .await;
        match found {
            Some(job) => job,
            None => panic!("job {id} never became {status}: {}", self.job(id).await),
        }
    }

    /// Stops the background tasks (they finish what they run).
    pub async fn stop(mut self) -> Self {
        if let Some(runtime) = self.runtime.take() {
            runtime.stop().await;
        }
        self
    }
}
