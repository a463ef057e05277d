//! `cargo xtask demo` (SPEC §10): against a running `serve --dev`, stores the
//! project's fixtures and `--issues N` generated Jira issues (with their
//! changelogs: status walks through a real workflow, assignee and priority
//! changes; some issues' changelogs truncated and completed through the
//! changelog endpoint's records), the statuses they use, and GitHub pull
//! requests, through the API; processes them, shows progress while it
//! waits, and ends with a summary table and the dashboard's address.

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
const JIRA_CHANGELOGS: &str = "jira_issue_changelogs";
const JIRA_STATUSES: &str = "jira_statuses";
const GITHUB: &str = "github_prs";
const GITHUB_COMMITS: &str = "github_pr_commits";
const GITHUB_REVIEWS: &str = "github_pr_reviews";
/// Every entity type the demo stores, in the order it asks for processing
/// (any order gives the same tables).
const ENTITY_TYPES: [&str; 6] = [
    JIRA_STATUSES,
    JIRA,
    JIRA_CHANGELOGS,
    GITHUB,
    GITHUB_COMMITS,
    GITHUB_REVIEWS,
];
/// Reviewers that are bots: their reviews count for no pull request's
/// first review.
const BOTS: &[&str] = &["dependabot[bot]", "github-actions[bot]"];
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
    records.extend(generated_statuses(jira));
    let mut histories = 0;
    for i in 0..options.issues {
        let (issue, later) = generated_issue(&mut rng, jira, i);
        histories += issue["raw_data"]["changelog"]["total"]
            .as_u64()
            .unwrap_or(0);
        records.push(issue);
        records.extend(later);
        records.extend(generated_pull_request(&mut rng, github, i));
    }
    let stored_by_type = count_by_type(&records);
    println!(
        "storing {} records: {fixture_count} from tests/fixtures, {} generated issues with {histories} changelog histories, {} statuses and {} pull requests with {} commits and {} reviews",
        records.len(),
        options.issues,
        STATUSES.len(),
        options.issues,
        records.iter().filter(|r| r["entity_type"] == GITHUB_COMMITS).count(),
        records.iter().filter(|r| r["entity_type"] == GITHUB_REVIEWS).count(),
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
    for entity_type in ENTITY_TYPES {
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
        let done: u64 = ENTITY_TYPES
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
    for entity_type in ENTITY_TYPES {
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

/// Every object of `tests/fixtures/<folder>` as a store request: `jira`
/// and `github` hold issues and pull requests, `jira_statuses` the status
/// list, `jira_issue_changelogs/issue-<id>.json` a changelog page of issue
/// `<id>`.
fn fixtures(root: &Path, jira: i32, github: i32) -> anyhow::Result<Vec<Value>> {
    let mut records = Vec::new();
    for (dir, entity_type, integration) in [
        ("jira", JIRA, jira),
        ("jira_statuses", JIRA_STATUSES, jira),
        ("jira_issue_changelogs", JIRA_CHANGELOGS, jira),
        ("github", GITHUB, github),
        ("github_pr_commits", GITHUB_COMMITS, github),
        ("github_pr_reviews", GITHUB_REVIEWS, github),
    ] {
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
                Value::Object(ref o) if o.get("values").is_some_and(Value::is_array) => {
                    o["values"].as_array().cloned().unwrap_or_default()
                }
                other => vec![other],
            };
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default();
            let issue_id = stem.strip_prefix("issue-").map(str::to_owned);
            // pull-<owner>+<repo>+<number>.json: a pull request's children.
            let pull: Option<Value> = stem.strip_prefix("pull-").and_then(|rest| {
                let parts: Vec<&str> = rest.split('+').collect();
                match parts[..] {
                    [owner, repo, number] => number.parse::<i64>().ok().map(
                        |n| json!({"repository": format!("{owner}/{repo}"), "pull_number": n}),
                    ),
                    _ => None,
                }
            });
            for raw in objects {
                let mut record = json!({"integration_id": integration, "entity_type": entity_type,
                                        "raw_data": raw});
                if entity_type == JIRA_CHANGELOGS {
                    record["extraction_metadata"] = json!({ "issue_id": issue_id });
                } else if entity_type == GITHUB_COMMITS || entity_type == GITHUB_REVIEWS {
                    record["extraction_metadata"] = pull.clone().unwrap_or(Value::Null);
                } else if let Some(id) = external_id(&record["raw_data"]["id"]) {
                    record["external_id"] = json!(id);
                }
                records.push(record);
            }
        }
    }
    Ok(records)
}

fn external_id(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
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
/// The demo site's workflow: (id, name, category) as `GET
/// /rest/api/2/status` lists them.
const STATUSES: &[(&str, &str, &str)] = &[
    ("10000", "To Do", "new"),
    ("3", "In Progress", "indeterminate"),
    ("10002", "In Review", "indeterminate"),
    ("10001", "Done", "done"),
];
const PRIORITIES: &[(&str, &str)] = &[("4", "Minor"), ("3", "Major"), ("2", "Critical")];

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

fn generated_statuses(integration: i32) -> Vec<Value> {
    STATUSES
        .iter()
        .map(|(id, name, category)| {
            json!({"integration_id": integration, "entity_type": JIRA_STATUSES, "external_id": id,
                   "raw_data": {"self": format!("https://demo.atlassian.net/rest/api/2/status/{id}"),
                                "id": id, "name": name, "description": "",
                                "statusCategory": {"key": category, "name": name}}})
        })
        .collect()
}

fn person(login: &str, name: &str) -> Value {
    json!({"name": login, "key": login, "displayName": name, "active": true})
}

/// A generated issue with its changelog, and (for about one in eight,
/// whose embedded changelog holds only its first histories, as Jira cuts
/// long ones) the rest as records of the changelog endpoint.
fn generated_issue(rng: &mut StdRng, integration: i32, i: u32) -> (Value, Vec<Value>) {
    let id = (900_000 + i).to_string();
    let (assignee, assignee_name) = *pick(rng, PEOPLE);
    let (reporter, reporter_name) = *pick(rng, PEOPLE);
    let created_days_ago = rng.gen_range(5..90);
    let mut minute = 0;
    let mut histories = Vec::new();
    let mut history = |rng: &mut StdRng, minute: i64, items: Vec<Value>| {
        let (login, name) = *pick(rng, PEOPLE);
        histories.push(json!({
            "id": format!("{}{:02}", 900_000 + i, histories.len()),
            "author": person(login, name),
            "created": timestamp(JIRA_TIME, created_days_ago, minute),
            "items": items,
        }));
    };
    let status_move = |from: usize, to: usize| {
        json!({"field": "status", "fieldtype": "jira", "from": STATUSES[from].0, "fromString": STATUSES[from].1,
               "to": STATUSES[to].0, "toString": STATUSES[to].1})
    };
    // To Do → In Progress → (In Review → In Progress)* → In Review → Done,
    // stopping anywhere along the way; an assignee or priority change now
    // and then.
    let steps = rng.gen_range(0..7);
    // Each step takes at most a tenth of the issue's age: it ends before now.
    let step_minutes = created_days_ago * 1440 / 10;
    let mut status = 0;
    for step in 0..steps {
        minute += rng.gen_range(30..step_minutes);
        let next = match (status, step) {
            (0, _) => 1,
            (1, _) => 2,
            (2, _) if rng.gen_bool(0.35) => 1,
            (2, _) => 3,
            _ => break,
        };
        let mut items = vec![status_move(status, next)];
        if next == 3 {
            items.push(
                json!({"field": "resolution", "fieldtype": "jira", "from": null, "fromString": null,
                              "to": "10000", "toString": "Done"}),
            );
        }
        history(rng, minute, items);
        status = next;
        if rng.gen_bool(0.3) {
            minute += rng.gen_range(5..step_minutes / 4);
            let (to, to_name) = *pick(rng, PEOPLE);
            history(
                rng,
                minute,
                vec![
                    json!({"field": "assignee", "fieldtype": "jira", "from": assignee,
                            "fromString": assignee_name, "to": to, "toString": to_name}),
                ],
            );
        }
        if rng.gen_bool(0.15) {
            minute += rng.gen_range(5..step_minutes / 4);
            let (from, from_name) = *pick(rng, PRIORITIES);
            let (to, to_name) = *pick(rng, PRIORITIES);
            history(
                rng,
                minute,
                vec![
                    json!({"field": "priority", "fieldtype": "jira", "from": from,
                            "fromString": from_name, "to": to, "toString": to_name}),
                ],
            );
        }
        if status == 3 {
            break;
        }
    }
    let (status_id, status_name, category) = STATUSES[status];
    let resolved = (status == 3).then(|| timestamp(JIRA_TIME, created_days_ago, minute));
    let total = histories.len();
    let embedded = if total > 3 && rng.gen_bool(0.125) {
        total - 2
    } else {
        total
    };
    let later: Vec<Value> = histories[embedded..]
        .iter()
        .map(|h| {
            json!({"integration_id": integration, "entity_type": JIRA_CHANGELOGS, "raw_data": h,
                   "extraction_metadata": {"issue_id": id}})
        })
        .collect();
    histories.truncate(embedded);
    let points = [1, 2, 3, 5, 8, 13][rng.gen_range(0..6)];
    let raw = json!({
        "id": id,
        "key": format!("DEMO-{}", i + 1),
        "fields": {
            "summary": title(rng),
            "description": format!("Seen by {reporter_name} on {}.", pick(rng, WORDS)),
            "project": {"key": "DEMO", "name": "Demo"},
            "issuetype": {"name": *pick(rng, &["Story", "Bug", "Task"]), "subtask": false},
            "status": {"id": status_id, "name": status_name, "statusCategory": {"key": category}},
            "priority": {"name": *pick(rng, &["Minor", "Major", "Critical"])},
            "assignee": person(assignee, assignee_name),
            "reporter": person(reporter, reporter_name),
            "labels": [*pick(rng, WORDS)],
            "created": timestamp(JIRA_TIME, created_days_ago, 0),
            "updated": timestamp(JIRA_TIME, created_days_ago, minute + 1),
            "resolutiondate": resolved,
            "customfield_10016": points,
        },
        "changelog": {"startAt": 0, "maxResults": embedded, "total": total, "histories": histories},
    });
    (
        json!({"integration_id": integration, "entity_type": JIRA, "external_id": id, "raw_data": raw}),
        later,
    )
}

fn sha(rng: &mut StdRng) -> String {
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A generated pull request (delivering issue DEMO-{i+1}, named in its
/// title or branch or not at all), its commits (authored before it was
/// opened) and its reviews (after; bots' and the author's own among them).
fn generated_pull_request(rng: &mut StdRng, integration: i32, i: u32) -> Vec<Value> {
    let id = 800_000 + i64::from(i);
    let number = i + 1;
    let (login, _) = *pick(rng, PEOPLE);
    // At least six days ago: reviews and the merge (five days at most
    // after opening) lie in the past.
    let created = rng.gen_range(6..40);
    let state = *pick(rng, &["open", "closed", "merged", "merged", "merged"]);
    let head = sha(rng);
    let key = format!("DEMO-{}", i + 1);
    let (title, branch) = match rng.gen_range(0..4) {
        0 => (
            format!("{key}: {}", title(rng)),
            format!("feature/{}-{i}", pick(rng, WORDS)),
        ),
        1 => (title(rng), format!("feature/{key}-{}", pick(rng, WORDS))),
        2 => (format!("{} ({key})", title(rng)), format!("fix/{key}")),
        _ => (title(rng), format!("chore/{}-{i}", pick(rng, WORDS))),
    };
    // Minutes after opening: first review, then the merge.
    let review_after = rng.gen_range(20..3 * 1440);
    let merged_after = review_after + rng.gen_range(30..2 * 1440);
    let closed = (state != "open").then(|| timestamp(GITHUB_TIME, created, merged_after));
    let raw = json!({
        "id": id,
        "number": number,
        "state": if state == "merged" { "closed" } else { state },
        "title": title,
        "body": format!("Changes {} handling.", pick(rng, WORDS)),
        "html_url": format!("https://github.com/demo/shop/pull/{number}"),
        "merge_commit_sha": (state == "merged").then(|| sha(rng)),
        "draft": false,
        "user": {"login": login},
        "base": {"ref": "main", "repo": {"full_name": "demo/shop"}},
        "head": {"ref": branch, "sha": head, "repo": {"full_name": "demo/shop"}},
        "created_at": timestamp(GITHUB_TIME, created, 0),
        "updated_at": timestamp(GITHUB_TIME, created, merged_after + 1),
        "closed_at": closed.clone(),
        "merged_at": if state == "merged" { closed } else { None },
    });
    let parent = json!({"repository": "demo/shop", "pull_number": number});
    let mut records = vec![json!({"integration_id": integration, "entity_type": GITHUB,
                                  "external_id": id.to_string(), "raw_data": raw})];
    // Coding started up to three days before the pull request was opened.
    let mut authored = -rng.gen_range(10..3 * 1440);
    for _ in 0..rng.gen_range(1..=5) {
        let commit = sha(rng);
        let at = timestamp(GITHUB_TIME, created, authored);
        records.push(json!({"integration_id": integration, "entity_type": GITHUB_COMMITS,
            "external_id": commit, "extraction_metadata": parent,
            "raw_data": {"sha": commit, "author": {"login": login},
                         "commit": {"author": {"name": login, "email": format!("{login}@demo.example"), "date": at},
                                    "committer": {"name": login, "email": format!("{login}@demo.example"), "date": at},
                                    "message": format!("{} {}", pick(rng, WORDS), pick(rng, WORDS))}}}));
        authored += rng.gen_range(5..240);
    }
    let mut at = review_after;
    for n in 0..rng.gen_range(0..=3) {
        let reviewer = match rng.gen_range(0..6) {
            0 => *pick(rng, BOTS),
            1 => login,
            _ => pick(rng, PEOPLE).0,
        };
        let review_state = if n == 0 {
            "COMMENTED"
        } else {
            *pick(rng, &["APPROVED", "CHANGES_REQUESTED", "COMMENTED"])
        };
        let review_id = 700_000_000 + i64::from(i) * 10 + i64::from(n);
        records.push(
            json!({"integration_id": integration, "entity_type": GITHUB_REVIEWS,
            "external_id": review_id.to_string(), "extraction_metadata": parent,
            "raw_data": {"id": review_id, "user": {"login": reviewer}, "state": review_state,
                         "body": "", "submitted_at": timestamp(GITHUB_TIME, created, at),
                         "commit_id": head}}),
        );
        at += rng.gen_range(10..600);
    }
    records
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
