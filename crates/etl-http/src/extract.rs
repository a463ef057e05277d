//! Request extractors that turn raw HTTP into domain values or an
//! [`ApiError`] in the SPEC §4 format.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use etl_domain::transform::tables::without_position;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest};
use etl_domain::{CleanBody, IdempotencyKey};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ErrorCode, FieldError};
use crate::state::AppState;

/// A JSON body parsed into `T`: 415 unless `Content-Type: application/json`,
/// 413 over the body limit, 400 when it is not JSON, 422 naming the field
/// when it is JSON of the wrong shape.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + CleanBody + Send + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "The body must be sent with Content-Type: application/json",
                ));
            }
            // Room for a large body before it is read; held until the
            // request is answered (it is stored by then).
            if let Some(budget) = req.app_data::<web::Data<BodyBudget>>() {
                if let Some(permit) = budget.room_for(declared_length(&req)).await? {
                    req.extensions_mut().insert(permit);
                }
            }
            let bytes = body.await.map_err(|e| payload_error(&e))?;
            if bytes.len() <= INLINE_CHECK_BYTES {
                return parse_json(&bytes).map(JsonBody);
            }
            // Checking a large body takes CPU for a while (linear, but 16 MiB
            // is tens of milliseconds): off the HTTP worker, which must go
            // on answering `/health` and small requests meanwhile.
            web::block(move || parse_json(&bytes))
                .await
                .map_err(|_| ApiError::internal("the body check was cancelled"))?
                .map(JsonBody)
        })
    }
}

/// Bodies up to this size are checked on the HTTP worker itself; larger
/// ones on the blocking pool, and only with room in the [`BodyBudget`].
const INLINE_CHECK_BYTES: usize = 64 * 1024;

/// How many bytes of large bodies the server holds at once (SPEC: every
/// buffer has a bound in bytes). A large body takes its room before it is
/// read (its `Content-Length`, or the largest body when it has none) and
/// gives it back when its request is answered: with a body, its cleaned
/// copy, its parsed text and its stored record in flight, the memory of
/// hostile bodies stays a small multiple of this. Small bodies never wait.
#[derive(Debug)]
pub struct BodyBudget {
    room: Arc<Semaphore>,
    /// Room in KiB (the semaphore's unit).
    total_kib: u32,
    max_body_bytes: usize,
}

/// A large body's room, given back when its request ends.
pub(crate) struct BodyRoom(#[allow(dead_code)] OwnedSemaphorePermit);

/// Longest a large body waits for room before it is answered 503.
const BODY_ROOM_WAIT: Duration = Duration::from_secs(10);

impl BodyBudget {
    pub fn new(total_bytes: usize, max_body_bytes: usize) -> Self {
        let total_kib = u32::try_from(total_bytes.div_ceil(1024)).unwrap_or(u32::MAX >> 4);
        Self {
            room: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            max_body_bytes,
        }
    }

    /// Room for a body of `declared` bytes (`None`: not declared); `None`
    /// for a small one, which needs none.
    async fn room_for(&self, declared: Option<usize>) -> Result<Option<BodyRoom>, ApiError> {
        let bytes = declared
            .unwrap_or(self.max_body_bytes)
            .min(self.max_body_bytes);
        if bytes <= INLINE_CHECK_BYTES {
            return Ok(None);
        }
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        match tokio::time::timeout(BODY_ROOM_WAIT, self.room.clone().acquire_many_owned(kib)).await
        {
            Ok(Ok(permit)) => Ok(Some(BodyRoom(permit))),
            _ => Err(ApiError::unavailable(
                "no room for another large body now (large bodies in flight)",
            )),
        }
    }
}

/// The body's declared length, when it declares one.
fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn payload_error(error: &actix_web::Error) -> ApiError {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "The body is larger than this server accepts (ETL_MAX_BODY_BYTES)",
        ),
        _ => ApiError::new(ErrorCode::MalformedJson, "The body could not be read"),
    }
}

/// Parses a request body into `T` after the SPEC §5 rules for what
/// PostgreSQL cannot hold: U+0000 is removed from strings and keys (and `T`
/// told where) but refused in identifiers, and a number beyond `numeric` or
/// an unpaired surrogate escape is refused; each refusal is a 422 naming
/// the field.
pub(crate) fn parse_json<T: DeserializeOwned + CleanBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let scan = etl_domain::json_text::scan(bytes, T::field_depth()).map_err(|refusal| {
        // The scan judges only valid JSON: a body that is not JSON at all
        // is a 400 whatever numbers it holds.
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            if !is_too_deep(&syntax) {
                return ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("The body is not valid JSON: {}", without_position(&syntax)),
                );
            }
        }
        let field = refusal.path.take(T::field_depth()).to_string();
        let inner = abbreviate_path(refusal.path.skip(T::field_depth()).to_string());
        let message = if inner.is_empty() {
            refusal.message
        } else {
            format!("{} (at {inner})", refusal.message)
        };
        ApiError::invalid_field(
            if field.is_empty() {
                "body".to_owned()
            } else {
                field
            },
            message,
        )
    })?;
    let refused: Vec<FieldError> = scan
        .nul_places
        .iter()
        .filter(|place| T::identifier(place))
        .map(|place| FieldError {
            field: place.to_string(),
            message: "must not contain U+0000 (NUL)".to_owned(),
        })
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::validation(refused));
    }
    let clean = scan.clean(bytes);
    if !is_object_text(&clean) && serde_json::from_slice::<serde::de::IgnoredAny>(&clean).is_ok() {
        return Err(ApiError::invalid_field("body", "must be a JSON object")
            .with_detail("The body must be a JSON object"));
    }
    let mut value: T = parse_shape(&clean)?;
    if !scan.nul_places.is_empty() {
        value.removed(&scan.nul_places);
    }
    Ok(value)
}

/// A path shortened for a message (a refusal deep in a nested body would
/// otherwise quote every level).
fn abbreviate_path(path: String) -> String {
    const MOST: usize = 120;
    if path.len() <= MOST {
        return path;
    }
    let mut cut = MOST;
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} characters)", &path[..cut], path.len())
}

/// Whether JSON text is an object (its first character, past white space).
fn is_object_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Parses JSON into `T`, telling malformed JSON (400) from JSON of the wrong
/// shape (422, with the path of the offending field).
pub(crate) fn parse_shape<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |error: &serde_json::Error| {
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("The body is not valid JSON: {}", without_position(error)),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // A shape error may come before a syntax error further on
                // (`{} trailing`): the body is only "wrong shape" if it is
                // JSON at all. Checked on this error path only.
                if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    return malformed(&syntax);
                }
                ApiError::validation(vec![field_error(&error.path().to_string(), inner)])
            }
            // Valid JSON nested deeper than the parser follows: not
            // malformed, but more than this service takes.
            _ if is_too_deep(inner) => {
                ApiError::invalid_field("body", "nests arrays and objects deeper than 128 levels")
            }
            _ => malformed(inner),
        }
    })?;
    // Trailing characters after the value make the body malformed too.
    deserializer.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn is_too_deep(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("recursion limit exceeded")
}

/// Names the field of a data error (the domain's rule, which `POST /load`'s
/// rows follow too).
fn field_error(path: &str, error: &serde_json::Error) -> FieldError {
    let message = without_position(error);
    FieldError {
        field: etl_domain::transform::tables::field_of(path, &message),
        message,
    }
}

/// The tenant a request acts for, from its bearer token. Only the token is
/// checked here (401); whether the tenant exists and is active (403) is
/// checked against the database by [`crate::tenancy::activate`], the one
/// door to the tenant's data, which hands out the proof the store asks for.
#[derive(Debug, Clone)]
pub struct Tenant {
    id: etl_domain::TenantId,
    pub subject: String,
}

impl Tenant {
    /// The id the token claims, not yet checked against the database: for
    /// the door, and for the statements that check the tenant themselves
    /// (the checked inserts of the store path and the raw-data page).
    pub fn claimed_id(&self) -> etl_domain::TenantId {
        self.id
    }
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Tenant, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state is missing"))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("Missing Authorization header (Bearer token)"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Malformed Authorization header"))?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?;
    let claims = state
        .jwt
        .verify(token)
        .map_err(|e| ApiError::unauthorized(format!("Invalid token: {e}")))?;
    let tenant = Tenant {
        id: etl_domain::TenantId::new(claims.tenant_id),
        subject: claims.sub,
    };
    let span = tracing::Span::current();
    span.record("tenant_id", tenant.id.get());
    span.record("subject", tenant.subject.as_str());
    Ok(tenant)
}

/// The optional `Idempotency-Key` header, 1–255 characters (else 422).
#[derive(Debug, Clone)]
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl FromRequest for IdempotencyHeader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get("idempotency-key") {
            None => Ok(IdempotencyHeader(None)),
            Some(value) => value
                .to_str()
                .map_err(|_| "must be visible ASCII".to_owned())
                .and_then(|text| IdempotencyKey::parse(text).map_err(|e| e.to_string()))
                .map(|key| IdempotencyHeader(Some(key)))
                .map_err(|message| ApiError::invalid_field("Idempotency-Key", message)),
        };
        std::future::ready(parsed)
    }
}

#[cfg(test)]
mod tests {
    use etl_domain::{StoreBatchRequest, StoreRawDataRequest};

    use super::*;

    fn fields(error: &ApiError) -> Vec<String> {
        error
            .field_errors()
            .iter()
            .map(|e| e.field.clone())
            .collect()
    }

    #[test]
    fn numbers_beyond_numeric_are_422_in_json_and_400_in_what_is_not_json() {
        let body = br#"{"integration_id":1,"entity_type":"x","raw_data":{"n":1e-20000}}"#;
        let error = parse_json::<StoreRawDataRequest>(body).expect_err("refused");
        assert_eq!(error.code(), ErrorCode::ValidationError);
        assert_eq!(fields(&error), ["raw_data"]);
        let error = parse_json::<StoreRawDataRequest>(br#"{"raw_data":{"n":1e-20000"#)
            .expect_err("refused");
        assert_eq!(error.code(), ErrorCode::MalformedJson);
    }

    #[test]
    fn deep_nesting_is_kept_as_text_or_a_422_never_malformed_json() {
        let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let raw =
            format!(r#"{{"integration_id":1,"entity_type":"x","raw_data":{{"a":{nested}}}}}"#);
        assert!(
            parse_json::<StoreRawDataRequest>(raw.as_bytes()).is_ok(),
            "text is not a tree"
        );
        let tree = format!(r#"{{"status":"failed","error_details":{{"a":{nested}}}}}"#);
        let error = parse_json::<etl_domain::UpdateStatusRequest>(tree.as_bytes())
            .expect_err("too deep for a tree");
        assert_eq!(error.code(), ErrorCode::ValidationError);
    }

    #[test]
    fn malformed_json_is_a_400() {
        for body in ["{", "not json", "{\"a\":1,}", "", "{} extra"] {
            let error = parse_json::<StoreRawDataRequest>(body.as_bytes()).expect_err(body);
            assert_eq!(error.code(), ErrorCode::MalformedJson, "{body}");
        }
    }

    #[test]
    fn wrong_shapes_are_422_naming_the_field() {
        let cases = [
            (r#"{"entity_type":"x","raw_data":{}}"#, "integration_id"),
            (
                r#"{"integration_id":"1","entity_type":"x","raw_data":{}}"#,
                "integration_id",
            ),
            (
                r#"{"integration_id":1,"entity_type":"X","raw_data":{}}"#,
                "entity_type",
            ),
            (
                r#"{"integration_id":1,"entity_type":"x","raw_data":[]}"#,
                "raw_data",
            ),
            ("[]", "body"),
            ("[{\"integration_id\":1}]", "body"),
            ("\"text\"", "body"),
        ];
        for (body, field) in cases {
            let error = parse_json::<StoreRawDataRequest>(body.as_bytes()).expect_err(body);
            assert_eq!(error.code(), ErrorCode::ValidationError, "{body}");
            assert_eq!(fields(&error), [field], "{body}");
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_says_so() {
        let error = parse_json::<StoreRawDataRequest>(b"[1, 2]").expect_err("array");
        assert_eq!(error.to_string(), "The body must be a JSON object");
        assert_eq!(error.field_errors()[0].message, "must be a JSON object");
    }

    #[test]
    fn batch_errors_name_the_record_index() {
        let ok = r#"{"integration_id":1,"entity_type":"x","raw_data":{}}"#;
        let bad = r#"{"integration_id":1,"entity_type":"x","raw_data":5}"#;
        let missing = r#"{"integration_id":1,"entity_type":"x"}"#;
        let body = format!(r#"{{"records":[{ok},{ok},{ok},{bad}]}}"#);
        let error = parse_json::<StoreBatchRequest>(body.as_bytes()).expect_err("invalid");
        assert_eq!(fields(&error), ["records[3].raw_data"]);
        let body = format!(r#"{{"records":[{ok},{missing}]}}"#);
        let error = parse_json::<StoreBatchRequest>(body.as_bytes()).expect_err("invalid");
        assert_eq!(fields(&error), ["records[1].raw_data"]);
        let error = parse_json::<StoreBatchRequest>(br#"{"records":[]}"#).expect_err("empty");
        assert_eq!(fields(&error), ["records"]);
    }

    #[test]
    fn messages_carry_no_line_and_column() {
        let error =
            parse_json::<StoreRawDataRequest>(br#"{"integration_id":true}"#).expect_err("invalid");
        assert!(
            !error.field_errors()[0].message.contains("line"),
            "{error:?}"
        );
    }
}
