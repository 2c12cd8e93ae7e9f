//! Validating a whole set of grids: grouped by parent community and layer, each group
//! proved against its parent's boundary by [`coverage::validate`], and the report in
//! the one shape the CLI, imports and stored plans share.

use crate::domain::{Grid, Layer};
use crate::io::geojson as gj;
use crate::io::mapping::MappingReport;
use crate::spatial::coverage::{self, Problem, Severity, ValidateOptions};
use geo_types::MultiPolygon;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;

/// The outcome of validating a whole set, all groups together.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Each problem with the parent and layer of its group; grid indices point into
    /// the validated slice.
    pub problems: Vec<(Option<String>, Layer, Problem)>,
    pub grids: usize,
    pub vertices: usize,
    pub groups: usize,
    /// How the file's attributes were mapped, with a warning for each role no field
    /// filled (see [`crate::io::mapping::review`]).
    pub mapping: Option<MappingReport>,
}

impl Validation {
    /// No error-severity problem.
    pub fn is_valid(&self) -> bool {
        self.errors() == 0
    }

    /// Number of error-severity problems.
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|(_, _, p)| p.severity() == Severity::Error)
            .count()
    }

    /// Number of warnings, the attribute mapping's included.
    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors() + self.mapping.as_ref().map_or(0, |m| m.warnings.len())
    }

    /// How many problems of each kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for (_, _, p) in &self.problems {
            *counts.entry(p.kind.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// The report as JSON: `{valid, problems, stats}`; `extra_stats` are merged into
    /// `stats` (timings, feature counts).
    pub fn to_json(&self, grids: &[Grid], extra_stats: Value) -> Value {
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|(pa, l, p)| problem_json(grids, pa, *l, p))
            .collect();
        let mut stats = json!({
            "grids": self.grids, "vertices": self.vertices, "groups": self.groups,
            "problems": self.problems.len(), "by_kind": self.counts(),
        });
        if let (Some(s), Value::Object(extra)) = (stats.as_object_mut(), extra_stats) {
            s.extend(extra);
        }
        let mut report = json!({"valid": self.is_valid(), "problems": problems, "stats": stats});
        if let Some(m) = &self.mapping {
            report["mapping"] = m.to_json();
        }
        report
    }

    /// The report for people, one line per problem.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{} grids, {} vertices, {} parent/layer groups",
            self.grids, self.vertices, self.groups
        )?;
        for w in self.mapping.iter().flat_map(|m| &m.warnings) {
            let samples: Vec<String> = w
                .candidates
                .iter()
                .filter_map(|c| Some(format!("{:?} e.g. {:?}", c.field, c.sample.as_ref()?)))
                .collect();
            let samples = if samples.is_empty() {
                String::new()
            } else {
                format!(" ({})", samples.join("; "))
            };
            writeln!(out, "warning unmapped_field      {}{samples}", w.detail)?;
        }
        if self.problems.is_empty() {
            writeln!(out, "valid: the grids tile their parents exactly")?;
            return Ok(());
        }
        for (parent, _, p) in &self.problems {
            let sev = match p.severity() {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let area = p.area_m2.map(|a| format!(" {a:.1} m²")).unwrap_or_default();
            let width = p
                .width_m
                .filter(|&w| w > 0.0)
                .map(|w| format!(", {w:.2} m wide"))
                .unwrap_or_default();
            let parent = parent
                .as_ref()
                .map(|p| format!(" (parent {p})"))
                .unwrap_or_default();
            writeln!(
                out,
                "{sev:7} {:18} {}{area}{width} at {:.6},{:.6}{parent}",
                p.kind.as_str(),
                p.detail,
                p.location.x,
                p.location.y,
            )?;
        }
        let summary: Vec<String> = self
            .counts()
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let verdict = if self.is_valid() {
            "valid with warnings"
        } else {
            "INVALID"
        };
        writeln!(out, "{verdict}: {}", summary.join(", "))
    }
}

/// One problem as JSON, grids named by id.
pub fn problem_json(grids: &[Grid], parent: &Option<String>, layer: Layer, p: &Problem) -> Value {
    json!({
        "kind": p.kind.as_str(),
        "severity": p.severity(),
        "grids": p.grids.iter().map(|&g| grids[g as usize].id.clone()).collect::<Vec<_>>(),
        "parent": parent,
        "layer": layer.as_str(),
        "area_m2": p.area_m2,
        "width_m": p.width_m,
        "location": [p.location.x, p.location.y],
        "geometry": p.geometry.as_ref().map(gj::geometry_json),
        "detail": p.detail.en(),
        "detail_zh": p.detail.zh(),
    })
}

/// A validation group: the parent's code (if any) and the layer.
pub(crate) type GroupKey<'a> = (Option<&'a str>, Layer);

/// The grids' indices grouped by (`parent_of[i]`, layer), groups in key order.
pub(crate) fn groups_of<'a>(
    grids: &[Grid],
    parent_of: &'a [Option<String>],
) -> Vec<(GroupKey<'a>, Vec<usize>)> {
    let mut groups: BTreeMap<GroupKey<'a>, Vec<usize>> = BTreeMap::new();
    for (i, g) in grids.iter().enumerate() {
        let parent = parent_of.get(i).and_then(|p| p.as_deref());
        groups.entry((parent, g.layer)).or_default().push(i);
    }
    groups.into_iter().collect()
}

/// Runs `work` on every group, spread over the cores (interleaved, so large and small
/// communities mix), calling `progress` with (done, total) as each finishes; the
/// results come back in group order, the same for any number of threads.
pub(crate) fn in_groups<G: Sync, R: Send>(
    groups: &[G],
    work: impl Fn(&G) -> R + Sync,
    mut progress: impl FnMut(usize, usize),
) -> Vec<R> {
    let total = groups.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(total.max(1));
    let mut results: Vec<Option<R>> = (0..total).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for t in 0..threads {
            let tx = tx.clone();
            let work = &work;
            scope.spawn(move || {
                for g in (t..total).step_by(threads) {
                    if tx.send((g, work(&groups[g]))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (done, (g, result)) in rx.into_iter().enumerate() {
            results[g] = Some(result);
            progress(done + 1, total);
        }
    });
    // Every group sent its result unless its thread panicked, which scope re-raises.
    results.into_iter().flatten().collect()
}

/// Validates `grids` grouped by (`parent_of[i]`, layer). A group whose parent has a
/// boundary in `parents` is checked against it (gaps only for the comprehensive
/// layer); a group without one is checked for overlaps and holes among its grids.
/// `progress` is called once per finished group with (done, total).
pub fn validate_groups(
    grids: &[Grid],
    parent_of: &[Option<String>],
    parents: &BTreeMap<String, MultiPolygon<f64>>,
    options: &ValidateOptions,
    progress: impl FnMut(usize, usize),
) -> Validation {
    let groups = groups_of(grids, parent_of);
    let mut out = Validation {
        grids: grids.len(),
        groups: groups.len(),
        ..Validation::default()
    };
    // One group (a whole plan without parents) spreads its own validation over the
    // cores; several groups are spread over them instead, one thread each.
    let threads = if groups.len() == 1 {
        crate::spatial::parallel::build_threads(grids.len())
    } else {
        1
    };
    let check = |((parent_id, layer), members): &(GroupKey, Vec<usize>)| {
        let polys: Vec<&MultiPolygon<f64>> = members.iter().map(|&i| &grids[i].boundary).collect();
        let ids: Vec<&str> = members.iter().map(|&i| grids[i].id.as_str()).collect();
        let parent = parent_id.and_then(|p| parents.get(p));
        let opts = ValidateOptions {
            require_cover: *layer == Layer::Comprehensive,
            ..*options
        };
        coverage::validate_on(&polys, &ids, parent, &opts, threads)
    };
    let reports = in_groups(&groups, check, progress);
    for (((parent_id, layer), members), report) in groups.iter().zip(reports) {
        out.vertices += report.stats.vertices;
        for mut p in report.problems {
            p.grids = p
                .grids
                .iter()
                .map(|&g| members[g as usize] as u32)
                .collect();
            out.problems
                .push((parent_id.map(str::to_string), *layer, p));
        }
    }
    out
}
