//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! domain types' schemas.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, FieldError};
use crate::routes::{console, final_data, jobs, ops, pipeline, raw_data};

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
        pipeline::pipeline,
        pipeline::process,
        pipeline::replay,
        pipeline::load,
        jobs::list,
        jobs::get,
        jobs::retry,
        jobs::cancel,
        jobs::report,
        pipeline::transform,
        final_data::work_items,
        final_data::work_item,
        final_data::work_item_changes,
        final_data::pull_requests,
        final_data::pull_request,
        final_data::flow_metrics,
        console::stats,
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
    modifiers(&BearerAuth, &SecuredResponses),
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

/// The answers every secured route may give besides its own, declared
/// once here rather than route by route: 401, 403, 500 and 503.
struct SecuredResponses;

impl SecuredResponses {
    fn error(description: &str) -> utoipa::openapi::Response {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    }

    fn unavailable() -> utoipa::openapi::Response {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut response = Self::error(
            "PostgreSQL is unreachable, cannot take the work now (disk full, read-only, a deadlock, too many connections), or a statement passed its lock or statement timeout; nothing was stored; retry after Retry-After seconds",
        );
        response.headers.insert(
            "Retry-After".to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
        response
    }
}

impl Modify for SecuredResponses {
    fn modify(&self, openapi: &mut Document) {
        let shared = [
            (
                "401",
                Self::error("Missing, malformed, wrongly signed or expired token"),
            ),
            (
                "403",
                Self::error("The token's tenant does not exist or is inactive"),
            ),
            ("500", Self::error("Unexpected failure; quote x-request-id")),
            ("503", Self::unavailable()),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.as_ref().is_none_or(Vec::is_empty) {
                    continue;
                }
                for (status, response) in &shared {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| response.clone().into());
                }
            }
        }
    }
}

/// The document, built once.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn every_operation_id_is_unique() {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, item) in &document().paths.paths {
            let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
            for operation in operations.into_iter().flatten() {
                let id = operation
                    .operation_id
                    .clone()
                    .expect("every operation has an id");
                seen.entry(id).or_default().push(path.clone());
            }
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, paths)| paths.len() > 1).collect();
        assert!(repeated.is_empty(), "operationIds used twice: {repeated:?}");
    }

    /// The document is pinned: a change to the contract shows as a diff of
    /// `openapi.snapshot.json` in review. `UPDATE_OPENAPI_SNAPSHOT=1 cargo
    /// test -p etl-http openapi` writes the new one.
    #[test]
    fn the_document_matches_its_snapshot() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.snapshot.json");
        let now = document().to_pretty_json().expect("document") + "\n";
        if std::env::var_os("UPDATE_OPENAPI_SNAPSHOT").is_some() {
            std::fs::write(path, &now).expect("writing the snapshot");
        }
        let pinned = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            pinned == now,
            "the OpenAPI document changed; review it and run UPDATE_OPENAPI_SNAPSHOT=1 cargo test -p etl-http openapi"
        );
    }
}
