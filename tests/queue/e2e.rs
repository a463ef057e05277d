//! End to end: raw API responses stored through the API, processed through
//! RabbitMQ by the real transform and load handlers, and checked in the
//! final tables. Runs over the project's own fixtures always, and over
//! `../shared/fixtures` when that folder is present.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etl_domain::transform::{self, jira::CustomFieldMappings, IntegrationSettings, Source};
use etl_tests::{json, poll_until};
use serde_json::{json, Value};

use crate::harness::{Harness, Mode};

const STORY_POINTS_FIELD: &str = "customfield_10024";

/// Every object of every JSON file under `dir/kind`: a file holds an
/// object, an array, or an `{"issues": [...]}` envelope.
fn objects(dir: &Path, kind: &str) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(kind))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        let value: Value = serde_json::from_str(&text).expect("JSON fixture");
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let items = match value {
            Value::Array(items) => items,
            Value::Object(ref object) if object.get("issues").is_some_and(Value::is_array) => {
                object["issues"].as_array().cloned().unwrap_or_default()
            }
            // A page of the changelog endpoint.
            Value::Object(ref object) if object.get("values").is_some_and(Value::is_array) => {
                object["values"].as_array().cloned().unwrap_or_default()
            }
            other => vec![other],
        };
        out.extend(items.into_iter().map(|item| (name.clone(), item)));
    }
    out
}

struct Stored {
    raw_ids: Vec<i64>,
    /// Distinct keys of the records the transformer accepts.
    valid_keys: std::collections::BTreeSet<String>,
    invalid: usize,
    /// The (changelog_id, item_index) of every change they carry.
    changes: std::collections::BTreeSet<(String, i64)>,
}

async fn store_all(
    h: &Harness,
    entity_type: &str,
    integration: i32,
    items: &[(String, Value)],
) -> Stored {
    let mut stored = Stored {
        raw_ids: Vec::new(),
        valid_keys: Default::default(),
        invalid: 0,
        changes: Default::default(),
    };
    let settings = IntegrationSettings {
        custom_fields: CustomFieldMappings {
            story_points: Some(STORY_POINTS_FIELD.to_owned()),
        },
        ..IntegrationSettings::default()
    };
    for chunk in items.chunks(200) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|(file, raw)| {
                json!({"integration_id": integration, "entity_type": entity_type, "raw_data": raw,
                       "extraction_metadata": metadata(file)})
            })
            .collect();
        let response = h
            .app
            .post_json(
                "/api/v1/etl/raw-data/store-batch",
                &h.tenant,
                &json!({"records": records}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body = json(response).await;
        stored.raw_ids.extend(
            body["record_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .filter_map(Value::as_i64),
        );
    }
    // What the service should make of them, by the domain's own entity.
    let kind = etl_domain::TransformerKind::parse(entity_type).expect("registered");
    for (file, raw) in items {
        let text = raw.to_string();
        let metadata = metadata(file).to_string();
        let source = Source {
            raw_data: &text,
            extraction_metadata: Some(&metadata),
            integration_id: integration,
            raw_data_id: None,
            settings: &settings,
        };
        match kind.entity().transform(&source) {
            Ok(rows) => {
                for row in rows {
                    let value: Value = serde_json::from_str(&row.text).expect("row");
                    if row.table == kind.entity().table() {
                        stored.valid_keys.insert(
                            value["external_id"]
                                .as_str()
                                .or(value["changelog_id"].as_str())
                                .or(value["sha"].as_str())
                                .unwrap_or_default()
                                .to_owned(),
                        );
                    }
                    if row.table == &transform::WORK_ITEM_CHANGES {
                        stored.changes.insert((
                            value["changelog_id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            value["item_index"].as_i64().unwrap_or_default(),
                        ));
                    }
                }
            }
            Err(_) => stored.invalid += 1,
        }
    }
    stored
}

/// A record's `extraction_metadata`: the file it came from and, for a
/// changelog page (`issue-<id>.json`), the issue it belongs to; for a
/// pull request's commits or reviews (`pull-<owner>+<repo>+<n>.json`), the
/// pull request.
fn metadata(file: &str) -> Value {
    let stem = file.strip_suffix(".json").unwrap_or(file);
    if let Some(issue_id) = stem.strip_prefix("issue-") {
        return json!({"file": file, "issue_id": issue_id});
    }
    if let Some(pull) = stem.strip_prefix("pull-") {
        let parts: Vec<&str> = pull.split('+').collect();
        if let [owner, repo, number] = parts[..] {
            let number: i64 = number.parse().expect("pull-<owner>+<repo>+<n>.json");
            return json!({"file": file, "repository": format!("{owner}/{repo}"), "pull_number": number});
        }
    }
    json!({ "file": file })
}

async fn process_and_wait(h: &Harness) {
    for entity_type in etl_domain::TransformerKind::names() {
        let response = h
            .app
            .post_json(
                "/api/v1/etl/pipeline/process",
                &h.tenant,
                &json!({"entity_type": entity_type, "batch_size": 7}),
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    let settled = poll_until(Duration::from_secs(60), || async {
        let busy = h.app.count(
            "SELECT (SELECT count(*) FROM raw_extraction_data WHERE processing_status IN ('pending', 'processing'))
                  + (SELECT count(*) FROM etl_job_queue WHERE status IN ('pending', 'queued', 'running'))",
        );
        (busy == 0).then_some(())
    })
    .await;
    assert!(settled.is_some(), "the pipeline settles");
    assert_eq!(
        h.app
            .count("SELECT count(*) FROM etl_job_queue WHERE status <> 'completed'"),
        0,
        "every job completed"
    );
}

async fn final_rows(h: &Harness, path: &str) -> Vec<Value> {
    json(
        h.app
            .get_as(&format!("/api/v1/etl/{path}?limit=1000"), &h.tenant)
            .await,
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

fn by_external_id<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["external_id"] == id)
        .unwrap_or_else(|| panic!("no row for {id}"))
}

async fn run_over(dir: &Path) -> (Harness, Vec<Value>, Vec<Value>) {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("e2e");
    let jira = h.tenant.integration;
    let settings = json!({"custom_field_mappings": {"story_points": STORY_POINTS_FIELD}});
    h.app.execute(&format!(
        "UPDATE integrations SET settings = '{settings}' WHERE id = {jira}"
    ));
    let github = h.app.create_integration(h.tenant.id, "github", true);
    let issues = objects(dir, "jira");
    let prs = objects(dir, "github");
    assert!(
        !issues.is_empty() && !prs.is_empty(),
        "fixtures in {}",
        dir.display()
    );
    let stored_issues = store_all(&h, "jira_issues", jira, &issues).await;
    let stored_prs = store_all(&h, "github_prs", github, &prs).await;
    let changelogs = objects(dir, "jira_issue_changelogs");
    let stored_changelogs = store_all(&h, "jira_issue_changelogs", jira, &changelogs).await;
    let statuses = objects(dir, "jira_statuses");
    let stored_statuses = store_all(&h, "jira_statuses", jira, &statuses).await;
    let commits = objects(dir, "github_pr_commits");
    let stored_commits = store_all(&h, "github_pr_commits", github, &commits).await;
    let reviews = objects(dir, "github_pr_reviews");
    let stored_reviews = store_all(&h, "github_pr_reviews", github, &reviews).await;
    process_and_wait(&h).await;

    let items = final_rows(&h, "work-items").await;
    let pulls = final_rows(&h, "pull-requests").await;
    let keys = |rows: &[Value]| -> std::collections::BTreeSet<String> {
        rows.iter()
            .map(|r| r["external_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        keys(&items),
        stored_issues.valid_keys,
        "one work item per valid issue"
    );
    assert_eq!(
        keys(&pulls),
        stored_prs.valid_keys,
        "one pull request per valid PR"
    );
    let failed = h
        .app
        .count("SELECT count(*) FROM raw_extraction_data WHERE processing_status = 'failed'");
    assert_eq!(
        failed as usize,
        stored_issues.invalid
            + stored_prs.invalid
            + stored_changelogs.invalid
            + stored_statuses.invalid
            + stored_commits.invalid
            + stored_reviews.invalid,
        "the broken ones failed"
    );
    assert_eq!(
        h.app.count("SELECT count(*) FROM pull_request_commits") as usize,
        stored_commits.valid_keys.len()
    );
    assert_eq!(
        h.app.count("SELECT count(*) FROM pull_request_reviews") as usize,
        stored_reviews.valid_keys.len()
    );
    // Every item of every history, embedded or standalone, once.
    let expected_changes: std::collections::BTreeSet<(String, i64)> = stored_issues
        .changes
        .iter()
        .chain(&stored_changelogs.changes)
        .cloned()
        .collect();
    assert_eq!(
        h.app.count("SELECT count(*) FROM work_item_changes") as usize,
        expected_changes.len(),
        "one change row per history item"
    );
    assert_eq!(
        h.app.count("SELECT count(*) FROM work_item_statuses") as usize,
        stored_statuses.valid_keys.len()
    );
    assert_eq!(
        h.app.count(
            "SELECT count(*) FROM raw_extraction_data WHERE processing_status = 'failed'
               AND NOT (error_details ? 'code' AND error_details ? 'message' AND error_details ? 'field')"
        ),
        0,
        "each failure says {{code, message, field}}"
    );
    eprintln!(
        "{}: {} issues -> {} work items, {} PRs -> {} pull requests, {failed} failed",
        dir.display(),
        issues.len(),
        items.len(),
        prs.len(),
        pulls.len()
    );
    let all = stored_issues.raw_ids.len()
        + stored_prs.raw_ids.len()
        + stored_changelogs.raw_ids.len()
        + stored_statuses.raw_ids.len()
        + stored_commits.raw_ids.len()
        + stored_reviews.raw_ids.len();
    assert_eq!(
        h.app.count("SELECT count(*) FROM raw_extraction_data WHERE processing_status IN ('completed', 'failed')") as usize,
        all
    );

    // Storing and processing the same data again changes nothing.
    store_all(&h, "jira_issues", jira, &issues).await;
    store_all(&h, "github_prs", github, &prs).await;
    process_and_wait(&h).await;
    assert_eq!(
        final_rows(&h, "work-items").await,
        items,
        "work items unchanged"
    );
    assert_eq!(
        final_rows(&h, "pull-requests").await,
        pulls,
        "pull requests unchanged"
    );
    (h, items, pulls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projects_fixtures_flow_from_raw_to_final_tables() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let (h, items, pulls) = run_over(&dir).await;

    let story = by_external_id(&items, "20001");
    assert_eq!(story["key"], "SHOP-1");
    assert_eq!(story["project_key"], "SHOP");
    assert_eq!(story["status_category"], "indeterminate");
    assert_eq!(story["assignee"], "dana");
    assert_eq!(story["assignee_name"], "Dana Developer");
    assert_eq!(
        story["story_points"], 3.0,
        "a numeric string through the mapping"
    );
    assert_eq!(story["labels"], json!(["money"]));
    let subtask = by_external_id(&items, "20002");
    assert_eq!(subtask["parent_key"], "SHOP-1");
    assert_eq!(subtask["description"], "Use decimal amounts.");
    assert_eq!(subtask["status_category"], "done");
    assert_eq!(subtask["assignee"], Value::Null);
    assert_eq!(subtask["story_points"], 1.5);
    assert!(subtask["resolved_at"]
        .as_str()
        .is_some_and(|t| t.starts_with("2024-03-05T12:00:00")));

    // History (SPEC §7.1, §7.4): the embedded changelog held 2 of 3
    // histories, the changelog endpoint brought the third.
    let bug = by_external_id(&items, "10100");
    assert_eq!(bug["status_id"], "10001");
    assert_eq!(bug["changelog_complete"], true);
    // 2024-03-07T10:02:45.123Z − 2024-03-01T07:00:00Z, rounded down.
    assert_eq!(bug["lead_time_s"], 6 * 86_400 + 3 * 3_600 + 2 * 60 + 45);
    assert_eq!(bug["first_in_progress_at"], "2024-03-04T08:15:22.000000Z");
    assert_eq!(bug["cycle_time_s"], 3 * 86_400 + 3_600 + 47 * 60 + 23);
    let id = bug["id"].as_i64().expect("id");
    let detail = json(
        h.app
            .get_as(&format!("/api/v1/etl/work-items/{id}"), &h.tenant)
            .await,
    )
    .await;
    assert_eq!(detail["key"], "PAY-7");
    assert_eq!(detail["cycle_time_s"], bug["cycle_time_s"]);
    let moves: Vec<(&str, &str, &str)> = detail["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["from_string"].as_str().unwrap_or_default(),
                c["to_string"].as_str().unwrap_or_default(),
                c["changed_at"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("Open", "In Progress", "2024-03-04T08:15:22.000000Z"),
            ("In Progress", "Done", "2024-03-07T10:02:45.123000Z"),
        ],
        "its status changes, oldest first"
    );
    let assignments = json(
        h.app
            .get_as(
                "/api/v1/etl/work-item-changes?work_item_key=PAY-7&field=assignee",
                &h.tenant,
            )
            .await,
    )
    .await;
    assert_eq!(
        assignments,
        json!([{
            "id": assignments[0]["id"], "work_item_key": "PAY-7", "changelog_id": "20305",
            "item_index": 0, "field": "assignee", "field_type": "jira",
            "from_value": "alice", "from_string": "Alice Archer", "to_value": "bob",
            "to_string": "Bob Baker", "author": "alice", "author_name": "Alice Archer",
            "changed_at": "2024-03-05T15:40:00.000000Z"
        }])
    );
    let stranger = h.app.tenant("stranger");
    assert_eq!(
        h.app
            .get_as(&format!("/api/v1/etl/work-items/{id}"), &stranger)
            .await
            .status(),
        404
    );
    assert_eq!(
        json(
            h.app
                .get_as("/api/v1/etl/work-item-changes", &stranger)
                .await
        )
        .await,
        json!([])
    );

    // A real Jira issue (apache/incubator-devlake's test data) whose summary
    // ends in U+0000: stored without it, the place listed, and loaded.
    let nul = by_external_id(&items, "10066");
    assert_eq!(nul["key"], "EE-4");
    assert_eq!(nul["summary"], "\u{200b}问题分布的帕累托图");
    let raw_id = h
        .app
        .count("SELECT max(id)::int8 FROM raw_extraction_data WHERE raw_data->>'key' = 'EE-4'");
    let record = json(
        h.app
            .get_as(&format!("/api/v1/etl/raw-data/{raw_id}"), &h.tenant)
            .await,
    )
    .await;
    assert_eq!(
        record["ingest_changes"],
        json!([{"field": "raw_data.fields.summary", "change": "removed_nul"}])
    );
    assert_eq!(record["processing_status"], "completed");

    let merged = by_external_id(&pulls, "30001");
    assert_eq!(merged["state"], "merged");
    assert_eq!(merged["author"], "dependabot[bot]");
    assert_eq!(merged["repository"], "acme/shop");
    assert_eq!(merged["additions"], 12);
    // Pull-request depth (SPEC §7.2–§7.3): its commits and reviews
    // arrived as records of their own.
    assert_eq!(merged["html_url"], "https://github.com/acme/shop/pull/7");
    assert_eq!(
        merged["merge_commit_sha"],
        "3333333333333333333333333333333333333333"
    );
    assert_eq!(merged["first_commit_at"], "2024-03-01T09:30:00.000000Z");
    // Not the bot's review (nor the author's): alice's.
    assert_eq!(merged["first_review_at"], "2024-03-01T14:00:00.000000Z");
    assert_eq!(merged["approved_at"], "2024-03-02T09:00:00.000000Z");
    assert_eq!(merged["coding_time_s"], 30 * 60);
    assert_eq!(merged["pickup_time_s"], 4 * 3_600);
    assert_eq!(merged["review_time_s"], 44 * 3_600);
    let pull_id = merged["id"].as_i64().expect("id");
    let detail = json(
        h.app
            .get_as(&format!("/api/v1/etl/pull-requests/{pull_id}"), &h.tenant)
            .await,
    )
    .await;
    let shas: Vec<&str> = detail["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["sha"].as_str())
        .collect();
    assert_eq!(
        shas,
        [
            "1111111111111111111111111111111111111111",
            "2222222222222222222222222222222222222222"
        ]
    );
    assert_eq!(detail["commits"][1]["author_login"], Value::Null);
    assert_eq!(detail["reviews"].as_array().map(Vec::len), Some(4));
    assert_eq!(detail["reviews"][3]["state"], "PENDING");
    assert_eq!(detail["reviews"][3]["submitted_at"], Value::Null);
    let shop_1 = by_external_id(&items, "20001")["id"].clone();
    assert_eq!(
        detail["work_items"],
        json!([
            {"work_item_key": "SHOP-1", "found_in": "body", "work_item_id": shop_1},
            {"work_item_key": "NOPE-9", "found_in": "body", "work_item_id": null},
        ])
    );
    assert_eq!(
        h.app
            .get_as(&format!("/api/v1/etl/pull-requests/{pull_id}"), &stranger)
            .await
            .status(),
        404
    );
    let open = by_external_id(&pulls, "30002");
    assert_eq!(open["state"], "open");
    assert_eq!(open["draft"], Value::Null);
    assert_eq!(open["commits"], Value::Null, "list items carry no counts");

    // An older copy leaves the row as it was; a newer one updates it.
    let github = h
        .app
        .count("SELECT min(id)::int8 FROM integrations WHERE provider = 'github'")
        as i32;
    let mut pr: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/github/merged-single.json"),
        )
        .expect("fixture"),
    )
    .expect("json");
    pr["title"] = json!("An old title");
    pr["updated_at"] = json!("2024-03-02T10:00:00Z");
    store_all(
        &h,
        "github_prs",
        github,
        &[("older".to_owned(), pr.clone())],
    )
    .await;
    process_and_wait(&h).await;
    assert_eq!(
        by_external_id(&final_rows(&h, "pull-requests").await, "30001")["title"],
        "Use decimal amounts"
    );
    pr["title"] = json!("A new title");
    pr["updated_at"] = json!("2024-03-09T10:00:00Z");
    store_all(&h, "github_prs", github, &[("newer".to_owned(), pr)]).await;
    process_and_wait(&h).await;
    assert_eq!(
        by_external_id(&final_rows(&h, "pull-requests").await, "30001")["title"],
        "A new title"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_fixtures_flow_from_raw_to_final_tables_when_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    if !dir.is_dir() {
        // The shared recordings live beside the checkout in CI; a clone
        // without them still runs the project's own fixtures above.
        eprintln!("{} is absent: nothing to check", dir.display());
        return;
    }
    let (h, items, pulls) = run_over(&dir).await;
    if items.iter().any(|r| r["key"] == "EE-2") {
        let ee2 = items.iter().find(|r| r["key"] == "EE-2").expect("EE-2");
        assert_eq!(ee2["story_points"], 2.0);
        let ee25 = items.iter().find(|r| r["key"] == "EE-25").expect("EE-25");
        assert_eq!(ee25["parent_key"], "EE-1");
        let k52 = items.iter().find(|r| r["key"] == "K5-2").expect("K5-2");
        assert_eq!(k52["assignee"], Value::Null);
    }
    if let Some(bot) = pulls.iter().find(|r| r["author"] == "dependabot[bot]") {
        assert_eq!(bot["state"], "merged");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_load_job_fails_for_good_its_raw_records_fail_too() {
    let mut h = Harness::start(Mode::Amqp).await;
    h.pipeline_worker("e2e");
    let github = h.app.create_integration(h.tenant.id, "github", true);
    let pr = json!({"id": 41, "number": 1, "state": "open", "base": {"repo": {"full_name": "acme/shop"}}});
    let stored = json(
        h.app
            .post_json(
                "/api/v1/etl/raw-data/store",
                &h.tenant,
                &json!({"integration_id": github, "entity_type": "github_prs", "raw_data": pr}),
            )
            .await,
    )
    .await;
    let raw_id = stored["record_id"].as_i64().expect("id");
    // A load job that can never run (no final table for its entity type),
    // written as a transform job would, with the record processing.
    h.app.execute(&format!(
        "UPDATE raw_extraction_data SET processing_status = 'processing' WHERE id = {raw_id}"
    ));
    let row = json!({"integration_id": github, "external_id": "41", "state": "open", "raw_data_id": raw_id});
    h.app.execute(&format!(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, max_retries)
         VALUES ({}, 'load', 'gitlab_mrs', '{}', 0)",
        h.tenant.id,
        json!({"transformed_data": [row]})
    ));
    let failed = poll_until(Duration::from_secs(20), || async {
        (h.app
            .count("SELECT count(*) FROM etl_job_queue WHERE status = 'failed'")
            == 1)
            .then_some(())
    })
    .await;
    assert!(failed.is_some(), "the load job fails");
    let record = json(
        h.app
            .get_as(&format!("/api/v1/etl/raw-data/{raw_id}"), &h.tenant)
            .await,
    )
    .await;
    let jobs = json(h.app.get_as("/api/v1/etl/jobs", &h.tenant).await).await;
    assert_eq!(record["processing_status"], "failed", "{jobs}");
    assert!(record["error_details"]["code"].is_string(), "{record}");
    h.stop().await;
}
