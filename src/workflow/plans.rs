//! The boundary lifecycle: drafting a plan (resolving each grid's community, validating,
//! tracing lineage to the current grids, assigning codes), moving it through review,
//! previewing its impact and activating it.
//!
//! Codes: a grid that is unchanged or only modified (one old grid became exactly one new
//! grid) keeps its code. A split, merge or new grid gets a fresh code: its community's
//! code plus the next unused 3-digit sequence, assigned in reading order (north to
//! south in bands, west to east within a band). A grid arriving with a 15-digit code of
//! its own community that was never used keeps that code, so an existing official layer
//! imports with its codes. Codes are never reused.

use crate::domain::{Grid, Layer, Level, Localised, Msg, RegionCode};
use crate::spatial::coverage::{self, ValidateOptions};
use crate::spatial::pip::PolygonSet;
use crate::spatial::{geom, measure};
use crate::store::{
    GridVersion, LineageKind, LineageLink, NewAuditEntry, NewPlan, Plan, PlanContent, PlanGrid,
    PlanStatus, RegionRecord, Store, StoreError, Transition,
};
use crate::workflow::check::{Validation, validate_groups};
use crate::workflow::hierarchy::reading_order;
use crate::workflow::live::LiveGrids;
use chrono::NaiveDate;
use geo_types::{Coord, MultiPolygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why a plan could not be drafted or moved on.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The scope is not a region code above grid level.
    #[error("{0:?} is not a city, county, township or community code")]
    BadScope(String),
    /// A grid's community could not be determined.
    #[error(
        "cannot tell which community grid {grid:?} belongs to: give it a parent field, a \
         15-digit code, or load community boundaries first"
    )]
    UnknownCommunity { grid: String },
    /// A grid belongs to a community outside the plan's scope.
    #[error("grid {grid:?} belongs to community {community}, outside the plan's scope {scope}")]
    OutsideScope {
        grid: String,
        community: String,
        scope: String,
    },
    /// A grid's name could read as another's or as nothing (it is shown on the public
    /// card): direction overrides, invisible or blank-looking characters, too long.
    #[error("grid {grid:?}: {message}")]
    BadName { grid: String, message: Msg },
    /// A grid's household count is not a count of 0 to 100 000.
    #[error("grid {grid:?}: households {value} is not a count of 0 to 100 000")]
    BadHouseholds { grid: String, value: String },
    /// A grid names a community that is not loaded under the plan's scope.
    #[error(
        "grid {grid:?} names community {community}, which is no community loaded under the \
         plan's scope: correct its parent field, or load the community first"
    )]
    NoSuchCommunity { grid: String, community: String },
    /// A plan must propose at least one grid.
    #[error("a plan needs at least one grid")]
    Empty,
    /// A community ran out of 3-digit grid sequences.
    #[error("community {0} has used all 999 grid codes")]
    CodesExhausted(String),
    /// A grid's boundary has more vertices than the checks accept.
    #[error(transparent)]
    TooComplex(#[from] crate::io::upload::TooComplex),
    /// The effective date has not come yet.
    #[error("plan {id} takes effect on {effective}; it can be activated from that day on")]
    NotYetEffective { id: i64, effective: NaiveDate },
    /// The four-eyes rule: whoever drew, changed or submitted a plan does not approve
    /// it.
    #[error(
        "{actor} drew, changed or submitted plan {id}; another person must approve it (four-eyes rule)"
    )]
    SamePerson { id: i64, actor: String },
}

impl Localised for PlanError {
    fn zh(&self) -> String {
        match self {
            PlanError::Store(e) => e.zh(),
            PlanError::BadScope(code) => format!("{code:?} 不是市、县区、街镇或村社区的编码"),
            PlanError::UnknownCommunity { grid } => format!(
                "无法确定网格 {grid:?} 属于哪个村社区：请给出所属社区字段或 15 位编码，或先导入村社区边界"
            ),
            PlanError::OutsideScope {
                grid,
                community,
                scope,
            } => format!("网格 {grid:?} 属于村社区 {community}，不在方案范围 {scope} 内"),
            PlanError::BadName { grid, message } => format!("网格 {grid:?}：{}", message.zh()),
            PlanError::BadHouseholds { grid, value } => {
                format!("网格 {grid:?}：户数 {value} 不是 0 到 100000 之间的整数")
            }
            PlanError::NoSuchCommunity { grid, community } => format!(
                "网格 {grid:?} 所属的村社区 {community} 不在方案范围内已导入的村社区中：请更正所属社区字段，或先导入该村社区"
            ),
            PlanError::Empty => "方案至少需要一个网格".to_string(),
            PlanError::CodesExhausted(community) => {
                format!("村社区 {community} 的 999 个网格编码已全部用完")
            }
            PlanError::TooComplex(e) => e.zh(),
            PlanError::NotYetEffective { id, effective } => {
                format!("方案 {id} 自 {effective} 起生效，从当天起才能启用")
            }
            PlanError::SamePerson { id, actor } => {
                format!("{actor} 绘制、修改或提交了方案 {id}，须由另一人审批（双人审核规则）")
            }
        }
    }
}

/// The four-eyes rule for plans (setting `four_eyes`): the approver is not the person
/// who last submitted the plan, nor anyone who drew its draft or changed its content
/// (a new file, a re-mapping, a repair): an approver who edits a township's draft has
/// become one of its authors. HTTP and the CLI both call it before approving.
pub async fn check_second_person(
    store: &dyn Store,
    id: i64,
    approver: &str,
) -> Result<(), PlanError> {
    let events = store.plan_events(id).await?;
    let submitter = events
        .iter()
        .rev()
        .find(|e| e.to == PlanStatus::Submitted)
        .map(|e| e.actor.as_str());
    let authored = events.iter().any(|e| {
        e.to == PlanStatus::Draft
            && matches!(e.from, None | Some(PlanStatus::Draft))
            && e.actor == approver
    });
    if authored || submitter == Some(approver) {
        return Err(PlanError::SamePerson {
            id,
            actor: approver.to_string(),
        });
    }
    Ok(())
}

/// The most households one grid may have: far above any real grid (a few hundred),
/// low enough that a value past it is a wrong column, not a count.
pub const MAX_HOUSEHOLDS: i64 = 100_000;

/// The tolerances plans are validated with.
pub fn plan_validate_options() -> ValidateOptions {
    ValidateOptions::default()
}

/// A plan's content computed against the store, before or without storing it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub content: PlanContent,
    pub validation: Validation,
    /// The grids as validated (ids are the assigned codes).
    pub grids: Vec<Grid>,
}

/// What a planner asks for when drafting.
#[derive(Debug, Clone)]
pub struct DraftRequest {
    pub scope_code: String,
    pub layer: Layer,
    pub title: String,
    pub effective_date: Option<NaiveDate>,
    pub actor: String,
    pub grids: Vec<Grid>,
}

/// Drafts a plan: prepares it against the current grids and stores it.
pub async fn draft(store: &dyn Store, request: DraftRequest) -> Result<Plan, PlanError> {
    draft_audited(store, request, None).await
}

/// [`draft`], appending `audit` in the same transaction (its detail given the plan's
/// `grids` and `errors`; `{id}` in its resource stands for the new plan's id).
pub async fn draft_audited(
    store: &dyn Store,
    request: DraftRequest,
    audit: Option<NewAuditEntry>,
) -> Result<Plan, PlanError> {
    let started = std::time::Instant::now();
    let prepared = prepare(store, &request.scope_code, request.layer, request.grids).await?;
    let prepared_in = started.elapsed();
    let plan = NewPlan {
        scope_code: request.scope_code,
        layer: request.layer,
        title: request.title,
        effective_date: request.effective_date,
        actor: request.actor,
    };
    let audit = audit.map(|mut a| {
        a.detail["grids"] = serde_json::json!(prepared.content.validation.pointer("/stats/grids"));
        a.detail["errors"] = serde_json::json!(prepared.content.error_count);
        a
    });
    let created = store
        .create_plan(&plan, &prepared.content, audit.as_ref())
        .await?;
    tracing::debug!(
        plan = created.id,
        prepare_ms = prepared_in.as_millis() as u64,
        store_ms = (started.elapsed() - prepared_in).as_millis() as u64,
        "plan drafted"
    );
    Ok(created)
}

/// Replaces a draft's grids, re-running validation, lineage and codes; with `audit`,
/// its row (its detail given `errors`) is appended in the same transaction.
pub async fn revise(
    store: &dyn Store,
    id: i64,
    actor: &str,
    grids: Vec<Grid>,
    note: &str,
    audit: Option<NewAuditEntry>,
) -> Result<Plan, PlanError> {
    let plan = store.plan(id).await?;
    let prepared = prepare(store, &plan.scope_code, plan.layer, grids).await?;
    let audit = audit.map(|mut a| {
        a.detail["errors"] = serde_json::json!(prepared.content.error_count);
        a
    });
    Ok(store
        .replace_plan_content(id, actor, &prepared.content, note, audit.as_ref())
        .await?)
}

/// Moves a plan on (submit, approve, reject, return to draft).
pub async fn transition(
    store: &dyn Store,
    id: i64,
    to: PlanStatus,
    actor: &str,
    reason: Option<String>,
    effective_date: Option<NaiveDate>,
) -> Result<Plan, PlanError> {
    transition_audited(store, id, to, actor, reason, effective_date, None).await
}

/// [`transition`], appending `audit` in the same transaction.
pub async fn transition_audited(
    store: &dyn Store,
    id: i64,
    to: PlanStatus,
    actor: &str,
    reason: Option<String>,
    effective_date: Option<NaiveDate>,
    audit: Option<NewAuditEntry>,
) -> Result<Plan, PlanError> {
    let plan = store.plan(id).await?;
    Ok(store
        .transition(
            id,
            &Transition {
                from: plan.status,
                to,
                actor: actor.to_string(),
                reason,
                effective_date,
                audit,
            },
        )
        .await?)
}

/// Activates an approved plan whose effective date is `today` or earlier, then swaps
/// the lookup snapshot (when given) to the new current grids.
pub async fn activate(
    store: &dyn Store,
    id: i64,
    actor: &str,
    today: NaiveDate,
    live: Option<&LiveGrids>,
) -> Result<crate::store::Activation, PlanError> {
    activate_audited(store, id, actor, today, live, None).await
}

/// [`activate`], appending `audit` (its detail given `closed` and `inserted`) in the
/// activation's transaction.
pub async fn activate_audited(
    store: &dyn Store,
    id: i64,
    actor: &str,
    today: NaiveDate,
    live: Option<&LiveGrids>,
    audit: Option<NewAuditEntry>,
) -> Result<crate::store::Activation, PlanError> {
    let plan = store.plan(id).await?;
    if let Some(effective) = plan.effective_date.filter(|&d| d > today) {
        return Err(PlanError::NotYetEffective { id, effective });
    }
    let activation = store.activate(id, actor, audit.as_ref()).await?;
    if let Some(live) = live {
        live.reload(store).await?;
    }
    Ok(activation)
}

/// Activates every approved plan whose effective date has come (oldest date first), as
/// a daily job would, each audited under its scope in its own transaction as `actor`
/// (detail `due`, and `via` when given). Each activation stands alone: a conflict or
/// failure of one is reported and the others go on.
pub async fn activate_due(
    store: &dyn Store,
    actor: &str,
    today: NaiveDate,
    live: Option<&LiveGrids>,
    via: Option<&str>,
) -> Result<Vec<(i64, Result<crate::store::Activation, PlanError>)>, PlanError> {
    let mut due: Vec<Plan> = store
        .plans(None, Some(PlanStatus::Approved))
        .await?
        .into_iter()
        .filter(|p| p.effective_date.is_some_and(|d| d <= today))
        .collect();
    due.sort_by_key(|p| (p.effective_date, p.id));
    let mut out = Vec::with_capacity(due.len());
    for plan in due {
        let mut detail = serde_json::json!({"due": true});
        if let Some(via) = via {
            detail["via"] = serde_json::json!(via);
        }
        let audit = NewAuditEntry {
            actor: actor.to_string(),
            action: "plan_activate".into(),
            resource: format!("plans/{}", plan.id),
            scope_code: plan.scope_code.clone(),
            detail,
        };
        let result = activate_audited(store, plan.id, actor, today, live, Some(audit)).await;
        out.push((plan.id, result));
    }
    Ok(out)
}

/// The longitude at the middle of a region's bounding box, when its boundary is
/// loaded: where a plan's file for that scope should lie (to name a Gauss–Krüger zone
/// for metres that do not carry one).
pub async fn scope_longitude(store: &dyn Store, scope: &str) -> Option<f64> {
    // The region's own boundary, or else those of the regions loaded under it.
    let regions = store.regions(Some(scope)).await.ok()?;
    let boundaries = |own: bool| {
        regions
            .iter()
            .filter(move |r| !own || r.code == scope)
            .filter_map(|r| r.boundary.as_ref())
    };
    crate::spatial::geom::middle_longitude(boundaries(true))
        .or_else(|| crate::spatial::geom::middle_longitude(boundaries(false)))
}

/// Runs CPU-heavy work where it does not stall the async workers: on a multi-threaded
/// runtime the worker hands its other tasks to the rest while this one computes.
pub(crate) fn compute<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Resolves communities, validates, traces lineage and assigns codes, without storing.
pub async fn prepare(
    store: &dyn Store,
    scope: &str,
    layer: Layer,
    grids: Vec<Grid>,
) -> Result<Prepared, PlanError> {
    let scope_code: RegionCode = scope
        .parse()
        .map_err(|_| PlanError::BadScope(scope.to_string()))?;
    if scope_code.level() == Level::Grid {
        return Err(PlanError::BadScope(scope.to_string()));
    }
    if grids.is_empty() {
        return Err(PlanError::Empty);
    }
    crate::io::upload::check_complexity(&grids)?;
    check_attributes(&grids)?;
    let mapping = crate::io::mapping::review(&grids);
    let t0 = std::time::Instant::now();
    let regions = store.regions(Some(scope)).await?;
    let regions_in = t0.elapsed();
    let communities: Vec<&RegionRecord> = regions
        .iter()
        .filter(|r| r.level == Level::Community && r.boundary.is_some())
        .collect();
    let parent_of = compute(|| assign_communities(scope, &grids, &communities))?;
    let parents: BTreeMap<String, MultiPolygon<f64>> = communities
        .iter()
        .filter_map(|r| Some((r.code.clone(), r.boundary.clone()?)))
        .collect();

    let assigned_in = t0.elapsed();
    let current: Vec<GridVersion> = store
        .grids(crate::store::Validity::Current, Some(layer), Some(scope))
        .await?;
    let current_in = t0.elapsed();
    let lineage = compute(|| trace_lineage(&current, &grids));
    let lineage_in = t0.elapsed();

    let mut affected: BTreeSet<String> = parent_of.iter().cloned().collect();
    affected.extend(current.iter().map(|g| g.parent_code.clone()));
    let affected: Vec<String> = affected.into_iter().collect();
    let highest: HashMap<String, String> =
        store.highest_codes(&affected).await?.into_iter().collect();
    let codes =
        compute(|| assign_codes(&grids, &parent_of, &lineage, &current, &highest, &parents))?;

    let mut coded = grids;
    for (g, code) in coded.iter_mut().zip(&codes) {
        if g.id != *code && !g.id.is_empty() {
            g.properties
                .entry("source_id")
                .or_insert_with(|| Value::from(g.id.clone()));
        }
        g.id = code.clone();
        g.layer = layer;
    }
    let coded_in = t0.elapsed();
    let parent_opts: Vec<Option<String>> = parent_of.iter().cloned().map(Some).collect();
    let validation = compute(|| {
        validate_groups(
            &coded,
            &parent_opts,
            &parents,
            &plan_validate_options(),
            |_, _| {},
        )
    });
    let mut validation = validation;
    validation.mapping = Some(mapping);
    validation.problems.extend(
        uncovered_communities(scope, &communities, &parent_of, &current)
            .into_iter()
            .map(|p| (Some(p.detail_code.clone()), layer, p.problem)),
    );
    let validated_in = t0.elapsed();
    tracing::debug!(
        regions_ms = regions_in.as_millis() as u64,
        assign_ms = (assigned_in - regions_in).as_millis() as u64,
        current_ms = (current_in - assigned_in).as_millis() as u64,
        lineage_ms = (lineage_in - current_in).as_millis() as u64,
        codes_ms = (coded_in - lineage_in).as_millis() as u64,
        validate_ms = (validated_in - coded_in).as_millis() as u64,
        "plan prepared"
    );
    let links = lineage.links(&current, &codes);
    let bases = store.generations(layer, &affected).await?;
    let report = validation.to_json(&coded, json!({}));
    let plan_grids = coded
        .iter()
        .zip(&parent_of)
        .map(|(g, parent)| {
            let mut attributes = g.properties.clone();
            let households = attributes
                .remove("households")
                .as_ref()
                .and_then(household_count)
                .and_then(|h| i32::try_from(h).ok());
            PlanGrid {
                code: g.id.clone(),
                name: g.name.clone(),
                parent_code: parent.clone(),
                boundary: g.boundary.clone(),
                households,
                attributes,
            }
        })
        .collect();
    Ok(Prepared {
        content: PlanContent {
            grids: plan_grids,
            lineage: links,
            bases,
            error_count: validation.errors() as i32,
            warning_count: validation.warnings() as i32,
            validation: report,
        },
        validation,
        grids: coded,
    })
}

/// A household count as a file gives it: a whole number, or text holding one.
fn household_count(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// What a plan's grids carry besides boundaries must be fit to publish: names that
/// follow the name rules (they are shown on the public card) and household counts of
/// 0 to [`MAX_HOUSEHOLDS`] (empty is allowed).
fn check_attributes(grids: &[Grid]) -> Result<(), PlanError> {
    for g in grids {
        let grid = || g.id.chars().take(64).collect::<String>();
        if let Some(name) = &g.name {
            crate::domain::text::check_text(
                "its name",
                name,
                crate::domain::MAX_GRID_NAME_CHARS,
                false,
                crate::domain::text::TextKind::Name,
            )
            .map_err(|message| PlanError::BadName {
                grid: grid(),
                message,
            })?;
        }
        if let Some(value) = g.properties.get("households").filter(|v| !v.is_null()) {
            let empty = value.as_str().is_some_and(|s| s.trim().is_empty());
            let counted = household_count(value).is_some_and(|h| (0..=MAX_HOUSEHOLDS).contains(&h));
            if !empty && !counted {
                return Err(PlanError::BadHouseholds {
                    grid: grid(),
                    value: crate::io::upload::quote(&value.to_string()),
                });
            }
        }
    }
    Ok(())
}

/// A community the plan would leave without grids, as a validation problem.
struct UncoveredCommunity {
    detail_code: String,
    problem: coverage::Problem,
}

/// Every community under the scope must be tiled by the plan: one with no grids in it
/// (a boundary known, or grids today) would lose all of them on activation. Each is an
/// `uncovered` error naming the community, its area, and the grids and households it
/// would lose, with how to narrow the scope.
fn uncovered_communities(
    scope: &str,
    communities: &[&RegionRecord],
    parent_of: &[String],
    current: &[GridVersion],
) -> Vec<UncoveredCommunity> {
    let covered: BTreeSet<&str> = parent_of.iter().map(String::as_str).collect();
    let mut losing: BTreeMap<&str, (Vec<&GridVersion>, Option<&RegionRecord>)> = BTreeMap::new();
    for r in communities {
        if !covered.contains(r.code.as_str()) {
            losing.entry(r.code.as_str()).or_default().1 = Some(r);
        }
    }
    for g in current {
        if !covered.contains(g.parent_code.as_str()) {
            losing.entry(g.parent_code.as_str()).or_default().0.push(g);
        }
    }
    let held: Vec<&str> = covered.iter().copied().collect();
    let (narrower, narrower_zh) = match held.as_slice() {
        [one] => (
            format!("make {one} the plan's scope"),
            format!("把方案范围改为 {one}"),
        ),
        _ => (
            "give each community its own plan".to_string(),
            "为每个村社区分别制定方案".to_string(),
        ),
    };
    losing
        .into_iter()
        .map(|(code, (grids, region))| {
            let boundary = region
                .and_then(|r| r.boundary.clone())
                .or_else(|| grids.first().map(|g| g.boundary.clone()));
            let area = boundary.as_ref().map(measure::area_m2);
            let location = boundary
                .as_ref()
                .and_then(|b| b.0.iter().find_map(geom::interior_point))
                .unwrap_or_default();
            let households: i64 = grids
                .iter()
                .filter_map(|g| g.households)
                .map(i64::from)
                .sum();
            let name = region.map(|r| format!(" {}", r.name)).unwrap_or_default();
            let (losses, losses_zh) = if grids.is_empty() {
                (
                    "it has no grids today either".to_string(),
                    "它目前也没有网格".to_string(),
                )
            } else {
                let codes: Vec<&str> = grids.iter().take(10).map(|g| g.code.as_str()).collect();
                let (n, listed, more) = (
                    grids.len(),
                    codes.join(", "),
                    if grids.len() > 10 { ", …" } else { "" },
                );
                (
                    format!(
                        "activating the plan would remove its {n} grid(s) ({listed}{more}) and \
                         {households} household(s)"
                    ),
                    format!("启用该方案将删除其 {n} 个网格（{listed}{more}）和 {households} 户"),
                )
            };
            UncoveredCommunity {
                detail_code: code.to_string(),
                problem: coverage::Problem {
                    kind: coverage::ProblemKind::Uncovered,
                    grids: Vec::new(),
                    area_m2: area,
                    width_m: None,
                    location,
                    geometry: boundary.map(geo_types::Geometry::MultiPolygon),
                    detail: crate::msg!(
                        "community {code}{name} is under the plan's scope {scope} but has no \
                         grids in the plan: {losses}. A plan replaces every grid under its \
                         scope: include this community's grids, or {narrower}",
                        "村社区 {code}{name} 在方案范围 {scope} 内，但方案中没有它的网格：\
                         {losses_zh}。方案会替换其范围内的全部网格：请加入该村社区的网格，\
                         或{narrower_zh}"
                    ),
                },
            }
        })
        .collect()
}

/// Each grid's community: its own `parent` when that is a community code, else the
/// first 12 digits of a 15-digit id, else the community containing an interior point.
fn assign_communities(
    scope: &str,
    grids: &[Grid],
    communities: &[&RegionRecord],
) -> Result<Vec<String>, PlanError> {
    let set = PolygonSet::new(communities.iter().filter_map(|r| r.boundary.as_ref()));
    let mut out = Vec::with_capacity(grids.len());
    for g in grids {
        let own = g
            .parent
            .as_deref()
            .filter(|p| is_code_of(p, Level::Community))
            .map(str::to_string)
            .or_else(|| {
                is_code_of(&g.id, Level::Grid)
                    .then(|| g.id[..Level::Community.code_len()].to_string())
            });
        let community = match own {
            // A declared community must be one that is loaded, when any are.
            Some(c) if !communities.is_empty() && !communities.iter().any(|r| r.code == c) => {
                return Err(PlanError::NoSuchCommunity {
                    grid: g.id.chars().take(64).collect(),
                    community: c,
                });
            }
            Some(c) => c,
            None => {
                let p = coverage::representative(&g.boundary);
                let hit = (0..set.len() as u32).find(|&i| set.contains(i, p));
                match hit {
                    Some(i) => communities[i as usize].code.clone(),
                    None => return Err(PlanError::UnknownCommunity { grid: g.id.clone() }),
                }
            }
        };
        if !community.starts_with(scope) {
            return Err(PlanError::OutsideScope {
                grid: g.id.clone(),
                community,
                scope: scope.to_string(),
            });
        }
        out.push(community);
    }
    Ok(out)
}

fn is_code_of(s: &str, level: Level) -> bool {
    s.parse::<RegionCode>().is_ok_and(|c| c.level() == level)
}

/// Overlaps between the current grids and a plan's grids.
struct Lineage {
    /// (old index, new index, shared m²) for every significant overlap.
    pairs: Vec<(usize, usize, f64)>,
    old_area: Vec<f64>,
    new_area: Vec<f64>,
    /// Per new grid: its kind and, for unchanged/modified, the old grid it continues.
    kinds: Vec<(LineageKind, Option<usize>)>,
}

/// An overlap counts when it is at least 1 m² and 0.5 % of the smaller grid: less is
/// digitising noise along a shared edge, not area that changed hands.
fn significant(shared: f64, a: f64, b: f64) -> bool {
    shared >= 1.0 && shared >= 0.005 * a.min(b)
}

fn trace_lineage(current: &[GridVersion], proposed: &[Grid]) -> Lineage {
    let old_area: Vec<f64> = current
        .iter()
        .map(|g| measure::local_area_m2(&g.boundary))
        .collect();
    let new_area: Vec<f64> = proposed
        .iter()
        .map(|g| measure::local_area_m2(&g.boundary))
        .collect();
    let mut pairs = Vec::new();
    // Identical shapes first: the common case of a plan that changes a few grids.
    let mut by_print: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, g) in current.iter().enumerate() {
        by_print
            .entry(coverage::shape_fingerprint(&g.boundary))
            .or_default()
            .push(i);
    }
    let mut identical: Vec<Option<usize>> = vec![None; proposed.len()];
    let mut old_identical = vec![false; current.len()];
    for (j, g) in proposed.iter().enumerate() {
        if let Some(list) = by_print.get(&coverage::shape_fingerprint(&g.boundary))
            && let Some(&i) = list.iter().find(|&&i| {
                !old_identical[i] && coverage::same_shape(&current[i].boundary, &g.boundary)
            })
        {
            identical[j] = Some(i);
            old_identical[i] = true;
            pairs.push((i, j, new_area[j]));
        }
    }
    let tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>> = RTree::bulk_load(
        current
            .iter()
            .enumerate()
            .filter(|(i, _)| !old_identical[*i])
            .filter_map(|(i, g)| {
                let r = geom::bounds(&g.boundary)?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect(),
    );
    // The overlaps are most of the work (an overlay per candidate pair): split the
    // proposed grids into contiguous chunks over the cores and append the chunks' pairs
    // in order, so the result does not depend on the number of threads.
    let todo: Vec<usize> = (0..proposed.len())
        .filter(|&j| identical[j].is_none())
        .collect();
    let overlaps_of = |j: usize| -> Vec<(usize, usize, f64)> {
        let Some(r) = geom::bounds(&proposed[j].boundary) else {
            return Vec::new();
        };
        let env = AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]);
        tree.locate_in_envelope_intersecting(&env)
            .filter_map(|cand| {
                let i = cand.data;
                let shared = coverage::overlap_area_m2(&current[i].boundary, &proposed[j].boundary);
                significant(shared, old_area[i], new_area[j]).then_some((i, j, shared))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let found = crate::spatial::parallel::in_parallel(todo.len(), threads, |range| {
        todo[range]
            .iter()
            .flat_map(|&j| overlaps_of(j))
            .collect::<Vec<_>>()
    });
    pairs.extend(found.into_iter().flatten());
    // Main successor of each old grid and main predecessor of each new one.
    let mut main_succ: Vec<Option<(usize, f64)>> = vec![None; current.len()];
    let mut preds: Vec<Vec<(usize, f64)>> = vec![Vec::new(); proposed.len()];
    for &(i, j, a) in &pairs {
        if main_succ[i].is_none_or(|(_, best)| a > best) {
            main_succ[i] = Some((j, a));
        }
        preds[j].push((i, a));
    }
    let mut main_pred_count = vec![0usize; current.len()];
    for p in &preds {
        if let Some(&(i, _)) = p.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            main_pred_count[i] += 1;
        }
    }
    let kinds = (0..proposed.len())
        .map(|j| {
            if let Some(i) = identical[j] {
                return (LineageKind::Unchanged, Some(i));
            }
            if preds[j].is_empty() {
                return (LineageKind::New, None);
            }
            let mostly_here: Vec<usize> = preds[j]
                .iter()
                .filter(|(i, _)| main_succ[*i].is_some_and(|(s, _)| s == j))
                .map(|(i, _)| *i)
                .collect();
            match mostly_here.as_slice() {
                [] => (LineageKind::Split, None),
                [i] if main_pred_count[*i] == 1 => (LineageKind::Modified, Some(*i)),
                [_] => (LineageKind::Split, None),
                _ => (LineageKind::Merged, None),
            }
        })
        .collect();
    Lineage {
        pairs,
        old_area,
        new_area,
        kinds,
    }
}

impl Lineage {
    fn links(&self, current: &[GridVersion], codes: &[String]) -> Vec<LineageLink> {
        let mut links = Vec::new();
        let mut has_succ = vec![false; current.len()];
        for &(i, j, a) in &self.pairs {
            has_succ[i] = true;
            links.push(LineageLink {
                from_code: Some(current[i].code.clone()),
                to_code: Some(codes[j].clone()),
                kind: self.kinds[j].0,
                area_m2: a,
            });
        }
        for (j, (kind, _)) in self.kinds.iter().enumerate() {
            if *kind == LineageKind::New {
                links.push(LineageLink {
                    from_code: None,
                    to_code: Some(codes[j].clone()),
                    kind: LineageKind::New,
                    area_m2: self.new_area[j],
                });
            }
        }
        for (i, g) in current.iter().enumerate() {
            if !has_succ[i] {
                links.push(LineageLink {
                    from_code: Some(g.code.clone()),
                    to_code: None,
                    kind: LineageKind::Retired,
                    area_m2: self.old_area[i],
                });
            }
        }
        links.sort_by(|a, b| {
            (a.kind, &a.from_code, &a.to_code).cmp(&(b.kind, &b.from_code, &b.to_code))
        });
        links
    }
}

fn assign_codes(
    grids: &[Grid],
    parent_of: &[String],
    lineage: &Lineage,
    current: &[GridVersion],
    highest: &HashMap<String, String>,
    parents: &BTreeMap<String, MultiPolygon<f64>>,
) -> Result<Vec<String>, PlanError> {
    let seq_of = |code: &str| {
        code.get(12..)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let mut next: HashMap<&str, u32> = HashMap::new();
    for c in parent_of {
        let used = highest.get(c).map(|h| seq_of(h)).unwrap_or(0);
        next.insert(c.as_str(), used + 1);
    }
    let mut codes: Vec<Option<String>> = vec![None; grids.len()];
    let mut taken: BTreeSet<String> = BTreeSet::new();
    // Continuations keep their code (within the same community).
    for (j, (kind, from)) in lineage.kinds.iter().enumerate() {
        if let (LineageKind::Unchanged | LineageKind::Modified, Some(i)) = (kind, from)
            && current[*i].parent_code == parent_of[j]
        {
            taken.insert(current[*i].code.clone());
            codes[j] = Some(current[*i].code.clone());
        }
    }
    // A never-used code of the grid's own community arriving with it is kept.
    for (j, g) in grids.iter().enumerate() {
        if codes[j].is_none()
            && is_code_of(&g.id, Level::Grid)
            && g.id.starts_with(&parent_of[j])
            && seq_of(&g.id) >= next[parent_of[j].as_str()]
            && taken.insert(g.id.clone())
        {
            codes[j] = Some(g.id.clone());
        }
    }
    for (j, c) in codes.iter().enumerate() {
        if let Some(code) = c {
            let n = next.entry(parent_of[j].as_str()).or_insert(1);
            *n = (*n).max(seq_of(code) + 1);
        }
    }
    // Fresh codes in reading order within each community.
    let mut by_community: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (j, c) in codes.iter().enumerate() {
        if c.is_none() {
            by_community
                .entry(parent_of[j].as_str())
                .or_default()
                .push(j);
        }
    }
    for (community, members) in by_community {
        let points: Vec<Coord<f64>> = members
            .iter()
            .map(|&j| coverage::representative(&grids[j].boundary))
            .collect();
        let frame = parents
            .get(community)
            .and_then(geom::bounds)
            .or_else(|| geom::bounds_of(points.iter().copied()))
            .unwrap_or(geo_types::Rect::new(
                Coord { x: 0.0, y: 0.0 },
                Coord { x: 0.0, y: 0.0 },
            ));
        let n = next.entry(community).or_insert(1);
        for k in reading_order(&points, frame) {
            if *n > 999 {
                return Err(PlanError::CodesExhausted(community.to_string()));
            }
            codes[members[k]] = Some(format!("{community}{:03}", *n));
            *n += 1;
        }
    }
    Ok(codes.into_iter().map(Option::unwrap_or_default).collect())
}

/// What activating a plan would change.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    pub plan_id: i64,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ChangedGrid>,
    pub unchanged: usize,
    pub lineage: Vec<LineageLink>,
    /// Members whose grid disappears, with the grid that takes most of its area.
    pub members_moving: Vec<MemberMove>,
    /// Households that change grid, estimated from each old grid's households in
    /// proportion to the area that leaves its code.
    pub households_moving_estimate: f64,
    /// Communities under the scope that would be left without any grid.
    pub uncovered_communities: Vec<UncoveredImpact>,
}

/// A community the plan would leave without grids, and what it would lose.
#[derive(Debug, Clone, Serialize)]
pub struct UncoveredImpact {
    pub community_code: String,
    pub grids_lost: Vec<String>,
    pub households_lost: i64,
}

/// A grid that keeps its code but not its boundary.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedGrid {
    pub code: String,
    pub area_gained_m2: f64,
    pub area_lost_m2: f64,
    /// Households that come with the area gained, estimated from each grid it comes
    /// from in proportion to area (as `households_moving_estimate`).
    pub households_gained_estimate: f64,
    /// Households that leave with the area lost, estimated the same way.
    pub households_lost_estimate: f64,
}

/// A member whose grid goes away.
#[derive(Debug, Clone, Serialize)]
pub struct MemberMove {
    pub member_id: i64,
    pub name: String,
    pub role: crate::store::Role,
    pub from_code: String,
    /// The successor with the largest share of the old grid, if any.
    pub to_code: Option<String>,
}

/// Previews what activating plan `id` would change, against the current grids.
pub async fn impact(store: &dyn Store, id: i64) -> Result<Impact, PlanError> {
    let plan = store.plan(id).await?;
    let lineage = store.plan_lineage(id).await?;
    let proposed = store.plan_grids(id).await?;
    let current = store
        .grids(
            crate::store::Validity::Current,
            Some(plan.layer),
            Some(&plan.scope_code),
        )
        .await?;
    let new_codes: BTreeSet<&str> = proposed.iter().map(|g| g.code.as_str()).collect();
    let old: HashMap<&str, &GridVersion> = current.iter().map(|g| (g.code.as_str(), g)).collect();
    let added = new_codes
        .iter()
        .filter(|c| !old.contains_key(*c))
        .map(|c| c.to_string())
        .collect();
    let removed: Vec<String> = old
        .keys()
        .filter(|c| !new_codes.contains(*c))
        .map(|c| c.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Households per m² of a current grid, for estimates in proportion to area.
    let per_m2 = |g: &GridVersion| -> f64 {
        let area = measure::local_area_m2(&g.boundary);
        match g.households {
            Some(h) if h > 0 && area > 0.0 => h as f64 / area,
            _ => 0.0,
        }
    };
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for g in &proposed {
        if !old.contains_key(g.code.as_str()) {
            continue;
        }
        if lineage
            .iter()
            .any(|l| l.kind == LineageKind::Unchanged && l.to_code.as_deref() == Some(&g.code))
        {
            unchanged += 1;
            continue;
        }
        // Measured on the shared pieces themselves, so what one grid loses to another
        // is exactly what the other gains.
        let code = Some(g.code.as_str());
        let moved = |into: bool| -> f64 {
            lineage
                .iter()
                .filter(|l| {
                    let (this, other) = if into {
                        (&l.to_code, &l.from_code)
                    } else {
                        (&l.from_code, &l.to_code)
                    };
                    this.as_deref() == code && other.as_deref() != code
                })
                .map(|l| l.area_m2)
                .sum()
        };
        let area_lost_m2 = moved(false);
        let households_gained_estimate = lineage
            .iter()
            .filter(|l| l.to_code.as_deref() == code && l.from_code.as_deref() != code)
            .filter_map(|l| {
                let from = old.get(l.from_code.as_deref()?)?;
                Some(per_m2(from) * l.area_m2)
            })
            .sum();
        changed.push(ChangedGrid {
            code: g.code.clone(),
            area_gained_m2: moved(true),
            area_lost_m2,
            households_gained_estimate,
            households_lost_estimate: old
                .get(g.code.as_str())
                .map_or(0.0, |o| per_m2(o) * area_lost_m2),
        });
    }
    let mut members_moving = Vec::new();
    for code in &removed {
        let successor = lineage
            .iter()
            .filter(|l| l.from_code.as_deref() == Some(code.as_str()) && l.to_code.is_some())
            .max_by(|a, b| a.area_m2.total_cmp(&b.area_m2))
            .and_then(|l| l.to_code.clone());
        for m in store.members(code).await? {
            members_moving.push(MemberMove {
                member_id: m.id,
                name: m.name,
                role: m.role,
                from_code: code.clone(),
                to_code: successor.clone(),
            });
        }
    }
    let mut households = 0.0;
    for o in &current {
        let Some(h) = o.households.filter(|&h| h > 0) else {
            continue;
        };
        let area = measure::local_area_m2(&o.boundary);
        if area <= 0.0 {
            continue;
        }
        let stays: f64 = lineage
            .iter()
            .filter(|l| {
                l.from_code.as_deref() == Some(&o.code) && l.to_code.as_deref() == Some(&o.code)
            })
            .map(|l| l.area_m2)
            .sum();
        households += h as f64 * ((area - stays) / area).clamp(0.0, 1.0);
    }
    let kept: BTreeSet<&str> = proposed.iter().map(|g| g.parent_code.as_str()).collect();
    let mut uncovered: BTreeMap<&str, UncoveredImpact> = BTreeMap::new();
    for g in current
        .iter()
        .filter(|g| !kept.contains(g.parent_code.as_str()))
    {
        let entry = uncovered
            .entry(g.parent_code.as_str())
            .or_insert_with(|| UncoveredImpact {
                community_code: g.parent_code.clone(),
                grids_lost: Vec::new(),
                households_lost: 0,
            });
        entry.grids_lost.push(g.code.clone());
        entry.households_lost += i64::from(g.households.unwrap_or(0));
    }
    Ok(Impact {
        plan_id: id,
        added,
        removed,
        changed,
        unchanged,
        lineage,
        members_moving,
        households_moving_estimate: households.round(),
        uncovered_communities: uncovered.into_values().collect(),
    })
}
