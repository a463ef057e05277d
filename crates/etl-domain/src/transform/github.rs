//! GitHub pull request (REST, single or list item, any vintage) →
//! `pull_requests` row.

use serde_json::Value;

use super::links::{find_keys, IssueKeyPattern};
use super::rows::PULL_REQUESTS;
use super::tables::{Row, Table};
use super::{Entity, PrState, PullRequestRow, Raw, Source, TransformError};

pub fn transform(raw_data: &Value, integration_id: i32) -> Result<PullRequestRow, TransformError> {
    transform_with(raw_data, integration_id, &IssueKeyPattern::Default)
}

/// A pull request's row, its work-item keys found with `pattern` (an
/// invalid one fails the record with `bad_integration_setting`).
pub fn transform_with(
    raw_data: &Value,
    integration_id: i32,
    pattern: &IssueKeyPattern,
) -> Result<PullRequestRow, TransformError> {
    let regex = pattern.regex()?;
    let raw = Raw::new(raw_data)?;
    let external_id = raw.id("id")?;
    let merged_at = raw.time("merged_at")?;
    let state = if merged_at.is_some() {
        PrState::Merged
    } else {
        match raw.required_string("state")?.as_str() {
            "open" => PrState::Open,
            "closed" => PrState::Closed,
            other => {
                return Err(TransformError::invalid(
                    "state",
                    format!("`{other}` is not open or closed"),
                ))
            }
        }
    };
    let labels = match raw.get("labels") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|l| l.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TransformError::wrong_type("labels", "a list of {name}"))?,
        Some(_) => return Err(TransformError::wrong_type("labels", "a list of {name}")),
    };
    let row = PullRequestRow {
        integration_id,
        external_id,
        repository: raw.string("base.repo.full_name")?,
        number: raw.int("number")?,
        title: raw.string("title")?,
        state,
        draft: raw.bool("draft")?,
        author: raw.string("user.login")?,
        base_ref: raw.string("base.ref")?,
        head_ref: raw.string("head.ref")?,
        head_sha: raw.string("head.sha")?,
        labels,
        source_created_at: raw.time("created_at")?,
        source_updated_at: raw.time("updated_at")?,
        closed_at: raw.time("closed_at")?,
        merged_at,
        additions: raw.int("additions")?,
        deletions: raw.int("deletions")?,
        changed_files: raw.int("changed_files")?,
        commits: raw.int("commits")?,
        comments: raw.int("comments")?,
        review_comments: raw.int("review_comments")?,
        body: raw.string("body")?,
        html_url: raw.string("html_url")?,
        merge_commit_sha: raw.string("merge_commit_sha")?,
        work_item_keys: None,
        raw_data_id: None,
    };
    let row = PullRequestRow {
        work_item_keys: Some(find_keys(
            regex,
            row.title.as_deref(),
            row.head_ref.as_deref(),
            row.body.as_deref(),
        )),
        ..row
    };
    // A value its column cannot hold fails this record, not the load.
    if let Some(over) = row.oversized() {
        return Err(over.error(over.source));
    }
    Ok(row)
}

/// Transforms a pull request from its stored JSON text.
pub fn transform_text(
    text: &str,
    integration_id: i32,
    pattern: &IssueKeyPattern,
) -> Result<PullRequestRow, TransformError> {
    let raw: Value = serde_json::from_str(text)
        .map_err(|_| TransformError::wrong_type("raw_data", "an object"))?;
    transform_with(&raw, integration_id, pattern)
}

/// `github_prs`: a pull request → its `pull_requests` row.
pub struct GithubPrs;

impl Entity for GithubPrs {
    fn name(&self) -> &'static str {
        "github_prs"
    }

    fn table(&self) -> &'static Table {
        &PULL_REQUESTS
    }

    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError> {
        let mut row = transform_text(
            source.raw_data,
            source.integration_id,
            &source.settings.issue_key_pattern,
        )?;
        row.raw_data_id = source.raw_data_id;
        Ok(vec![Row::of(&row)?])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pr() -> Value {
        json!({
            "id": 1296269, "number": 1347, "state": "open", "title": "Amazing new feature",
            "draft": false, "user": {"login": "octocat", "type": "User"},
            "labels": [{"name": "bug"}, {"name": "ui"}],
            "base": {"ref": "main", "repo": {"full_name": "octocat/Hello-World"}},
            "head": {"ref": "feature/x", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "repo": {"full_name": "fork/Hello-World"}},
            "created_at": "2011-01-26T19:01:12Z", "updated_at": "2011-01-26T19:01:12Z",
            "closed_at": null, "merged_at": null,
            "additions": 100, "deletions": 3, "changed_files": 5, "commits": 3, "comments": 10, "review_comments": 0
        })
    }

    #[test]
    fn a_single_pr_maps_every_column() {
        let row = transform(&pr(), 4).expect("valid");
        assert_eq!(row.external_id, "1296269");
        assert_eq!(row.repository.as_deref(), Some("octocat/Hello-World"));
        assert_eq!(row.number, Some(1347));
        assert_eq!(row.state, PrState::Open);
        assert_eq!(row.draft, Some(false));
        assert_eq!(row.author.as_deref(), Some("octocat"));
        assert_eq!(row.head_ref.as_deref(), Some("feature/x"));
        assert_eq!(row.labels, ["bug", "ui"]);
        assert_eq!((row.additions, row.review_comments), (Some(100), Some(0)));
    }

    #[test]
    fn merged_at_makes_it_merged_whatever_state_says() {
        let mut raw = pr();
        raw["state"] = json!("closed");
        raw["merged_at"] = json!("2011-01-27T10:00:00Z");
        assert_eq!(transform(&raw, 1).expect("valid").state, PrState::Merged);
        raw["merged_at"] = Value::Null;
        assert_eq!(transform(&raw, 1).expect("valid").state, PrState::Closed);
    }

    #[test]
    fn old_and_list_shapes_load_nulls_for_what_they_lack() {
        let mut raw = pr();
        let object = raw.as_object_mut().expect("object");
        for key in [
            "draft",
            "additions",
            "deletions",
            "changed_files",
            "commits",
            "comments",
            "review_comments",
            "labels",
        ] {
            object.remove(key);
        }
        raw["head"]["repo"] = Value::Null;
        raw["user"] = json!({"login": "dependabot[bot]", "type": "Bot"});
        let row = transform(&raw, 1).expect("valid");
        assert_eq!(row.draft, None);
        assert_eq!(
            (row.additions, row.commits, row.comments),
            (None, None, None)
        );
        assert!(row.labels.is_empty());
        assert_eq!(row.author.as_deref(), Some("dependabot[bot]"));
        assert_eq!(
            row.head_sha.as_deref(),
            Some("6dcb09b5b57875f334f61aebed695e2e4193db5e")
        );
    }

    #[test]
    fn broken_prs_fail_naming_the_field() {
        for (raw, field) in [
            (json!({"number": 1, "state": "open"}), "id"),
            (json!({"id": 1, "number": 1}), "state"),
            (json!({"id": 1, "state": "draft"}), "state"),
            (json!({"id": 1, "state": "open", "number": "1"}), "number"),
            (
                json!({"id": 1, "state": "open", "created_at": 5}),
                "created_at",
            ),
            (json!({"id": 1.5, "state": "open"}), "id"),
        ] {
            let err = transform(&raw, 1).expect_err("broken");
            assert_eq!(err.field, field, "{raw}");
        }
    }
}
