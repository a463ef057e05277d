//! Work-item keys named by pull requests (SPEC §7.3): each distinct key
//! found in a pull request's title, head ref and body with its
//! integration's `settings.issue_key_pattern`, and where it was found
//! first. The store links each key to the tenant's work item of that key.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TransformError;

/// Jira keys (`PAY-12`) with a word boundary on both sides.
pub const DEFAULT_ISSUE_KEY_PATTERN: &str = r"\b[A-Z][A-Z0-9_]+-[0-9]+\b";

/// Where an integration's pattern is set, as errors name it.
pub const ISSUE_KEY_PATTERN_SETTING: &str = "settings.issue_key_pattern";

/// Longest key kept (`pull_request_work_items.work_item_key`); a longer
/// match of a custom pattern is no key.
pub const MAX_KEY_CHARS: usize = 255;

/// Most bytes a compiled custom pattern may take: a setting cannot make
/// the transform of every pull request slow or large.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// An integration's issue-key pattern, read from its settings.
#[derive(Debug, Clone, Default)]
pub enum IssueKeyPattern {
    /// No `issue_key_pattern`: Jira keys.
    #[default]
    Default,
    Custom(Regex),
    /// A pattern that is no valid regular expression, and why: every pull
    /// request of the integration fails with `bad_integration_setting`.
    Invalid(String),
}

impl PartialEq for IssueKeyPattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Default, Self::Default) => true,
            (Self::Custom(a), Self::Custom(b)) => a.as_str() == b.as_str(),
            (Self::Invalid(a), Self::Invalid(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for IssueKeyPattern {}

impl IssueKeyPattern {
    /// Reads `settings.issue_key_pattern` (absent or null: the default).
    pub fn from_settings(settings: &Value) -> Self {
        match settings.get("issue_key_pattern") {
            None | Some(Value::Null) => Self::Default,
            Some(Value::String(pattern)) => match RegexBuilder::new(pattern)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
            {
                Ok(regex) => Self::Custom(regex),
                Err(error) => Self::Invalid(format!(
                    "`{pattern}` is not a valid regular expression ({})",
                    first_line(&error.to_string())
                )),
            },
            Some(_) => Self::Invalid("must be a string holding a regular expression".to_owned()),
        }
    }

    /// The compiled pattern, or the error every pull request of the
    /// integration fails with.
    pub fn regex(&self) -> Result<&Regex, TransformError> {
        static DEFAULT: OnceLock<Regex> = OnceLock::new();
        match self {
            Self::Default => Ok(DEFAULT.get_or_init(|| {
                Regex::new(DEFAULT_ISSUE_KEY_PATTERN).expect("the default pattern compiles")
            })),
            Self::Custom(regex) => Ok(regex),
            Self::Invalid(why) => Err(TransformError {
                code: "bad_integration_setting".to_owned(),
                message: format!("{ISSUE_KEY_PATTERN_SETTING}: {why}"),
                field: ISSUE_KEY_PATTERN_SETTING.to_owned(),
            }),
        }
    }
}

/// The regex crate's errors draw the pattern over several lines.
fn first_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or_else(|| text.lines().next())
        .unwrap_or(text)
}

/// Where in a pull request a key was found first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FoundIn {
    Title,
    HeadRef,
    Body,
}

/// One distinct key a pull request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FoundKey {
    pub key: String,
    pub found_in: FoundIn,
}

/// The distinct keys `regex` finds in the title, head ref and body, in
/// that order, each with the first place that holds it.
pub fn find_keys(
    regex: &Regex,
    title: Option<&str>,
    head_ref: Option<&str>,
    body: Option<&str>,
) -> Vec<FoundKey> {
    let mut found: Vec<FoundKey> = Vec::new();
    for (place, text) in [
        (FoundIn::Title, title),
        (FoundIn::HeadRef, head_ref),
        (FoundIn::Body, body),
    ] {
        let Some(text) = text else { continue };
        for hit in regex.find_iter(text) {
            let key = hit.as_str();
            if key.is_empty()
                || key.chars().count() > MAX_KEY_CHARS
                || found.iter().any(|f| f.key == key)
            {
                continue;
            }
            found.push(FoundKey {
                key: key.to_owned(),
                found_in: place,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn default_keys(title: &str, head_ref: &str, body: &str) -> Vec<(String, FoundIn)> {
        let pattern = IssueKeyPattern::default();
        find_keys(
            pattern.regex().expect("default"),
            Some(title),
            Some(head_ref),
            Some(body),
        )
        .into_iter()
        .map(|f| (f.key, f.found_in))
        .collect()
    }

    #[test]
    fn each_distinct_key_is_found_once_where_it_first_appears() {
        assert_eq!(
            default_keys(
                "PAY-12: refunds",
                "feature/PAY-12-OPS-7",
                "Fixes PAY-12 and OPS-7; see WEB-301."
            ),
            [
                ("PAY-12".to_owned(), FoundIn::Title),
                ("OPS-7".to_owned(), FoundIn::HeadRef),
                ("WEB-301".to_owned(), FoundIn::Body),
            ]
        );
    }

    #[test]
    fn the_default_pattern_wants_word_boundaries_and_a_capital_start() {
        assert!(default_keys("xPAY-1 pay-2 P-3 PAY-4a 1PAY-5", "", "").is_empty());
        assert_eq!(
            default_keys("(PAY_2-10)", "", "")
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            ["PAY_2-10"]
        );
    }

    #[test]
    fn a_custom_pattern_is_used_as_given_and_a_bad_one_is_refused() {
        let custom = IssueKeyPattern::from_settings(&json!({"issue_key_pattern": "#[0-9]+"}));
        let keys = find_keys(
            custom.regex().expect("valid"),
            Some("Fix #12"),
            None,
            Some("PAY-1 and #13"),
        );
        assert_eq!(
            keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
            ["#12", "#13"]
        );
        for settings in [
            json!({"issue_key_pattern": "PAY-("}),
            json!({"issue_key_pattern": 5}),
        ] {
            let error = IssueKeyPattern::from_settings(&settings)
                .regex()
                .expect_err("invalid");
            assert_eq!(error.code, "bad_integration_setting");
            assert_eq!(error.field, "settings.issue_key_pattern");
            assert!(error.message.starts_with("settings.issue_key_pattern: "));
        }
        assert_eq!(
            IssueKeyPattern::from_settings(&json!({"issue_key_pattern": null})),
            IssueKeyPattern::Default
        );
    }

    #[test]
    fn empty_and_overlong_matches_are_no_keys() {
        let anything = IssueKeyPattern::from_settings(&json!({"issue_key_pattern": "x*"}));
        let long = "x".repeat(MAX_KEY_CHARS + 1);
        let keys = find_keys(
            anything.regex().expect("valid"),
            Some("ab"),
            Some(&long),
            Some("xx"),
        );
        assert_eq!(
            keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
            ["xx"]
        );
    }
}
