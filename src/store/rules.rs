//! Rules both backends apply the same way: which status changes are allowed, why one
//! was refused, when an activation may proceed, and which candidate grid contains a point.

use super::records::{GridVersion, Plan, PlanStatus, Transition};
use super::{StoreError, StoreResult};
use crate::spatial::pip::PolygonSet;
use chrono::NaiveDate;
use geo_types::Coord;

/// The first candidate (in id order) that contains `p` by the engine's rule, so both
/// backends agree with the in-memory partition on shared edges.
pub(crate) fn first_containing(candidates: Vec<GridVersion>, p: Coord<f64>) -> Option<GridVersion> {
    let set = PolygonSet::new(candidates.iter().map(|g| &g.boundary));
    let hit = (0..candidates.len() as u32).find(|&i| set.contains(i, p))?;
    candidates.into_iter().nth(hit as usize)
}

pub(crate) fn check_transition(change: &Transition) -> StoreResult<()> {
    if change.from.may_become(change.to) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "a plan cannot go from {} to {}",
            change.from.as_str(),
            change.to.as_str()
        )))
    }
}

pub(crate) fn refusal(plan: &Plan, change: &Transition) -> StoreError {
    if plan.status != change.from {
        StoreError::Conflict(format!(
            "plan {} is {}, not {}",
            plan.id,
            plan.status.as_str(),
            change.from.as_str()
        ))
    } else {
        StoreError::Refused(format!(
            "plan {} has {} validation error(s): it cannot be {}",
            plan.id,
            plan.error_count,
            change.to.as_str()
        ))
    }
}

/// Checks an activation after the generation bump: the plan is approved, dated, and
/// every community it was drawn against is still at the generation it saw.
pub(crate) fn precheck_activation(plan: &Plan, bumped: u64, bases: i64) -> StoreResult<NaiveDate> {
    if plan.status != PlanStatus::Approved {
        return Err(StoreError::Conflict(format!(
            "plan {} is {}: only an approved plan can be activated",
            plan.id,
            plan.status.as_str()
        )));
    }
    let Some(effective) = plan.effective_date else {
        return Err(StoreError::Refused(format!(
            "plan {} has no effective date",
            plan.id
        )));
    };
    if bumped != bases as u64 {
        return Err(StoreError::Conflict(format!(
            "the grids plan {} was drawn against have changed since (another plan was \
             activated over the same communities); redraw it against the current grids",
            plan.id
        )));
    }
    Ok(effective)
}

pub(crate) fn check_effective_after(
    plan: &Plan,
    effective: NaiveDate,
    latest_current: Option<NaiveDate>,
) -> StoreResult<()> {
    match latest_current {
        Some(d) if d >= effective => Err(StoreError::Refused(format!(
            "plan {} takes effect on {effective}, but grids it replaces only became valid on {d}",
            plan.id
        ))),
        _ => Ok(()),
    }
}

/// A community the plan was drawn against (its bases: the communities of its grids and
/// of the grids it replaces) that would keep no grid after activation, if any.
/// `$1` is the plan id; SQLite takes it as `?1`.
pub const FIRST_UNCOVERED_BASE: &str = "SELECT b.community_code FROM plan_bases b \
     WHERE b.plan_id = $1 AND NOT EXISTS (SELECT 1 FROM plan_grids g \
     WHERE g.plan_id = b.plan_id AND g.parent_code = b.community_code) \
     ORDER BY b.community_code LIMIT 1";

/// Refuses to activate a plan that would leave a community without grids, whoever
/// calls the store and whatever its validation said.
pub fn refuse_uncovered(plan_id: i64, uncovered: Option<String>) -> StoreResult<()> {
    match uncovered {
        None => Ok(()),
        Some(community) => Err(StoreError::Refused(format!(
            "plan {plan_id} has no grids in community {community}, whose current grids it \
             would remove; a plan must tile every community it replaces"
        ))),
    }
}
