//! [`AccessStore`] for both backends: users, grants, tokens and the audit log.

use super::SqlStore;
use super::dialect::{Dialect, ReadRow, query};
use crate::domain::Grant;
use crate::store::access::{
    AccessStore, AuditEntry, AuditQuery, NewAuditEntry, TokenRecord, UserRecord,
};
use crate::store::{StoreError, StoreResult, like_prefix};
use sqlx::types::Json;

/// The audit log's one insert, for [`AccessStore::append_audit`] and for the writes that
/// append their row in their own transaction (the plan, member and directory writes).
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, resource, \
    scope_code, detail) VALUES ($1, $2, $3, $4, $5, $6)";

#[async_trait::async_trait]
impl<D: Dialect> AccessStore for SqlStore<D> {
    async fn create_user(&self, name: &str, password_hash: Option<&str>) -> StoreResult<()> {
        let sql = "INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)";
        let done = query::<D>(sql)
            .bind(name)
            .bind(password_hash)
            .bind(crate::domain::now())
            .execute(&self.pool)
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                crate::msg!("user {name:?} exists already", "用户 {name:?} 已存在"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> StoreResult<()> {
        let sql = "UPDATE users SET password_hash = $2 WHERE name = $1";
        let n = query::<D>(sql)
            .bind(name)
            .bind(password_hash)
            .execute(&self.pool)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "user",
                id: name.to_string(),
            });
        }
        Ok(())
    }

    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        Ok(self.users_where(Some(name)).await?.into_iter().next())
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        self.users_where(None).await
    }

    async fn grant(&self, name: &str, grant: &Grant) -> StoreResult<()> {
        if self.user(name).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "user",
                id: name.to_string(),
            });
        }
        let sql = "INSERT INTO user_grants (user_name, role, scope_code) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING";
        query::<D>(sql)
            .bind(name)
            .bind(grant.role.as_str())
            .bind(&grant.scope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_grant(&self, name: &str, grant: &Grant) -> StoreResult<bool> {
        let sql = "DELETE FROM user_grants WHERE user_name = $1 AND role = $2 AND scope_code = $3";
        Ok(query::<D>(sql)
            .bind(name)
            .bind(grant.role.as_str())
            .bind(&grant.scope)
            .execute(&self.pool)
            .await?
            > 0)
    }

    async fn store_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let sql = "INSERT INTO tokens (hash, user_name, label, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)";
        query::<D>(sql)
            .bind(&token.hash)
            .bind(&token.user_name)
            .bind(&token.label)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(token.revoked_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let sql = "SELECT hash, user_name, label, created_at, expires_at, revoked_at \
             FROM tokens WHERE hash = $1";
        let row = query::<D>(sql)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(TokenRecord {
                hash: row.try_get("hash")?,
                user_name: row.try_get("user_name")?,
                label: row.try_get("label")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .transpose()
    }

    async fn revoke_token(&self, hash: &str) -> StoreResult<bool> {
        let sql = "UPDATE tokens SET revoked_at = $2 WHERE hash = $1 AND revoked_at IS NULL";
        Ok(query::<D>(sql)
            .bind(hash)
            .bind(crate::domain::now())
            .execute(&self.pool)
            .await?
            > 0)
    }

    async fn revoke_user_tokens(&self, name: &str) -> StoreResult<u64> {
        let sql = "UPDATE tokens SET revoked_at = $2 WHERE user_name = $1 AND revoked_at IS NULL";
        Ok(query::<D>(sql)
            .bind(name)
            .bind(crate::domain::now())
            .execute(&self.pool)
            .await?)
    }

    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64> {
        let sql = format!("{} RETURNING id", INSERT_AUDIT);
        Ok(query::<D>(&sql)
            .bind(crate::domain::now())
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.resource)
            .bind(&entry.scope_code)
            .bind(Json(&entry.detail))
            .scalar(&self.pool)
            .await?)
    }

    async fn audit(&self, filter: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let sql = "SELECT id, at, actor, action, resource, scope_code, detail FROM audit_log \
             WHERE scope_code LIKE $1 AND ($2 IS NULL OR actor = $2) AND id > $3 \
             ORDER BY id LIMIT $4";
        let rows = query::<D>(sql)
            .bind(like_prefix(filter.under.as_deref()))
            .bind(filter.actor.as_deref())
            .bind(filter.after_id.unwrap_or(0))
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let Json(detail): Json<serde_json::Value> = row.try_get("detail")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    resource: row.try_get("resource")?,
                    scope_code: row.try_get("scope_code")?,
                    detail,
                })
            })
            .collect()
    }
}

impl<D: Dialect> SqlStore<D> {
    async fn users_where(&self, name: Option<&str>) -> StoreResult<Vec<UserRecord>> {
        let sql = "SELECT u.name, u.password_hash, u.created_at, g.role, g.scope_code \
             FROM users u LEFT JOIN user_grants g ON g.user_name = u.name \
             WHERE $1 IS NULL OR u.name = $1 ORDER BY u.name, g.role, g.scope_code";
        let rows = query::<D>(sql).bind(name).fetch_all(&self.pool).await?;
        let mut users: Vec<UserRecord> = Vec::new();
        for row in &rows {
            let name: String = row.try_get("name")?;
            if users.last().is_none_or(|u| u.name != name) {
                users.push(UserRecord {
                    name,
                    password_hash: row.try_get("password_hash")?,
                    grants: Vec::new(),
                    created_at: row.try_get("created_at")?,
                });
            }
            let role: Option<String> = row.try_get("role")?;
            let scope: Option<String> = row.try_get("scope_code")?;
            if let (Some(role), Some(scope), Some(user)) = (role, scope, users.last_mut()) {
                let role = role.parse().map_err(StoreError::Corrupt)?;
                user.grants.push(Grant { role, scope });
            }
        }
        Ok(users)
    }
}
