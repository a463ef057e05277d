//! Bearer tokens (SPEC §3): HS256 JWTs signed with `ETL_JWT_SECRET`, carrying
//! `sub`, `tenant_id` and `exp`.

use std::fmt;
use std::sync::Arc;

use etl_domain::Claims;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// The secret, wrapped so it never appears in logs or `Debug` output.
#[derive(Clone)]
pub struct JwtSecret(Arc<str>);

impl JwtSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::from(secret.into()))
    }

    /// A fresh random secret (64 hex characters), for `--dev`.
    pub fn generate() -> Self {
        use rand::Rng;
        let bytes: [u8; 32] = rand::thread_rng().gen();
        Self::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Keys derived once from the secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

/// Why a token was refused. Every variant answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token is malformed or lacks a required claim")]
    Malformed,
}

impl JwtKeys {
    pub fn new(secret: &JwtSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Expiry is exact: a token is dead the second `exp` passes.
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// Signs a token for `tenant_id`, valid for `ttl`.
    pub fn issue(&self, sub: &str, tenant_id: i32, ttl: chrono::Duration) -> String {
        let claims = Claims {
            sub: sub.to_owned(),
            tenant_id,
            exp: (chrono::Utc::now() + ttl).timestamp(),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use this for expired tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        // HS256 over serialisable claims cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Checks signature, algorithm, expiry and claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&JwtSecret::new(secret))
    }

    #[test]
    fn issued_tokens_verify_with_the_same_secret_only() {
        let token = keys("s1").issue("svc", 7, chrono::Duration::minutes(5));
        let claims = keys("s1").verify(&token).expect("valid");
        assert_eq!((claims.sub.as_str(), claims.tenant_id), ("svc", 7));
        assert_eq!(keys("s2").verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_and_malformed_tokens_are_refused() {
        let k = keys("s");
        let expired = k.sign(&Claims {
            sub: "svc".into(),
            tenant_id: 1,
            exp: chrono::Utc::now().timestamp() - 1,
        });
        assert_eq!(k.verify(&expired), Err(TokenError::Expired));
        assert_eq!(k.verify("not.a.token"), Err(TokenError::Malformed));
        assert_eq!(k.verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn secrets_never_print() {
        let secret = JwtSecret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{:?}", JwtKeys::new(&secret)).contains("hunter2"));
        assert_eq!(JwtSecret::generate().expose().len(), 64);
    }
}
