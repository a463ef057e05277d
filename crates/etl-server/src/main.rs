//! `etl-server`: the ETL service's one binary. It only wires the crates
//! together; behaviour lives in them.

mod allocator;
mod settings;
mod telemetry;

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use etl_http::auth::{JwtKeys, JwtSecret};
use etl_http::{AppState, HttpConfig, ReadinessCheck};
use etl_jobs::pruner::RetentionConfig;
use etl_jobs::relay::RelayConfig;
use etl_jobs::republisher::RepublisherConfig;
use etl_jobs::runtime::{Runtime, Transport};
use etl_jobs::worker::WorkerConfig;
use etl_store::{migrations, PgPool};
use tokio::sync::watch;

use crate::settings::{QueueMode, Settings};

const ENV_HELP: &str = "\
Settings (environment):
  DATABASE_URL                PostgreSQL URL [postgres://postgres@127.0.0.1:5432/etl]
  RABBITMQ_URL                RabbitMQ URL [amqp://guest:guest@127.0.0.1:5672/%2f]
  ETL_BIND                    HTTP listen address [127.0.0.1:8080]
  ETL_QUEUE                   amqp | postgres [amqp]
  ETL_QUEUE_TYPE              classic | quorum RabbitMQ queues, fresh queues only [classic]
  ETL_JWT_SECRET              HS256 secret for API tokens (required by serve unless --dev)
  ETL_DB_POOL_SIZE            most database connections [10 + ETL_WORKER_CONCURRENCY]
  ETL_DB_CHECKOUT_TIMEOUT_MS  longest wait for a connection before 503 [5000]
  ETL_MAX_BODY_BYTES          largest request body before 413 [16777216]
  ETL_DB_STATEMENT_TIMEOUT_MS longest statement of an HTTP request before 503 [30000]
  ETL_DB_LOCK_TIMEOUT_MS      longest lock wait of an HTTP request before 503 [5000]
  ETL_MAX_MESSAGE_BYTES       largest AMQP message published [8388608]
  ETL_TLS_CA_FILE             PEM certificates trusted for amqps://, besides the system roots
  ETL_WORKER_CONCURRENCY      jobs run at once per process [8]
  ETL_TENANT_MAX_IN_FLIGHT    most jobs of one tenant running at once, deployment-wide
                              [half the live worker slots, at least 1]
  ETL_RETENTION_RAW_DAYS      days completed/skipped raw records are kept, 0 = for ever [30]
  ETL_RETENTION_JOB_DAYS      days completed/cancelled jobs are kept, 0 = for ever [14]
  ETL_LOG_FORMAT              pretty | json [pretty]
  RUST_LOG                    log filter [info]";

/// Transform-and-load service for Jira issues and GitHub pull requests.
#[derive(Debug, Parser)]
#[command(name = "etl-server", version, after_help = ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API, and run the outbox relay, the workers and the
    /// rescuer in the same process.
    Serve {
        /// Development mode: create the database when missing, apply
        /// migrations, seed a demo tenant, generate a JWT secret when none is
        /// set, and print a ready-to-use token.
        #[arg(long)]
        dev: bool,
    },
    /// Run the outbox relay, the workers and the rescuer without HTTP; run
    /// as many as the load needs, on as many machines.
    Worker,
    /// Apply the embedded database migrations, then exit.
    Migrate,
    /// Delete the finished raw records and jobs past their retention
    /// (ETL_RETENTION_RAW_DAYS, ETL_RETENTION_JOB_DAYS) now, in bounded
    /// batches, and print how many: `raw records: N`, `jobs: N`. `serve` and
    /// `worker` do the same every 10 minutes.
    Prune {
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    allocator::limit_arenas();
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    telemetry::init(settings.log_format);
    let outcome = match cli.command {
        Command::Serve { dev } => serve(&settings, dev),
        Command::Worker => worker(&settings),
        Command::Migrate => migrate(&settings),
        Command::Prune { dry_run } => prune(&settings, dry_run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Prints one line on stderr and exits non-zero.
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(settings.database_url.as_str())?;
    let applied = migrations::run_pending(&mut conn)?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

fn prune(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    use etl_store::retention::{run_pass, PassMode, PrunedKind};
    let mut conn = etl_store::connect(settings.database_url.as_str())?;
    if migrations::has_pending(&mut conn)? {
        anyhow::bail!("the database has pending migrations; run `etl-server migrate` first");
    }
    let policy = settings.retention;
    for (rule, days) in [
        ("ETL_RETENTION_RAW_DAYS", policy.raw_days),
        ("ETL_RETENTION_JOB_DAYS", policy.job_days),
    ] {
        if days.is_none() {
            eprintln!("{rule}=0: that rule is off, nothing of its kind is deleted");
        }
    }
    let mode = if dry_run {
        PassMode::DryRun
    } else {
        PassMode::Delete
    };
    // Progress on stderr every 100,000 rows: a first pass can be long.
    let mut reported = [0_usize; 2];
    let pruned = run_pass(&mut conn, policy, mode, |kind, n| {
        let (slot, label) = match kind {
            PrunedKind::RawRecords => (0, "raw records"),
            PrunedKind::Jobs => (1, "jobs"),
        };
        let before = reported[slot];
        reported[slot] += n;
        if reported[slot] / 100_000 > before / 100_000 {
            eprintln!("… {label}: {} deleted so far", reported[slot]);
        }
    })?;
    if dry_run {
        eprintln!("dry run: nothing was deleted; a pass now would delete");
    }
    println!("raw records: {}", pruned.raw_records);
    println!("jobs: {}", pruned.jobs);
    Ok(())
}

fn serve(settings: &Settings, dev: bool) -> anyhow::Result<()> {
    let secret = settings.require_jwt_secret(dev)?;
    let listener = TcpListener::bind(settings.bind).map_err(|e| settings::SettingError {
        name: "ETL_BIND",
        problem: format!("cannot listen on {}: {e}", settings.bind),
    })?;
    let pool = etl_store::build_pool(&settings.pool_config());
    allocator::trim_periodically();
    if dev {
        prepare_dev_database(settings, &pool, &secret, &listener)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_server(settings, pool, secret, listener, dev))
}

async fn run_server(
    settings: &Settings,
    pool: PgPool,
    secret: JwtSecret,
    listener: TcpListener,
    dev: bool,
) -> anyhow::Result<()> {
    let migrated = if dev {
        // `prepare_dev_database` has applied them already.
        watch::channel(true).1
    } else {
        migrate_in_background(&pool)
    };
    let addr = listener.local_addr()?;
    log_start(settings);
    if dev && settings.queue == QueueMode::Amqp {
        warn_of_other_consumers(settings).await;
    }
    let background = Background::start(settings, &pool, migrated);
    let mut state = AppState::new(pool, JwtKeys::new(&secret))
        .with_metrics(background.metrics.clone())
        .with_jobs_notifier(background.runtime.jobs_created())
        .with_max_message_bytes(settings.max_message_bytes)
        .with_max_response_bytes(settings.max_response_bytes);
    if let Some(health) = background.runtime.broker_health() {
        state = state.with_check(ReadinessCheck {
            name: "rabbitmq",
            is_up: Arc::new(move || health.is_up()),
        });
    }
    let config = HttpConfig {
        max_body_bytes: settings.max_body_bytes,
        // Eight of the largest bodies at once; more wait their turn.
        max_large_bodies_bytes: settings.max_body_bytes.saturating_mul(8),
        shutdown_timeout: settings.shutdown_grace,
        ..HttpConfig::default()
    };
    let server = etl_http::serve(listener, state, &config)?;
    let handle = server.handle();
    tracing::info!(%addr, "listening on http://{addr}");
    let server_task = tokio::spawn(server);
    shutdown_signal().await;
    tracing::info!(
        grace_s = settings.shutdown_grace.as_secs(),
        "shutting down: finishing in-flight requests and jobs"
    );
    // Both within the grace, side by side: jobs still running then are
    // handed back (SPEC §8), so the process exits within the grace + 5 s.
    tokio::join!(handle.stop(true), background.stop());
    server_task.await??;
    tracing::info!("stopped");
    Ok(())
}

fn worker(settings: &Settings) -> anyhow::Result<()> {
    let pool = etl_store::build_pool(&settings.pool_config());
    allocator::trim_periodically();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let migrated = migrate_in_background(&pool);
        log_start(settings);
        let background = Background::start(settings, &pool, migrated);
        tracing::info!("worker running");
        shutdown_signal().await;
        tracing::info!(
            grace_s = settings.shutdown_grace.as_secs(),
            "shutting down: finishing running jobs"
        );
        background.stop().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `serve --dev`: says so when something already reads this server's work
/// queues (another developer's server on the same vhost would take its
/// jobs, and this one theirs). Quiet when RabbitMQ cannot be asked now.
async fn warn_of_other_consumers(settings: &Settings) {
    let amqp = settings.amqp_config();
    let asked = tokio::time::timeout(Duration::from_secs(5), async {
        let broker = amqp.connect().await.ok()?;
        let counts = broker.consumer_counts().await.ok();
        broker.close().await;
        counts
    })
    .await;
    let Ok(Some(counts)) = asked else { return };
    let taken: Vec<String> = counts
        .iter()
        .filter(|(_, consumers)| *consumers > 0)
        .map(|(queue, consumers)| format!("{queue} ({consumers})"))
        .collect();
    if !taken.is_empty() {
        println!(
            "WARNING: another consumer already reads {} on {}: it would take this server's jobs. \
             Give this server a vhost of its own (rabbitmqctl add_vhost NAME; RABBITMQ_URL=amqp://…/NAME).\n",
            taken.join(", "),
            settings.rabbitmq_host()
        );
    }
}

fn log_start(settings: &Settings) {
    tracing::info!(
        database = %settings.database_url.database_name(),
        queue = ?settings.queue,
        rabbitmq = %settings.rabbitmq_host(),
        worker_concurrency = settings.worker_concurrency,
        "starting"
    );
}

/// The background half of one process (relay, workers, rescuer, janitor,
/// pruner, metrics refresher), composed by [`Runtime`] as the test harnesses
/// compose it, with the metrics `/metrics` serves.
struct Background {
    metrics: etl_http::metrics::Metrics,
    runtime: Runtime,
}

impl Background {
    /// Starts every task; each waits for `migrated` before its first look
    /// at the database.
    fn start(settings: &Settings, pool: &PgPool, migrated: watch::Receiver<bool>) -> Self {
        let metrics = etl_http::metrics::Metrics::new();
        let transport = match settings.queue {
            QueueMode::Amqp => Transport::Amqp(settings.amqp_config()),
            QueueMode::Postgres => Transport::Postgres,
        };
        let mut worker = WorkerConfig::new(worker_name());
        worker.concurrency = settings.worker_concurrency;
        let runtime = Runtime::builder(pool.clone(), transport)
            // Transform and load jobs; extract jobs are the extraction service's.
            .handlers(etl_pipeline::handlers())
            .worker(worker)
            .relay(RelayConfig {
                max_message_bytes: settings.max_message_bytes,
                ..RelayConfig::default()
            })
            .republisher(Some(RepublisherConfig::new(settings.republish_after)))
            .shutdown_grace(settings.shutdown_grace)
            .tenant_max_in_flight(settings.tenant_max_in_flight)
            .retention(Some(RetentionConfig {
                policy: settings.retention,
                ..RetentionConfig::default()
            }))
            .registry(metrics.registry())
            .after_migrations(migrated)
            .start();
        Self { metrics, runtime }
    }

    /// Signals every task to stop and waits for them (running jobs finish
    /// within the grace, or are handed back).
    async fn stop(self) {
        self.runtime.stop().await;
    }
}

/// `<host>-<pid>`: unique among the processes sharing the queues.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "etl".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Applies pending migrations, retrying with capped backoff until the
/// database answers. Several processes may do this at once: the store holds
/// an advisory lock while migrating.
/// Applies pending migrations in the background, so that the process starts
/// (and `/ready` says why it is not ready) while the database is still down.
/// The receiver turns true once they are applied.
fn migrate_in_background(pool: &PgPool) -> watch::Receiver<bool> {
    let (done, migrated) = watch::channel(false);
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        migrate_when_reachable(&pool);
        let _ = done.send(true);
    });
    migrated
}

fn migrate_when_reachable(pool: &PgPool) {
    let mut delay = Duration::from_millis(500);
    loop {
        let outcome = pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| Ok(migrations::run_pending(&mut conn)?));
        match outcome {
            Ok(applied) => {
                for version in applied {
                    tracing::info!(%version, "applied migration");
                }
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "cannot apply migrations yet");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn prepare_dev_database(
    settings: &Settings,
    pool: &PgPool,
    secret: &JwtSecret,
    listener: &TcpListener,
) -> anyhow::Result<()> {
    let url = &settings.database_url;
    if migrations::create_database_if_missing(url).with_context(|| {
        format!(
            "DATABASE_URL: cannot create database `{}`",
            url.database_name()
        )
    })? {
        println!("created database {}", url.database_name());
    }
    let mut conn = pool.get().context("DATABASE_URL: cannot connect")?;
    for version in migrations::run_pending(&mut conn)? {
        println!("applied migration {version}");
    }
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    let ttl = chrono::Duration::hours(24);
    let token = JwtKeys::new(secret).issue("dev", seed.tenant.id, ttl);
    let addr = listener.local_addr()?;
    let generated = settings.jwt_secret.is_none();
    println!(
        "\nDevelopment mode
  database     {db}
  DATABASE_URL {database_url}
  tenant       {tenant} (id {tenant_id}); integrations: jira {jira}, github {github}
  jwt secret   {secret_note}
  token        {token}
               (tenant {tenant_id}, valid 24 h)

Dashboard: http://{addr}/dashboard (paste the token)
Demo data (another terminal): DATABASE_URL='{database_url}' cargo xtask demo --url http://{addr} --token {token}

Try it:
  curl -s http://{addr}/ready
  curl -s -X POST http://{addr}/api/v1/etl/raw-data/store \\
       -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\
       -d '{{\"integration_id\": {jira}, \"entity_type\": \"jira_issues\", \"external_id\": \"10001\", \"raw_data\": {{\"id\": \"10001\", \"key\": \"DEMO-1\", \"fields\": {{\"summary\": \"Hello\"}}}}}}'
",
        db = url.database_name(),
        database_url = url.as_str(),
        tenant = seed.tenant.name,
        tenant_id = seed.tenant.id,
        jira = seed.jira.id,
        github = seed.github.id,
        secret_note = if generated {
            "generated for this run (set ETL_JWT_SECRET to keep tokens valid across restarts)"
        } else {
            "from ETL_JWT_SECRET"
        },
    );
    Ok(())
}
