//! Pull-request depth through the real transform handler and a real
//! PostgreSQL (SPEC §7.2–§7.4): commits and reviews of their own, the
//! derived times exact to the second (bots and the author's own reviews
//! left out), links to work items found, resolved late, replaced on
//! reload, never across tenants, and order independence as a property.

mod support;

use etl_store::test_support::TestDatabase;
use etl_store::PgConnection;
use serde_json::{json, Value};
use support::{count, integration, query_json, site, store, transform, Record, Site};

/// A tenant with a Jira and a GitHub integration.
struct Tenant {
    jira: Site,
    github: Site,
}

fn tenant(conn: &mut PgConnection, name: &str, github_settings: Value) -> Tenant {
    let jira = site(conn, name);
    let github = Site {
        tenant: jira.tenant,
        integration: integration(conn, jira.tenant, "github", github_settings),
    };
    Tenant { jira, github }
}

const REPO: &str = "acme/shop";

fn pr(number: i32, title: &str, head_ref: &str, body: Option<&str>, author: &str) -> Value {
    json!({
        "id": 7000 + number, "number": number, "state": "closed", "title": title, "draft": false,
        "user": {"login": author, "type": "User"}, "body": body,
        "html_url": format!("https://github.com/{REPO}/pull/{number}"),
        "merge_commit_sha": "9999999999999999999999999999999999999999",
        "base": {"ref": "main", "repo": {"full_name": REPO}},
        "head": {"ref": head_ref, "sha": "8888888888888888888888888888888888888888"},
        "created_at": "2024-03-01T10:00:00Z", "updated_at": "2024-03-04T10:00:00Z",
        "closed_at": "2024-03-04T10:00:00Z", "merged_at": "2024-03-04T10:00:00Z"
    })
}

fn pr_record(raw: Value) -> Record {
    Record {
        entity_type: "github_prs",
        raw_data: raw,
        metadata: None,
    }
}

fn parent(number: i32) -> Option<Value> {
    Some(json!({"repository": REPO, "pull_number": number}))
}

fn commit(number: i32, sha: &str, authored: &str) -> Record {
    Record {
        entity_type: "github_pr_commits",
        raw_data: json!({
            "sha": sha, "author": {"login": "sam"},
            "commit": {"author": {"name": "Sam", "email": "sam@example.com", "date": authored},
                       "committer": {"name": "Sam", "email": "sam@example.com", "date": authored},
                       "message": format!("Work on #{number}")}
        }),
        metadata: parent(number),
    }
}

fn review(number: i32, id: i64, reviewer: &str, state: &str, submitted: Option<&str>) -> Record {
    Record {
        entity_type: "github_pr_reviews",
        raw_data: json!({"id": id, "user": {"login": reviewer}, "state": state, "body": "",
                         "submitted_at": submitted, "commit_id": "8888888888888888888888888888888888888888"}),
        metadata: parent(number),
    }
}

fn issue(id: &str, key: &str) -> Record {
    Record {
        entity_type: "jira_issues",
        raw_data: json!({"id": id, "key": key, "fields": {
            "summary": format!("Issue {key}"), "project": {"key": key.split('-').next()},
            "created": "2024-02-01T00:00:00.000+0000", "updated": "2024-02-02T00:00:00.000+0000"}}),
        metadata: None,
    }
}

/// Stores and transforms `records` of one entity type through `site`.
fn run(conn: &mut PgConnection, site: &Site, records: &[Record]) -> Value {
    let ids = store(conn, site, records);
    transform(conn, site, records[0].entity_type, &ids)
}

/// The tenant's pull request `number`, as JSON.
fn pull(conn: &mut PgConnection, t: &Tenant, number: i32) -> Value {
    query_json(
        conn,
        &format!(
            "SELECT to_jsonb(p)::text AS data FROM pull_requests p
              WHERE tenant_id = {} AND repository = '{REPO}' AND number = {number}",
            t.github.tenant
        ),
    )
}

/// The links of pull request `number`: (key, found_in, the key of the work
/// item it resolves to), by key.
fn links(
    conn: &mut PgConnection,
    t: &Tenant,
    number: i32,
) -> Vec<(String, String, Option<String>)> {
    let rows = query_json(
        conn,
        &format!(
            "SELECT COALESCE(jsonb_agg(jsonb_build_array(l.work_item_key, l.found_in, w.key)
                                       ORDER BY l.work_item_key), '[]')::text AS data
               FROM pull_request_work_items l
               JOIN pull_requests p ON p.id = l.pull_request_id
               LEFT JOIN work_items w ON w.id = l.work_item_id
              WHERE p.tenant_id = {} AND p.number = {number}",
            t.github.tenant
        ),
    );
    serde_json::from_value(rows).expect("links")
}

fn link(key: &str, found_in: &str, resolved: Option<&str>) -> (String, String, Option<String>) {
    (
        key.to_owned(),
        found_in.to_owned(),
        resolved.map(str::to_owned),
    )
}

#[test]
fn every_column_and_the_times_exact_to_the_second_without_bots_or_self_reviews() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let t = tenant(&mut conn, "acme", json!({}));
    let result = run(
        &mut conn,
        &t.github,
        &[pr_record(pr(
            1,
            "Refunds",
            "feature/x",
            Some("Body text"),
            "sam",
        ))],
    );
    assert_eq!(result["inserted"], 1, "{result}");
    run(
        &mut conn,
        &t.github,
        &[
            commit(1, "aaa1", "2024-03-01T08:59:59.500Z"),
            commit(1, "aaa2", "2024-03-01T09:30:00Z"),
        ],
    );
    let result = run(
        &mut conn,
        &t.github,
        &[
            // The author's own review and a bot's count for nothing.
            review(1, 1, "sam", "COMMENTED", Some("2024-03-01T10:10:00Z")),
            review(
                1,
                2,
                "renovate[bot]",
                "APPROVED",
                Some("2024-03-01T10:20:00Z"),
            ),
            review(
                1,
                3,
                "alice",
                "CHANGES_REQUESTED",
                Some("2024-03-01T12:00:00.900Z"),
            ),
            review(1, 4, "bob", "APPROVED", Some("2024-03-02T09:00:00Z")),
            review(1, 5, "carol", "PENDING", None),
        ],
    );
    assert_eq!(result["inserted"], 5, "{result}");
    let p = pull(&mut conn, &t, 1);
    assert_eq!(p["body"], "Body text");
    assert_eq!(p["html_url"], "https://github.com/acme/shop/pull/1");
    assert_eq!(
        p["merge_commit_sha"],
        "9999999999999999999999999999999999999999"
    );
    assert_eq!(p["first_commit_at"], "2024-03-01T08:59:59.5+00:00");
    assert_eq!(p["first_review_at"], "2024-03-01T12:00:00.9+00:00");
    // The bot's approval is an approval; the first by someone else is bob's.
    assert_eq!(p["approved_at"], "2024-03-01T10:20:00+00:00");
    // 10:00:00 − 08:59:59.5 = 3600.5 s, rounded down.
    assert_eq!(p["coding_time_s"], 3600);
    // 12:00:00.9 − 10:00:00 = 7200.9 s.
    assert_eq!(p["pickup_time_s"], 7200);
    // 2024-03-04T10:00 − 2024-03-01T12:00:00.9.
    assert_eq!(p["review_time_s"], 2 * 86_400 + 22 * 3_600 - 1);
    let commit_row = query_json(
        &mut conn,
        "SELECT to_jsonb(c)::text AS data FROM pull_request_commits c WHERE sha = 'aaa2'",
    );
    assert_eq!(commit_row["repository"], REPO);
    assert_eq!(commit_row["pull_number"], 1);
    assert_eq!(commit_row["author_login"], "sam");
    assert_eq!(commit_row["author_email"], "sam@example.com");
    assert_eq!(commit_row["message"], "Work on #1");
    let pending = query_json(
        &mut conn,
        "SELECT to_jsonb(v)::text AS data FROM pull_request_reviews v WHERE external_id = '5'",
    );
    assert_eq!(
        (pending["state"].as_str(), &pending["submitted_at"]),
        (Some("PENDING"), &Value::Null)
    );
}

#[test]
fn times_are_null_when_an_end_is_missing_or_the_difference_is_negative() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let t = tenant(&mut conn, "acme", json!({}));
    let mut open = pr(2, "Open", "x", None, "sam");
    open["merged_at"] = Value::Null;
    open["state"] = json!("open");
    run(&mut conn, &t.github, &[pr_record(open)]);
    let p = pull(&mut conn, &t, 2);
    for column in [
        "first_commit_at",
        "first_review_at",
        "coding_time_s",
        "pickup_time_s",
        "review_time_s",
    ] {
        assert_eq!(p[column], Value::Null, "{column}");
    }
    // A commit authored after the PR was opened (a rebase) and a review
    // "before" it (clock skew): negative, so null.
    run(
        &mut conn,
        &t.github,
        &[commit(2, "bbb1", "2024-03-01T11:00:00Z")],
    );
    run(
        &mut conn,
        &t.github,
        &[review(
            2,
            20,
            "alice",
            "COMMENTED",
            Some("2024-03-01T09:00:00Z"),
        )],
    );
    let p = pull(&mut conn, &t, 2);
    assert_eq!(p["first_commit_at"], "2024-03-01T11:00:00+00:00");
    assert_eq!(p["coding_time_s"], Value::Null);
    assert_eq!(p["pickup_time_s"], Value::Null);
    assert_eq!(p["review_time_s"], Value::Null, "not merged");
}

#[test]
fn links_take_the_first_place_of_each_distinct_key_and_resolve_late() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let t = tenant(&mut conn, "acme", json!({}));
    run(&mut conn, &t.jira, &[issue("1", "PAY-1")]);
    run(
        &mut conn,
        &t.github,
        &[pr_record(pr(
            3,
            "PAY-1: refunds",
            "feature/PAY-1-OPS-2",
            Some("Also OPS-2, WEB-3 and PAY-1. not-a-key pay-4"),
            "sam",
        ))],
    );
    assert_eq!(
        links(&mut conn, &t, 3),
        [
            link("OPS-2", "head_ref", None),
            link("PAY-1", "title", Some("PAY-1")),
            link("WEB-3", "body", None),
        ]
    );
    // The work item named arrives after the pull request.
    run(&mut conn, &t.jira, &[issue("2", "OPS-2")]);
    assert_eq!(
        links(&mut conn, &t, 3)[0],
        link("OPS-2", "head_ref", Some("OPS-2"))
    );
    // A newer copy replaces the links: WEB-3 and OPS-2 are gone, PAY-1
    // moved to the body.
    let mut newer = pr(
        3,
        "Refunds",
        "feature/refunds",
        Some("Closes PAY-1, DOC-9"),
        "sam",
    );
    newer["updated_at"] = json!("2024-03-05T10:00:00Z");
    run(&mut conn, &t.github, &[pr_record(newer)]);
    assert_eq!(
        links(&mut conn, &t, 3),
        [
            link("DOC-9", "body", None),
            link("PAY-1", "body", Some("PAY-1"))
        ]
    );
}

#[test]
fn another_tenants_work_item_of_the_same_key_is_never_linked() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let ours = tenant(&mut conn, "ours", json!({}));
    let theirs = tenant(&mut conn, "theirs", json!({}));
    run(&mut conn, &theirs.jira, &[issue("1", "PAY-1")]);
    run(
        &mut conn,
        &ours.github,
        &[pr_record(pr(4, "PAY-1", "x", None, "sam"))],
    );
    assert_eq!(links(&mut conn, &ours, 4), [link("PAY-1", "title", None)]);
    // Theirs arriving again, or ours, changes only our own link.
    run(&mut conn, &theirs.jira, &[issue("2", "PAY-1")]);
    assert_eq!(links(&mut conn, &ours, 4), [link("PAY-1", "title", None)]);
    run(&mut conn, &ours.jira, &[issue("3", "PAY-1")]);
    assert_eq!(
        links(&mut conn, &ours, 4),
        [link("PAY-1", "title", Some("PAY-1"))]
    );
    let linked = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM pull_request_work_items l JOIN work_items w ON w.id = l.work_item_id
              WHERE w.tenant_id <> l.tenant_id OR l.tenant_id <> {}",
            ours.github.tenant
        ),
    );
    assert_eq!(linked, 0);
}

#[test]
fn a_custom_pattern_is_used_and_an_invalid_one_fails_the_integrations_pull_requests() {
    let db = TestDatabase::migrated();
    let mut conn = db.connect();
    let custom = tenant(&mut conn, "custom", json!({"issue_key_pattern": "#[0-9]+"}));
    run(
        &mut conn,
        &custom.github,
        &[pr_record(pr(
            5,
            "Fix #12",
            "x",
            Some("PAY-1 and #13"),
            "sam",
        ))],
    );
    assert_eq!(
        links(&mut conn, &custom, 5),
        [link("#12", "title", None), link("#13", "body", None)]
    );
    let broken = tenant(&mut conn, "broken", json!({"issue_key_pattern": "PAY-("}));
    let result = run(
        &mut conn,
        &broken.github,
        &[
            pr_record(pr(6, "PAY-1", "x", None, "sam")),
            pr_record(pr(7, "PAY-2", "x", None, "sam")),
        ],
    );
    assert_eq!(result["failed"], 2, "{result}");
    let details = query_json(
        &mut conn,
        &format!(
            "SELECT jsonb_agg(DISTINCT error_details)::text AS data FROM raw_extraction_data
              WHERE tenant_id = {}",
            broken.github.tenant
        ),
    );
    assert_eq!(details.as_array().map(Vec::len), Some(1), "{details}");
    assert_eq!(details[0]["code"], "bad_integration_setting");
    assert_eq!(details[0]["field"], "settings.issue_key_pattern");
}

mod order {
    use proptest::prelude::*;

    use super::*;

    /// PRs (one reloaded newer with other keys), their commits and
    /// reviews, and the work items they name, including one that never
    /// arrives.
    fn data_set() -> Vec<Record> {
        let mut newer = pr(
            11,
            "PAY-1 refunds",
            "feature/OPS-2",
            Some("Refs WEB-3"),
            "sam",
        );
        newer["updated_at"] = json!("2024-03-05T10:00:00Z");
        vec![
            pr_record(pr(11, "PAY-1", "feature/x", Some("and NOPE-1"), "sam")),
            pr_record(newer),
            pr_record(pr(12, "OPS-2 cleanup", "ops", None, "alice")),
            commit(11, "c1", "2024-03-01T08:00:00Z"),
            commit(11, "c2", "2024-02-28T08:00:00Z"),
            commit(12, "c3", "2024-03-01T09:00:00Z"),
            review(11, 101, "alice", "APPROVED", Some("2024-03-02T10:00:00Z")),
            review(
                11,
                102,
                "dependabot[bot]",
                "COMMENTED",
                Some("2024-03-01T10:30:00Z"),
            ),
            review(12, 103, "alice", "COMMENTED", Some("2024-03-01T10:30:00Z")),
            review(12, 104, "sam", "APPROVED", Some("2024-03-01T11:00:00Z")),
            // A child whose pull request never arrives.
            commit(99, "c9", "2024-03-01T08:00:00Z"),
            issue("1", "PAY-1"),
            issue("2", "OPS-2"),
            issue("3", "WEB-3"),
        ]
    }

    /// The tenant's final rows, without ids, provenance or load times.
    fn snapshot(conn: &mut PgConnection, t: &Tenant) -> Value {
        query_json(
            conn,
            &format!(
                "SELECT jsonb_build_object(
                    'pulls', (SELECT jsonb_agg(to_jsonb(p) - 'id' - 'tenant_id' - 'integration_id' - 'raw_data_id' - 'loaded_at' ORDER BY number) FROM pull_requests p WHERE tenant_id = {t}),
                    'commits', (SELECT jsonb_agg(to_jsonb(c) - 'id' - 'tenant_id' - 'integration_id' - 'raw_data_id' - 'loaded_at' ORDER BY sha) FROM pull_request_commits c WHERE tenant_id = {t}),
                    'reviews', (SELECT jsonb_agg(to_jsonb(v) - 'id' - 'tenant_id' - 'integration_id' - 'raw_data_id' - 'loaded_at' ORDER BY external_id) FROM pull_request_reviews v WHERE tenant_id = {t}),
                    'links', (SELECT jsonb_agg(jsonb_build_array(p.number, l.work_item_key, l.found_in, w.key) ORDER BY p.number, l.work_item_key)
                                FROM pull_request_work_items l JOIN pull_requests p ON p.id = l.pull_request_id
                                LEFT JOIN work_items w ON w.id = l.work_item_id WHERE l.tenant_id = {t})
                 )::text AS data",
                t = t.github.tenant
            ),
        )
    }

    /// Jira issues go through the Jira integration, the rest through
    /// GitHub's.
    fn load_in(conn: &mut PgConnection, t: &Tenant, records: &[Record], groups: &[usize]) {
        support::load_in(conn, records, groups, |entity_type| {
            if entity_type == "jira_issues" {
                &t.jira
            } else {
                &t.github
            }
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        #[test]
        fn the_final_tables_do_not_depend_on_order_grouping_or_repeats(
            order in prop::collection::vec(any::<u64>(), 14),
            groups in prop::collection::vec(1usize..5, 1..6),
            repeats in prop::collection::vec(0usize..14, 0..4),
        ) {
            let db = TestDatabase::migrated();
            let mut conn = db.connect();
            let records = data_set();
            let expected = {
                let t = tenant(&mut conn, "canonical", json!({}));
                for kind in ["jira_issues", "github_prs", "github_pr_commits", "github_pr_reviews"] {
                    let of_kind: Vec<Record> = records.iter().filter(|r| r.entity_type == kind).cloned().collect();
                    load_in(&mut conn, &t, &of_kind, &[of_kind.len()]);
                }
                snapshot(&mut conn, &t)
            };
            let shuffled = support::shuffled(&records, &order, &repeats);
            let t = tenant(&mut conn, "shuffled", json!({}));
            load_in(&mut conn, &t, &shuffled, &groups);
            let got = snapshot(&mut conn, &t);
            prop_assert_eq!(got, expected);
        }
    }
}
