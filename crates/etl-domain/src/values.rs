//! Validated newtypes. Each has one way in (`parse`/`new`/`TryFrom`), which
//! serde uses too, so a deserialised request holds only valid values.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A JSON object (`{…}`); arrays, strings and numbers are rejected where a
/// field must be an object.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Why a value was refused. The `Display` text is a sentence fragment meant to
/// follow the field name in an error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must be {min} to {max} characters long (got {actual})")]
    Length {
        min: usize,
        max: usize,
        actual: usize,
    },
    #[error("may contain only lowercase letters a-z, digits and underscores")]
    Charset,
    #[error("must be between {min} and {max} (got {actual})")]
    Range { min: i64, max: i64, actual: i64 },
    #[error("must hold {min} to {max} items (got {actual})")]
    Count {
        min: usize,
        max: usize,
        actual: usize,
    },
    #[error("must not contain U+0000 (NUL)")]
    Nul,
    #[error("`{value}` is not one of: {expected}")]
    Unknown { value: String, expected: String },
}

fn check_length(value: &str, min: usize, max: usize) -> Result<(), ValueError> {
    // Lengths are counted in characters, as the seed's `varchar(n)` does.
    let actual = value.chars().count();
    if (min..=max).contains(&actual) {
        Ok(())
    } else {
        Err(ValueError::Length { min, max, actual })
    }
}

/// Declares a `String` newtype whose only constructor is `parse`, wired into
/// serde through `TryFrom<String>`.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// The kind of a raw record (`jira_issues`, `github_prs`, …): 1–50
    /// characters of `[a-z0-9_]`. Any such name may be stored; only some have
    /// a transformer (see [`TransformerKind`]).
    EntityType
);

impl EntityType {
    pub const MAX_LEN: usize = 50;

    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_length(&value, 1, Self::MAX_LEN)?;
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ValueError::Charset);
        }
        Ok(Self(value))
    }

    /// The transformer for this entity type, if there is one.
    pub fn transformer(&self) -> Option<TransformerKind> {
        TransformerKind::parse(&self.0).ok()
    }
}

string_newtype!(
    /// An `error_details.code` a replay asks for (`missing_field`,
    /// `value_too_long`, or a code a client wrote): 1–100 characters.
    ErrorCodeName
);

impl ErrorCodeName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_length(&value, 1, Self::MAX_LEN)?;
        if value.contains('\0') {
            return Err(ValueError::Nul);
        }
        Ok(Self(value))
    }
}

string_newtype!(
    /// The record's id in its source system (Jira issue id, GitHub PR id):
    /// at most 255 characters, as the seed's `varchar(255)`.
    ExternalId
);

impl ExternalId {
    pub const MAX_LEN: usize = 255;

    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_length(&value, 0, Self::MAX_LEN)?;
        if value.contains('\0') {
            return Err(ValueError::Nul);
        }
        Ok(Self(value))
    }
}

string_newtype!(
    /// The value of an `Idempotency-Key` header: 1–255 characters.
    IdempotencyKey
);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_length(&value, 1, Self::MAX_LEN)?;
        Ok(Self(value))
    }
}

/// An entity type that has a transformer (SPEC §7): one of
/// [`crate::transform::ENTITIES`]. The transform, load and pipeline routes
/// accept only these.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransformerKind(&'static dyn crate::transform::Entity);

impl TransformerKind {
    /// Every registered entity type, in the registry's order.
    pub fn all() -> impl Iterator<Item = TransformerKind> {
        crate::transform::ENTITIES
            .iter()
            .map(|e| TransformerKind(*e))
    }

    /// The registered names, for messages and the OpenAPI document.
    pub fn names() -> Vec<&'static str> {
        Self::all().map(Self::as_str).collect()
    }

    pub fn parse(value: &str) -> Result<Self, ValueError> {
        Self::all()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| ValueError::Unknown {
                value: value.to_owned(),
                expected: Self::names().join(", "),
            })
    }

    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    /// How its records are transformed.
    pub fn entity(self) -> &'static dyn crate::transform::Entity {
        self.0
    }

    pub fn entity_type(self) -> EntityType {
        EntityType(self.as_str().to_owned())
    }
}

impl PartialEq for TransformerKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TransformerKind {}

impl std::hash::Hash for TransformerKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for TransformerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransformerKind({})", self.as_str())
    }
}

impl TryFrom<String> for TransformerKind {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TransformerKind> for String {
    fn from(value: TransformerKind) -> String {
        value.as_str().to_owned()
    }
}

impl fmt::Display for TransformerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares an integer newtype bounded to `MIN..=MAX`, with serde going
/// through `TryFrom<i64>`.
macro_rules! bounded_int {
    ($(#[$meta:meta])* $name:ident($inner:ty), $min:expr, $max:expr, default = $default:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name($inner);

        impl $name {
            pub const MIN: $inner = $min;
            pub const MAX: $inner = $max;
            pub const DEFAULT: $name = $name($default);

            pub fn new(value: i64) -> Result<Self, ValueError> {
                if (i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&value) {
                    // The range check above makes the cast lossless.
                    Ok(Self(value as $inner))
                } else {
                    Err(ValueError::Range {
                        min: i64::from(Self::MIN),
                        max: i64::from(Self::MAX),
                        actual: value,
                    })
                }
            }

            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::DEFAULT
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ValueError;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                i64::from(value.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded_int!(
    /// A job's priority: 1 (most urgent) to 10, default 5. RabbitMQ orders the
    /// other way round, see [`JobPriority::amqp_priority`].
    JobPriority(i32), 1, 10, default = 5
);

impl JobPriority {
    /// The AMQP message priority for this job: `11 − priority`, so job
    /// priority 1 becomes AMQP 10, the largest a queue with
    /// `x-max-priority: 10` honours.
    pub fn amqp_priority(self) -> u8 {
        // 1..=10 maps to 10..=1, which always fits a u8.
        (11 - self.0) as u8
    }
}

bounded_int!(
    /// How many rows a list route returns: 1–1000, default 100.
    PageLimit(i64), 1, 1000, default = 100
);

bounded_int!(
    /// How many raw records one transform job takes: 1–1000, default 100.
    BatchSize(i64), 1, 1000, default = 100
);

/// Raw record ids named by a transform request: 1–1000 of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<i32>", into = "Vec<i32>")]
pub struct RawDataIds(Vec<i32>);

impl RawDataIds {
    pub const MAX: usize = 1000;

    pub fn new(ids: Vec<i32>) -> Result<Self, ValueError> {
        check_count(ids.len(), 1, Self::MAX)?;
        Ok(Self(ids))
    }

    pub fn as_slice(&self) -> &[i32] {
        &self.0
    }
}

impl TryFrom<Vec<i32>> for RawDataIds {
    type Error = ValueError;
    fn try_from(value: Vec<i32>) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<RawDataIds> for Vec<i32> {
    fn from(value: RawDataIds) -> Vec<i32> {
        value.0
    }
}

pub(crate) fn check_count(actual: usize, min: usize, max: usize) -> Result<(), ValueError> {
    if (min..=max).contains(&actual) {
        Ok(())
    } else {
        Err(ValueError::Count { min, max, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entity_type_accepts_lowercase_digits_and_underscores() {
        for ok in ["jira_issues", "github_prs", "a", "x1_2", &"a".repeat(50)] {
            assert_eq!(EntityType::parse(ok).map(String::from).as_deref(), Ok(ok));
        }
    }

    #[test]
    fn entity_type_rejects_empty_long_and_foreign_characters() {
        assert_eq!(
            EntityType::parse(""),
            Err(ValueError::Length {
                min: 1,
                max: 50,
                actual: 0
            })
        );
        assert!(matches!(
            EntityType::parse("a".repeat(51)),
            Err(ValueError::Length { actual: 51, .. })
        ));
        for bad in [
            "Jira",
            "jira-issues",
            "jira issues",
            "é",
            "a.b",
            "a/b",
            " a",
        ] {
            assert_eq!(EntityType::parse(bad), Err(ValueError::Charset), "{bad}");
        }
    }

    #[test]
    fn entity_type_knows_its_transformer() {
        let jira = EntityType::parse("jira_issues").expect("valid");
        assert_eq!(
            jira.transformer().map(TransformerKind::as_str),
            Some("jira_issues")
        );
        let other = EntityType::parse("confluence_pages").expect("valid");
        assert_eq!(other.transformer(), None);
    }

    #[test]
    fn entity_type_deserialises_through_parse() {
        let ok: EntityType = serde_json::from_str("\"github_prs\"").expect("valid");
        assert_eq!(ok.as_str(), "github_prs");
        let err = serde_json::from_str::<EntityType>("\"GitHub\"").expect_err("invalid");
        assert!(err.to_string().contains("lowercase"), "{err}");
        assert!(serde_json::from_str::<EntityType>("7").is_err());
    }

    #[test]
    fn external_id_allows_up_to_255_characters_counted_as_characters() {
        assert!(ExternalId::parse("").is_ok());
        assert!(ExternalId::parse("ü".repeat(255)).is_ok());
        assert!(matches!(
            ExternalId::parse("x".repeat(256)),
            Err(ValueError::Length { actual: 256, .. })
        ));
    }

    #[test]
    fn idempotency_key_is_1_to_255_characters() {
        assert!(IdempotencyKey::parse("k").is_ok());
        assert!(IdempotencyKey::parse("k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("k".repeat(256)).is_err());
    }

    #[test]
    fn transformer_kind_round_trips_and_names_the_choices() {
        for kind in TransformerKind::all() {
            let json = serde_json::to_string(&kind).expect("serialises");
            assert_eq!(
                serde_json::from_str::<TransformerKind>(&json).expect("parses"),
                kind
            );
            assert_eq!(kind.entity_type().transformer(), Some(kind));
        }
        let err = TransformerKind::parse("gitlab_mrs").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "`gitlab_mrs` is not one of: jira_issues, jira_issue_changelogs, jira_statuses, github_prs, github_pr_commits, github_pr_reviews"
        );
    }

    #[test]
    fn job_priority_is_1_to_10_with_default_5() {
        assert_eq!(JobPriority::default().get(), 5);
        assert!(JobPriority::new(0).is_err());
        assert!(JobPriority::new(11).is_err());
        assert!(JobPriority::new(-1).is_err());
        assert_eq!(JobPriority::new(1).map(JobPriority::get), Ok(1));
        assert_eq!(JobPriority::new(10).map(JobPriority::get), Ok(10));
        assert!(serde_json::from_str::<JobPriority>("2.5").is_err());
        assert!(serde_json::from_str::<JobPriority>("\"3\"").is_err());
    }

    #[test]
    fn job_priority_maps_to_amqp_priority_eleven_minus_it() {
        for (job, amqp) in [(1, 10), (5, 6), (10, 1)] {
            let priority = JobPriority::new(job).expect("in range");
            assert_eq!(priority.amqp_priority(), amqp);
        }
    }

    #[test]
    fn page_limit_and_batch_size_are_1_to_1000() {
        assert_eq!(PageLimit::default().get(), 100);
        assert_eq!(BatchSize::default().get(), 100);
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(1001).is_err());
        assert!(PageLimit::new(1000).is_ok());
        assert!(BatchSize::new(1001).is_err());
        assert_eq!(
            PageLimit::new(0).expect_err("out of range").to_string(),
            "must be between 1 and 1000 (got 0)"
        );
    }

    #[test]
    fn raw_data_ids_hold_1_to_1000_ids() {
        assert!(RawDataIds::new(vec![]).is_err());
        assert!(RawDataIds::new(vec![1; 1000]).is_ok());
        assert!(RawDataIds::new(vec![1; 1001]).is_err());
        assert!(serde_json::from_str::<RawDataIds>("[]").is_err());
        assert!(serde_json::from_str::<RawDataIds>("[1, \"2\"]").is_err());
    }

    proptest! {
        #[test]
        fn entity_type_parse_accepts_exactly_the_documented_language(s in "\\PC{0,60}") {
            let expected = !s.is_empty()
                && s.chars().count() <= 50
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            prop_assert_eq!(EntityType::parse(s.clone()).is_ok(), expected);
        }

        #[test]
        fn entity_type_serde_round_trips(s in "[a-z0-9_]{1,50}") {
            let parsed = EntityType::parse(s.clone()).expect("valid by construction");
            let json = serde_json::to_string(&parsed).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<EntityType>(&json).expect("parses"), parsed);
        }

        #[test]
        fn job_priority_accepts_exactly_1_to_10(n in any::<i64>()) {
            prop_assert_eq!(JobPriority::new(n).is_ok(), (1..=10).contains(&n));
        }
    }
}

/// A tenant's id. A distinct type so that no function taking a tenant can
/// be handed another id by mistake (`load_job_rows(conn, table, tenant,
/// job)` with its arguments swapped does not compile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(i32);

impl TenantId {
    pub const fn new(id: i32) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A job's id (`etl_job_queue.id`), distinct from every other id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(i32);

impl JobId {
    pub const fn new(id: i32) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A raw record's id (`raw_extraction_data.id`), distinct from every other id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawRecordId(i32);

impl RawRecordId {
    pub const fn new(id: i32) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i32 {
        self.0
    }

    /// Ids as a payload or a request carries them (`raw_data_ids`).
    pub fn all(ids: &[i32]) -> Vec<Self> {
        ids.iter().copied().map(Self::new).collect()
    }
}

impl std::fmt::Display for RawRecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An integration's id (`integrations.id`), distinct from every other id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntegrationId(i32);

impl IntegrationId {
    pub const fn new(id: i32) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
