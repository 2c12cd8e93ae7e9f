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
        let (from, to, from_zh, to_zh) = (
            change.from.as_str(),
            change.to.as_str(),
            change.from.zh(),
            change.to.zh(),
        );
        Err(StoreError::Refused(crate::msg!(
            "a plan cannot go from {from} to {to}",
            "方案不能从“{from_zh}”变为“{to_zh}”"
        )))
    }
}

pub(crate) fn refusal(plan: &Plan, change: &Transition) -> StoreError {
    let (id, status, status_zh) = (plan.id, plan.status.as_str(), plan.status.zh());
    let (from, from_zh, to, to_zh) = (
        change.from.as_str(),
        change.from.zh(),
        change.to.as_str(),
        change.to.zh(),
    );
    if plan.status != change.from {
        StoreError::Conflict(crate::msg!(
            "plan {id} is {status}, not {from}",
            "方案 {id} 的状态是“{status_zh}”，不是“{from_zh}”"
        ))
    } else {
        let errors = plan.error_count;
        StoreError::Refused(crate::msg!(
            "plan {id} has {errors} validation error(s): it cannot be {to}",
            "方案 {id} 有 {errors} 个校验错误：不能变为“{to_zh}”"
        ))
    }
}

/// Checks an activation after the generation bump: the plan is approved, dated, and
/// every community it was drawn against is still at the generation it saw.
pub(crate) fn precheck_activation(plan: &Plan, bumped: u64, bases: i64) -> StoreResult<NaiveDate> {
    if plan.status != PlanStatus::Approved {
        let (id, status, status_zh) = (plan.id, plan.status.as_str(), plan.status.zh());
        return Err(StoreError::Conflict(crate::msg!(
            "plan {id} is {status}: only an approved plan can be activated",
            "方案 {id} 的状态是“{status_zh}”：只有已批准的方案才能启用"
        )));
    }
    let Some(effective) = plan.effective_date else {
        return Err(StoreError::Refused(crate::msg!(
            "plan {} has no effective date",
            "方案 {} 没有生效日期",
            plan.id
        )));
    };
    if bumped != bases as u64 {
        return Err(StoreError::Conflict(crate::msg!(
            "the grids plan {} was drawn against have changed since (another plan was \
             activated over the same communities); redraw it against the current grids",
            "方案 {} 所依据的网格已经改变（同一村社区上启用了另一个方案）；请按现行网格重新绘制",
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
        Some(d) if d >= effective => Err(StoreError::Refused(crate::msg!(
            "plan {} takes effect on {effective}, but grids it replaces only became valid on {d}",
            "方案 {} 自 {effective} 起生效，但它所替换的网格到 {d} 才生效",
            plan.id
        ))),
        _ => Ok(()),
    }
}

/// A community the plan was drawn against (its bases: the communities of its grids and
/// of the grids it replaces) that would keep no grid after activation, if any.
/// `$1` is the plan id.
pub const FIRST_UNCOVERED_BASE: &str = "SELECT b.community_code FROM plan_bases b \
     WHERE b.plan_id = $1 AND NOT EXISTS (SELECT 1 FROM plan_grids g \
     WHERE g.plan_id = b.plan_id AND g.parent_code = b.community_code) \
     ORDER BY b.community_code LIMIT 1";

/// Refuses to activate a plan that would leave a community without grids, whoever
/// calls the store and whatever its validation said.
pub fn refuse_uncovered(plan_id: i64, uncovered: Option<String>) -> StoreResult<()> {
    match uncovered {
        None => Ok(()),
        Some(community) => Err(StoreError::Refused(crate::msg!(
            "plan {plan_id} has no grids in community {community}, whose current grids it \
             would remove; a plan must tile every community it replaces",
            "方案 {plan_id} 在村社区 {community} 中没有网格，却会删除该社区现有的网格；方案必须铺满其替换的每个村社区"
        ))),
    }
}
