pub(crate) mod final_data;
pub(crate) mod jobs;
pub(crate) mod ops;
pub(crate) mod raw_data;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(ops::health))
        .route("/ready", web::get().to(ops::ready))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::scope("/api/v1/etl")
                .route("/openapi.json", web::get().to(ops::openapi))
                .route("/raw-data/store", web::post().to(raw_data::store))
                .route(
                    "/raw-data/store-batch",
                    web::post().to(raw_data::store_batch),
                )
                .route("/raw-data", web::get().to(raw_data::list))
                .route("/raw-data/{id}", web::get().to(raw_data::get))
                .route(
                    "/raw-data/{id}/status",
                    web::put().to(raw_data::update_status),
                )
                .route("/pipeline", web::post().to(jobs::pipeline))
                .route("/pipeline/process", web::post().to(jobs::process))
                .route("/load", web::post().to(jobs::load))
                .route("/transform", web::post().to(jobs::transform))
                .route("/work-items", web::get().to(final_data::work_items))
                .route("/pull-requests", web::get().to(final_data::pull_requests))
                .route("/jobs", web::get().to(jobs::list))
                .route("/jobs/{id}", web::get().to(jobs::get))
                .route("/jobs/{id}/retry", web::post().to(jobs::retry))
                .route("/jobs/{id}/cancel", web::post().to(jobs::cancel))
                .route("/jobs/{id}/status", web::put().to(jobs::report)),
        );
}

/// Any path no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(&format!(
        "Route {} {}",
        req.method(),
        req.path()
    )))
}
