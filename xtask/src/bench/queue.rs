//! `cargo xtask bench queue`: the outbox relay's throughput beside a bare
//! lapin publish loop with publisher confirms on the same broker, and the
//! latency from `POST /pipeline` to `queued`, all in one run.
//!
//! Both publishers send the same body size, persistent, to the same durable
//! priority queue, in batches of 200 awaiting every confirm. Needs `psql`,
//! `wrk` and `rabbitmqctl`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etl_store::migrations::{self, DatabaseUrl};

use super::EtlServer;

const BATCH: usize = 200;

pub struct QueueOptions {
    pub jobs: u32,
    pub seconds: u32,
}

pub(crate) fn psql(db: &DatabaseUrl, sql: &str) -> anyhow::Result<String> {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            db.as_str(),
            "-c",
            sql,
        ])
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub(crate) fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .context("running rabbitmqctl")?;
    if !status.success() {
        bail!("rabbitmqctl {args:?} failed");
    }
    Ok(())
}

/// The extract request both publishers send, about 300 bytes of JSON.
/// Extract jobs are for the extraction service: this service's own workers
/// leave them in the queue, so what is measured is publishing alone.
fn request() -> serde_json::Value {
    serde_json::json!({"jql": "project = SHOP AND updated >= -1d ORDER BY updated ASC",
        "fields": ["summary", "status", "assignee", "updated", "created", "labels", "parent"],
        "expand": "changelog", "page_size": 100})
}

pub fn queue(root: &Path, options: &QueueOptions) -> anyhow::Result<()> {
    for tool in ["psql", "wrk", "rabbitmqctl"] {
        if Command::new("which")
            .arg(tool)
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            bail!("`{tool}` is not installed");
        }
    }
    with_bench_environment(root, &["etl-server", "xtask"], |db, amqp, vhost| {
        run(root, options, db, amqp, vhost)
    })
}

/// Builds the release `packages`, makes a fresh database and RabbitMQ vhost
/// (both named `etl_bench_<pid>`), runs `bench` with (database, AMQP URL,
/// vhost name) and removes both afterwards, whatever happened.
pub(crate) fn with_bench_environment(
    root: &Path,
    packages: &[&str],
    bench: impl FnOnce(&DatabaseUrl, &str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    println!("building the release binaries…");
    let mut build = Command::new("cargo");
    build
        .args(["build", "--release", "--quiet"])
        .current_dir(root);
    for package in packages {
        build.args(["-p", package]);
    }
    if !build.status()?.success() {
        bail!("release build failed");
    }
    let server_url = crate::database_url()?;
    let name = format!("etl_bench_{}", std::process::id());
    let db = DatabaseUrl::parse(&server_url.with_database(&name)).map_err(anyhow::Error::msg)?;
    migrations::create_database_if_missing(&db)?;
    rabbitmqctl(&["add_vhost", &name])?;
    rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"])?;
    let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{name}");
    let outcome = bench(&db, &amqp, &name);
    let _ = migrations::drop_database(&db);
    let _ = rabbitmqctl(&["delete_vhost", &name]);
    outcome
}

fn run(
    root: &Path,
    options: &QueueOptions,
    db: &DatabaseUrl,
    amqp: &str,
    vhost: &str,
) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    let (tenant, seed_jira) = (seed.tenant.id, seed.jira.id);
    drop(conn);
    let payload_sql = serde_json::json!({"integration_id": seed_jira, "payload": request()})
        .to_string()
        .replace('\'', "''");

    // 1. Outbox relay throughput: jobs committed at once, time until every
    //    one is confirmed and marked queued.
    let worker = EtlServer::start(
        root,
        "worker",
        &[("DATABASE_URL", db.as_str()), ("RABBITMQ_URL", amqp)],
        None,
    )?;
    psql(db, &format!(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload) VALUES ({tenant}, 'extract', 'jira_issues', '{payload_sql}')"
    ))?;
    wait_for(
        db,
        "SELECT count(*) = 1 AS done FROM etl_job_queue WHERE status = 'queued'",
        Duration::from_secs(30),
    )?;
    let n = options.jobs;
    let started = Instant::now();
    psql(
        db,
        &format!(
            "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
         SELECT {tenant}, 'extract', 'jira_issues', '{payload_sql}' FROM generate_series(1, {n})"
        ),
    )?;
    wait_for(
        db,
        &format!(
            "SELECT count(*) = {} AS done FROM etl_job_queue WHERE status = 'queued'",
            n + 1
        ),
        Duration::from_secs(600),
    )?;
    let relay_rate = f64::from(n) / started.elapsed().as_secs_f64();
    drop(worker);
    rabbitmqctl(&["purge_queue", "-p", vhost, "etl.extract"])?;

    // 2. The same number of messages through a bare lapin loop.
    let output = Command::new(root.join("target/release/xtask"))
        .args([
            "bench-publish-loop",
            "--url",
            amqp,
            "--messages",
            &n.to_string(),
        ])
        .output()
        .context("running the publish loop")?;
    if !output.status.success() {
        bail!(
            "publish loop failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let loop_rate: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("publish loop output")?;
    rabbitmqctl(&["purge_queue", "-p", vhost, "etl.extract"])?;

    // 3. Latency from POST /pipeline (the job row's created_at, inside the
    //    request's transaction) to queued, under a steady load.
    psql(db, "DELETE FROM etl_job_queue")?;
    let port = super::free_port()?;
    let server = EtlServer::start(
        root,
        "serve",
        &[("DATABASE_URL", db.as_str()), ("RABBITMQ_URL", amqp)],
        Some(port),
    )?;
    let token = super::token(tenant);
    let script = std::env::temp_dir().join(format!("etl-bench-queue-{}.lua", std::process::id()));
    let body = serde_json::json!({"entity_type": "jira_issues", "integration_id": seed_jira, "payload": request()});
    std::fs::File::create(&script)?.write_all(
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        )
        .as_bytes(),
    )?;
    let wrk = Command::new("wrk")
        .args(["-t1", "-c4", "-d", &format!("{}s", options.seconds), "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/api/v1/etl/pipeline"))
        .output()?;
    let _ = std::fs::remove_file(&script);
    let wrk_text = String::from_utf8_lossy(&wrk.stdout);
    let posted: f64 = wrk_text
        .split("Requests/sec:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    wait_for(
        db,
        "SELECT count(*) = 0 AS done FROM etl_job_queue WHERE status = 'pending'",
        Duration::from_secs(120),
    )?;
    let percentiles = psql(
        db,
        "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) || ' ' ||
                round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1) || ' ' || count(*)
           FROM (SELECT extract(epoch FROM queued_at - created_at) * 1000 AS ms
                   FROM etl_job_queue WHERE queued_at IS NOT NULL) t",
    )?;
    drop(server);
    let mut parts = percentiles.split_whitespace();
    let (p50, p99, count) = (
        parts.next().unwrap_or("?"),
        parts.next().unwrap_or("?"),
        parts.next().unwrap_or("?"),
    );

    println!(
        "\n{:<44} {:>12} {:>12} {:>7}",
        "", "etl outbox", "bare lapin", "ratio"
    );
    println!(
        "{:<44} {:>8.0} j/s {:>8.0} m/s {:>6.0}%",
        format!("{n} jobs published with confirms"),
        relay_rate,
        loop_rate,
        100.0 * relay_rate / loop_rate
    );
    println!(
        "POST /pipeline → queued: p50 {p50} ms, p99 {p99} ms over {count} jobs ({posted:.0} POST/s, 4 connections)"
    );
    Ok(())
}

/// Polls `sql` (a query of one boolean column named `done`) until true,
/// over one connection: a psql process per look would steal CPU from what
/// is measured.
pub(crate) fn wait_for(db: &DatabaseUrl, sql: &str, limit: Duration) -> anyhow::Result<()> {
    use diesel::{sql_types::Bool, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Look {
        #[diesel(sql_type = Bool)]
        done: bool,
    }
    let mut conn = etl_store::connect(db.as_str())?;
    let deadline = Instant::now() + limit;
    loop {
        let look: Look = diesel::sql_query(sql)
            .get_result(&mut conn)
            .with_context(|| format!("polling: {sql}"))?;
        if look.done {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for: {sql}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The baseline: a bare lapin loop publishing `messages` persistent
/// messages of the same size to `etl.extract` through `etl.direct`, 200 at a
/// time, awaiting every confirm. Prints messages per second.
pub fn publish_loop(url: &str, messages: u32) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        use lapin::{BasicProperties, Connection, ConnectionProperties};
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection = Connection::connect(url, properties).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let body = serde_json::to_vec(&serde_json::json!({
            "job_id": 1, "tenant_id": 1, "job_type": "extract", "entity_type": "jira_issues",
            "integration_id": 1, "payload": request(), "priority": 5,
            "created_at": "2026-11-29T12:00:00.000000"
        }))?;
        let started = Instant::now();
        let mut sent = 0;
        while sent < messages {
            let mut confirms = Vec::with_capacity(BATCH);
            for _ in 0..BATCH.min((messages - sent) as usize) {
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_priority(6);
                confirms.push(
                    channel
                        .basic_publish(
                            "etl.direct",
                            "extract",
                            BasicPublishOptions::default(),
                            &body,
                            props,
                        )
                        .await?,
                );
                sent += 1;
            }
            for confirm in confirms {
                confirm.await?;
            }
        }
        println!("{}", f64::from(messages) / started.elapsed().as_secs_f64());
        let _ = connection.close(200, "done").await;
        Ok(())
    })
}
