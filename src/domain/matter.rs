//! The public list of grid service matters (Art. 10) and the departments that handle
//! them, as data.

use super::case::named_enum;
use serde::{Deserialize, Serialize};
use std::fmt;

named_enum! {
    /// The kinds of grid work of Art. 3 ¶2, which every matter belongs to.
    Category {
        InformationCollection => "information_collection",
        PublicOpinion => "public_opinion",
        SafetyHazard => "safety_hazard",
        Dispute => "dispute",
        PolicyPublicity => "policy_publicity",
        PublicServiceAgency => "public_service_agency",
        DataAnalysis => "data_analysis",
        SafetyCreation => "safety_creation",
        PsychologicalService => "psychological_service",
        CrisisIntervention => "crisis_intervention",
    }
}

named_enum! {
    /// How a time limit is counted: working hours or working days of the calendar.
    TimeUnit {
        WorkingHours => "working_hours",
        WorkingDays => "working_days",
    }
}

named_enum! {
    /// Whether the grid institution has let a matter into the list.
    MatterStatus {
        /// Proposed by a department, waiting for admission.
        Proposed => "proposed",
        /// On the list from its `valid_from`.
        Admitted => "admitted",
        /// Refused admission.
        Refused => "refused",
    }
}

/// A time limit, e.g. 3 working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeLimit {
    pub amount: u32,
    pub unit: TimeUnit,
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.amount,
            self.unit.as_str().replace('_', " ")
        )
    }
}
