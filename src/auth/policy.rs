//! The permission rules: which role may take which action, and where. A grant covers
//! its scope code and every code under it; a township's planner submits, a county's
//! (or the city's) approves and activates.

use crate::domain::{Grant, Level, UserRole};
use serde::Serialize;

/// Something a caller wants to do to data that belongs to a region or grid code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Locate points for dispatch.
    Locate,
    /// Read plans, drafts and their validation and impact.
    ReadPlans,
    /// Upload or replace a draft, submit it.
    DraftPlan,
    /// Approve, reject or return a submitted plan.
    ReviewPlan,
    /// Make an approved plan current.
    ActivatePlan,
    /// Read names and phones of members (and later, reporters) unmasked.
    ReadPersonal,
    /// Read members with masked personal data.
    ReadMembers,
    /// Add or change members and supervision phones.
    WriteMembers,
    /// Read the audit log.
    ReadAudit,
    /// File a case located in a grid (a grid member's upload, a hotline call).
    ReportCase,
    /// Settle a reported case on site or hand it over (the grid member).
    WorkOnSite,
    /// Run a dispatch centre: accept, assign, decide extensions, supervise, escalate,
    /// close, reopen, merge.
    DispatchCase,
    /// Act for a department on its cases (also requires being its staff).
    HandleCase,
    /// Check a handled case's result.
    VerifyCase,
    /// Read cases (handlers: their department's only).
    ReadCases,
    /// Admit or refuse matters, keep departments and the calendar.
    ManageMatters,
    /// Propose a matter for the list.
    ProposeMatter,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    pub name: String,
    pub grants: Vec<Grant>,
}

fn role_allows(role: UserRole, action: Action, grant_scope_len: usize) -> bool {
    use Action::*;
    use UserRole::*;
    let county_or_above = grant_scope_len <= Level::County.code_len();
    match (role, action) {
        (CityAdmin, ReadAudit | HandleCase | WorkOnSite) => false,
        (CityAdmin, _) => true,
        (Planner, ReadPlans | DraftPlan | ReadMembers | Locate) => true,
        (Planner, ReviewPlan | ActivatePlan) => county_or_above,
        (Dispatcher | GridMember, Locate | ReadMembers | ReadPersonal) => true,
        (Dispatcher, ReportCase | DispatchCase | VerifyCase | ReadCases | ProposeMatter) => true,
        (Dispatcher, ManageMatters) => county_or_above,
        (GridMember, ReportCase | WorkOnSite | VerifyCase | ReadCases) => true,
        (DepartmentHandler, Locate | ReadMembers | HandleCase | ReadCases | ProposeMatter) => true,
        (Auditor, ReadAudit | ReadPlans | ReadMembers | ReadCases) => true,
        _ => false,
    }
}

impl Principal {
    /// A principal with these grants.
    pub fn new(name: String, grants: Vec<Grant>) -> Self {
        Principal { name, grants }
    }

    /// Whether some grant lets this caller take `action` on data of `code`.
    ///
    /// ```
    /// use wangge::auth::{Action, Principal};
    /// use wangge::domain::{Grant, UserRole};
    /// let township = Principal::new("li".into(), vec![Grant { role: UserRole::Planner, scope: "371602001".into() }]);
    /// assert!(township.may(Action::DraftPlan, "371602001"));
    /// assert!(!township.may(Action::ReviewPlan, "371602001"));
    /// assert!(!township.may(Action::DraftPlan, "371602002"));
    /// ```
    pub fn may(&self, action: Action, code: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.covers(code) && role_allows(g.role, action, g.scope.len()))
    }

    /// Like [`Principal::may`], counting only grants of roles other than `except` (a
    /// department handler reads cases through their department, not their region).
    pub fn may_except(&self, action: Action, code: &str, except: UserRole) -> bool {
        self.grants.iter().any(|g| {
            g.role != except && g.covers(code) && role_allows(g.role, action, g.scope.len())
        })
    }

    /// Whether this caller may take `action` anywhere at all (e.g. to list what it may see).
    pub fn may_somewhere(&self, action: Action) -> bool {
        self.grants
            .iter()
            .any(|g| role_allows(g.role, action, g.scope.len()))
    }

    /// The scopes under which `action` is allowed: a listing shows exactly the data under
    /// one of these.
    pub fn scopes_for(&self, action: Action) -> Vec<&str> {
        self.grants
            .iter()
            .filter(|g| role_allows(g.role, action, g.scope.len()))
            .map(|g| g.scope.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: UserRole, scope: &str) -> Principal {
        Principal::new(
            "x".into(),
            vec![Grant {
                role,
                scope: scope.into(),
            }],
        )
    }

    #[test]
    fn a_grant_covers_its_subtree_and_nothing_beside_it() {
        let p = who(UserRole::Dispatcher, "371602");
        assert!(p.may(Action::ReadPersonal, "371602"));
        assert!(p.may(Action::ReadPersonal, "371602001001001"));
        assert!(!p.may(Action::ReadPersonal, "371603001"));
        assert!(!p.may(Action::ReadPersonal, "3716"));
    }

    #[test]
    fn townships_submit_and_counties_approve() {
        let township = who(UserRole::Planner, "371602001");
        let county = who(UserRole::Planner, "371602");
        assert!(township.may(Action::DraftPlan, "371602001"));
        assert!(!township.may(Action::ReviewPlan, "371602001"));
        assert!(!township.may(Action::ActivatePlan, "371602001"));
        assert!(county.may(Action::ReviewPlan, "371602001"));
        assert!(county.may(Action::ActivatePlan, "371602001"));
    }

    #[test]
    fn personal_data_is_for_roles_that_need_it() {
        for (role, sees) in [
            (UserRole::CityAdmin, true),
            (UserRole::Dispatcher, true),
            (UserRole::GridMember, true),
            (UserRole::Planner, false),
            (UserRole::DepartmentHandler, false),
            (UserRole::Auditor, false),
        ] {
            assert_eq!(
                who(role, "3716").may(Action::ReadPersonal, "371602"),
                sees,
                "{role}"
            );
        }
    }

    #[test]
    fn only_auditors_read_the_audit_log() {
        for role in UserRole::ALL {
            let p = who(role, "3716");
            assert_eq!(p.may(Action::ReadAudit, "3716"), role == UserRole::Auditor);
        }
    }
}
