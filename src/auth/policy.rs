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

impl Action {
    /// Every action, in the policy table's order.
    pub const ALL: [Action; 17] = [
        Action::Locate,
        Action::ReadPlans,
        Action::DraftPlan,
        Action::ReviewPlan,
        Action::ActivatePlan,
        Action::ReadPersonal,
        Action::ReadMembers,
        Action::WriteMembers,
        Action::ReadAudit,
        Action::ReportCase,
        Action::WorkOnSite,
        Action::DispatchCase,
        Action::HandleCase,
        Action::VerifyCase,
        Action::ReadCases,
        Action::ManageMatters,
        Action::ProposeMatter,
    ];

    /// The name the policy table (and README) uses, e.g. `review_plan`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Locate => "locate",
            Action::ReadPlans => "read_plans",
            Action::DraftPlan => "draft_plan",
            Action::ReviewPlan => "review_plan",
            Action::ActivatePlan => "activate_plan",
            Action::ReadPersonal => "read_personal",
            Action::ReadMembers => "read_members",
            Action::WriteMembers => "write_members",
            Action::ReadAudit => "read_audit",
            Action::ReportCase => "report_case",
            Action::WorkOnSite => "work_on_site",
            Action::DispatchCase => "dispatch_case",
            Action::HandleCase => "handle_case",
            Action::VerifyCase => "verify_case",
            Action::ReadCases => "read_cases",
            Action::ManageMatters => "manage_matters",
            Action::ProposeMatter => "propose_matter",
        }
    }

    /// What the action is, in Chinese words.
    pub fn zh(self) -> &'static str {
        match self {
            Action::Locate => "查询位置",
            Action::ReadPlans => "查看方案",
            Action::DraftPlan => "起草方案",
            Action::ReviewPlan => "审批方案",
            Action::ActivatePlan => "启用方案",
            Action::ReadPersonal => "查看个人信息",
            Action::ReadMembers => "查看网格员",
            Action::WriteMembers => "管理网格员",
            Action::ReadAudit => "查看审计日志",
            Action::ReportCase => "上报事件",
            Action::WorkOnSite => "现场处置",
            Action::DispatchCase => "调度案件",
            Action::HandleCase => "办理案件",
            Action::VerifyCase => "核查案件",
            Action::ReadCases => "查看案件",
            Action::ManageMatters => "管理事项",
            Action::ProposeMatter => "提议事项",
        }
    }
}

/// How far a role's grant reaches for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Never, wherever the grant is.
    Never,
    /// On anything the grant covers (its region and everything under it).
    Granted,
    /// Only through a grant at county level or above (a county's planner approves, a
    /// township's does not).
    FromCounty,
}

impl Reach {
    /// The README's mark for this reach.
    pub fn mark(self) -> &'static str {
        match self {
            Reach::Never => "—",
            Reach::Granted => "yes",
            Reach::FromCounty => "county+",
        }
    }

    fn allows(self, grant_scope_len: usize) -> bool {
        match self {
            Reach::Never => false,
            Reach::Granted => true,
            Reach::FromCounty => grant_scope_len <= Level::County.code_len(),
        }
    }
}

/// The policy: who may take which action, one row per action, one column per role in
/// [`UserRole::ALL`]'s order (city_admin, planner, dispatcher, grid_member,
/// department_handler, auditor). Every `may` answers from here; the README's access
/// table is checked against it by a test. What the object is (whose case, which
/// department, the city's lists) narrows it further where the use case loads it.
pub const POLICY: [(Action, [Reach; 6]); 17] = {
    use Reach::{FromCounty as C, Granted as Y, Never as N};
    [
        //                     admin planner disp member handler auditor
        (Action::Locate, [Y, Y, Y, Y, Y, N]),
        (Action::ReadPlans, [Y, Y, N, N, N, Y]),
        (Action::DraftPlan, [Y, Y, N, N, N, N]),
        (Action::ReviewPlan, [Y, C, N, N, N, N]),
        (Action::ActivatePlan, [Y, C, N, N, N, N]),
        (Action::ReadPersonal, [Y, N, Y, Y, N, N]),
        (Action::ReadMembers, [Y, Y, Y, Y, Y, Y]),
        (Action::WriteMembers, [Y, N, N, N, N, N]),
        (Action::ReadAudit, [N, N, N, N, N, Y]),
        (Action::ReportCase, [Y, N, Y, Y, N, N]),
        (Action::WorkOnSite, [N, N, N, Y, N, N]),
        (Action::DispatchCase, [Y, N, Y, N, N, N]),
        (Action::HandleCase, [N, N, N, N, Y, N]),
        (Action::VerifyCase, [Y, N, Y, Y, N, N]),
        (Action::ReadCases, [Y, N, Y, Y, Y, Y]),
        (Action::ManageMatters, [Y, N, C, N, N, N]),
        (Action::ProposeMatter, [Y, N, Y, N, Y, N]),
    ]
};

/// How far `role` reaches for `action` (from [`POLICY`]).
pub fn reach(role: UserRole, action: Action) -> Reach {
    let column = UserRole::ALL.iter().position(|r| *r == role);
    POLICY
        .iter()
        .find(|(a, _)| *a == action)
        .zip(column)
        .map_or(Reach::Never, |((_, row), c)| row[c])
}

fn role_allows(role: UserRole, action: Action, grant_scope_len: usize) -> bool {
    reach(role, action).allows(grant_scope_len)
}

impl Principal {
    /// A principal with these grants.
    pub fn new(name: String, grants: Vec<Grant>) -> Self {
        Principal { name, grants }
    }

    /// The operator at the server's console (the CLI). Whoever holds the store's
    /// credentials can already change anything in it, so the console acts as the
    /// city's administrator over every region; it still goes through the same use
    /// cases, so the rules about the object (four eyes, reasons, states) and the audit
    /// hold there too.
    ///
    /// ```
    /// use wangge::auth::{Action, Principal};
    /// assert!(Principal::console("ops").may(Action::ActivatePlan, "371602"));
    /// ```
    pub fn console(name: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            grants: vec![Grant {
                role: UserRole::CityAdmin,
                scope: String::new(),
            }],
        }
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

    /// The README's access table, cell by cell, is the policy: every role × action ×
    /// level of the grant (city, county, township, community, grid) is checked against
    /// what `may` answers for an object inside the grant and one beside it.
    #[test]
    fn every_cell_of_the_readme_access_table_is_what_may_answers() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- policy-table -->")
            .nth(1)
            .expect("README has the policy table between <!-- policy-table --> markers");
        let mut rows = table.lines().filter(|l| l.starts_with('|'));
        let header: Vec<&str> = cells(rows.next().expect("header"));
        let roles: Vec<&str> = UserRole::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(header[1..7], roles[..], "columns are the roles in order");
        let body: Vec<Vec<&str>> = rows.skip(1).map(cells).collect();
        let actions: Vec<&str> = body.iter().map(|r| r[0].trim_matches('`')).collect();
        let all: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(actions, all, "one row per action, in order");
        let grants = [
            ("3716", "3716", "3717"),
            ("371602", "371602001", "371603"),
            ("371602001", "371602001001", "371602002"),
            ("371602001001", "371602001001001", "371602001002"),
            ("371602001001001", "371602001001001", "371602001001002"),
        ];
        let mut cells_checked = 0;
        for (row, action) in body.iter().zip(Action::ALL) {
            for (mark, role) in row[1..7].iter().zip(UserRole::ALL) {
                assert_eq!(*mark, reach(role, action).mark(), "{action:?} × {role}");
                for (scope, inside, beside) in grants {
                    let p = who(role, scope);
                    let expected = match reach(role, action) {
                        Reach::Never => false,
                        Reach::Granted => true,
                        Reach::FromCounty => scope.len() <= 6,
                    };
                    assert_eq!(
                        p.may(action, inside),
                        expected,
                        "{action:?} × {role}@{scope}"
                    );
                    assert!(!p.may(action, beside), "{action:?} × {role}@{scope} beside");
                    cells_checked += 1;
                }
            }
        }
        assert_eq!(cells_checked, 17 * 6 * 5);
    }

    fn cells(line: &str) -> Vec<&str> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect()
    }

    #[test]
    fn only_auditors_read_the_audit_log() {
        for role in UserRole::ALL {
            let p = who(role, "3716");
            assert_eq!(p.may(Action::ReadAudit, "3716"), role == UserRole::Auditor);
        }
    }
}
