//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! domain types' schemas.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, FieldError};
use crate::routes::{final_data, jobs, ops, raw_data};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ETL service",
        description = "Transform and Load for Jira issues and GitHub pull requests. \
                       Every /api/v1/etl route but openapi.json needs `Authorization: Bearer <JWT>` \
                       (HS256, claims sub, tenant_id, exp). Errors are JSON {detail, code[, errors]}."
    ),
    paths(
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi,
        raw_data::store,
        raw_data::store_batch,
        raw_data::list,
        raw_data::get,
        raw_data::update_status,
        jobs::pipeline,
        jobs::process,
        jobs::load,
        jobs::list,
        jobs::get,
        jobs::retry,
        jobs::cancel,
        jobs::report,
        jobs::transform,
        final_data::work_items,
        final_data::pull_requests,
    ),
    // Schemas only named by parameters are not collected from the paths.
    components(schemas(
        ErrorBody,
        ErrorCode,
        FieldError,
        etl_domain::JobType,
        etl_domain::JobStatus,
        etl_domain::ProcessingStatus,
        etl_domain::ReportedJobStatus,
        etl_domain::IdempotencyKey,
        etl_domain::PageLimit,
        etl_domain::EntityType
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "raw-data", description = "Raw API responses as extracted"),
        (name = "jobs", description = "Extract, transform and load jobs"),
        (name = "final data", description = "The final tables, read-only"),
        (name = "operations", description = "Health, readiness, metrics; no token"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}
