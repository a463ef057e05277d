//! `cargo xtask bench ingest`: the raw-data API's ingest speed beside
//! PostgreSQL's own limit for the same work, measured in one run.
//!
//! - single store: `wrk` POSTing one record per request at N connections,
//!   against `pgbench` running the same one-row INSERT (same JSON) per
//!   transaction at the same N;
//! - batch store: 1000-record batches over one connection, against `psql`
//!   `\copy` of the same 1000 rows over one connection;
//! - the server's peak RSS (VmHWM) under that load;
//! - hostile bodies of 16 MiB (many NULs, deep nesting): how long each is
//!   answered, and `/health` p50/p99 alone and while four are in flight.
//!
//! Needs `wrk`, `pgbench` and `psql` on PATH (Debian: `apt-get install wrk
//! postgresql-client`).

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{build_release_server, free_port, require_tools, with_scratch_database, EtlServer};
use etl_store::migrations::{self, DatabaseUrl};

pub struct IngestOptions {
    pub seconds: u32,
    pub connections: u32,
}

/// A realistic Jira issue (REST v3 shape), about 1.4 KB of JSON.
fn sample_issue(n: u64) -> serde_json::Value {
    serde_json::json!({
        "id": n.to_string(),
        "key": format!("BENCH-{n}"),
        "self": format!("https://example.atlassian.net/rest/api/3/issue/{n}"),
        "fields": {
            "summary": "Checkout page times out when the basket holds more than 50 items",
            "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "Steps: add 51 items, open checkout. Expected: page loads. Actual: 504 after 30 s. Seen on Chrome and Firefox; Grüße from QA ✓."}]}]},
            "issuetype": {"id": "10004", "name": "Bug", "subtask": false, "hierarchyLevel": 0},
            "project": {"id": "10000", "key": "BENCH", "name": "Bench project"},
            "status": {"id": "3", "name": "In Progress", "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"}},
            "priority": {"id": "2", "name": "High"},
            "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Dana Developer", "active": true, "timeZone": "Europe/Berlin"},
            "reporter": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Quinn QA", "active": true},
            "labels": ["checkout", "performance", "customer-reported"],
            "created": "2024-01-15T10:00:00.000+0000",
            "updated": "2024-02-01T16:45:12.345+0100",
            "resolutiondate": null,
            "customfield_10016": 5.0,
            "customfield_10020": [{"id": 12, "name": "Sprint 12", "state": "active"}],
            "customfield_10014": "BENCH-1",
            "components": [{"id": "10100", "name": "Web"}],
            "fixVersions": [{"id": "10200", "name": "2024.03"}],
            "watches": {"watchCount": 4, "isWatching": false},
            "comment": {"comments": [], "maxResults": 0, "total": 0, "startAt": 0}
        }
    })
}

pub fn ingest(root: &Path, options: &IngestOptions) -> anyhow::Result<()> {
    require_tools(&["wrk", "pgbench", "psql"])?;
    build_release_server(root)?;
    with_scratch_database("etl_bench", |db| run_ingest(root, options, db))
}

fn run_ingest(root: &Path, options: &IngestOptions, db_url: &DatabaseUrl) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db_url.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    let (tenant, integration) = (seed.tenant.id, seed.jira.id);
    let token = super::token(tenant);

    let work = std::env::temp_dir().join(format!("etl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let issue = sample_issue(10_001);
    let issue_text = serde_json::to_string(&issue)?;
    println!("record: a Jira issue of {} bytes of JSON", issue_text.len());

    // Bodies and scripts for both sides, holding the same JSON.
    let single_body = serde_json::json!({
        "integration_id": integration, "entity_type": "jira_issues",
        "external_id": "10001", "raw_data": issue,
    });
    let batch_body = serde_json::json!({
        "records": (0..1000).map(|i| serde_json::json!({
            "integration_id": integration, "entity_type": "jira_issues",
            "external_id": (20_000 + i).to_string(), "raw_data": sample_issue(20_000 + i),
        })).collect::<Vec<_>>()
    });
    std::fs::write(work.join("single.json"), single_body.to_string())?;
    std::fs::write(work.join("batch.json"), batch_body.to_string())?;
    for name in ["single", "batch"] {
        std::fs::write(
            work.join(format!("{name}.lua")),
            wrk_script(&work.join(format!("{name}.json")), &token),
        )?;
    }
    let sql_json = issue_text.replace('\'', "''");
    std::fs::write(
        work.join("insert.sql"),
        format!(
            "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data) \
             VALUES ({tenant}, {integration}, 'jira_issues', '10001', '{sql_json}');\n"
        ),
    )?;
    let mut copy_rows = String::new();
    for i in 0..1000_u64 {
        let json = serde_json::to_string(&sample_issue(20_000 + i))?;
        // COPY text format: backslashes doubled; the JSON has no tabs or newlines.
        let _ = writeln!(
            copy_rows,
            "{tenant}\t{integration}\tjira_issues\t{}\t{}",
            20_000 + i,
            json.replace('\\', "\\\\")
        );
    }
    std::fs::write(work.join("rows.tsv"), copy_rows)?;

    let port = free_port()?;
    let pool = options.connections.to_string();
    // No broker: ingest publishes nothing, and the bench touches no vhost
    // it did not make.
    let mut server = EtlServer::start(
        root,
        "serve",
        &[
            ("DATABASE_URL", db_url.as_str()),
            ("ETL_DB_POOL_SIZE", &pool),
            ("ETL_QUEUE", "postgres"),
        ],
        Some(port),
    )?;
    let base = format!("http://127.0.0.1:{port}");

    println!(
        "\nsingle-record store, {} connections, {} s each",
        options.connections, options.seconds
    );
    let api_single = wrk(
        &work.join("single.lua"),
        &format!("{base}/api/v1/etl/raw-data/store"),
        options.connections,
        options.seconds,
    )?;
    let pg_single = pgbench(
        db_url,
        &work.join("insert.sql"),
        options.connections,
        options.seconds,
    )?;

    println!(
        "1000-record batch store, 1 connection, {} s each",
        options.seconds
    );
    let api_batch = wrk(
        &work.join("batch.lua"),
        &format!("{base}/api/v1/etl/raw-data/store-batch"),
        1,
        options.seconds,
    )? * 1000.0;
    let copy_batch = psql_copy(db_url, &work.join("rows.tsv"), options.seconds)?;

    println!(
        "\nGET /raw-data?limit=100 over {READ_RECORDS} stored issues of ~2.6 KB, {READ_CONNECTIONS} connections, {} s each",
        options.seconds
    );
    fill_for_reads(db_url, tenant, integration, &issue)?;
    std::fs::write(work.join("read.lua"), wrk_get_script(&token))?;
    std::fs::write(
        work.join("read.sql"),
        format!(
            "SELECT id, entity_type, external_id, raw_data::text, processing_status, created_at \
               FROM raw_extraction_data WHERE tenant_id = {tenant} AND entity_type = '{READ_TYPE}' \
              ORDER BY id LIMIT 100;\n"
        ),
    )?;
    let api_read = wrk(
        &work.join("read.lua"),
        &format!("{base}/api/v1/etl/raw-data?entity_type={READ_TYPE}&limit=100"),
        READ_CONNECTIONS,
        options.seconds,
    )?;
    let pg_read = pgbench(
        db_url,
        &work.join("read.sql"),
        READ_CONNECTIONS,
        options.seconds,
    )?;

    let peak_rss_kib = server.peak_rss_kib();
    let hostile = hostile_bodies(&base, &token, integration, db_url)?;
    let hostile_rss_kib = server.peak_rss_kib();
    server.stop();
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "\n{:<34} {:>14} {:>14} {:>8}",
        "", "etl-server", "PostgreSQL", "ratio"
    );
    println!(
        "{:<34} {:>10.0} r/s {:>10.0} r/s {:>7.0}%   (target ≥ 100%)",
        "single store vs pgbench INSERT",
        api_single,
        pg_single,
        100.0 * api_single / pg_single
    );
    println!(
        "{:<34} {:>10.0} r/s {:>10.0} r/s {:>7.0}%   (target ≥ 50%)",
        "1000-record batch vs \\copy",
        api_batch,
        copy_batch,
        100.0 * api_batch / copy_batch
    );
    println!(
        "{:<34} {:>10.0} q/s {:>10.0} q/s {:>7.0}%   (target ≥ 70%)",
        "GET /raw-data (100) vs its SELECT",
        api_read,
        pg_read,
        100.0 * api_read / pg_read
    );
    match peak_rss_kib {
        Some(kib) => println!(
            "server peak RSS under load: {:.1} MiB (target < 64 MiB)",
            kib as f64 / 1024.0
        ),
        None => println!("server peak RSS: unavailable"),
    }
    println!(
        "\nhostile bodies of {:.1} MiB (SPEC §5: checked in linear time, off the HTTP workers)",
        HOSTILE_BYTES as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  NUL-heavy ({} NUL strings), stored: answered in {:.2} s (target < 2 s); \
         PostgreSQL parsing the same body without its NULs as jsonb: {:.2} s",
        hostile.nul_strings,
        hostile.nul_answer.as_secs_f64(),
        hostile.pg_parse.as_secs_f64()
    );
    println!(
        "  nested {} levels deep, refused: answered in {:.2} s (target < 2 s)",
        hostile.depth,
        hostile.deep_answer.as_secs_f64()
    );
    println!(
        "  GET /health while 4 such bodies are in flight: {} answers, p50 {:.1} ms, p99 {:.1} ms (target < 100 ms); \
         alone: p99 {:.1} ms",
        hostile.health_during.len(),
        percentile_ms(&hostile.health_during, 50.0),
        percentile_ms(&hostile.health_during, 99.0),
        percentile_ms(&hostile.health_alone, 99.0)
    );
    if let Some(kib) = hostile_rss_kib {
        println!(
            "  server peak RSS after them: {:.1} MiB (four bodies of 16 MiB are in memory at once)",
            kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// The size of each hostile body: just under the default
/// `ETL_MAX_BODY_BYTES`.
const HOSTILE_BYTES: usize = 16 * 1024 * 1024 - 1024;

struct Hostile {
    nul_strings: usize,
    nul_answer: Duration,
    pg_parse: Duration,
    depth: usize,
    deep_answer: Duration,
    health_alone: Vec<Duration>,
    health_during: Vec<Duration>,
}

/// A store body whose `raw_data` holds as many `"\u0000"` strings as fit.
fn nul_heavy_body(integration: i32) -> (String, usize) {
    let mut body = format!(
        r#"{{"integration_id":{integration},"entity_type":"jira_issues","raw_data":{{"labels":["#
    );
    let mut count = 0;
    while body.len() + 20 < HOSTILE_BYTES {
        body.push_str(r#""\u0000","#);
        count += 1;
    }
    body.push_str(r#""end"]}}"#);
    (body, count)
}

/// A store body whose `raw_data` nests arrays as deep as the size allows.
fn deeply_nested_body(integration: i32) -> (String, usize) {
    let head = format!(
        r#"{{"integration_id":{integration},"entity_type":"jira_issues","raw_data":{{"a":"#
    );
    let depth = (HOSTILE_BYTES - head.len()) / 2;
    (
        format!("{head}{}{}}}}}", "[".repeat(depth), "]".repeat(depth)),
        depth,
    )
}

fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Times one NUL-heavy and one deeply nested store, PostgreSQL's own parse
/// of the NUL-heavy body's JSON, then `/health` alone and while four such
/// bodies are in flight at once.
fn hostile_bodies(
    base: &str,
    token: &str,
    integration: i32,
    db: &DatabaseUrl,
) -> anyhow::Result<Hostile> {
    let (nul_body, nul_strings) = nul_heavy_body(integration);
    let (deep_body, depth) = deeply_nested_body(integration);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime
        .block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?;
            let store = format!("{base}/api/v1/etl/raw-data/store");
            let post = |body: String| {
                client
                    .post(&store)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
            };
            let started = Instant::now();
            let answer = post(nul_body.clone()).await?;
            let nul_answer = started.elapsed();
            if answer.status() != 201 {
                bail!("the NUL-heavy body was answered {}", answer.status());
            }
            let started = Instant::now();
            let answer = post(deep_body.clone()).await?;
            let deep_answer = started.elapsed();
            if answer.status() != 422 {
                bail!("the deeply nested body was answered {}", answer.status());
            }
            let health = |n: usize| {
                let client = client.clone();
                let url = format!("{base}/health");
                async move {
                    let mut samples = Vec::with_capacity(n);
                    for _ in 0..n {
                        let started = Instant::now();
                        let answer = client.get(&url).send().await?;
                        if !answer.status().is_success() {
                            bail!("/health answered {}", answer.status());
                        }
                        samples.push(started.elapsed());
                    }
                    Ok::<_, anyhow::Error>(samples)
                }
            };
            let health_alone = health(200).await?;
            // Four bodies in flight for the whole of the sampling: each sender
            // sends again as soon as it is answered.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut senders = Vec::new();
            for n in 0..4 {
                let body = if n % 2 == 0 {
                    nul_body.clone()
                } else {
                    deep_body.clone()
                };
                let (client, store, token, stop) = (
                    client.clone(),
                    store.clone(),
                    token.to_owned(),
                    stop.clone(),
                );
                senders.push(tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = client
                            .post(&store)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                    }
                }));
            }
            // Let all four reach the server before sampling.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let health_during = health(500).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for sender in senders {
                let _ = sender.await;
            }
            Ok::<_, anyhow::Error>((nul_answer, deep_answer, health_alone, health_during?))
        })
        .and_then(|(nul_answer, deep_answer, health_alone, health_during)| {
            let clean = nul_body.replace(r#""\u0000""#, r#""""#);
            let raw_data_start = clean.find(r#""raw_data":"#).map_or(0, |i| i + 11);
            let raw_data = &clean[raw_data_start..clean.len() - 1];
            let pg_parse = time_jsonb_parse(db, raw_data)?;
            Ok(Hostile {
                nul_strings,
                nul_answer,
                pg_parse,
                depth,
                deep_answer,
                health_alone,
                health_during,
            })
        })
}

/// How long PostgreSQL takes to parse `json` as `jsonb` and write it
/// back (a bound parameter, no table).
fn time_jsonb_parse(db: &DatabaseUrl, json: &str) -> anyhow::Result<Duration> {
    use diesel::RunQueryDsl as _;
    let mut conn = etl_store::connect(db.as_str())?;
    let started = Instant::now();
    diesel::sql_query("SELECT length(($1::jsonb)::text) IS NULL")
        .bind::<diesel::sql_types::Text, _>(json)
        .execute(&mut conn)?;
    Ok(started.elapsed())
}

/// Records the read comparison lists from (an entity type of its own).
const READ_RECORDS: u32 = 35_000;
const READ_CONNECTIONS: u32 = 8;
const READ_TYPE: &str = "jira_read_bench";

/// Stores `READ_RECORDS` copies of the issue, padded to about 2.6 KB, in
/// one statement (the read is measured, not this).
fn fill_for_reads(
    db: &DatabaseUrl,
    tenant: i32,
    integration: i32,
    issue: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut padded = issue.clone();
    padded["fields"]["environment"] = serde_json::Value::String("x".repeat(1200));
    let text = serde_json::to_string(&padded)?.replace('\'', "''");
    timed_psql(
        db,
        &format!(
            "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data)
             SELECT {tenant}, {integration}, '{READ_TYPE}', n::text, '{text}'::jsonb
               FROM generate_series(1, {READ_RECORDS}) AS n;
             ANALYZE raw_extraction_data;\n"
        ),
    )?;
    Ok(())
}

pub(super) fn wrk_get_script(token: &str) -> String {
    format!("wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n")
}

pub(super) fn wrk_script(body: &Path, token: &str) -> String {
    format!(
        "local f = assert(io.open(\"{}\", \"rb\"))\n\
         wrk.method = \"POST\"\n\
         wrk.body = f:read(\"*a\")\n\
         f:close()\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n",
        body.display()
    )
}

/// Requests per second reported by wrk; fails if any answer was not 2xx.
pub(super) fn wrk(script: &Path, url: &str, connections: u32, seconds: u32) -> anyhow::Result<f64> {
    let text = wrk_output(script, url, connections, seconds, &[])?;
    number_after(&text, "Requests/sec:").with_context(|| format!("no rate in wrk output:\n{text}"))
}

/// What `wrk` prints running `script` against `url` (with `extra`
/// arguments such as `--latency`); fails if any answer was not 2xx.
pub(super) fn wrk_output(
    script: &Path,
    url: &str,
    connections: u32,
    seconds: u32,
    extra: &[&str],
) -> anyhow::Result<String> {
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args(extra)
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!("the server refused requests under load: {}", line.trim());
    }
    Ok(text)
}

fn pgbench(db: &DatabaseUrl, script: &Path, clients: u32, seconds: u32) -> anyhow::Result<f64> {
    let text = pgbench_output(db, script, clients, seconds)?;
    number_after(&text, "tps = ").with_context(|| format!("no tps in pgbench output:\n{text}"))
}

/// What `pgbench` prints running `script` at `clients` for `seconds`.
pub(super) fn pgbench_output(
    db: &DatabaseUrl,
    script: &Path,
    clients: u32,
    seconds: u32,
) -> anyhow::Result<String> {
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(script)
        .arg(db.as_str())
        .output()
        .context("running pgbench")?;
    if !output.status.success() {
        bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Rows per second of `\copy` of the 1000-row file, repeated in one psql
/// session for about `seconds`.
fn psql_copy(db: &DatabaseUrl, rows: &Path, seconds: u32) -> anyhow::Result<f64> {
    let copy = format!(
        "\\copy raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data) FROM '{}'\n",
        rows.display()
    );
    // Calibrate with one copy, then run enough to fill the time.
    let one = timed_psql(db, &copy)?;
    let repeats = ((f64::from(seconds) / one.as_secs_f64()).ceil() as usize).clamp(1, 10_000);
    let elapsed = timed_psql(db, &copy.repeat(repeats))?;
    Ok(1000.0 * repeats as f64 / elapsed.as_secs_f64())
}

pub(super) fn timed_psql(db: &DatabaseUrl, script: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", db.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running psql")?;
    child
        .stdin
        .take()
        .context("psql stdin")?
        .write_all(script.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("psql failed");
    }
    Ok(started.elapsed())
}

pub(super) fn number_after(text: &str, label: &str) -> Option<f64> {
    let start = text.find(label)? + label.len();
    text[start..].split_whitespace().next()?.parse().ok()
}
