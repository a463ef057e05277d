//! `cargo xtask demo` (SPEC §10): against a running `serve --dev`, stores the
//! project's fixtures and `--issues N` generated Jira issues and GitHub pull
//! requests through the API, processes them, shows progress while it waits,
//! and ends with a summary table and the dashboard's address.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// What to run against.
pub(crate) struct DemoOptions {
    pub url: String,
    pub token: String,
    pub issues: u32,
    pub timeout: Duration,
}

const JIRA: &str = "jira_issues";
const GITHUB: &str = "github_prs";
/// Records per `store-batch` request (the API takes up to 1000).
const STORE_BATCH: usize = 250;

pub(crate) fn run(root: &Path, options: DemoOptions) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(demo(root, options))
}

struct Api {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        answer(response, path).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        answer(response, path).await
    }
}

async fn answer(response: reqwest::Response, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("no detail");
        if status.as_u16() == 401 {
            bail!("{path}: the token was refused ({detail}); use the token `serve --dev` printed");
        }
        bail!("{path}: {status}: {detail}");
    }
    Ok(body)
}

async fn demo(root: &Path, options: DemoOptions) -> anyhow::Result<()> {
    let url = options.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let ready = client
        .get(format!("{url}/ready"))
        .send()
        .await
        .with_context(|| {
            format!("{url} does not answer: start `cargo run -p etl-server -- serve --dev` first")
        })?;
    if !ready.status().is_success() {
        bail!(
            "{url}/ready answers {}: {}",
            ready.status(),
            ready.text().await.unwrap_or_default()
        );
    }
    let api = Api {
        client,
        url: url.clone(),
        token: options.token,
    };
    let (jira, github) = demo_integrations(&api).await?;

    let mut records = fixtures(root, jira, github)?;
    let fixture_count = records.len();
    let mut rng = StdRng::seed_from_u64(u64::from(options.issues));
    for i in 0..options.issues {
        records.push(generated_issue(&mut rng, jira, i));
        records.push(generated_pull_request(&mut rng, github, i));
    }
    let stored_by_type = count_by_type(&records);
    println!(
        "storing {} records: {fixture_count} from tests/fixtures, {} generated issues and {} pull requests",
        records.len(),
        options.issues,
        options.issues
    );
    let before = api.get("/api/v1/etl/stats").await?;

    let bar = progress(records.len() as u64, "stored");
    let started = Instant::now();
    for chunk in records.chunks(STORE_BATCH) {
        api.post(
            "/api/v1/etl/raw-data/store-batch",
            &json!({ "records": chunk }),
        )
        .await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let store_seconds = started.elapsed().as_secs_f64();

    let processing = Instant::now();
    for entity_type in [JIRA, GITHUB] {
        api.post(
            "/api/v1/etl/pipeline/process",
            &json!({"entity_type": entity_type, "batch_size": 500}),
        )
        .await?;
    }
    let target: u64 = stored_by_type.values().sum();
    let bar = progress(target, "processed");
    let deadline = Instant::now() + options.timeout;
    let after = loop {
        let now = api.get("/api/v1/etl/stats").await?;
        let done: u64 = [JIRA, GITHUB]
            .iter()
            .map(|t| finished(&now, t).saturating_sub(finished(&before, t)))
            .sum();
        bar.set_position(done.min(target));
        if done >= target {
            break now;
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!(
                "gave up after {} s with {done} of {target} records processed; is a worker running (serve runs one)?",
                options.timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    bar.finish();
    let process_seconds = processing.elapsed().as_secs_f64().max(0.001);

    let mut table = Table::new();
    table.set_header(["entity type", "stored", "loaded", "failed", "rows / s"]);
    for entity_type in [JIRA, GITHUB] {
        let loaded = status_count(&after, entity_type, "completed").saturating_sub(status_count(
            &before,
            entity_type,
            "completed",
        ));
        let failed = status_count(&after, entity_type, "failed").saturating_sub(status_count(
            &before,
            entity_type,
            "failed",
        ));
        table.add_row([
            entity_type.to_owned(),
            stored_by_type
                .get(entity_type)
                .copied()
                .unwrap_or(0)
                .to_string(),
            loaded.to_string(),
            failed.to_string(),
            format!("{:.0}", loaded as f64 / process_seconds),
        ]);
    }
    println!("\n{table}");
    let failures = new_failures(&before, &after);
    if !failures.is_empty() {
        let mut by_code = Table::new();
        by_code.set_header(["entity type", "error code", "failed", "sample"]);
        for ((entity_type, code), (count, sample)) in failures {
            by_code.add_row([entity_type, code, count.to_string(), sample]);
        }
        println!("\nfailed by error code\n{by_code}");
    }
    println!(
        "\nstored in {store_seconds:.1} s ({:.0} records/s), processed in {process_seconds:.1} s",
        records.len() as f64 / store_seconds.max(0.001)
    );
    println!("dashboard: {url}/dashboard (paste the same token)");
    Ok(())
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what:>9} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The demo tenant's Jira and GitHub integrations, as `serve --dev` seeded
/// them, read from the database the server uses (`DATABASE_URL`, the same
/// default): the API has no route listing integrations. The token must be
/// the demo tenant's.
async fn demo_integrations(api: &Api) -> anyhow::Result<(i32, i32)> {
    let database =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| crate::DEFAULT_DATABASE_URL.to_owned());
    let seed = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut conn = etl_store::connect(&database)
            .with_context(|| format!("DATABASE_URL {database}: cannot connect"))?;
        Ok(etl_store::seed::ensure_demo(&mut conn)?)
    })
    .await??;
    let claimed = token_tenant(&api.token);
    if claimed != Some(seed.tenant.id) {
        bail!(
            "the token acts for tenant {}, but the demo tenant of this database is {}; use the token `serve --dev` printed",
            claimed.map_or("?".to_owned(), |t| t.to_string()),
            seed.tenant.id
        );
    }
    Ok((seed.jira.id, seed.github.id))
}

/// The `tenant_id` claim of a JWT (not verified: the server does that).
fn token_tenant(token: &str) -> Option<i32> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    i32::try_from(claims["tenant_id"].as_i64()?).ok()
}

/// Every object of `tests/fixtures/{jira,github}` as a store request.
fn fixtures(root: &Path, jira: i32, github: i32) -> anyhow::Result<Vec<Value>> {
    let mut records = Vec::new();
    for (dir, entity_type, integration) in [("jira", JIRA, jira), ("github", GITHUB, github)] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join("tests/fixtures").join(dir))
            .with_context(|| format!("reading tests/fixtures/{dir}"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let objects = match value {
                Value::Array(items) => items,
                Value::Object(ref o) if o.get("issues").is_some_and(Value::is_array) => {
                    o["issues"].as_array().cloned().unwrap_or_default()
                }
                other => vec![other],
            };
            for raw in objects {
                let external_id = match &raw["id"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                records.push(
                    json!({"integration_id": integration, "entity_type": entity_type,
                                    "external_id": external_id, "raw_data": raw}),
                );
            }
        }
    }
    Ok(records)
}

const WORDS: &[&str] = &[
    "basket", "checkout", "invoice", "search", "login", "export", "report", "cache", "timeout",
    "currency", "rounding", "webhook", "retry", "upload", "avatar", "billing", "refund", "queue",
];
const PEOPLE: &[(&str, &str)] = &[
    ("dana", "Dana Developer"),
    ("quinn", "Quinn QA"),
    ("sam", "Sam Support"),
    ("lee", "Lee Lead"),
    ("ari", "Ari Architect"),
];
const STATUSES: &[(&str, &str)] = &[
    ("To Do", "new"),
    ("In Progress", "indeterminate"),
    ("In Review", "indeterminate"),
    ("Done", "done"),
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn title(rng: &mut StdRng) -> String {
    let verb = pick(
        rng,
        &["Fix", "Speed up", "Handle", "Log", "Validate", "Refactor"],
    );
    format!("{verb} {} {}", pick(rng, WORDS), pick(rng, WORDS))
}

/// `days_ago` days back, plus `minutes`, in `format` (Jira and GitHub
/// spell their times differently).
fn timestamp(format: &str, days_ago: i64, minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days_ago) + chrono::Duration::minutes(minutes))
        .format(format)
        .to_string()
}

const JIRA_TIME: &str = "%Y-%m-%dT%H:%M:%S%.3f+0000";
const GITHUB_TIME: &str = "%Y-%m-%dT%H:%M:%SZ";

fn generated_issue(rng: &mut StdRng, integration: i32, i: u32) -> Value {
    let id = (900_000 + i).to_string();
    let (status, category) = *pick(rng, STATUSES);
    let (assignee, assignee_name) = *pick(rng, PEOPLE);
    let (reporter, reporter_name) = *pick(rng, PEOPLE);
    let created = rng.gen_range(1..90);
    let points = [1, 2, 3, 5, 8, 13][rng.gen_range(0..6)];
    let raw = json!({
        "id": id,
        "key": format!("DEMO-{}", i + 1),
        "fields": {
            "summary": title(rng),
            "description": format!("Seen by {reporter_name} on {}.", pick(rng, WORDS)),
            "project": {"key": "DEMO", "name": "Demo"},
            "issuetype": {"name": *pick(rng, &["Story", "Bug", "Task"]), "subtask": false},
            "status": {"name": status, "statusCategory": {"key": category}},
            "priority": {"name": *pick(rng, &["Minor", "Major", "Critical"])},
            "assignee": {"name": assignee, "displayName": assignee_name},
            "reporter": {"name": reporter, "displayName": reporter_name},
            "labels": [*pick(rng, WORDS)],
            "created": timestamp(JIRA_TIME, created, 0),
            "updated": timestamp(JIRA_TIME, created, rng.gen_range(10..5000)),
            "customfield_10016": points,
        }
    });
    json!({"integration_id": integration, "entity_type": JIRA, "external_id": id, "raw_data": raw})
}

fn generated_pull_request(rng: &mut StdRng, integration: i32, i: u32) -> Value {
    let id = 800_000 + i64::from(i);
    let (login, _) = *pick(rng, PEOPLE);
    let created = rng.gen_range(1..60);
    let state = *pick(rng, &["open", "closed", "merged"]);
    let sha: String = (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect();
    let closed = (state != "open").then(|| timestamp(GITHUB_TIME, created, 600));
    let branch = format!("feature/{}-{i}", pick(rng, WORDS));
    let raw = json!({
        "id": id,
        "number": i + 1,
        "state": if state == "merged" { "closed" } else { state },
        "title": title(rng),
        "draft": false,
        "user": {"login": login},
        "base": {"ref": "main", "repo": {"full_name": "demo/shop"}},
        "head": {"ref": branch, "sha": sha, "repo": {"full_name": "demo/shop"}},
        "created_at": timestamp(GITHUB_TIME, created, 0),
        "updated_at": timestamp(GITHUB_TIME, created, 700),
        "closed_at": closed.clone(),
        "merged_at": if state == "merged" { closed } else { None },
    });
    json!({"integration_id": integration, "entity_type": GITHUB,
           "external_id": id.to_string(), "raw_data": raw})
}

fn count_by_type(records: &[Value]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for record in records {
        let entity_type = record["entity_type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *counts.entry(entity_type).or_insert(0) += 1;
    }
    counts
}

fn status_count(stats: &Value, entity_type: &str, status: &str) -> u64 {
    stats["raw_records"][entity_type][status]
        .as_u64()
        .unwrap_or(0)
}

fn finished(stats: &Value, entity_type: &str) -> u64 {
    ["completed", "failed", "skipped"]
        .iter()
        .map(|s| status_count(stats, entity_type, s))
        .sum()
}

/// Failure groups that grew during the demo: (entity type, code) → (new
/// failures, sample message).
fn new_failures(before: &Value, after: &Value) -> BTreeMap<(String, String), (u64, String)> {
    let groups = |stats: &Value| -> BTreeMap<(String, String), (u64, String)> {
        stats["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                (
                    (
                        g["entity_type"].as_str().unwrap_or_default().to_owned(),
                        g["code"].as_str().unwrap_or("(no code)").to_owned(),
                    ),
                    (
                        g["count"].as_u64().unwrap_or(0),
                        g["sample"].as_str().unwrap_or_default().to_owned(),
                    ),
                )
            })
            .collect()
    };
    let was = groups(before);
    groups(after)
        .into_iter()
        .filter_map(|(key, (count, sample))| {
            let grew = count.saturating_sub(was.get(&key).map_or(0, |g| g.0));
            (grew > 0).then_some((key, (grew, sample)))
        })
        .collect()
}
