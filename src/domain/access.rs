//! Who may do what, as data: the roles of Art. 13's hierarchical authorisation, each
//! granted over a node of the region tree. The rules that read these live in `auth`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A role a user holds over a jurisdiction.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Administers users, members and plans of the city (or the subtree granted).
    CityAdmin,
    /// Draws and reviews boundary plans: a township's planner submits, a county's approves.
    Planner,
    /// Works the dispatch centre: locates reports and reads members' contacts.
    Dispatcher,
    /// A grid member (Art. 7), scoped to their grid or community.
    GridMember,
    /// A handler in a department that receives cases.
    DepartmentHandler,
    /// Reads the audit log; changes nothing.
    Auditor,
}

impl UserRole {
    /// Every role, in a stable order.
    pub const ALL: [UserRole; 6] = [
        UserRole::CityAdmin,
        UserRole::Planner,
        UserRole::Dispatcher,
        UserRole::GridMember,
        UserRole::DepartmentHandler,
        UserRole::Auditor,
    ];

    /// The stored and displayed name, e.g. `city_admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::CityAdmin => "city_admin",
            UserRole::Planner => "planner",
            UserRole::Dispatcher => "dispatcher",
            UserRole::GridMember => "grid_member",
            UserRole::DepartmentHandler => "department_handler",
            UserRole::Auditor => "auditor",
        }
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for UserRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = UserRole::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// A role over a jurisdiction: the region (or grid) code `scope` and everything under
/// it, i.e. every code that starts with it.
///
/// ```
/// use wangge::domain::{Grant, UserRole};
/// let g = Grant { role: UserRole::Planner, scope: "371602001".into() };
/// assert!(g.covers("371602001002"));
/// assert!(!g.covers("371602002001"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    pub role: UserRole,
    pub scope: String,
}

impl Grant {
    /// Whether `code` lies in this grant's jurisdiction.
    pub fn covers(&self, code: &str) -> bool {
        code.starts_with(&self.scope)
    }
}
