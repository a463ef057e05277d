//! Query-string parsing shared by the list routes: every parameter arrives
//! as text and is parsed here, so that each bad one is named in the 422.

use etl_domain::PageLimit;

use crate::error::{ApiError, FieldError};

/// Collects the field errors of one query.
#[derive(Debug, Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    /// The parsed value; an error is noted under `field`.
    pub fn take<T>(&mut self, field: &str, parsed: Option<Result<T, String>>) -> Option<T> {
        match parsed {
            Some(Ok(value)) => Some(value),
            Some(Err(message)) => {
                self.note(field, message);
                None
            }
            None => None,
        }
    }

    pub fn note(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Notes a free-text parameter that carries U+0000 (which no column
    /// can hold: SPEC §5 refuses it).
    pub fn text(&mut self, field: &str, value: Option<&str>) {
        if value.is_some_and(|v| v.contains('\0')) {
            self.note(field, "must not contain U+0000 (NUL)");
        }
    }

    /// `Ok(())` when nothing was noted, else the 422 naming every field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

pub fn parse_with<T, E: std::fmt::Display>(
    text: Option<String>,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Option<Result<T, String>> {
    text.map(|t| parse(t).map_err(|e| e.to_string()))
}

fn parse_int(text: &str) -> Result<i64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("must be an integer (got `{text}`)"))
}

pub fn limit(text: Option<String>) -> Option<Result<PageLimit, String>> {
    text.map(|t| parse_int(&t).and_then(|n| PageLimit::new(n).map_err(|e| e.to_string())))
}

pub fn id(text: Option<String>) -> Option<Result<i32, String>> {
    text.map(|t| {
        parse_int(&t)
            .and_then(|n| i32::try_from(n).map_err(|_| format!("must be at most {}", i32::MAX)))
    })
}

/// An id of a table whose ids are `bigint` (`after_id` of changes).
pub fn long_id(text: Option<String>) -> Option<Result<i64, String>> {
    text.map(|t| parse_int(&t))
}
