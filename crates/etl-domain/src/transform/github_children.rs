//! A pull request's children (SPEC §7.2): its commits
//! (`github_pr_commits` → `pull_request_commits`) and reviews
//! (`github_pr_reviews` → `pull_request_reviews`), each stored as GitHub
//! lists it, its pull request named by `extraction_metadata.repository`
//! and `pull_number`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rows::first_oversized;
use super::tables::{check_row, field_names, Feeds, FinalRow, Row, Table};
use super::{Entity, Oversized, Raw, Source, TransformError};

/// The pull request a child record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// `owner/name`.
    pub repository: String,
    pub pull_number: i32,
}

impl Parent {
    /// Reads `extraction_metadata.repository` and `pull_number` (an
    /// integer, or a string holding one); a missing one fails the record,
    /// naming it.
    pub fn of(source: &Source<'_>) -> Result<Self, TransformError> {
        const REPOSITORY: &str = "extraction_metadata.repository";
        const PULL_NUMBER: &str = "extraction_metadata.pull_number";
        let metadata: Value = source
            .extraction_metadata
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        let repository = match metadata.get("repository") {
            None | Some(Value::Null) => return Err(TransformError::missing(REPOSITORY)),
            Some(Value::String(r)) if r.contains('/') && r.chars().count() <= 255 => r.clone(),
            Some(_) => {
                return Err(TransformError::wrong_type(
                    REPOSITORY,
                    "an `owner/name` string of at most 255 characters",
                ))
            }
        };
        let pull_number = match metadata.get("pull_number") {
            None | Some(Value::Null) => return Err(TransformError::missing(PULL_NUMBER)),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            Some(_) => None,
        }
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| TransformError::wrong_type(PULL_NUMBER, "a positive integer"))?;
        Ok(Self {
            repository,
            pull_number,
        })
    }
}

/// A row of `pull_request_commits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestCommitRow {
    pub integration_id: i32,
    pub repository: String,
    pub pull_number: i32,
    pub sha: String,
    /// `author.login`: null when GitHub knows no account for the author.
    pub author_login: Option<String>,
    /// `commit.author.name` and `.email`.
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    /// `commit.author.date`.
    pub authored_at: Option<DateTime<Utc>>,
    /// `commit.committer.date`.
    pub committed_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `pull_request_commits` (SPEC §7.2).
pub static PULL_REQUEST_COMMITS: Table = Table {
    name: "pull_request_commits",
    key: &["integration_id", "repository", "pull_number", "sha"],
    columns: &[
        ("integration_id", "int4"),
        ("repository", "text"),
        ("pull_number", "int4"),
        ("sha", "text"),
        ("author_login", "text"),
        ("author_name", "text"),
        ("author_email", "text"),
        ("authored_at", "timestamptz"),
        ("committed_at", "timestamptz"),
        ("message", "text"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[],
    version: None,
    derived: &[],
    feeds: Feeds {
        pull_request: Some(("repository", "pull_number")),
        ..Feeds::NOTHING
    },
    check: check_row::<PullRequestCommitRow>,
    fields: field_names::<PullRequestCommitRow>,
};

impl FinalRow for PullRequestCommitRow {
    const TABLE: &'static Table = &PULL_REQUEST_COMMITS;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            (
                "repository",
                "extraction_metadata.repository",
                255,
                Some(&self.repository),
            ),
            ("sha", "sha", 64, Some(&self.sha)),
        ])
    }
}

/// A row of `pull_request_reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestReviewRow {
    pub integration_id: i32,
    /// The review's `id`.
    pub external_id: String,
    pub repository: String,
    pub pull_number: i32,
    /// `user.login`.
    pub reviewer: Option<String>,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or
    /// `PENDING`, as sent.
    pub state: Option<String>,
    /// Null for a `PENDING` review.
    pub submitted_at: Option<DateTime<Utc>>,
    pub body: Option<String>,
    /// `commit_id`: the head the review was made on.
    pub commit_sha: Option<String>,
    #[serde(default)]
    pub raw_data_id: Option<i32>,
}

/// `pull_request_reviews` (SPEC §7.2).
pub static PULL_REQUEST_REVIEWS: Table = Table {
    name: "pull_request_reviews",
    key: &["integration_id", "external_id"],
    columns: &[
        ("integration_id", "int4"),
        ("external_id", "text"),
        ("repository", "text"),
        ("pull_number", "int4"),
        ("reviewer", "text"),
        ("state", "text"),
        ("submitted_at", "timestamptz"),
        ("body", "text"),
        ("commit_sha", "text"),
        ("raw_data_id", "int4"),
    ],
    defaults: &[],
    version: None,
    derived: &[],
    feeds: Feeds {
        pull_request: Some(("repository", "pull_number")),
        ..Feeds::NOTHING
    },
    check: check_row::<PullRequestReviewRow>,
    fields: field_names::<PullRequestReviewRow>,
};

impl FinalRow for PullRequestReviewRow {
    const TABLE: &'static Table = &PULL_REQUEST_REVIEWS;
    fn integration_id(&self) -> i32 {
        self.integration_id
    }
    fn raw_data_id(&self) -> Option<i32> {
        self.raw_data_id
    }
    fn oversized(&self) -> Option<Oversized> {
        first_oversized(&[
            ("external_id", "id", 255, Some(&self.external_id)),
            (
                "repository",
                "extraction_metadata.repository",
                255,
                Some(&self.repository),
            ),
            ("state", "state", 32, self.state.as_deref()),
            ("commit_sha", "commit_id", 64, self.commit_sha.as_deref()),
        ])
    }
}

/// `github_pr_commits`: one commit of a pull request.
pub struct GithubPrCommits;

impl Entity for GithubPrCommits {
    fn name(&self) -> &'static str {
        "github_pr_commits"
    }

    fn table(&self) -> &'static Table {
        &PULL_REQUEST_COMMITS
    }

    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError> {
        let raw: Value = serde_json::from_str(source.raw_data)
            .map_err(|_| TransformError::wrong_type("raw_data", "an object"))?;
        let raw = Raw::new(&raw)?;
        let parent = Parent::of(source)?;
        let row = PullRequestCommitRow {
            integration_id: source.integration_id,
            repository: parent.repository,
            pull_number: parent.pull_number,
            sha: raw.required_string("sha")?,
            author_login: raw.string("author.login")?,
            author_name: raw.string("commit.author.name")?,
            author_email: raw.string("commit.author.email")?,
            authored_at: raw.time("commit.author.date")?,
            committed_at: raw.time("commit.committer.date")?,
            message: raw.string("commit.message")?,
            raw_data_id: source.raw_data_id,
        };
        if let Some(over) = row.oversized() {
            return Err(over.error(over.source));
        }
        Ok(vec![Row::of(&row)?])
    }
}

/// `github_pr_reviews`: one review of a pull request.
pub struct GithubPrReviews;

impl Entity for GithubPrReviews {
    fn name(&self) -> &'static str {
        "github_pr_reviews"
    }

    fn table(&self) -> &'static Table {
        &PULL_REQUEST_REVIEWS
    }

    fn transform(&self, source: &Source<'_>) -> Result<Vec<Row>, TransformError> {
        let raw: Value = serde_json::from_str(source.raw_data)
            .map_err(|_| TransformError::wrong_type("raw_data", "an object"))?;
        let raw = Raw::new(&raw)?;
        let parent = Parent::of(source)?;
        let row = PullRequestReviewRow {
            integration_id: source.integration_id,
            external_id: raw.id("id")?,
            repository: parent.repository,
            pull_number: parent.pull_number,
            reviewer: raw.string("user.login")?,
            state: raw.string("state")?,
            submitted_at: raw.time("submitted_at")?,
            body: raw.string("body")?,
            commit_sha: raw.string("commit_id")?,
            raw_data_id: source.raw_data_id,
        };
        if let Some(over) = row.oversized() {
            return Err(over.error(over.source));
        }
        Ok(vec![Row::of(&row)?])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::transform::IntegrationSettings;

    fn source<'a>(
        raw: &'a str,
        metadata: Option<&'a str>,
        settings: &'a IntegrationSettings,
    ) -> Source<'a> {
        Source {
            raw_data: raw,
            extraction_metadata: metadata,
            integration_id: 3,
            raw_data_id: Some(11),
            settings,
        }
    }

    const PARENT: &str = r#"{"repository": "octo/shop", "pull_number": 42}"#;

    fn parsed<R: serde::de::DeserializeOwned>(rows: &[Row]) -> R {
        assert_eq!(rows.len(), 1);
        serde_json::from_str(&rows[0].text).expect("a row")
    }

    #[test]
    fn a_commit_maps_every_column() {
        let settings = IntegrationSettings::default();
        let raw = json!({
            "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "author": {"login": "octocat"},
            "committer": {"login": "web-flow"},
            "commit": {
                "author": {"name": "Mona Octocat", "email": "mona@example.com", "date": "2024-03-01T09:00:00Z"},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "date": "2024-03-01T09:05:00Z"},
                "message": "Fix PAY-12"
            }
        })
        .to_string();
        let row: PullRequestCommitRow = parsed(
            &GithubPrCommits
                .transform(&source(&raw, Some(PARENT), &settings))
                .expect("rows"),
        );
        assert_eq!(row.repository, "octo/shop");
        assert_eq!(row.pull_number, 42);
        assert_eq!(row.sha, "6dcb09b5b57875f334f61aebed695e2e4193db5e");
        assert_eq!(row.author_login.as_deref(), Some("octocat"));
        assert_eq!(row.author_name.as_deref(), Some("Mona Octocat"));
        assert_eq!(row.author_email.as_deref(), Some("mona@example.com"));
        assert_eq!(
            row.authored_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-01T09:00:00+00:00")
        );
        assert_eq!(
            row.committed_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-01T09:05:00+00:00")
        );
        assert_eq!(row.message.as_deref(), Some("Fix PAY-12"));
        assert_eq!(row.raw_data_id, Some(11));
    }

    #[test]
    fn a_commit_without_a_github_account_has_no_login() {
        let settings = IntegrationSettings::default();
        let raw = json!({"sha": "abc", "author": null, "commit": {"author": {"name": "Ghost"}}})
            .to_string();
        let row: PullRequestCommitRow = parsed(
            &GithubPrCommits
                .transform(&source(&raw, Some(PARENT), &settings))
                .expect("rows"),
        );
        assert_eq!(row.author_login, None);
        assert_eq!(row.author_name.as_deref(), Some("Ghost"));
    }

    #[test]
    fn a_review_maps_every_column_and_a_pending_one_has_no_time() {
        let settings = IntegrationSettings::default();
        let raw = json!({
            "id": 80, "user": {"login": "reviewer1"}, "state": "APPROVED",
            "body": "Looks good", "submitted_at": "2024-03-02T10:00:00Z",
            "commit_id": "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091"
        })
        .to_string();
        let row: PullRequestReviewRow = parsed(
            &GithubPrReviews
                .transform(&source(&raw, Some(PARENT), &settings))
                .expect("rows"),
        );
        assert_eq!(row.external_id, "80");
        assert_eq!(
            (row.repository.as_str(), row.pull_number),
            ("octo/shop", 42)
        );
        assert_eq!(row.reviewer.as_deref(), Some("reviewer1"));
        assert_eq!(row.state.as_deref(), Some("APPROVED"));
        assert_eq!(row.body.as_deref(), Some("Looks good"));
        assert_eq!(
            row.commit_sha.as_deref(),
            Some("ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091")
        );
        assert_eq!(
            row.submitted_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-02T10:00:00+00:00")
        );
        let pending = json!({"id": "81", "user": {"login": "r"}, "state": "PENDING"}).to_string();
        let row: PullRequestReviewRow = parsed(
            &GithubPrReviews
                .transform(&source(
                    &pending,
                    Some(r#"{"repository": "octo/shop", "pull_number": "42"}"#),
                    &settings,
                ))
                .expect("rows"),
        );
        assert_eq!(
            (row.state.as_deref(), row.submitted_at),
            (Some("PENDING"), None)
        );
        assert_eq!(row.pull_number, 42, "a number sent as a string");
    }

    #[test]
    fn a_child_without_its_parent_fails_naming_the_field() {
        let settings = IntegrationSettings::default();
        let commit = json!({"sha": "abc"}).to_string();
        let review = json!({"id": 1}).to_string();
        for (metadata, field) in [
            (None, "extraction_metadata.repository"),
            (Some("{}"), "extraction_metadata.repository"),
            (
                Some(r#"{"pull_number": 4}"#),
                "extraction_metadata.repository",
            ),
            (
                Some(r#"{"repository": "octo/shop"}"#),
                "extraction_metadata.pull_number",
            ),
            (
                Some(r#"{"repository": "octo/shop", "pull_number": null}"#),
                "extraction_metadata.pull_number",
            ),
        ] {
            for (entity, raw) in [
                (&GithubPrCommits as &dyn Entity, &commit),
                (&GithubPrReviews, &review),
            ] {
                let error = entity
                    .transform(&source(raw, metadata, &settings))
                    .expect_err("no parent");
                assert_eq!(error.code, "missing_field", "{metadata:?}");
                assert_eq!(error.field, field);
            }
        }
        for metadata in [
            r#"{"repository": 5, "pull_number": 4}"#,
            r#"{"repository": "octo/shop", "pull_number": -4}"#,
            r#"{"repository": "octo/shop", "pull_number": "four"}"#,
        ] {
            let error = GithubPrCommits
                .transform(&source(&commit, Some(metadata), &settings))
                .expect_err("bad parent");
            assert_eq!(error.code, "wrong_type", "{metadata}");
        }
        let error = GithubPrCommits
            .transform(&source(
                &json!({"commit": {}}).to_string(),
                Some(PARENT),
                &settings,
            ))
            .expect_err("no sha");
        assert_eq!(
            (error.code.as_str(), error.field.as_str()),
            ("missing_field", "sha")
        );
    }
}
