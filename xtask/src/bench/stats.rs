//! `cargo xtask bench stats`: the operator's console at size, in one run.
//!
//! - `GET /stats` latency (p50/p99, `wrk --latency`) with 1,000,000 raw
//!   records and 100,000 jobs of one tenant in the database, beside
//!   `pgbench` running the one query a naive implementation would need
//!   for just the raw-record counts (`count(*) … GROUP BY`);
//! - single-record store throughput while `etl-server prune` deletes
//!   1,000,000 old records beside it, as a ratio to the same store without
//!   it (target ≥ 80 %).
//!
//! Needs `wrk`, `pgbench` and `psql` on PATH.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use etl_store::migrations::{self, DatabaseUrl};

use super::ingest::{
    number_after, pgbench_output, timed_psql, wrk, wrk_get_script, wrk_output, wrk_script,
};
use super::{build_release_server, free_port, require_tools, with_scratch_database, EtlServer};

pub struct StatsOptions {
    pub seconds: u32,
    pub raw_records: u32,
    pub jobs: u32,
}

const STATS_CONNECTIONS: u32 = 8;
const STORE_CONNECTIONS: u32 = 32;
const PRUNED_ROWS: u32 = 1_000_000;

pub fn stats(root: &Path, options: &StatsOptions) -> anyhow::Result<()> {
    require_tools(&["wrk", "pgbench", "psql"])?;
    build_release_server(root)?;
    with_scratch_database("etl_bench_stats", |db| run_stats(root, options, db))
}

fn run_stats(root: &Path, options: &StatsOptions, db_url: &DatabaseUrl) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db_url.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    let (tenant, jira, github) = (seed.tenant.id, seed.jira.id, seed.github.id);
    let token = super::token(tenant);
    let work = std::env::temp_dir().join(format!("etl-bench-stats-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    println!(
        "filling: {} raw records, {} jobs, 60,000 rows loaded over the last hour, one tenant…",
        options.raw_records, options.jobs
    );
    let filled = timed_psql(
        db_url,
        &format!(
            "INSERT INTO raw_extraction_data
                    (tenant_id, integration_id, entity_type, external_id, raw_data,
                     processing_status, error_details, processed_at)
             SELECT {tenant}, CASE WHEN g % 3 = 0 THEN {github} ELSE {jira} END,
                    CASE WHEN g % 3 = 0 THEN 'github_prs' ELSE 'jira_issues' END,
                    g::text, jsonb_build_object('id', g::text, 'key', 'B-' || g),
                    CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 10 = 0 THEN 'pending'
                         WHEN g % 37 = 0 THEN 'skipped' ELSE 'completed' END,
                    CASE WHEN g % 100 = 0 THEN jsonb_build_object(
                        'code', CASE WHEN g % 200 = 0 THEN 'missing_field' ELSE 'value_too_long' END,
                        'message', 'record ' || g || ' failed') END,
                    LOCALTIMESTAMP
               FROM generate_series(1, {raw}) AS g;
             INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, status, completed_at)
             SELECT {tenant},
                    CASE WHEN g % 100 = 1 THEN 'extract' WHEN g % 2 = 0 THEN 'transform' ELSE 'load' END,
                    'jira_issues', '{{}}',
                    CASE WHEN g % 100 = 1 THEN 'pending' WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END,
                    LOCALTIMESTAMP
               FROM generate_series(1, {jobs}) AS g;
             INSERT INTO work_items (tenant_id, integration_id, external_id, summary, loaded_at)
             SELECT {tenant}, {jira}, 'loaded-' || g, 's', LOCALTIMESTAMP - (g % 3600) * interval '1 second'
               FROM generate_series(1, 60000) AS g;
             VACUUM ANALYZE;\n",
            raw = options.raw_records,
            jobs = options.jobs,
        ),
    )?;
    println!("filled in {:.0} s", filled.as_secs_f64());

    let port = free_port()?;
    let pool = STORE_CONNECTIONS.to_string();
    // The server itself prunes nothing here: the pass measured is the CLI's.
    let mut server = EtlServer::start(
        root,
        "serve",
        &[
            ("DATABASE_URL", db_url.as_str()),
            ("ETL_DB_POOL_SIZE", &pool),
            ("ETL_QUEUE", "postgres"),
            ("ETL_RETENTION_RAW_DAYS", "0"),
            ("ETL_RETENTION_JOB_DAYS", "0"),
        ],
        Some(port),
    )?;
    let base = format!("http://127.0.0.1:{port}");

    println!(
        "\nGET /stats, {STATS_CONNECTIONS} connections, {} s",
        options.seconds
    );
    std::fs::write(work.join("stats.lua"), wrk_get_script(&token))?;
    let latency = wrk_latency(
        &work.join("stats.lua"),
        &format!("{base}/api/v1/etl/stats"),
        STATS_CONNECTIONS,
        options.seconds,
    )?;
    std::fs::write(
        work.join("naive.sql"),
        format!(
            "SELECT entity_type, processing_status, count(*) FROM raw_extraction_data \
              WHERE tenant_id = {tenant} GROUP BY 1, 2;\n"
        ),
    )?;
    let naive = pgbench_latency(
        db_url,
        &work.join("naive.sql"),
        STATS_CONNECTIONS,
        options.seconds,
    )?;

    println!(
        "\nsingle-record store, {STORE_CONNECTIONS} connections, {} s, without then beside a prune of {PRUNED_ROWS} rows",
        options.seconds
    );
    let body = serde_json::json!({
        "integration_id": jira, "entity_type": "jira_issues", "external_id": "77",
        "raw_data": {"id": "77", "key": "P-77", "fields": {"summary": "stored beside a prune",
                     "labels": ["a", "b"], "description": "x".repeat(1000)}},
    });
    std::fs::write(work.join("single.json"), body.to_string())?;
    std::fs::write(
        work.join("single.lua"),
        wrk_script(&work.join("single.json"), &token),
    )?;
    timed_psql(
        db_url,
        &format!(
            "INSERT INTO raw_extraction_data
                    (tenant_id, integration_id, entity_type, external_id, raw_data,
                     processing_status, created_at, processed_at)
             SELECT {tenant}, {jira}, 'jira_issues', 'old-' || g,
                    jsonb_build_object('id', 'old-' || g, 'fields', jsonb_build_object('summary', repeat('s', 200))),
                    'completed', LOCALTIMESTAMP - interval '90 days', LOCALTIMESTAMP - interval '90 days'
               FROM generate_series(1, {PRUNED_ROWS}) AS g;
             VACUUM ANALYZE raw_extraction_data;\n"
        ),
    )?;
    let store_url = format!("{base}/api/v1/etl/raw-data/store");
    let alone = wrk(
        &work.join("single.lua"),
        &store_url,
        STORE_CONNECTIONS,
        options.seconds,
    )?;
    let prune_started = Instant::now();
    let mut prune = Command::new(root.join("target/release/etl-server"))
        .arg("prune")
        .env("DATABASE_URL", db_url.as_str())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting etl-server prune")?;
    let beside = wrk(
        &work.join("single.lua"),
        &store_url,
        STORE_CONNECTIONS,
        options.seconds,
    )?;
    let still_pruning = matches!(prune.try_wait(), Ok(None));
    let output = prune.wait_with_output()?;
    let prune_seconds = prune_started.elapsed().as_secs_f64();
    let printed = String::from_utf8_lossy(&output.stdout);
    let peak_rss_kib = server.peak_rss_kib();
    server.stop();
    let _ = std::fs::remove_dir_all(&work);

    println!("\n{:<44} {:>10} {:>10} {:>10}", "", "p50", "p99", "rate");
    println!(
        "{:<44} {:>7.1} ms {:>7.1} ms {:>6.0} q/s   (target p99 < 200 ms)",
        format!(
            "GET /stats ({} raw, {} jobs)",
            options.raw_records, options.jobs
        ),
        latency.p50_ms,
        latency.p99_ms,
        latency.rate
    );
    println!(
        "{:<44} {:>10} {:>10} {:>6.0} q/s   (mean {:.1} ms: GET /stats p50 is {:.0}% of it)",
        "pgbench: the naive raw-record GROUP BY alone",
        "",
        "",
        naive.rate,
        naive.mean_ms,
        100.0 * latency.p50_ms / naive.mean_ms
    );
    println!("\n{:<44} {:>10.0} r/s", "single store alone", alone);
    println!(
        "{:<44} {:>10.0} r/s {:>7.0}%   (target ≥ 80%)",
        "single store beside the prune",
        beside,
        100.0 * beside / alone
    );
    println!(
        "prune: {} in {prune_seconds:.1} s; {}",
        printed.lines().collect::<Vec<_>>().join(", "),
        if still_pruning {
            "it was still running when the measurement ended"
        } else {
            "it ended before the measurement did (the ratio covers the prune and some time after)"
        }
    );
    if let Some(kib) = peak_rss_kib {
        println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

pub(crate) struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rate: f64,
}

/// wrk's latency distribution and rate; fails if any answer was not 2xx.
pub(crate) fn wrk_latency(
    script: &Path,
    url: &str,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<Latency> {
    let text = wrk_output(script, url, connections, seconds, &["--latency"])?;
    let percentile = |label: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(label))
            .with_context(|| format!("no {label} in wrk output:\n{text}"))?;
        duration_ms(line.split_whitespace().nth(1).unwrap_or_default())
            .with_context(|| format!("unreadable {line}"))
    };
    Ok(Latency {
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        rate: number_after(&text, "Requests/sec:")
            .with_context(|| format!("no rate in wrk output:\n{text}"))?,
    })
}

/// `1.23ms`, `870.00us`, `1.02s` in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    for (unit, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)] {
        if let Some(number) = text.strip_suffix(unit) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    None
}

pub(crate) struct PgLatency {
    pub mean_ms: f64,
    pub rate: f64,
}

pub(crate) fn pgbench_latency(
    db: &DatabaseUrl,
    script: &Path,
    clients: u32,
    seconds: u32,
) -> anyhow::Result<PgLatency> {
    let text = pgbench_output(db, script, clients, seconds)?;
    Ok(PgLatency {
        mean_ms: number_after(&text, "latency average = ")
            .with_context(|| format!("no latency in pgbench output:\n{text}"))?,
        rate: number_after(&text, "tps = ")
            .with_context(|| format!("no tps in pgbench output:\n{text}"))?,
    })
}
