//! `GET /docs`: interactive documentation of the served OpenAPI document
//! (SPEC §5), as FastAPI users expect. The page and its starter script are
//! ours; Swagger UI's files come from the pinned `utoipa-swagger-ui`
//! crate's vendored release, compiled into the binary. Nothing is loaded
//! from another host: it works offline.

use std::sync::{Arc, OnceLock};

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const DOCS_HTML: &str = include_str!("../docs/index.html");
const DOCS_JS: &str = include_str!("../docs/init.js");

/// Swagger UI's files the page uses; nothing else of its release is served.
const ASSETS: [&str; 4] = [
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

/// This origin only. Swagger UI sets inline styles on its elements, so
/// styles may be inline; scripts may not.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn file(content_type: &str, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    super::page_file(content_type, DOCS_CSP, body)
}

/// `GET /docs`: the page (no token; "Authorize" takes one for the calls).
pub async fn page() -> HttpResponse {
    file("text/html; charset=utf-8", DOCS_HTML)
}

/// `GET /docs/{file}`: the starter script or one of Swagger UI's files.
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if name == "init.js" {
        return Ok(file("text/javascript; charset=utf-8", DOCS_JS));
    }
    let missing = || ApiError::not_found(&format!("Documentation file {name}"));
    if !ASSETS.contains(&name.as_str()) {
        return Err(missing());
    }
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/api/v1/etl/openapi.json")))
        .clone();
    match utoipa_swagger_ui::serve(&name, config) {
        Ok(Some(found)) => Ok(file(&found.content_type, found.bytes.into_owned())),
        Ok(None) => Err(missing()),
        Err(error) => Err(ApiError::internal(format!("docs asset {name}: {error}"))),
    }
}
