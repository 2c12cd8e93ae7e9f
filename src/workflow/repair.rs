//! Repair proposals for a whole set of grids: grouped like validation (by parent
//! community and layer), each group repaired against its parent by
//! [`coverage::repair`](crate::spatial::coverage::repair::repair), and the proposals in
//! the one shape the CLI and the plans API share.

use crate::domain::{Grid, Layer};
use crate::io::geojson as gj;
use crate::spatial::coverage::repair::{self, Action, GridRepair, RepairOptions};
use crate::workflow::check::{GroupKey, groups_of, in_groups};
use geo_types::{Geometry, MultiPolygon};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Proposals for every grid of a set, in the set's order; grid numbers inside (the
/// neighbours of `exchanged` and of actions) index the whole set.
#[derive(Debug, Clone, Default)]
pub struct Proposals {
    pub grids: Vec<GridRepair>,
    /// Gaps left unfilled, with their group's parent: wider than the limit or touching
    /// no grid (m² each).
    pub gaps_left: Vec<(Option<String>, f64)>,
    pub options: Option<RepairOptions>,
    /// The deadline passed before every group's problems were looked at.
    pub incomplete: bool,
}

impl Proposals {
    /// How many grids the proposals change.
    pub fn changed(&self) -> usize {
        self.grids.iter().filter(|g| g.changed).count()
    }

    /// Gives each grid its proposed boundary; with `only`, just the grids whose ids it
    /// names. Returns how many boundaries changed.
    pub fn apply(&self, grids: &mut [Grid], only: Option<&BTreeSet<String>>) -> usize {
        let mut applied = 0;
        for (g, r) in grids.iter_mut().zip(&self.grids) {
            if r.changed && only.is_none_or(|ids| ids.contains(&g.id)) {
                g.boundary = r.after.clone();
                applied += 1;
            }
        }
        applied
    }

    /// The proposals as JSON: `{changed, options, grids: [...], gaps_left: [...]}`,
    /// one entry per changed grid, with the boundary before and after when
    /// `geometry` is set.
    pub fn to_json(&self, grids: &[Grid], geometry: bool) -> Value {
        let id = |i: u32| grids.get(i as usize).map(|g| g.id.clone());
        let changes: Vec<Value> = grids
            .iter()
            .zip(&self.grids)
            .filter(|(_, r)| r.changed)
            .map(|(g, r)| {
                let mut entry = json!({
                    "grid": g.id,
                    "area_before_m2": round(r.area_before_m2),
                    "area_after_m2": round(r.area_after_m2),
                    "exchanged": r.exchanged.iter().map(|&(j, m2)| json!({"grid": id(j), "m2": round(m2)})).collect::<Vec<_>>(),
                    "from_gaps_m2": round(r.from_gaps_m2),
                    "dropped_m2": round(r.dropped_m2),
                    "moved_m2": round(r.moved_m2),
                    "actions": r.actions.iter().map(|a| action_json(a, &id)).collect::<Vec<_>>(),
                });
                if geometry {
                    entry["before"] = multipolygon_json(&g.boundary);
                    entry["after"] = multipolygon_json(&r.after);
                }
                entry
            })
            .collect();
        json!({
            "changed": self.changed(),
            "incomplete": self.incomplete,
            "options": self.options.map(|o| json!({
                "snap_m": o.snap_m, "max_gap_width_m": o.max_gap_width_m,
            })),
            "grids": changes,
            "gaps_left": self.gaps_left.iter().map(|(parent, m2)| json!({"parent": parent, "area_m2": round(*m2)})).collect::<Vec<_>>(),
        })
    }

    /// The proposals for people, one line per changed grid.
    pub fn write_text(&self, grids: &[Grid], out: &mut impl std::io::Write) -> std::io::Result<()> {
        let name = |i: u32| grids.get(i as usize).map_or("?", |g| g.id.as_str());
        for (g, r) in grids.iter().zip(&self.grids).filter(|(_, r)| r.changed) {
            let actions: Vec<String> = r.actions.iter().map(|a| describe(a, &name)).collect();
            writeln!(
                out,
                "{:18} {:>12.1} m² -> {:>12.1} m²  {}",
                g.id,
                r.area_before_m2,
                r.area_after_m2,
                actions.join("; ")
            )?;
        }
        for (parent, m2) in &self.gaps_left {
            let parent = parent
                .as_deref()
                .map(|p| format!(" in {p}"))
                .unwrap_or_default();
            writeln!(
                out,
                "gap left{parent}: {m2:.1} m² (wider than the limit, or no neighbour)"
            )?;
        }
        if self.incomplete {
            writeln!(
                out,
                "incomplete: the time limit passed before every problem was looked at"
            )?;
        }
        writeln!(out, "{} of {} grids changed", self.changed(), grids.len())
    }
}

fn round(m2: f64) -> f64 {
    (m2 * 1000.0).round() / 1000.0
}

fn multipolygon_json(mp: &MultiPolygon<f64>) -> Value {
    gj::geometry_json(&Geometry::MultiPolygon(mp.clone()))
}

fn action_json(a: &Action, id: &impl Fn(u32) -> Option<String>) -> Value {
    match *a {
        Action::Snapped { vertices } => json!({"kind": "snapped", "vertices": vertices}),
        Action::MadeValid => json!({"kind": "made_valid"}),
        Action::Clipped { m2 } => json!({"kind": "clipped", "m2": round(m2)}),
        Action::GaveOverlap { to, m2 } => {
            json!({"kind": "gave_overlap", "grid": id(to), "m2": round(m2)})
        }
        Action::KeptOverlap { from, m2 } => {
            json!({"kind": "kept_overlap", "grid": id(from), "m2": round(m2)})
        }
        Action::FilledGap { m2 } => json!({"kind": "filled_gap", "m2": round(m2)}),
    }
}

fn describe<'a>(a: &Action, name: &impl Fn(u32) -> &'a str) -> String {
    match *a {
        Action::Snapped { vertices } => format!("{vertices} vertices snapped"),
        Action::MadeValid => "made valid".into(),
        Action::Clipped { m2 } => format!("{m2:.1} m² outside the parent cut off"),
        Action::GaveOverlap { to, m2 } => format!("gave {m2:.1} m² of overlap to {}", name(to)),
        Action::KeptOverlap { from, m2 } => {
            format!("kept {m2:.1} m² of overlap from {}", name(from))
        }
        Action::FilledGap { m2 } => format!("filled a {m2:.1} m² gap"),
    }
}

/// Proposes repairs for `grids` grouped by (`parent_of[i]`, layer): each group against
/// its parent's boundary in `parents` (gaps filled only for the comprehensive layer).
/// `progress` is called once per finished group with (done, total).
pub fn repair_groups(
    grids: &[Grid],
    parent_of: &[Option<String>],
    parents: &BTreeMap<String, MultiPolygon<f64>>,
    options: &RepairOptions,
    progress: impl FnMut(usize, usize),
) -> Proposals {
    let groups = groups_of(grids, parent_of);
    let work = |((parent_id, layer), members): &(GroupKey, Vec<usize>)| {
        let polys: Vec<MultiPolygon<f64>> =
            members.iter().map(|&i| grids[i].boundary.clone()).collect();
        let opts = RepairOptions {
            require_cover: *layer == Layer::Comprehensive && options.require_cover,
            ..*options
        };
        repair::repair(&polys, parent_id.and_then(|p| parents.get(p)), &opts)
    };
    let repairs = in_groups(&groups, work, progress);
    let mut out: Vec<Option<GridRepair>> = vec![None; grids.len()];
    let mut gaps_left = Vec::new();
    let mut incomplete = false;
    for (((parent_id, _), members), r) in groups.iter().zip(repairs) {
        incomplete |= r.incomplete;
        let global = |j: u32| members.get(j as usize).map_or(j, |&m| m as u32);
        for (local, mut g) in r.grids.into_iter().enumerate() {
            for e in &mut g.exchanged {
                e.0 = global(e.0);
            }
            for a in &mut g.actions {
                match a {
                    Action::GaveOverlap { to: j, .. } | Action::KeptOverlap { from: j, .. } => {
                        *j = global(*j)
                    }
                    _ => {}
                }
            }
            out[members[local]] = Some(g);
        }
        gaps_left.extend(
            r.gaps_left
                .into_iter()
                .map(|m2| (parent_id.map(str::to_string), m2)),
        );
    }
    Proposals {
        grids: out
            .into_iter()
            .zip(grids)
            .map(|(r, g)| r.unwrap_or_else(|| unchanged(&g.boundary)))
            .collect(),
        gaps_left,
        options: Some(*options),
        incomplete,
    }
}

fn unchanged(boundary: &MultiPolygon<f64>) -> GridRepair {
    let area = crate::spatial::measure::local_area_m2(boundary);
    GridRepair {
        after: boundary.clone(),
        changed: false,
        area_before_m2: area,
        area_after_m2: area,
        exchanged: Vec::new(),
        from_gaps_m2: 0.0,
        dropped_m2: 0.0,
        moved_m2: 0.0,
        actions: Vec::new(),
    }
}
