//! `cargo xtask bench fairness`: tenant B's 100 jobs, first with every
//! other tenant idle, then behind tenant A's 20,000 waiting jobs, through
//! one `etl-server serve` with the default settings (8 worker slots: the
//! default cap is 4 running jobs per tenant). B's time to completion behind A's backlog
//! should stay within twice its time alone (SPEC §12).
//!
//! Jobs are real load jobs (one pull-request row each), written straight
//! into the job table, as a burst of `POST /load` requests would leave
//! them. Needs `psql`.

use std::path::Path;
use std::time::{Duration, Instant};

use etl_store::migrations::{self, DatabaseUrl};

use super::queue::{psql, wait_for, with_bench_environment};
use super::EtlServer;

pub struct FairnessOptions {
    /// Tenant A's backlog.
    pub backlog: u32,
    /// Tenant B's jobs.
    pub jobs: u32,
}

pub fn fairness(root: &Path, options: &FairnessOptions) -> anyhow::Result<()> {
    super::require_tools(&["psql"])?;
    with_bench_environment(root, &["etl-server"], |db, amqp, _| {
        run(root, options, db, amqp)
    })
}

/// Writes `n` load jobs for `tenant` (one row for `integration` each,
/// external ids from `prefix`) in one statement.
fn enqueue(
    db: &DatabaseUrl,
    tenant: i32,
    integration: i32,
    prefix: &str,
    n: u32,
) -> anyhow::Result<()> {
    psql(
        db,
        &format!(
            "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, priority)
             SELECT {tenant}, 'load', 'github_prs',
                    jsonb_build_object('transformed_data', jsonb_build_array(jsonb_build_object(
                        'integration_id', {integration}, 'external_id', '{prefix}-' || g,
                        'state', 'open', 'repository', 'bench/fair', 'number', g))), 5
               FROM generate_series(1, {n}) AS g"
        ),
    )?;
    Ok(())
}

/// Seconds until every job of `tenant` is completed.
fn until_done(db: &DatabaseUrl, tenant: i32, started: Instant) -> anyhow::Result<f64> {
    wait_for(
        db,
        &format!(
            "SELECT NOT EXISTS (SELECT 1 FROM etl_job_queue
                                 WHERE tenant_id = {tenant} AND status <> 'completed') AS done"
        ),
        Duration::from_secs(1800),
    )?;
    Ok(started.elapsed().as_secs_f64())
}

fn completed(db: &DatabaseUrl, tenant: i32) -> anyhow::Result<u64> {
    Ok(psql(
        db,
        &format!("SELECT count(*) FROM etl_job_queue WHERE tenant_id = {tenant} AND status = 'completed'"),
    )?
    .trim()
    .parse()?)
}

fn run(root: &Path, options: &FairnessOptions, db: &DatabaseUrl, amqp: &str) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    drop(conn);
    let (a, a_github) = (seed.tenant.id, seed.github.id);
    let b: i32 = psql(
        db,
        "INSERT INTO tenants (name) VALUES ('bench-b') RETURNING id",
    )?
    .trim()
    .parse()?;
    let b_github: i32 = psql(
        db,
        &format!(
            "INSERT INTO integrations (tenant_id, provider, name) VALUES ({b}, 'github', 'b') RETURNING id"
        ),
    )?
    .trim()
    .parse()?;
    let server = EtlServer::start(
        root,
        "serve",
        &[("DATABASE_URL", db.as_str()), ("RABBITMQ_URL", amqp)],
        Some(super::free_port()?),
    )?;

    println!("tenant B: {} jobs, the other tenants idle…", options.jobs);
    let started = Instant::now();
    enqueue(db, b, b_github, "alone", options.jobs)?;
    let alone = until_done(db, b, started)?;
    println!("  done in {alone:.2} s");

    println!(
        "tenant A: {} jobs waiting; then tenant B: {} jobs…",
        options.backlog, options.jobs
    );
    enqueue(db, a, a_github, "backlog", options.backlog)?;
    // A's backlog is flowing before B's jobs arrive.
    wait_for(
        db,
        &format!(
            "SELECT count(*) >= 50 AS done FROM etl_job_queue WHERE tenant_id = {a} AND status = 'completed'"
        ),
        Duration::from_secs(300),
    )?;
    let a_before = completed(db, a)?;
    let started = Instant::now();
    enqueue(db, b, b_github, "behind", options.jobs)?;
    let behind = until_done(db, b, started)?;
    let a_during = completed(db, a)? - a_before;
    println!(
        "  done in {behind:.2} s; meanwhile A completed {a_during} jobs ({} still waiting)",
        u64::from(options.backlog).saturating_sub(completed(db, a)?)
    );
    drop(server);
    println!(
        "\nB behind A's backlog / B alone: {behind:.2} s / {alone:.2} s = {:.2}× (target ≤ 2×)",
        behind / alone
    );
    Ok(())
}
