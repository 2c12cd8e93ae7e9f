//! `wangge demo`: the quick start. Builds the Binzhou demo plan from the real county
//! boundaries in `data/` (once; cached in `--dir`), proves every level tiles its
//! parent, and locates sample points sent the way a phone sends them (GCJ-02).

use super::synth_cmd;
use anyhow::{Context, Result};
use clap::Args;
use geo_types::{Coord, MultiPolygon};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wangge::domain::{Grid, RegionCode};
use wangge::domain::{Layer, Level};
use wangge::io::geojson::{self as gj, ReadOptions};
use wangge::spatial::LocateOptions;
use wangge::spatial::coverage::{Severity, ValidateOptions};
use wangge::spatial::crs::CoordSys;
use wangge::store::{self, NewMember, PlanStatus, RegionRecord, Role, Store, Validity};
use wangge::workflow::hierarchy::HierarchyOptions;
use wangge::workflow::live::LiveGrids;
use wangge::workflow::plans::{self, DraftRequest};

/// One coverage check: label, children, parents by code, parent property of children.
type Check<'a> = (
    &'a str,
    &'a [Grid],
    BTreeMap<String, MultiPolygon<f64>>,
    &'a str,
);

#[derive(Args)]
pub struct DemoArgs {
    /// Real county boundaries (GCJ-02, as published by DataV); by default the copy of
    /// `data/binzhou_371600_full.datav.geojson` inside the binary.
    #[arg(long)]
    counties: Option<PathBuf>,
    /// Where the generated demo plan is kept.
    #[arg(long, default_value = "var/demo")]
    dir: PathBuf,
    /// Generate the demo plan again even if it exists.
    #[arg(long)]
    rebuild: bool,
    /// The store the demo is loaded into (once) and located from.
    #[arg(long, env = "DATABASE_URL", default_value = store::DEFAULT_URL)]
    database_url: String,
}

/// The demo's inputs travel inside the binary, as the web app does: `wangge demo` and
/// `wangge serve --demo` work from any directory, after `cargo install` or with the
/// binary copied to a server alone.
pub const DEMO_COUNTIES: &[u8] = include_bytes!("../../data/binzhou_371600_full.datav.geojson");
/// The demo's departments, matters list and calendar.
pub const DEMO_MATTERS: &[u8] = include_bytes!("../../data/matters.json");
pub const COUNTIES_FILE: &str = "binzhou_371600_full.datav.geojson";
pub const MATTERS_FILE: &str = "matters.json";

/// The file to read a demo input from: the one given, or the binary's own copy written
/// to `DIR/input/NAME` (again only when it differs), since the readers take files.
pub fn demo_input(
    given: Option<PathBuf>,
    dir: &Path,
    name: &str,
    embedded: &[u8],
) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let path = dir.join("input").join(name);
    if std::fs::read(&path).ok().as_deref() != Some(embedded) {
        let parent = dir.join("input");
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        std::fs::write(&path, embedded).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(path)
}

/// Sample places, in GCJ-02 as an Amap/Tencent phone SDK would report them.
const SAMPLES: &[(&str, f64, f64)] = &[
    ("滨城区 city centre", 118.0196, 37.3843),
    ("邹平市 centre", 117.7430, 36.8636),
    ("博兴县 centre", 118.1310, 37.1509),
    ("惠民县 centre", 117.5095, 37.4898),
    ("阳信县 centre", 117.5789, 37.6415),
    ("无棣县 centre", 117.6250, 37.7700),
    ("沾化区 centre", 118.0985, 37.6986),
    ("Jinan (outside Binzhou)", 117.0009, 36.6758),
];

/// The demo's four levels, as generated into the demo directory.
pub struct DemoLayers {
    pub counties: Vec<Grid>,
    pub townships: Vec<Grid>,
    pub communities: Vec<Grid>,
    pub grids: Vec<Grid>,
}

/// Generates the demo hierarchy from the real counties (once, unless `rebuild`) and
/// reads it back.
pub fn build_layers(counties: &Path, dir: &Path, rebuild: bool) -> Result<DemoLayers> {
    let t = Instant::now();
    if rebuild || !dir.join("grids.geojson").exists() {
        eprintln!(
            "building the demo plan in {} (real counties, synthetic lower levels)…",
            dir.display()
        );
        let counties = synth_cmd::read_counties(counties, "adcode", CoordSys::Gcj02)?;
        let h = synth_cmd::generate_all(&counties, &HierarchyOptions::default())?;
        synth_cmd::write_hierarchy(dir, &counties, &h)?;
        eprintln!("  built in {:.1} s", t.elapsed().as_secs_f64());
    }
    let read = |name: &str, id: &str| -> Result<Vec<Grid>> {
        let path = dir.join(name);
        gj::read_grids_file(
            &path,
            &ReadOptions {
                id_field: id.into(),
                ..ReadOptions::default()
            },
        )
        .with_context(|| format!("reading {}", path.display()))
    };
    Ok(DemoLayers {
        counties: read("counties.geojson", "code")?,
        townships: read("townships.geojson", "code")?,
        communities: read("communities.geojson", "code")?,
        grids: read("grids.geojson", "grid_id")?,
    })
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let DemoLayers {
        counties,
        townships,
        communities,
        grids,
    } = build_layers(
        &demo_input(a.counties.clone(), &a.dir, COUNTIES_FILE, DEMO_COUNTIES)?,
        &a.dir,
        a.rebuild,
    )?;

    println!(
        "Binzhou demo: {} counties (real), {} townships, {} communities, {} grids (synthetic)",
        counties.len(),
        townships.len(),
        communities.len(),
        grids.len()
    );
    println!();
    println!(
        "{:<34} {:>6} {:>9} {:>8} {:>9}",
        "coverage check", "units", "vertices", "errors", "ms"
    );
    let by_code = |rs: &[Grid]| -> BTreeMap<String, MultiPolygon<f64>> {
        rs.iter()
            .map(|r| (r.id.clone(), r.boundary.clone()))
            .collect()
    };
    let options = ValidateOptions::default();
    let mut all_valid = true;
    let checks: [Check; 4] = [
        (
            "counties tile the city (no parent)",
            &counties,
            BTreeMap::new(),
            "parent",
        ),
        (
            "townships tile their county",
            &townships,
            by_code(&counties),
            "parent",
        ),
        (
            "communities tile their township",
            &communities,
            by_code(&townships),
            "parent",
        ),
        (
            "grids tile their community",
            &grids,
            by_code(&communities),
            "community",
        ),
    ];
    for (label, children, parents, field) in checks {
        let t = Instant::now();
        let v = crate::cli::validate_grids(
            children,
            &parents,
            field,
            &ValidateOptions {
                min_area_m2: 0.0,
                ..options
            },
        )?;
        let errors = v
            .problems
            .iter()
            .filter(|(_, _, p)| p.severity() == Severity::Error)
            .count();
        all_valid &= errors == 0;
        println!(
            "{label:<34} {:>6} {:>9} {:>8} {:>9.1}",
            children.len(),
            v.vertices,
            errors,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    println!();

    let runtime = tokio::runtime::Runtime::new()?;
    let snapshot = runtime.block_on(async {
        let store = store::open(&a.database_url)
            .await
            .with_context(|| format!("opening the store at {}", a.database_url))?;
        load_once(store.as_ref(), &counties, &townships, &communities, grids).await?;
        let matters = demo_input(None, &a.dir, MATTERS_FILE, DEMO_MATTERS)?;
        load_dispatch_once(store.as_ref(), &matters).await?;
        let t = Instant::now();
        let live = LiveGrids::load(store.as_ref()).await?;
        println!(
            "{} store at {}: {} current grids; partition loaded in {:.1} ms",
            store.backend(),
            a.database_url,
            live.snapshot().locator.grids().len(),
            t.elapsed().as_secs_f64() * 1e3,
        );
        anyhow::Ok(live.snapshot())
    })?;
    let locator = &snapshot.locator;
    println!(
        "lookup index: {:.1} MB (geometry included)",
        locator.index_bytes() as f64 / 1e6
    );
    println!();
    println!(
        "{:<26} {:<16} {:<32} flags",
        "sample (GCJ-02 input)", "grid", "township / county"
    );
    for &(label, lon, lat) in SAMPLES {
        let r = locator.locate(
            Coord { x: lon, y: lat },
            CoordSys::Gcj02,
            &LocateOptions::default(),
        );
        let grid = r
            .grid
            .as_ref()
            .map(|g| g.id.clone())
            .unwrap_or_else(|| "-".into());
        let anc: Vec<String> = r
            .ancestors
            .iter()
            .skip(1)
            .filter_map(|a| a.name.clone())
            .collect();
        let mut flags = r.flags();
        if let Some(d) = r.boundary_distance_m {
            flags = format!(
                "{flags}{}{d:.0} m to boundary",
                if flags.is_empty() { "" } else { "; " }
            );
        }
        println!("{label:<26} {grid:<16} {:<32} {flags}", anc.join(" / "));
    }
    println!();
    println!(
        "Try: target/release/wangge validate {} --parent {} --json | head -c 300",
        a.dir.join("grids.geojson").display(),
        a.dir.join("communities.geojson").display()
    );
    println!(
        "     target/release/wangge locate --grids {} --point 118.0196,37.3843 --coord-sys gcj02",
        a.dir.join("grids.geojson").display()
    );
    println!("     target/release/wangge plan list");
    println!(
        "     target/release/wangge export /tmp/bincheng.gpkg --under 371602 --as-of 2026-06-01"
    );
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether any plan was ever activated: grids only become current that way, and it
/// needs no geometry read.
pub async fn has_grids(store: &dyn Store) -> Result<bool> {
    Ok(store.grids_version().await? > 0)
}

/// Puts the demo into an empty store: regions, then the grids as a plan that goes
/// through the whole approval chain. A store that already has grids is left alone.
pub async fn load_once(
    store: &dyn Store,
    counties: &[Grid],
    townships: &[Grid],
    communities: &[Grid],
    grids: Vec<Grid>,
) -> Result<()> {
    if has_grids(store).await? {
        return Ok(());
    }
    let t = Instant::now();
    let region = |g: &Grid, level: Level, parent: Option<String>| RegionRecord {
        code: g.id.clone(),
        name: g.name.clone().unwrap_or_else(|| g.id.clone()),
        level,
        parent_code: parent,
        boundary: Some(g.boundary.clone()),
    };
    let mut regions = vec![RegionRecord {
        code: "3716".into(),
        name: "滨州市".into(),
        level: Level::City,
        parent_code: None,
        boundary: None,
    }];
    for (level, set) in [
        (Level::County, counties),
        (Level::Township, townships),
        (Level::Community, communities),
    ] {
        for g in set {
            let code: RegionCode =
                g.id.parse()
                    .with_context(|| format!("demo region {:?}", g.id))?;
            regions.push(region(g, level, code.parent().map(|p| p.to_string())));
        }
    }
    store.upsert_regions(&regions).await?;
    let grids = with_fictional_households(grids);
    let effective = "2026-01-01".parse()?;
    let plan = plans::draft(
        store,
        DraftRequest {
            scope_code: "3716".into(),
            layer: Layer::Comprehensive,
            title: "滨州市网格 (demo)".into(),
            effective_date: Some(effective),
            actor: "demo".into(),
            grids,
        },
    )
    .await?;
    plans::transition(store, plan.id, PlanStatus::Submitted, "demo", None, None).await?;
    plans::transition(store, plan.id, PlanStatus::Approved, "demo", None, None).await?;
    plans::activate(store, plan.id, "demo", effective, None).await?;
    let codes: Vec<String> = store
        .grids(Validity::Current, None, None)
        .await?
        .into_iter()
        .map(|g| g.code)
        .collect();
    store.add_members(&demo_members(&codes)).await?;
    // 12345 is the government service hotline; the county lines are fictional.
    store.set_supervision_phone("3716", "12345").await?;
    for c in counties {
        store
            .set_supervision_phone(
                &c.id,
                &format!("0543-12345-{}", c.id.get(4..).unwrap_or(&c.id)),
            )
            .await?;
    }
    println!(
        "loaded {} regions and plan {} ({} grids, active from {effective}) into the store in {:.1} s",
        regions.len(),
        plan.id,
        codes.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fictional grid members (a leader on days, a full-time member on evenings and
/// weekends) and supervision phones: the demo's cards and on-duty answers need people,
/// and real names and numbers must not be used.
fn demo_members(grids: &[String]) -> Vec<NewMember> {
    const SURNAMES: &[char] = &[
        '王', '李', '张', '刘', '陈', '杨', '赵', '黄', '周', '吴', '徐', '孙',
    ];
    const GIVEN: &[char] = &[
        '伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳',
    ];
    let person = |i: usize| {
        format!(
            "{}{}{}",
            SURNAMES[i % SURNAMES.len()],
            GIVEN[(i / SURNAMES.len()) % GIVEN.len()],
            GIVEN[(i * 7 + 3) % GIVEN.len()]
        )
    };
    let mut out = Vec::with_capacity(grids.len() * 2);
    for (i, code) in grids.iter().enumerate() {
        out.push(NewMember {
            scope_code: code.clone(),
            role: Role::GridLeader,
            name: person(2 * i),
            phone: Some(format!("0543-6{:06}", 2 * i)),
            duty_schedule: serde_json::json!({"shifts": [{"days": [1, 2, 3, 4, 5], "from": "08:00", "to": "18:00"}]}),
        });
        out.push(NewMember {
            scope_code: code.clone(),
            role: Role::FullTime,
            name: person(2 * i + 1),
            phone: Some(format!("0543-6{:06}", 2 * i + 1)),
            duty_schedule: serde_json::json!({"shifts": [
                {"days": [1, 2, 3, 4, 5], "from": "18:00", "to": "08:00"},
                {"days": [6, 7], "from": "00:00", "to": "23:59"}
            ]}),
        });
    }
    out
}

/// The demo's departments, matters list and calendar (`data/matters.json`), unless the
/// store has departments already.
pub async fn load_dispatch_once(store: &dyn Store, file: &Path) -> Result<()> {
    use wangge::store::{Department, NewMatter};
    if !store.departments().await?.is_empty() {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let names = |key: &str| -> Vec<(String, String)> {
        doc.get(key)
            .and_then(|v| v.as_object())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or(k).to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let regions = store.regions(None).await?;
    let mut departments = 0;
    for r in &regions {
        let key = match r.level {
            Level::City => "city_departments",
            Level::County => "county_departments",
            Level::Township => "township_departments",
            _ => continue,
        };
        for (kind, name) in names(key) {
            store
                .upsert_department(&Department {
                    code: format!("{}-{kind}", r.code),
                    name: format!("{}{name}", r.name),
                    kind,
                    region_code: r.code.clone(),
                    webhook_url: None,
                })
                .await?;
            departments += 1;
        }
    }
    let matters = doc
        .get("matters")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    for m in &matters {
        let mut m = m.clone();
        if let Some(o) = m.as_object_mut() {
            o.entry("valid_from")
                .or_insert(serde_json::json!("2026-01-01"));
            o.insert("proposed_by".into(), serde_json::json!("demo"));
        }
        let matter: NewMatter = serde_json::from_value(m).context("a matter in the demo list")?;
        let proposed = store.propose_matter(&matter).await?;
        store
            .decide_matter(proposed.id, true, "demo", wangge::domain::now())
            .await?;
    }
    for day in doc
        .get("calendar")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let date = day
            .get("date")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .parse()?;
        let kind = serde_json::from_value(day.get("kind").cloned().unwrap_or_default())?;
        let note = day.get("note").and_then(|n| n.as_str()).unwrap_or_default();
        store.set_calendar_day(date, Some(kind), note).await?;
    }
    println!(
        "loaded {departments} departments and {} matters",
        matters.len()
    );
    Ok(())
}

/// Demo accounts for the web app, made once in a store without users: a township planner,
/// a county planner, a county dispatcher and a city admin, sharing one random password
/// printed now (and never again; `wangge user password NAME` sets another).
pub async fn create_demo_users_once(store: &dyn Store) -> Result<()> {
    use wangge::domain::{Grant, UserRole};
    if !store.users().await?.is_empty() {
        return Ok(());
    }
    let password = format!("demo-{:010x}", rand::random::<u64>() >> 24);
    let hash = wangge::auth::hash_password(&password)?;
    let accounts = [
        ("demo-township-planner", UserRole::Planner, "371602001"),
        ("demo-county-planner", UserRole::Planner, "371602"),
        ("demo-dispatcher", UserRole::Dispatcher, "371602"),
        ("demo-admin", UserRole::CityAdmin, "3716"),
    ];
    for (name, role, scope) in accounts {
        store.create_user(name, Some(&hash)).await?;
        store
            .grant(
                name,
                &Grant {
                    role,
                    scope: scope.into(),
                },
            )
            .await?;
    }
    println!(
        "demo accounts (password {password}, shown only now): {}",
        accounts
            .iter()
            .map(|(n, r, s)| format!("{n} ({} of {s})", r.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Fictional household counts (150–499, fixed by the grid code) for grids that have none,
/// so per-household figures (the density map) mean something in the demo.
fn with_fictional_households(mut grids: Vec<Grid>) -> Vec<Grid> {
    for g in &mut grids {
        if !g.properties.contains_key("households") {
            let spread = g.id.bytes().fold(2_166_136_261u32, |h, b| {
                (h ^ b as u32).wrapping_mul(16_777_619)
            });
            g.properties.insert(
                "households".into(),
                serde_json::Value::from(150 + spread % 350),
            );
        }
    }
    grids
}
