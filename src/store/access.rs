//! Storage of users, their grants, bearer tokens and the audit log (Art. 13). The rules
//! that read them are in `auth`; the store only keeps them, and keeps the audit log
//! append-only (a trigger refuses UPDATE and DELETE in both backends).

use super::StoreResult;
use crate::domain::Grant;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// A user account with its grants.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string; `None` for accounts that only use issued tokens.
    pub password_hash: Option<String>,
    pub grants: Vec<Grant>,
    pub created_at: DateTime<Utc>,
}

/// A bearer token, known to the store only by its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub user_name: String,
    /// What it was issued for (`login`, `cli`, a system's name).
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An entry to append to the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAuditEntry {
    pub actor: String,
    /// What was done: `read_personal`, `plan_submit`, `member_add`, …
    pub action: String,
    /// What it was done to: `plan/12`, `members/371602001001001`, …
    pub resource: String,
    /// The region or grid the data belongs to.
    pub scope_code: String,
    pub detail: Value,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub scope_code: String,
    pub detail: Value,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Entries whose scope lies under this code.
    pub under: Option<String>,
    pub actor: Option<String>,
    /// Entries with a larger id (for paging).
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// Users, tokens and audit log.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates a user; [`super::StoreError::Conflict`] when the name is taken.
    async fn create_user(&self, name: &str, password_hash: Option<&str>) -> StoreResult<()>;
    /// Replaces a user's password hash.
    async fn set_password(&self, name: &str, password_hash: &str) -> StoreResult<()>;
    /// One user with grants, if it exists.
    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>>;
    /// Every user, by name.
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Adds a grant (no-op when held already).
    async fn grant(&self, name: &str, grant: &Grant) -> StoreResult<()>;
    /// Removes a grant; false when it was not held.
    async fn revoke_grant(&self, name: &str, grant: &Grant) -> StoreResult<bool>;
    /// Stores a newly issued token.
    async fn store_token(&self, token: &TokenRecord) -> StoreResult<()>;
    /// The token with this hash, revoked or expired ones included.
    async fn token(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Revokes one token; false when unknown or revoked already.
    async fn revoke_token(&self, hash: &str) -> StoreResult<bool>;
    /// Revokes every live token of a user; how many.
    async fn revoke_user_tokens(&self, name: &str) -> StoreResult<u64>;
    /// Appends to the audit log; returns the entry's id.
    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64>;
    /// Reads the audit log, oldest first.
    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}
