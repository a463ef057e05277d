//! The route table (SPEC §5): every path with the one method it takes;
//! any other method answers a JSON 405.

pub(crate) mod console;
pub(crate) mod docs;
pub(crate) mod final_data;
pub(crate) mod jobs;
pub(crate) mod ops;
pub(crate) mod pipeline;
pub(crate) mod raw_data;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    cfg.service(at("/health", Method::GET, web::get().to(ops::health)))
        .service(at("/ready", Method::GET, web::get().to(ops::ready)))
        .service(at("/metrics", Method::GET, web::get().to(ops::metrics)))
        .service(at(
            "/dashboard",
            Method::GET,
            web::get().to(console::dashboard),
        ))
        .service(at(
            "/dashboard/app.js",
            Method::GET,
            web::get().to(console::dashboard_js),
        ))
        .service(at(
            "/dashboard/app.css",
            Method::GET,
            web::get().to(console::dashboard_css),
        ))
        .service(at("/docs", Method::GET, web::get().to(docs::page)))
        .service(at("/docs/{file}", Method::GET, web::get().to(docs::asset)))
        .service(
            web::scope("/api/v1/etl")
                .service(at(
                    "/openapi.json",
                    Method::GET,
                    web::get().to(ops::openapi),
                ))
                .service(at(
                    "/raw-data/store",
                    Method::POST,
                    web::post().to(raw_data::store),
                ))
                .service(at(
                    "/raw-data/store-batch",
                    Method::POST,
                    web::post().to(raw_data::store_batch),
                ))
                .service(at("/raw-data", Method::GET, web::get().to(raw_data::list)))
                // Before `/raw-data/{id}`, which would take the path first.
                .service(at(
                    "/raw-data/replay",
                    Method::POST,
                    web::post().to(pipeline::replay),
                ))
                .service(at(
                    "/raw-data/{id}",
                    Method::GET,
                    web::get().to(raw_data::get),
                ))
                .service(at(
                    "/raw-data/{id}/status",
                    Method::PUT,
                    web::put().to(raw_data::update_status),
                ))
                .service(at(
                    "/pipeline",
                    Method::POST,
                    web::post().to(pipeline::pipeline),
                ))
                .service(at(
                    "/pipeline/process",
                    Method::POST,
                    web::post().to(pipeline::process),
                ))
                .service(at("/load", Method::POST, web::post().to(pipeline::load)))
                .service(at(
                    "/transform",
                    Method::POST,
                    web::post().to(pipeline::transform),
                ))
                .service(at(
                    "/work-items",
                    Method::GET,
                    web::get().to(final_data::work_items),
                ))
                .service(at(
                    "/work-items/{id}",
                    Method::GET,
                    web::get().to(final_data::work_item),
                ))
                .service(at(
                    "/work-item-changes",
                    Method::GET,
                    web::get().to(final_data::work_item_changes),
                ))
                .service(at(
                    "/pull-requests",
                    Method::GET,
                    web::get().to(final_data::pull_requests),
                ))
                .service(at(
                    "/pull-requests/{id}",
                    Method::GET,
                    web::get().to(final_data::pull_request),
                ))
                .service(at(
                    "/flow-metrics",
                    Method::GET,
                    web::get().to(final_data::flow_metrics),
                ))
                .service(at("/stats", Method::GET, web::get().to(console::stats)))
                .service(at("/jobs", Method::GET, web::get().to(jobs::list)))
                .service(at("/jobs/{id}", Method::GET, web::get().to(jobs::get)))
                .service(at(
                    "/jobs/{id}/retry",
                    Method::POST,
                    web::post().to(jobs::retry),
                ))
                .service(at(
                    "/jobs/{id}/cancel",
                    Method::POST,
                    web::post().to(jobs::cancel),
                ))
                .service(at(
                    "/jobs/{id}/status",
                    Method::PUT,
                    web::put().to(jobs::report),
                )),
        );
}

/// A path served by one method; any other method answers 405 as JSON
/// (SPEC §4), naming the one it takes in `Allow`.
fn at(path: &str, method: actix_web::http::Method, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(move |req: HttpRequest| {
            let allowed = method.clone();
            async move {
                let error = ApiError::new(
                    crate::error::ErrorCode::MethodNotAllowed,
                    format!("{} takes {allowed}, not {}", req.path(), req.method()),
                );
                let mut response = actix_web::ResponseError::error_response(&error);
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allowed.as_str())
                {
                    response
                        .headers_mut()
                        .insert(actix_web::http::header::ALLOW, value);
                }
                response
            }
        }))
}

/// A file of a page the service serves itself (the dashboard, the docs):
/// its content security policy, no sniffing, no referrer, no framing, and
/// checked again on every load (the files change with the binary).
fn page_file(
    content_type: &str,
    csp: &'static str,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", csp))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// Any path no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(&format!(
        "Route {} {}",
        req.method(),
        req.path()
    )))
}
