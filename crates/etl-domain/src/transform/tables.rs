//! The final tables as the pipeline sees them: each is declared once, next
//! to its row type, as a [`Table`] (its loaded columns, key and what its
//! rows feed). The store generates its load statements from these
//! declarations; a test of `etl-store` holds them to the migrated database
//! and to the row types.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Oversized, TransformError};

/// A final table.
#[derive(Debug)]
pub struct Table {
    /// Its name in the database.
    pub name: &'static str,
    /// The columns that identify a row within a tenant (the unique key
    /// without `tenant_id`).
    pub key: &'static [&'static str],
    /// The columns a load writes, with their types as rows are unpacked
    /// (`jsonb_to_record`). `tenant_id`, `id`, `loaded_at` and the derived
    /// columns are the database's.
    pub columns: &'static [(&'static str, &'static str)],
    /// Columns with a NOT NULL default that a row may leave null.
    pub defaults: &'static [(&'static str, &'static str)],
    /// The column that tells a newer copy of a row from an older one
    /// (an older copy changes nothing); `None`: the last copy wins.
    pub version: Option<&'static str>,
    /// Columns the database derives (generated, or recomputed from other
    /// tables), with their types; never written by a load.
    pub derived: &'static [(&'static str, &'static str)],
    /// The derived figures its rows are inputs of.
    pub feeds: Feeds,
    /// Reads one row of this table as `POST /load` sends it (its shape;
    /// values too long for their columns are noted, not refused).
    pub check: fn(&str) -> Result<CheckedRow, TransformError>,
    /// The fields of its row type (`field_names::<R>`), which a test holds
    /// to `columns`.
    pub fields: fn() -> &'static [&'static str],
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Table {}

/// What a table's rows are inputs of: the columns naming the work item
/// whose derived figures a row changes, the status whose category it gives
/// (SPEC §7.1's first_in_progress_at depends on both), the work-item key
/// that links wait for (§7.3), and the pull request whose figures and
/// links it changes (§7.2–§7.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feeds {
    /// The column holding the work item's `external_id`.
    pub work_item: Option<&'static str>,
    /// The column holding a status id whose category the row tells.
    pub status: Option<&'static str>,
    /// The column holding a work item's key.
    pub work_item_key: Option<&'static str>,
    /// The columns holding the pull request's repository and number.
    pub pull_request: Option<(&'static str, &'static str)>,
    /// Whether its rows are pull requests themselves, whose keys their
    /// links follow (a commit or review changes no link).
    pub links: bool,
}

impl Feeds {
    pub const NOTHING: Feeds = Feeds {
        work_item: None,
        status: None,
        work_item_key: None,
        pull_request: None,
        links: false,
    };
}

/// A row of a final table, as transformers produce it and load jobs carry
/// it.
pub trait FinalRow: Serialize + DeserializeOwned {
    const TABLE: &'static Table;
    fn integration_id(&self) -> i32;
    fn raw_data_id(&self) -> Option<i32>;
    /// The first value longer than its column holds.
    fn oversized(&self) -> Option<Oversized>;
}

/// A row of its table's shape: the integration it names, the raw record
/// it came from, and the first value longer than its column (a load
/// leaves such a row out, and says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedRow {
    pub integration_id: i32,
    pub raw_data_id: Option<i32>,
    pub oversized: Option<Oversized>,
}

/// [`Table::check`] for the table of `R`: the row parses as `R`, or the
/// error names the field at fault (`labels[2]`, `summary` when missing;
/// `body` for the row as a whole) in code `invalid_row`.
pub fn check_row<R: FinalRow>(text: &str) -> Result<CheckedRow, TransformError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let row: R = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let message = without_position(error.inner());
        let field = field_of(&error.path().to_string(), &message);
        TransformError {
            code: "invalid_row".to_owned(),
            message,
            field,
        }
    })?;
    Ok(CheckedRow {
        integration_id: row.integration_id(),
        raw_data_id: row.raw_data_id(),
        oversized: row.oversized(),
    })
}

/// The field a serde error at `path` names: the path, plus the missing
/// field's own name for "missing field" errors (whose path is the
/// enclosing object); `body` for the value as a whole.
pub fn field_of(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        ("", Some(name)) => name.to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        ("", None) => "body".to_owned(),
        (path, None) => path.to_owned(),
    }
}

/// serde_json's message without its " at line 1 column 7" suffix.
pub fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// One transformed row, serialised, with its table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: &'static Table,
    /// The row as a JSON object.
    pub text: String,
}

impl Row {
    /// Serialises a typed row.
    pub fn of<R: FinalRow>(row: &R) -> Result<Self, TransformError> {
        let text = serde_json::to_string(row)
            .map_err(|e| TransformError::invalid("raw_data", format!("cannot be written: {e}")))?;
        Ok(Self {
            table: R::TABLE,
            text,
        })
    }
}

/// The fields of row type `R`, as serde's derived `Deserialize` names them
/// (asked of a deserializer that only listens).
pub fn field_names<R: DeserializeOwned>() -> &'static [&'static str] {
    let mut listener = FieldNames(&[]);
    let _ = R::deserialize(&mut listener);
    listener.0
}

/// A deserializer that keeps the field names a struct asks for, and gives
/// nothing.
struct FieldNames(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only field names"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        a: i32,
        #[serde(rename = "b_2")]
        b: Option<String>,
    }

    #[test]
    fn field_names_are_the_names_serde_reads() {
        assert_eq!(field_names::<Sample>(), ["a", "b_2"]);
        let commit = field_names::<crate::transform::PullRequestCommitRow>();
        assert!(commit.contains(&"sha") && commit.contains(&"raw_data_id"));
    }
}
