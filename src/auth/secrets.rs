//! Passwords (argon2id, salted PHC strings) and bearer tokens (256 random bits; only
//! their SHA-256 is stored, which is enough for secrets with that much entropy).

use super::AuthError;
use crate::store::TokenRecord;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// Whether `password` matches a stored PHC hash (false for a malformed hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The stored form of a token.
///
/// ```
/// let h = wangge::auth::hash_token("wg_abc");
/// assert_eq!(h.len(), 64);
/// assert_ne!(h, wangge::auth::hash_token("wg_abd"));
/// ```
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token just issued: the secret (shown once) and what the store keeps.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub secret: String,
    pub record: TokenRecord,
}

/// A new token for `user`, valid for `ttl`.
pub fn issue_token(user: &str, label: &str, ttl: Duration) -> IssuedToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("wg_{}", hex::encode(bytes));
    let now = crate::domain::now();
    IssuedToken {
        record: TokenRecord {
            hash: hash_token(&secret),
            user_name: user.to_string(),
            label: label.to_string(),
            created_at: now,
            // Never panics: an absurd ttl means "never" (callers bound what they accept).
            expires_at: now
                .checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            revoked_at: None,
        },
        secret,
    }
}

/// A new webhook signing secret (256 random bits), shown to the department once.
pub fn webhook_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// The `X-Wangge-Signature` header of a webhook body sent at `timestamp` (Unix
/// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>." + body>`, as Stripe
/// signs. The receiver recomputes it with its secret and rejects old timestamps, so a
/// captured delivery cannot be replayed later.
///
/// ```
/// let header = wangge::auth::sign_webhook("whsec_test", 1_700_000_000, b"{}");
/// assert!(header.starts_with("t=1700000000,v1="));
/// assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
/// ```
pub fn sign_webhook(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length: new_from_slice cannot fail here.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("正确的马电池").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("正确的马电池", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("正确的马电池", "not a hash"));
    }

    #[test]
    fn issued_tokens_are_unique_and_stored_only_as_hashes() {
        let a = issue_token("zhang", "cli", Duration::days(1));
        let b = issue_token("zhang", "cli", Duration::days(1));
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.record.hash, hash_token(&a.secret));
        assert!(!a.record.hash.contains(&a.secret[3..]));
        assert!(a.record.expires_at > a.record.created_at);
    }
}
