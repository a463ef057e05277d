//! Acting for a tenant: the door every request's tenant passes, once, before
//! it reaches the tenant's data.
//!
//! The token names a tenant ([`Tenant`]); [`activate`] checks it exists and
//! is active (else 403) and hands out the store's [`ActiveTenant`] proof,
//! which the store's tenant-data functions demand. [`blocking_as`] is the
//! same door on the way to the database, for the common case of one check
//! and then the work.

use etl_domain::TenantId;
use etl_store::tenants::{self, ActiveTenant};
use etl_store::{PgConnection, PgPool};

use crate::blocking::blocking;
use crate::error::ApiError;
use crate::extract::Tenant;

/// The tenant named by the token, if it exists and is active (else 403).
pub fn activate(conn: &mut PgConnection, tenant: &Tenant) -> Result<ActiveTenant, ApiError> {
    activate_id(conn, tenant.claimed_id())
}

/// [`activate`] for a tenant id taken from the token earlier (a record the
/// store path holds).
pub fn activate_id(conn: &mut PgConnection, id: TenantId) -> Result<ActiveTenant, ApiError> {
    tenants::activate(conn, id)?.map_err(|refusal| ApiError::forbidden(refusal.to_string()))
}

/// Runs `work` for the token's tenant on the blocking pool, once [`activate`]
/// has found it active.
pub async fn blocking_as<T, F>(pool: &PgPool, tenant: &Tenant, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection, ActiveTenant) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let tenant = tenant.clone();
    blocking(pool, move |conn| {
        let active = activate(conn, &tenant)?;
        work(conn, active)
    })
    .await
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
