//! HTTP facade of the ETL service (actix-web).
//!
//! Handlers parse requests into domain types, cross into synchronous Diesel
//! through [`blocking`] only, and answer errors through [`ApiError`], whose
//! module documents the mapping from failures to status codes.

pub mod auth;
mod blocking;
pub mod bounded;
pub mod error;
mod extract;
mod idempotent;
pub mod metrics;
mod next_round;
mod openapi;
mod query;
mod request_id;
mod routes;
mod state;
pub mod store_writer;
mod tenancy;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

pub use blocking::blocking;
pub use error::{ApiError, ErrorCode};
pub use state::{AppState, ReadinessCheck};

/// Limits and knobs of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body (`ETL_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads; `None` uses one per core.
    pub workers: Option<usize>,
    /// Most bytes of large bodies (over 64 KiB) held at once, from reading
    /// to answer; a body that finds no room within 10 s is a 503. Small
    /// bodies never wait for it.
    pub max_large_bodies_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            workers: None,
            max_large_bodies_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Registers every route and the middleware on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

/// Starts serving on an already bound listener. Signals are not handled
/// here: the caller stops the returned server (gracefully) when it decides to
/// shut down, so HTTP and the workers stop together.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    config: &HttpConfig,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let max_body = config.max_body_bytes;
    let budget = web::Data::new(extract::BodyBudget::new(
        config.max_large_bodies_bytes.max(max_body),
        max_body,
    ));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(budget.clone())
            .app_data(error::query_config())
            .app_data(error::path_config())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(configure)
            .default_service(web::to(routes::not_found))
            .wrap(middleware::from_fn(request_id::trace_request))
    })
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .listen(listener)?;
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
