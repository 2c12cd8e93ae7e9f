//! Where writes are audited: every row is filed under the region of the object it
//! changed, so the auditors of that region (and of every region above it) see it.
//! Rows about an account itself (logins, passwords, tokens) go under the account's
//! broadest grant, or the city's code when it holds none.

use crate::domain::{Grant, Level, RegionCode};
use crate::store::{CaseRecord, NewAuditEntry, Store, StoreResult};
use serde_json::Value;

/// The city's code, from the codes of the regions loaded (the shortest one's first
/// four digits); empty before any region is loaded.
///
/// ```
/// use wangge::workflow::audit::city_of;
/// assert_eq!(city_of(["371602001", "371603"]), "3716");
/// assert_eq!(city_of(std::iter::empty::<&str>()), "");
/// ```
pub fn city_of<'a>(codes: impl IntoIterator<Item = &'a str>) -> String {
    codes
        .into_iter()
        .min_by_key(|c| c.len())
        .and_then(|c| c.parse::<RegionCode>().ok())
        .and_then(|c| c.at(Level::City))
        .map(|c| c.as_str().to_string())
        .unwrap_or_default()
}

/// The region an account's own events are audited under: its broadest grant, else
/// `city`.
///
/// ```
/// use wangge::domain::{Grant, UserRole};
/// use wangge::workflow::audit::account_scope;
/// let grants = [
///     Grant { role: UserRole::Dispatcher, scope: "371602001".into() },
///     Grant { role: UserRole::Auditor, scope: "371602".into() },
/// ];
/// assert_eq!(account_scope(&grants, "3716"), "371602");
/// assert_eq!(account_scope(&[], "3716"), "3716");
/// ```
pub fn account_scope(grants: &[Grant], city: &str) -> String {
    grants
        .iter()
        .map(|g| g.scope.as_str())
        .min_by_key(|s| s.len())
        .unwrap_or(city)
        .to_string()
}

/// The region a case's rows go under: its grid, or the nearest region it was placed in
/// when it lies outside every grid.
pub fn case_scope(case: &CaseRecord) -> &str {
    [
        &case.grid_code,
        &case.community_code,
        &case.township_code,
        &case.county_code,
        &case.city_code,
    ]
    .into_iter()
    .find(|c| !c.is_empty())
    .map_or("", |c| c.as_str())
}

/// The city's code as the store knows it (for callers without a live snapshot: the CLI).
pub async fn stored_city(store: &dyn Store) -> StoreResult<String> {
    let regions = store.regions(None).await?;
    Ok(city_of(regions.iter().map(|r| r.code.as_str())))
}

/// Appends one audit row.
pub async fn record(
    store: &dyn Store,
    actor: &str,
    action: &str,
    resource: String,
    scope_code: &str,
    detail: Value,
) -> StoreResult<()> {
    store
        .append_audit(&NewAuditEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            resource,
            scope_code: scope_code.to_string(),
            detail,
        })
        .await?;
    Ok(())
}
