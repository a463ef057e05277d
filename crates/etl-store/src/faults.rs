//! Whose fault a database error is (SPEC §5: "every error tells the truth").
//!
//! A client drops a record answered 422, so 422 must mean the record's own
//! content is at fault; a database that cannot do the work now (disk full,
//! read-only after a fail-over, a deadlock, too many connections) is a 503
//! the client retries; anything else is a 500. PostgreSQL says which by the
//! error's SQLSTATE. Diesel names a few SQLSTATEs as a [`DatabaseErrorKind`]
//! and hides the rest, so for those the store asks again
//! ([`crate::raw_records::sqlstate_of_insert`]).

use diesel::result::{DatabaseErrorKind, Error};

/// Whose fault a failed statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The value itself: a data exception (22xxx), a constraint it breaks
    /// (23xxx), a program limit of the value (54000, 54001: too long, too
    /// deep). Answered 422 naming the field.
    Content,
    /// The database cannot do it now and a retry may succeed:
    /// serialization failure and deadlock (40001, 40P01), insufficient
    /// resources (53xxx), shutdown and timeouts (57xxx, 55P03), connection
    /// failures (08xxx), a read-only server (25006). Answered 503 with
    /// `Retry-After`.
    Transient,
    /// Anything else (a missing relation, a bug): answered 500.
    Internal,
}

impl Fault {
    /// The fault a SQLSTATE names.
    pub fn of_sqlstate(code: &str) -> Self {
        let class = code.get(..2).unwrap_or("");
        match (class, code) {
            ("22" | "23", _) | (_, "54000" | "54001") => Self::Content,
            ("40", "40001" | "40P01") | ("53" | "57" | "08", _) | (_, "55P03" | "25006") => {
                Self::Transient
            }
            _ => Self::Internal,
        }
    }

    /// The fault when the error alone tells it (the kinds Diesel names,
    /// a lost connection, a timeout); `None` when only the SQLSTATE can.
    pub fn known(error: &Error) -> Option<Self> {
        match error {
            Error::DatabaseError(kind, _) => match kind {
                DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation => Some(Self::Content),
                DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ReadOnlyTransaction
                | DatabaseErrorKind::ClosedConnection => Some(Self::Transient),
                _ if crate::is_unavailable(error) => Some(Self::Transient),
                _ => None,
            },
            _ => Some(Self::Internal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_fault_the_spec_names() {
        for content in [
            "22001", "22003", "22P02", "22P05", "23505", "23503", "54000", "54001",
        ] {
            assert_eq!(Fault::of_sqlstate(content), Fault::Content, "{content}");
        }
        for transient in [
            "40001", "40P01", "53100", "53200", "53300", "57P01", "57P03", "57014", "08006",
            "25006", "55P03",
        ] {
            assert_eq!(
                Fault::of_sqlstate(transient),
                Fault::Transient,
                "{transient}"
            );
        }
        for internal in ["42P01", "42703", "XX000", "40003", "54011", "P0001", ""] {
            assert_eq!(Fault::of_sqlstate(internal), Fault::Internal, "{internal}");
        }
    }
}
