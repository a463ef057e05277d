//! `jsonb` as text, both ways.
//!
//! Diesel's own `jsonb` mapping goes through `serde_json::Value`, whose
//! numbers are binary floats: digits would be lost. [`JsonText`] carries
//! the text instead. On the wire PostgreSQL's binary `jsonb` format is a
//! version byte (1) followed by the JSON text, so neither side parses.

use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Jsonb;

/// JSON text stored in (or read from) a `jsonb` column, unparsed.
#[derive(Debug, Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
pub struct JsonText(pub String);

impl JsonText {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The text of a tree (its numbers as the tree holds them).
    pub fn of(value: &serde_json::Value) -> Self {
        Self(value.to_string())
    }
}

/// The format version of binary `jsonb`.
const JSONB_VERSION: u8 = 1;

impl FromSql<Jsonb, Pg> for JsonText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => Ok(Self(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb version".into()),
        }
    }
}

impl ToSql<Jsonb, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.0.as_bytes())?;
        Ok(serialize::IsNull::No)
    }
}
