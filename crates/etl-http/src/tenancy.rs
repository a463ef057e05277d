//! Tenant checks that need the database, run inside the handler's blocking
//! closure (so on the connection it already holds).

use etl_domain::TenantId;
use etl_store::{tenants, PgConnection};

use crate::error::ApiError;

/// 403 unless the token's tenant exists and is active.
pub fn ensure_active(conn: &mut PgConnection, tenant_id: TenantId) -> Result<(), ApiError> {
    match tenants::find(conn, tenant_id.get())? {
        Some(tenant) if tenant.active => Ok(()),
        Some(_) => Err(ApiError::forbidden(format!(
            "Tenant {tenant_id} is inactive"
        ))),
        None => Err(ApiError::forbidden(format!(
            "Tenant {tenant_id} does not exist"
        ))),
    }
}

/// The 422 for an integration that is missing, another tenant's or inactive
/// (the three read alike: another tenant's integrations are not to be seen).
pub fn unusable_integration(
    field: impl Into<String>,
    integration_id: i32,
) -> crate::error::FieldError {
    crate::error::FieldError {
        field: field.into(),
        message: format!(
            "integration {integration_id} is not an active integration of this tenant"
        ),
    }
}
