//! The bearer token's claims (SPEC §3). Signing and checking happen at the
//! HTTP edge; this is only the shape.

use serde::{Deserialize, Serialize};

/// Claims of an API token: HS256-signed, `exp` in unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to (a service or user name).
    pub sub: String,
    /// The tenant every request made with this token acts for.
    pub tenant_id: i32,
    /// Expiry, unix seconds.
    pub exp: i64,
}
