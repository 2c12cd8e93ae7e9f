//! Plans: drafts, their steps (a township submits, a county approves and activates, a
//! second person approves), their impact and the history of grids and areas. Every
//! step is authorised against the plan's stored scope.

use super::{App, AppError, AppResult, require};
use crate::auth::{Action, Principal};
use crate::domain::{Grid, Layer, Level};
use crate::io::mapping::FieldChoice;
use crate::spatial::coverage::repair::RepairOptions;
use crate::store::{
    GridVersion, LineageLink, NewAuditEntry, Plan, PlanEvent, PlanGrid, PlanStatus, StoreError,
};
use crate::workflow::plans::{self, DraftRequest};
use crate::workflow::repair;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// What a planner asks of a repair: how far it may go, whether only to see it, and
/// which grids' proposals to apply.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRequest {
    /// Vertices and edges closer than this (metres, 0-5) are made to coincide.
    /// Default 0.5.
    pub snap_m: Option<f64>,
    /// Gaps narrower than this (mean width, metres, 0-20) go to a neighbour. Default 1.
    pub max_gap_width_m: Option<f64>,
    /// Only propose: the plan stays as it is, and each changed grid comes with its
    /// boundary before and after.
    #[serde(default)]
    pub preview: bool,
    /// Apply only the proposals for these grid ids (default: all).
    pub grids: Option<Vec<String>>,
}

impl RepairRequest {
    /// Largest snap the service does: beyond it, snapping redraws boundaries rather
    /// than matching them, and costs time on every vertex.
    pub const MAX_SNAP_M: f64 = 5.0;
    /// Widest gap the service fills.
    pub const MAX_GAP_WIDTH_M: f64 = 20.0;
    /// Most grid ids one request may name.
    pub const MAX_GRIDS: usize = 10_000;
    /// Longest a repair may compute (it holds the plan checker meanwhile): what is not
    /// done by then is left, and the answer says `incomplete`.
    pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

    fn options(&self) -> AppResult<RepairOptions> {
        let defaults = RepairOptions::default();
        let within = |parameter: &'static str, v: Option<f64>, default: f64, max: f64| match v {
            None => Ok(default),
            // + 0.0 turns -0 into 0.
            Some(v) if (0.0..=max).contains(&v) => Ok(v + 0.0),
            Some(_) => Err(AppError::invalid_parameter(
                parameter,
                crate::msg!(
                    "{parameter} must be between 0 and {max} metres",
                    "{parameter} 须在 0 到 {max} 米之间"
                ),
            )),
        };
        if self
            .grids
            .as_ref()
            .is_some_and(|g| g.len() > Self::MAX_GRIDS)
        {
            return Err(AppError::invalid_parameter(
                "grids",
                crate::msg!("at most {} grid ids", "最多 {} 个网格编码", Self::MAX_GRIDS),
            ));
        }
        Ok(RepairOptions {
            snap_m: within("snap_m", self.snap_m, defaults.snap_m, Self::MAX_SNAP_M)?,
            max_gap_width_m: within(
                "max_gap_width_m",
                self.max_gap_width_m,
                defaults.max_gap_width_m,
                Self::MAX_GAP_WIDTH_M,
            )?,
            require_cover: true,
            deadline: Some(std::time::Instant::now() + Self::TIME_LIMIT),
        })
    }
}

/// What a repair did: the plan (a new revision unless previewed or nothing applied),
/// how many grids changed, and the proposals as JSON (see
/// [`repair::Proposals::to_json`]).
#[derive(Debug)]
pub struct RepairOutcome {
    pub plan: Plan,
    pub applied: usize,
    pub proposals: Value,
}

/// A step of a plan's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStep {
    Submit,
    Approve,
    Reject,
    Return,
    Activate,
}

impl std::str::FromStr for PlanStep {
    type Err = crate::domain::Msg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "submit" => PlanStep::Submit,
            "approve" => PlanStep::Approve,
            "reject" => PlanStep::Reject,
            "return" => PlanStep::Return,
            "activate" => PlanStep::Activate,
            other => {
                return Err(crate::msg!(
                    "no step {other:?}: use submit, approve, reject, return or activate",
                    "没有步骤 {other:?}：可用 submit（提交）、approve（批准）、reject（驳回）、\
                     return（退回）或 activate（启用）"
                ));
            }
        })
    }
}

impl PlanStep {
    /// The step's name (`submit`…).
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStep::Submit => "submit",
            PlanStep::Approve => "approve",
            PlanStep::Reject => "reject",
            PlanStep::Return => "return",
            PlanStep::Activate => "activate",
        }
    }

    /// The step in Chinese words (the web app's buttons).
    pub fn zh(self) -> &'static str {
        match self {
            PlanStep::Submit => "提交审批",
            PlanStep::Approve => "批准",
            PlanStep::Reject => "驳回",
            PlanStep::Return => "退回修改",
            PlanStep::Activate => "启用",
        }
    }

    /// What the step needs the caller to be allowed, and where it takes the plan.
    fn rule(self) -> (Action, PlanStatus) {
        match self {
            PlanStep::Submit => (Action::DraftPlan, PlanStatus::Submitted),
            PlanStep::Approve => (Action::ReviewPlan, PlanStatus::Approved),
            PlanStep::Reject => (Action::ReviewPlan, PlanStatus::Rejected),
            PlanStep::Return => (Action::ReviewPlan, PlanStatus::Draft),
            PlanStep::Activate => (Action::ActivatePlan, PlanStatus::Active),
        }
    }
}

/// What a step may carry.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
pub struct StepRequest {
    /// Why (required to reject or return).
    pub reason: Option<String>,
    /// Effective date (approve; YYYY-MM-DD).
    pub effective: Option<NaiveDate>,
}

/// The stored plan if `p` may read plans of its scope, else "no plan" as for a missing
/// one.
async fn readable_plan(store: &dyn crate::store::Store, p: &Principal, id: i64) -> AppResult<Plan> {
    let plan = store.plan(id).await?;
    if !p.may(Action::ReadPlans, &plan.scope_code) {
        return Err(crate::store::StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        }
        .into());
    }
    Ok(plan)
}

impl App {
    /// Plans under `under` (or everywhere) the caller may read, newest first.
    pub async fn plans(
        &self,
        p: &Principal,
        under: Option<&str>,
        status: Option<PlanStatus>,
    ) -> AppResult<Vec<Plan>> {
        if let Some(u) = under {
            require(p, Action::ReadPlans, u)?;
        }
        let plans = self.store.plans(under, status).await?;
        Ok(plans
            .into_iter()
            .filter(|plan| p.may(Action::ReadPlans, &plan.scope_code))
            .collect())
    }

    /// One plan, if the caller may read plans of its stored scope; otherwise the same
    /// "no plan" as for a missing one (ids are sequential: a 403 would tell which exist
    /// elsewhere, and where).
    pub async fn plan(&self, p: &Principal, id: i64) -> AppResult<Plan> {
        readable_plan(self.store.as_ref(), p, id).await
    }

    /// A readable plan's grids.
    pub async fn plan_grids(&self, p: &Principal, id: i64) -> AppResult<Vec<PlanGrid>> {
        self.plan(p, id).await?;
        Ok(self.store.plan_grids(id).await?)
    }

    /// A readable plan's events, oldest first.
    pub async fn plan_events(&self, p: &Principal, id: i64) -> AppResult<Vec<PlanEvent>> {
        self.plan(p, id).await?;
        Ok(self.store.plan_events(id).await?)
    }

    /// What activating a readable plan would change. Members moving are personal
    /// data: named only to callers who may read them.
    pub async fn plan_impact(&self, p: &Principal, id: i64) -> AppResult<Value> {
        let plan = self.plan(p, id).await?;
        let mut impact = serde_json::to_value(plans::impact(self.store.as_ref(), id).await?)
            .map_err(|e| AppError::invalid(crate::domain::Msg::verbatim(e.to_string())))?;
        if !p.may(Action::ReadPersonal, &plan.scope_code)
            && let Some(moves) = impact
                .get_mut("members_moving")
                .and_then(Value::as_array_mut)
        {
            for m in moves {
                if let Some(name) = m
                    .get("name")
                    .and_then(Value::as_str)
                    .map(crate::auth::mask_name)
                {
                    m["name"] = json!(name);
                }
            }
        }
        Ok(impact)
    }

    /// Refuses unless the caller may draft plans somewhere (checked before an upload
    /// is read).
    pub fn may_draft_somewhere(&self, p: &Principal) -> AppResult<()> {
        if p.may_somewhere(Action::DraftPlan) {
            Ok(())
        } else {
            Err(AppError::forbidden(crate::msg!(
                "{} may not draft plans",
                "{} 无权起草方案",
                p.name
            )))
        }
    }

    /// Refuses unless the caller may draft plans of `scope`.
    pub fn may_draft(&self, p: &Principal, scope: &str) -> AppResult<()> {
        require(p, Action::DraftPlan, scope)
    }

    /// The longitude at the middle of a region's bounding box, when its boundary is
    /// loaded: where a plan's file for that scope should lie.
    pub async fn scope_longitude(&self, scope: &str) -> Option<f64> {
        plans::scope_longitude(self.store.as_ref(), scope).await
    }

    /// The plan to be revised, if the caller may draft plans of its stored scope
    /// (checked before the new file is read).
    pub async fn plan_to_revise(&self, p: &Principal, id: i64) -> AppResult<Plan> {
        let plan = readable_plan(self.store.as_ref(), p, id).await?;
        require(p, Action::DraftPlan, &plan.scope_code)?;
        Ok(plan)
    }

    /// Stores a draft of `grids` for `scope` with its validation; audited.
    pub async fn draft_plan(
        &self,
        p: &Principal,
        scope: String,
        layer: Layer,
        title: String,
        effective_date: Option<NaiveDate>,
        grids: Vec<Grid>,
    ) -> AppResult<Plan> {
        require(p, Action::DraftPlan, &scope)?;
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: "plan_draft".into(),
            resource: "plans/{id}".into(),
            scope_code: scope.clone(),
            detail: json!({}),
        };
        let plan = plans::draft_audited(
            self.store.as_ref(),
            DraftRequest {
                scope_code: scope,
                layer,
                title,
                effective_date,
                actor: p.name.clone(),
                grids,
            },
            Some(audit),
        )
        .await?;
        Ok(plan)
    }

    /// Replaces a draft's grids; audited in the same transaction.
    pub async fn revise_plan(&self, p: &Principal, id: i64, grids: Vec<Grid>) -> AppResult<Plan> {
        let plan = self.plan_to_revise(p, id).await?;
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: "plan_revise".into(),
            resource: format!("plans/{id}"),
            scope_code: plan.scope_code.clone(),
            detail: json!({}),
        };
        Ok(plans::revise(
            self.store.as_ref(),
            id,
            &p.name,
            grids,
            "content replaced",
            Some(audit),
        )
        .await?)
    }

    /// Reads a draft's names, households or communities again from other fields of its
    /// own file (every attribute is kept with each grid) and validates it again, so a
    /// planner fixes a mapping without uploading again. Audited as a revision naming
    /// the choice, in the same transaction.
    pub async fn remap_plan(
        &self,
        p: &Principal,
        id: i64,
        choice: &FieldChoice,
    ) -> AppResult<Plan> {
        let plan = self.plan_to_revise(p, id).await?;
        let mut grids = self.draft_grids(&plan).await?;
        choice
            .apply(&mut grids)
            .map_err(|e| AppError::invalid(crate::domain::Msg::of(&e)))?;
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: "plan_revise".into(),
            resource: format!("plans/{id}"),
            scope_code: plan.scope_code.clone(),
            detail: json!({"mapping": choice}),
        };
        Ok(plans::revise(
            self.store.as_ref(),
            id,
            &p.name,
            grids,
            "attributes mapped again",
            Some(audit),
        )
        .await?)
    }

    /// A stored plan's grids as they were read from its file: every attribute kept,
    /// households among them, each under the community the plan gave it.
    async fn draft_grids(&self, plan: &Plan) -> AppResult<Vec<Grid>> {
        Ok(self
            .store
            .plan_grids(plan.id)
            .await?
            .into_iter()
            .map(|g| {
                let mut properties = g.attributes;
                properties.insert("households".into(), json!(g.households));
                Grid {
                    id: g.code,
                    name: g.name,
                    parent: Some(g.parent_code),
                    layer: plan.layer,
                    ancestors: Vec::new(),
                    boundary: g.boundary,
                    properties,
                }
            })
            .collect())
    }

    /// Proposes repairs of a draft against its communities' boundaries (see
    /// [`crate::workflow::repair`]). A preview changes nothing; otherwise the proposals
    /// (all, or those for `request.grids`) become a new revision of the draft,
    /// validated again, recorded in its history as a repair and audited as
    /// `plan_repair` with what was applied, in the same transaction.
    pub async fn repair_plan(
        &self,
        p: &Principal,
        id: i64,
        request: &RepairRequest,
    ) -> AppResult<RepairOutcome> {
        let plan = self.plan_to_revise(p, id).await?;
        let options = request.options()?;
        if !request.preview && plan.status != PlanStatus::Draft {
            let (status, status_zh) = (plan.status.as_str(), plan.status.zh());
            return Err(AppError::Store(StoreError::Refused(crate::msg!(
                "plan {id} is {status}: only a draft can be repaired",
                "方案 {id} 的状态是“{status_zh}”：只有草稿才能修复"
            ))));
        }
        let grids = self.draft_grids(&plan).await?;
        let regions = self.store.regions(Some(&plan.scope_code)).await?;
        let parents: BTreeMap<String, geo_types::MultiPolygon<f64>> = regions
            .into_iter()
            .filter(|r| r.level == Level::Community)
            .filter_map(|r| Some((r.code, r.boundary?)))
            .collect();
        let parent_of: Vec<Option<String>> = grids.iter().map(|g| g.parent.clone()).collect();
        let only: Option<BTreeSet<String>> = request
            .grids
            .as_ref()
            .map(|ids| ids.iter().cloned().collect());
        if let Some(only) = &only
            && let Some(unknown) = only.iter().find(|id| !grids.iter().any(|g| &g.id == *id))
        {
            return Err(AppError::invalid_parameter(
                "grids",
                crate::msg!(
                    "plan {id} has no grid {unknown:?}",
                    "方案 {id} 中没有网格 {unknown:?}"
                ),
            ));
        }
        let proposals = plans::compute(|| {
            repair::repair_groups(&grids, &parent_of, &parents, &options, |_, _| {})
        });
        let mut report = proposals.to_json(&grids, request.preview);
        if request.preview {
            return Ok(RepairOutcome {
                plan,
                applied: 0,
                proposals: report,
            });
        }
        let mut repaired = grids.clone();
        let applied = proposals.apply(&mut repaired, only.as_ref());
        if applied == 0 {
            return Ok(RepairOutcome {
                plan,
                applied,
                proposals: report,
            });
        }
        let applied_ids: Vec<String> = repaired
            .iter()
            .zip(&grids)
            .filter(|(r, g)| r.boundary != g.boundary)
            .map(|(r, _)| r.id.clone())
            .collect();
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: "plan_repair".into(),
            resource: format!("plans/{id}"),
            scope_code: plan.scope_code.clone(),
            detail: json!({
                "snap_m": options.snap_m,
                "max_gap_width_m": options.max_gap_width_m,
                "proposed": proposals.changed(),
                "applied": applied_ids,
            }),
        };
        let note = format!(
            "repaired: {applied} of {} proposed grids",
            proposals.changed()
        );
        let plan = plans::revise(
            self.store.as_ref(),
            id,
            &p.name,
            repaired,
            &note,
            Some(audit),
        )
        .await?;
        report["applied"] = json!(applied_ids);
        Ok(RepairOutcome {
            plan,
            applied,
            proposals: report,
        })
    }

    /// Takes one step of plan `id` (see [`take_plan_step`]); activation swaps this
    /// process's live snapshot.
    pub async fn plan_step(
        &self,
        p: &Principal,
        id: i64,
        step: PlanStep,
        req: &StepRequest,
    ) -> AppResult<Plan> {
        let steps = PlanSteps {
            store: self.store.as_ref(),
            live: Some(&self.live),
            four_eyes: self.settings.four_eyes,
            via: None,
        };
        Ok(steps.take(p, id, step, req).await?.plan)
    }

    /// Every version of a grid and the lineage to and from it (any signed-in caller:
    /// grids are public boundaries). `None` when the grid never existed.
    pub async fn grid_history(
        &self,
        code: &str,
    ) -> AppResult<Option<(Vec<GridVersion>, Vec<LineageLink>)>> {
        let versions = self.store.grid_history(code).await?;
        if versions.is_empty() {
            return Ok(None);
        }
        Ok(Some((versions, self.store.grid_lineage(code).await?)))
    }

    /// The plans of an area with their events: who redrew it when.
    pub async fn area_history(
        &self,
        p: &Principal,
        code: &str,
    ) -> AppResult<Vec<(Plan, Vec<PlanEvent>)>> {
        require(p, Action::ReadPlans, code)?;
        let mut out = Vec::new();
        for plan in self.store.plans(Some(code), None).await? {
            let events = self.store.plan_events(plan.id).await?;
            out.push((plan, events));
        }
        Ok(out)
    }
}

/// What a plan step runs against: the service's [`App::plan_step`] and the CLI's
/// `wangge plan …` both take steps through [`PlanSteps::take`], so the same rules hold
/// at the console as over HTTP.
pub struct PlanSteps<'a> {
    pub store: &'a dyn crate::store::Store,
    /// This process's snapshot, swapped on activation (`None` at the console: a
    /// server follows activations by itself).
    pub live: Option<&'a crate::workflow::live::LiveGrids>,
    /// The second-person rule (setting `four_eyes`).
    pub four_eyes: bool,
    /// Where the step came from, for the audit row (`Some("cli")`).
    pub via: Option<&'static str>,
}

/// A step taken: the plan as it now is, and for an activation what it changed.
#[derive(Debug, serde::Serialize)]
pub struct StepTaken {
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<crate::store::Activation>,
}

impl PlanSteps<'_> {
    /// Takes one step of plan `id`, authorised against its **stored** scope; approval
    /// by the plan's submitter is refused while `four_eyes` is on; reject and return
    /// need a reason. Audited under the plan's scope.
    pub async fn take(
        &self,
        p: &Principal,
        id: i64,
        step: PlanStep,
        req: &StepRequest,
    ) -> AppResult<StepTaken> {
        let plan = readable_plan(self.store, p, id).await?;
        let (action, to) = step.rule();
        require(p, action, &plan.scope_code)?;
        if step == PlanStep::Approve && self.four_eyes {
            plans::check_second_person(self.store, id, &p.name).await?;
        }
        if matches!(step, PlanStep::Reject | PlanStep::Return)
            && req.reason.as_deref().is_none_or(str::is_empty)
        {
            let (name, name_zh) = (step.as_str(), step.zh());
            return Err(AppError::invalid(crate::msg!(
                "{name} needs a reason",
                "“{name_zh}”需要说明理由"
            )));
        }
        let mut detail = json!({"reason": req.reason, "effective": req.effective});
        if let Some(via) = self.via {
            detail["via"] = json!(via);
        }
        // The row is written in the step's own transaction.
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: format!("plan_{}", step.as_str()),
            resource: format!("plans/{id}"),
            scope_code: plan.scope_code.clone(),
            detail,
        };
        let taken = if step == PlanStep::Activate {
            let today = crate::domain::today_in_china();
            let a = plans::activate_audited(self.store, id, &p.name, today, self.live, Some(audit))
                .await?;
            metrics::counter!("wangge_plans_activated_total").increment(1);
            StepTaken {
                plan: a.plan.clone(),
                activation: Some(a),
            }
        } else {
            // An approval of an undated plan without a date takes effect from today
            // (China): it could otherwise be neither activated nor returned.
            let effective = match step {
                PlanStep::Approve if plan.effective_date.is_none() => {
                    req.effective.or(Some(crate::domain::today_in_china()))
                }
                _ => req.effective,
            };
            let plan = plans::transition_audited(
                self.store,
                id,
                to,
                &p.name,
                req.reason.clone(),
                effective,
                Some(audit),
            )
            .await?;
            StepTaken {
                plan,
                activation: None,
            }
        };
        Ok(taken)
    }
}
