//! The transformers over the project's own fixture files (tests/fixtures at
//! the workspace root), one case each.

use etl_domain::transform::{github, jira, PrState};
use serde_json::Value;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn points() -> jira::CustomFieldMappings {
    jira::CustomFieldMappings {
        story_points: Some("customfield_10024".to_owned()),
    }
}

#[test]
fn a_server_v2_story_keeps_its_server_users_and_string_story_points() {
    let raw = fixture(include_str!(
        "../../../tests/fixtures/jira/v2-server-story.json"
    ));
    let row = jira::transform(&raw, 1, &points()).expect("valid");
    assert_eq!(row.external_id, "20001");
    assert_eq!(
        row.assignee.as_deref(),
        Some("dana"),
        "Server users are named"
    );
    assert_eq!(row.reporter.as_deref(), Some("quinn"));
    assert_eq!(row.story_points, Some(3.0), "\"3\" arrives as a string");
    assert_eq!(row.status_category.as_deref(), Some("indeterminate"));
    assert_eq!(
        row.source_updated_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-03-02T09:30:00+00:00"),
        "+0100 converted to UTC"
    );
}

#[test]
fn a_cloud_v3_subtask_flattens_adf_and_keeps_its_parent() {
    let envelope = fixture(include_str!(
        "../../../tests/fixtures/jira/v3-cloud-subtask-adf.json"
    ));
    let raw = &envelope["issues"][0];
    let row = jira::transform(raw, 1, &points()).expect("valid");
    assert_eq!(row.description.as_deref(), Some("Use decimal amounts."));
    assert_eq!(row.parent_key.as_deref(), Some("SHOP-1"));
    assert_eq!(
        row.issue_type.as_deref(),
        Some("Unteraufgabe"),
        "names stay as the site spells them"
    );
    assert_eq!(
        row.status_category.as_deref(),
        Some("done"),
        "the category comes from its key"
    );
    assert_eq!(
        (row.assignee, row.assignee_name),
        (None, None),
        "unassigned"
    );
    assert_eq!(
        row.reporter.as_deref(),
        Some("712020:aa"),
        "Cloud users by accountId"
    );
    assert_eq!(row.story_points, Some(1.5));
    assert!(row.resolved_at.is_some());
}

#[test]
fn an_issue_without_summary_fails_naming_it() {
    let raw = fixture(include_str!(
        "../../../tests/fixtures/jira/broken-no-summary.json"
    ));
    let error = jira::transform(&raw, 1, &points()).expect_err("broken");
    assert_eq!(
        (error.code.as_str(), error.field.as_str()),
        ("missing_field", "fields.summary")
    );
}

#[test]
fn a_merged_pr_by_a_bot_with_a_deleted_head_repo_loads() {
    let raw = fixture(include_str!(
        "../../../tests/fixtures/github/merged-single.json"
    ));
    let row = github::transform(&raw, 2).expect("valid");
    assert_eq!(row.state, PrState::Merged);
    assert_eq!(row.author.as_deref(), Some("dependabot[bot]"));
    assert_eq!(
        row.head_ref.as_deref(),
        Some("deps/decimal"),
        "head.repo is null, head.ref is not"
    );
    assert_eq!(row.labels, ["dependencies"]);
    assert_eq!((row.additions, row.review_comments), (Some(12), Some(1)));
}

#[test]
fn list_items_load_without_counts_and_a_broken_one_fails_alone() {
    let items = fixture(include_str!(
        "../../../tests/fixtures/github/list-items.json"
    ));
    let open = github::transform(&items[0], 2).expect("valid");
    assert_eq!(open.state, PrState::Open);
    assert_eq!(open.draft, None, "no draft key in this response");
    assert_eq!(
        (open.additions, open.commits, open.comments),
        (None, None, None)
    );
    let error = github::transform(&items[1], 2).expect_err("no state");
    assert_eq!(error.field, "state");
}
