//! The one error type of the HTTP layer and its policy.
//!
//! Every failure answers JSON `{"detail": "<sentence>", "code": "<code>"}`
//! (plus `errors: [{field, message}]` for validation), with the status taken
//! from the [`ErrorCode`]:
//!
//! | cause | status | code |
//! |---|---|---|
//! | body is not JSON | 400 | `malformed_json` |
//! | missing/invalid token | 401 | `unauthorized` |
//! | tenant missing or inactive | 403 | `forbidden` |
//! | no such record (or another tenant's) | 404 | `not_found` |
//! | forbidden status change, finished job | 409 | `conflict` |
//! | body over `ETL_MAX_BODY_BYTES` | 413 | `payload_too_large` |
//! | body not `application/json` | 415 | `unsupported_media_type` |
//! | wrong types, ranges, missing fields | 422 | `validation_error` |
//! | pool checkout timed out, connection lost | 503 + `Retry-After` | `service_unavailable` |
//! | anything else | 500 | `internal_error` |
//!
//! A 5xx never shows its cause to the client: the cause chain is logged in
//! the request's span (so with its request id) and the client gets a fixed
//! sentence and the `x-request-id` header to quote.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use serde::Serialize;

/// Stable machine codes of SPEC §4. Clients and tests match on these, never
/// on the `detail` sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
    ServiceUnavailable,
    InternalError,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedJson => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where in the request: `entity_type`, `records[3].raw_data`, `limit`.
    pub field: String,
    pub message: String,
}

/// An error answer, with its (never shown) cause.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    cause: Option<String>,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "5";

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            cause: None,
        }
    }

    /// A 422 naming one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Self::validation(vec![FieldError { field, message }])
    }

    /// A 422 naming every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("Invalid request: {}: {}", one.field, one.message),
            many => format!("Invalid request: {} fields are invalid", many.len()),
        };
        Self {
            errors,
            ..Self::new(ErrorCode::ValidationError, detail)
        }
    }

    /// The same error with another sentence for people.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    /// The database (or another dependency) cannot be reached right now.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(
                ErrorCode::ServiceUnavailable,
                "The service is temporarily unavailable; retry later",
            )
        }
    }

    /// A bug or an unexpected failure: logged with its cause, shown as a
    /// fixed sentence.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(ErrorCode::InternalError, "Internal server error")
        }
    }

    /// The same error with every field path under `prefix`
    /// (`entity_type` → `records[3].entity_type`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for error in &mut self.errors {
            error.field = if error.field == "body" {
                prefix.to_owned()
            } else {
                format!("{prefix}.{}", error.field)
            };
        }
        if let [one] = self.errors.as_slice() {
            self.detail = format!("Invalid request: {}: {}", one.field, one.message);
        }
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The body of every error answer (SPEC §4).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// A sentence for people.
    detail: &'a str,
    /// A stable code for programs.
    code: ErrorCode,
    /// Present on 422: each invalid field.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            // Runs inside the request's span: the log line carries its id.
            if self.code == ErrorCode::ServiceUnavailable {
                tracing::warn!(code = ?self.code, %cause, "request failed");
            } else {
                tracing::error!(code = ?self.code, %cause, "request failed");
            }
        }
        let mut response = HttpResponse::build(self.status_code());
        if self.code == ErrorCode::ServiceUnavailable {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response.json(ErrorBody {
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        })
    }
}

impl From<etl_store::PoolError> for ApiError {
    fn from(error: etl_store::PoolError) -> Self {
        Self::unavailable(format!("database pool: {error}"))
    }
}

impl From<etl_store::QueryError> for ApiError {
    fn from(error: etl_store::QueryError) -> Self {
        if etl_store::is_unavailable(&error) {
            Self::unavailable(format!("database: {error}"))
        } else {
            Self::internal(format!("database: {error}"))
        }
    }
}

impl From<etl_store::StoreError> for ApiError {
    fn from(error: etl_store::StoreError) -> Self {
        match error {
            etl_store::StoreError::Query(e) => e.into(),
            etl_store::StoreError::Pool(e) => e.into(),
            etl_store::StoreError::Connect(e) => Self::unavailable(e),
            other => Self::internal(other),
        }
    }
}

/// Query-string errors (`?limit=abc`) are validation errors.
pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        ApiError::validation(vec![FieldError {
            field: "query".to_owned(),
            message: error.to_string(),
        }])
        .into()
    })
}

/// Path errors (`/raw-data/abc`) are validation errors of the id.
pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|_error, _req| ApiError::invalid_field("id", "must be an integer").into())
}
