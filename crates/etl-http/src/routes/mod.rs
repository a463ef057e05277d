mod ops;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(ops::health))
        .route("/ready", web::get().to(ops::ready));
}

/// Any path no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(&format!(
        "Route {} {}",
        req.method(),
        req.path()
    )))
}
