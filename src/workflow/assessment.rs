//! Assessment and analysis (Art. 12: notification and assessment, data judgment): figures
//! per department, grid and grid member over a period, folded from the case events, and
//! counts of cases by matter, category, grid and period.

use super::live::Snapshot;
use crate::domain::CaseState;
use crate::store::{CaseEvent, CaseQuery, CaseRecord, Store, StoreResult};
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The figures of one department, grid or member for a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Department code, grid code or user name.
    pub key: String,
    /// The department's or grid's name, where the reader's view knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cases received: assigned to the department, reported in the grid, or reported
    /// by the member.
    pub received: u32,
    pub resolved_on_site: u32,
    pub handled_on_time: u32,
    pub handled_late: u32,
    /// Still with a department past the deadline at the period's end (or now).
    pub open_overdue: u32,
    /// On time ÷ (on time + late + open overdue): overdue cases count against it.
    pub on_time_rate: Option<f64>,
    pub returns: u32,
    pub extensions: u32,
    pub supervisions: u32,
    pub verification_failures: u32,
    pub mean_handling_hours: Option<f64>,
    pub p90_handling_hours: Option<f64>,
    #[serde(skip)]
    handling_ms: Vec<i64>,
}

impl Figures {
    fn finish(&mut self) {
        let judged = self.handled_on_time + self.handled_late + self.open_overdue;
        self.on_time_rate =
            (judged > 0).then(|| f64::from(self.handled_on_time) / f64::from(judged));
        if !self.handling_ms.is_empty() {
            self.handling_ms.sort_unstable();
            let n = self.handling_ms.len();
            let hours = |ms: i64| ms as f64 / 3_600_000.0;
            self.mean_handling_hours = Some(hours(self.handling_ms.iter().sum::<i64>()) / n as f64);
            // Nearest-rank p90.
            let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
            self.p90_handling_hours = Some(hours(self.handling_ms[rank - 1]));
        }
    }
}

/// Figures per department, grid and member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Assessment {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub departments: Vec<Figures>,
    pub grids: Vec<Figures>,
    pub members: Vec<Figures>,
}

impl Assessment {
    /// Gives departments and grids their names (`name_of(kind, key)`, `kind` being
    /// `department` or `grid`), for readers who know places by name.
    pub fn name(&mut self, name_of: impl Fn(&str, &str) -> Option<String>) {
        for (kind, rows) in [
            ("department", &mut self.departments),
            ("grid", &mut self.grids),
        ] {
            for f in rows.iter_mut() {
                f.name = name_of(kind, &f.key);
            }
        }
    }
}

fn text<'a>(detail: &'a Value, key: &str) -> Option<&'a str> {
    detail.get(key).and_then(Value::as_str)
}

/// Folds the events of `[from, to)` (and the cases overdue at `min(to, now)`) into
/// figures, keeping only keys `keep` accepts (the caller's jurisdiction: department
/// and grid codes); members are counted only from grids `keep` accepts.
pub async fn assess(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: impl Fn(&str) -> bool,
) -> StoreResult<Assessment> {
    let events = store.events_between(from, to).await?;
    let at = to.min(now);
    let overdue = store
        .cases(&CaseQuery {
            states: vec![CaseState::Assigned, CaseState::Acknowledged],
            deadline_before: Some(at),
            limit: 1_000_000,
            ..CaseQuery::default()
        })
        .await?;
    Ok(fold(from, to, &events, &overdue, keep))
}

/// The pure part of [`assess`].
pub fn fold(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    events: &[CaseEvent],
    overdue: &[CaseRecord],
    keep: impl Fn(&str) -> bool,
) -> Assessment {
    let mut departments: BTreeMap<String, Figures> = BTreeMap::new();
    let mut grids: BTreeMap<String, Figures> = BTreeMap::new();
    let mut members: BTreeMap<String, Figures> = BTreeMap::new();
    fn entry<'m>(map: &'m mut BTreeMap<String, Figures>, key: &str) -> &'m mut Figures {
        map.entry(key.to_string()).or_insert_with(|| Figures {
            key: key.to_string(),
            ..Figures::default()
        })
    }
    for e in events {
        let grid = text(&e.detail, "grid");
        let department = text(&e.detail, "department");
        let mut both = |f: &dyn Fn(&mut Figures)| {
            if let Some(d) = department {
                f(entry(&mut departments, d));
            }
            if let Some(g) = grid {
                f(entry(&mut grids, g));
            }
        };
        match e.kind.as_str() {
            "reported" => {
                if let Some(g) = grid {
                    entry(&mut grids, g).received += 1;
                }
                if e.detail.get("source").and_then(Value::as_str) == Some("grid_member")
                    && grid.is_some_and(&keep)
                {
                    entry(&mut members, &e.actor).received += 1;
                }
            }
            "resolve_on_site" => {
                if let Some(g) = grid {
                    entry(&mut grids, g).resolved_on_site += 1;
                }
                // A member's figures come only from grids the reader may see.
                if grid.is_some_and(&keep) {
                    entry(&mut members, &e.actor).resolved_on_site += 1;
                }
            }
            "assign" => {
                if let Some(d) = department {
                    entry(&mut departments, d).received += 1;
                }
            }
            "handle" => {
                let on_time = e
                    .detail
                    .get("on_time")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let ms = e
                    .detail
                    .get("handling_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                both(&|f: &mut Figures| {
                    if on_time {
                        f.handled_on_time += 1;
                    } else {
                        f.handled_late += 1;
                    }
                    f.handling_ms.push(ms);
                });
            }
            "return" => both(&|f: &mut Figures| f.returns += 1),
            "decide_extension" if e.detail.get("approve") == Some(&json!(true)) => {
                both(&|f: &mut Figures| f.extensions += 1)
            }
            "supervise" => both(&|f: &mut Figures| f.supervisions += 1),
            "reject_result" => both(&|f: &mut Figures| f.verification_failures += 1),
            _ => {}
        }
    }
    for c in overdue {
        if c.assigned_at.is_some_and(|a| a >= to) {
            continue;
        }
        if let Some(d) = &c.department_code {
            entry(&mut departments, d).open_overdue += 1;
        }
        entry(&mut grids, &c.grid_code).open_overdue += 1;
    }
    let finish = |map: BTreeMap<String, Figures>, filter: bool| -> Vec<Figures> {
        map.into_values()
            .filter(|f| !filter || keep(&f.key))
            .map(|mut f| {
                f.finish();
                f
            })
            .collect()
    };
    Assessment {
        from,
        to,
        departments: finish(departments, true),
        grids: finish(grids, true),
        // Keyed by name: already limited to the reader's grids above.
        members: finish(members, false),
    }
}

/// Figures as CSV for programs (one table: `kind,key,…`, English column names).
pub fn to_csv(a: &Assessment) -> String {
    write_csv(a, &CsvLanguage::Machine)
}

/// How a CSV is labelled: for programs, or for people in a language.
pub enum CsvLanguage {
    /// `kind,key,received,…`: stable names for scripts (no names column, no BOM).
    Machine,
    /// Column names and kinds in Chinese, with a name column and a BOM (Excel reads
    /// UTF-8 only with one).
    Chinese,
    /// The same in English.
    English,
}

const MACHINE_HEADER: [&str; 14] = [
    "kind",
    "key",
    "received",
    "resolved_on_site",
    "handled_on_time",
    "handled_late",
    "open_overdue",
    "on_time_rate",
    "returns",
    "extensions",
    "supervisions",
    "verification_failures",
    "mean_handling_hours",
    "p90_handling_hours",
];
const CHINESE_HEADER: [&str; 15] = [
    "类别",
    "编码",
    "名称",
    "受理数",
    "就地解决",
    "按时办结",
    "超时办结",
    "在办超期",
    "按时办结率",
    "退回",
    "延期",
    "督办",
    "核查未通过",
    "平均办理时长（小时）",
    "90%办理时长（小时）",
];
const ENGLISH_HEADER: [&str; 15] = [
    "Kind",
    "Code",
    "Name",
    "Received",
    "Resolved on site",
    "Handled on time",
    "Handled late",
    "Open and overdue",
    "On-time rate",
    "Returns",
    "Extensions",
    "Supervision notices",
    "Failed verifications",
    "Mean handling time (h)",
    "90th percentile handling time (h)",
];

/// Figures as CSV for people: names beside codes (see [`Assessment::name`]), column
/// names in `language`, rates as percentages.
pub fn to_csv_for_people(a: &Assessment, language: CsvLanguage) -> String {
    write_csv(a, &language)
}

/// A CSV cell. One that a spreadsheet would run as a formula (it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return: department and grid names are typed by staff) is
/// kept as text with a leading `'`, OWASP's rule against CSV injection.
fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn write_csv(a: &Assessment, language: &CsvLanguage) -> String {
    let (mut out, header): (String, &[&str]) = match language {
        CsvLanguage::Machine => (String::new(), &MACHINE_HEADER),
        CsvLanguage::Chinese => ("\u{feff}".into(), &CHINESE_HEADER),
        CsvLanguage::English => ("\u{feff}".into(), &ENGLISH_HEADER),
    };
    let people = !matches!(language, CsvLanguage::Machine);
    out.push_str(&header.join(","));
    out.push('\n');
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    let rate = |v: Option<f64>| {
        if people {
            v.map(|x| format!("{:.1}%", x * 100.0)).unwrap_or_default()
        } else {
            opt(v)
        }
    };
    let hours = |v: Option<f64>| {
        if people {
            v.map(|x| format!("{x:.1}")).unwrap_or_default()
        } else {
            opt(v)
        }
    };
    for (kind, rows) in [
        ("department", &a.departments),
        ("grid", &a.grids),
        ("member", &a.members),
    ] {
        let label = match (language, kind) {
            (CsvLanguage::Chinese, "department") => "部门",
            (CsvLanguage::Chinese, "grid") => "网格",
            (CsvLanguage::Chinese, _) => "网格员",
            (CsvLanguage::English, "department") => "Department",
            (CsvLanguage::English, "grid") => "Grid",
            (CsvLanguage::English, _) => "Grid member",
            (CsvLanguage::Machine, k) => k,
        };
        for f in rows {
            out.push_str(label);
            out.push(',');
            out.push_str(&field(&f.key));
            if people {
                out.push(',');
                out.push_str(&field(f.name.as_deref().unwrap_or_default()));
            }
            out.push_str(&format!(
                ",{},{},{},{},{},{},{},{},{},{},{},{}\n",
                f.received,
                f.resolved_on_site,
                f.handled_on_time,
                f.handled_late,
                f.open_overdue,
                rate(f.on_time_rate),
                f.returns,
                f.extensions,
                f.supervisions,
                f.verification_failures,
                hours(f.mean_handling_hours),
                hours(f.p90_handling_hours),
            ));
        }
    }
    out
}

/// How to bucket cases in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
}

/// Counts of the cases reported in a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Analysis {
    pub total: u64,
    pub by_matter: BTreeMap<String, u64>,
    pub by_category: BTreeMap<String, u64>,
    pub by_grid: BTreeMap<String, u64>,
    /// Period start (China date) → count.
    pub by_period: BTreeMap<String, u64>,
}

/// Counts `cases` (already filtered to the period and jurisdiction).
pub fn analyse(cases: &[CaseRecord], period: Period) -> Analysis {
    let mut a = Analysis::default();
    for c in cases {
        a.total += 1;
        *a.by_matter
            .entry(
                c.matter_code
                    .clone()
                    .unwrap_or_else(|| "unclassified".into()),
            )
            .or_default() += 1;
        *a.by_category
            .entry(
                c.category
                    .map(|k| k.as_str().to_string())
                    .unwrap_or_else(|| "unclassified".into()),
            )
            .or_default() += 1;
        *a.by_grid.entry(c.grid_code.clone()).or_default() += 1;
        let d = c
            .reported_at
            .with_timezone(&crate::domain::china())
            .date_naive();
        let start = match period {
            Period::Day => d,
            Period::Week => {
                d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday()))
            }
            Period::Month => d.with_day(1).unwrap_or(d),
        };
        *a.by_period.entry(start.to_string()).or_default() += 1;
    }
    a
}

/// The grids with the most cases per 1,000 households, as GeoJSON features (the grid's
/// boundary from the snapshot), most first.
pub fn density_geojson(analysis: &Analysis, snapshot: &Snapshot, top: usize) -> Value {
    let mut rows: Vec<(String, u64, i64, f64)> = analysis
        .by_grid
        .iter()
        .filter_map(|(code, &n)| {
            let grid = snapshot.grid(code)?;
            let households = grid
                .properties
                .get("households")?
                .as_i64()
                .filter(|&h| h > 0)?;
            Some((
                code.clone(),
                n,
                households,
                n as f64 * 1000.0 / households as f64,
            ))
        })
        .collect();
    rows.sort_by(|a, b| b.3.total_cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(top);
    let features: Vec<Value> = rows
        .into_iter()
        .filter_map(|(code, n, households, per_1000)| {
            let grid = snapshot.grid(&code)?;
            let geometry = geojson::Geometry::new(geojson::GeometryValue::from(&grid.boundary));
            Some(json!({
                "type": "Feature",
                "id": code,
                "geometry": geometry,
                "properties": {
                    "code": code,
                    "name": grid.name,
                    "cases": n,
                    "households": households,
                    "cases_per_1000_households": (per_1000 * 100.0).round() / 100.0,
                },
            }))
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_a_spreadsheet_would_run_is_written_as_text() {
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("-1"), "'-1");
        assert_eq!(field("综合执法队"), "综合执法队");
    }

    #[test]
    fn p90_is_the_nearest_rank_and_overdue_counts_against_the_rate() {
        let mut f = Figures {
            handled_on_time: 3,
            handled_late: 1,
            open_overdue: 1,
            handling_ms: (1..=10).map(|h| h * 3_600_000).collect(),
            ..Figures::default()
        };
        f.finish();
        assert_eq!(f.on_time_rate, Some(0.6));
        assert_eq!(f.p90_handling_hours, Some(9.0));
        assert_eq!(f.mean_handling_hours, Some(5.5));
    }
}
