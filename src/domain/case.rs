//! Cases (Art. 11–12): what a resident, a grid member or a hotline call reports, as data.
//! The rules that move a case between states live in `workflow::state`.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            /// Every value, in a stable order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::Msg;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    let (what, names_en, names_zh) = (stringify!($name), names.join(", "), names.join("、"));
                    $crate::msg!(
                        "unknown {what} {s:?}: expected one of {names_en}",
                        "无法识别的取值 {s:?}：应为 {names_zh} 之一"
                    )
                })
            }
        }
    };
}
pub(crate) use named_enum;

named_enum! {
    /// Where a case stands. `returned` is not an end: it waits for reassignment.
    CaseState {
        /// Uploaded by a grid member or a resident, or recorded from the hotline.
        Reported => "reported",
        /// Settled by the grid member on site (Art. 11 ¶1).
        ResolvedOnSite => "resolved_on_site",
        /// Handed over by the grid member because it cannot be settled on site.
        Escalated => "escalated",
        /// Filed by the dispatch centre.
        Accepted => "accepted",
        /// Sent to a department, with a deadline.
        Assigned => "assigned",
        /// The department has taken it on.
        Acknowledged => "acknowledged",
        /// The department reports it done, with feedback.
        Handled => "handled",
        /// Dispatch or the grid member checked the result.
        Verified => "verified",
        Closed => "closed",
        /// A department explained that it is not theirs; back to dispatch.
        Returned => "returned",
        /// A duplicate, folded into another case.
        Merged => "merged",
    }
}

impl CaseState {
    /// The state's name in Chinese (the web app's words).
    pub fn zh(self) -> &'static str {
        match self {
            CaseState::Reported => "已上报",
            CaseState::ResolvedOnSite => "已就地解决",
            CaseState::Escalated => "已上报中心",
            CaseState::Accepted => "已受理",
            CaseState::Assigned => "已派遣",
            CaseState::Acknowledged => "已签收",
            CaseState::Handled => "已办理",
            CaseState::Verified => "已核查",
            CaseState::Closed => "已结案",
            CaseState::Returned => "已退回",
            CaseState::Merged => "已合并",
        }
    }

    /// Whether nothing more is expected of anyone (until a reopening).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CaseState::ResolvedOnSite | CaseState::Closed | CaseState::Merged
        )
    }

    /// Whether a department holds the case and its deadline runs.
    pub fn with_department(self) -> bool {
        matches!(self, CaseState::Assigned | CaseState::Acknowledged)
    }

    /// The states in which a deadline runs: the dispatch centre's for accepting a new
    /// report, or the department's for handling it.
    pub const ON_THE_CLOCK: [CaseState; 4] = [
        CaseState::Reported,
        CaseState::Escalated,
        CaseState::Assigned,
        CaseState::Acknowledged,
    ];
}

named_enum! {
    /// Who brought the case in.
    CaseSource {
        GridMember => "grid_member",
        Resident => "resident",
        Hotline => "hotline",
        Open311 => "open311",
    }
}

named_enum! {
    /// The level of a dispatch centre (Art. 12: city, county, township).
    CentreLevel {
        Township => "township",
        County => "county",
        City => "city",
    }
}

impl CentreLevel {
    /// The centre one level up, if any.
    pub fn up(self) -> Option<CentreLevel> {
        match self {
            CentreLevel::Township => Some(CentreLevel::County),
            CentreLevel::County => Some(CentreLevel::City),
            CentreLevel::City => None,
        }
    }

    /// Digits of the region codes of this level (township 9, county 6, city 4).
    pub fn code_len(self) -> usize {
        match self {
            CentreLevel::Township => 9,
            CentreLevel::County => 6,
            CentreLevel::City => 4,
        }
    }

    /// The level of a centre's region code.
    pub fn of_code(code: &str) -> Option<CentreLevel> {
        match code.len() {
            9 => Some(CentreLevel::Township),
            6 => Some(CentreLevel::County),
            4 => Some(CentreLevel::City),
            _ => None,
        }
    }
}

named_enum! {
    /// Why a department returns a case (Art. 11 ¶2: it must explain promptly).
    ReturnReason {
        /// The matter is another department's responsibility.
        NotOurResponsibility => "not_our_responsibility",
        /// The place lies outside the department's jurisdiction.
        OutsideJurisdiction => "outside_jurisdiction",
        /// The report lacks what is needed to act.
        InsufficientInformation => "insufficient_information",
        /// It belongs to a court, arbitration or another legal procedure.
        LegalProcedure => "legal_procedure",
        Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for s in CaseState::ALL {
            assert_eq!(s.as_str().parse::<CaseState>(), Ok(*s));
        }
        let e = "lost".parse::<CaseState>().unwrap_err();
        assert!(e.en().contains("reported"), "{e}");
    }

    #[test]
    fn centres_go_up_from_township_to_city() {
        assert_eq!(CentreLevel::Township.up(), Some(CentreLevel::County));
        assert_eq!(CentreLevel::City.up(), None);
        assert_eq!(CentreLevel::of_code("371602"), Some(CentreLevel::County));
    }
}
