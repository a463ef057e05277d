//! A request id on every request: taken from the client's `x-request-id`
//! when it sends a sane one, made up otherwise; recorded on the request's
//! tracing span (so every log line of the request carries it) and returned
//! in the `x-request-id` response header, errors included.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

fn accept_client_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let sane = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    sane.then(|| text.to_owned())
}

fn new_request_id() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

pub async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(accept_client_id)
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        // Filled in by the `Tenant` extractor once the token checks out.
        tenant_id = tracing::field::Empty,
        subject = tracing::field::Empty,
    );
    let started = Instant::now();
    let metrics = req
        .app_data::<actix_web::web::Data<crate::AppState>>()
        .map(|state| state.metrics.clone());
    // The route's pattern, not its path: ids would make label values endless.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    // Handler errors arrive here already turned into responses; only a
    // failure of the service chain itself is an `Err`.
    let mut response = next.call(req).instrument(span.clone()).await?;
    let status = response.status();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(metrics) = metrics {
        metrics.observe_request(&method, &route, status.as_u16(), elapsed);
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed * 1000.0,
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}
