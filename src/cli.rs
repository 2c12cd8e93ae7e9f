//! Subcommands. Errors become `anyhow` here, at the edge; exit codes are part of the
//! interface: 0 success (or a valid plan), 1 problems found, 2 input rejected.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use geo_types::{Coord, MultiPolygon};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wangge::domain::Grid;
use wangge::io::geojson::{self as gj, ReadOptions};
use wangge::spatial::LocateOptions;
use wangge::spatial::coverage::ValidateOptions;
use wangge::spatial::coverage::repair::RepairOptions;
use wangge::spatial::crs::CoordSys;
use wangge::workflow::check::{Validation, problem_json, validate_groups};
use wangge::workflow::locate::GridLocator;
use wangge::workflow::repair::repair_groups;

mod access_cmds;
mod demo;
mod serve;
#[cfg(feature = "proj")]
mod store_cmds;
mod synth_cmd;

#[derive(Parser)]
#[command(
    name = "wangge",
    version,
    about = "Social-governance grids: exact coverage validation and fast location"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prove that grids tile their parent: overlaps, gaps, spill, mismatched edges.
    Validate(ValidateArgs),
    /// Propose repairs: snap near-matching edges, give overlaps and narrow gaps to one
    /// neighbour, make geometries valid, clip spill; write the result and validate it.
    Repair(RepairArgs),
    /// Find the grid of points.
    Locate(LocateArgs),
    /// Generate deterministic synthetic partitions.
    Synth(synth_cmd::SynthArgs),
    /// Build the Binzhou demo (if needed), validate it and locate sample points.
    Demo(demo::DemoArgs),
    /// Run the HTTP service (locate, plans, public cards, OGC API – Features).
    Serve(serve::ServeArgs),
    /// Administer user accounts and their grants.
    User {
        #[command(subcommand)]
        what: access_cmds::UserCommand,
        #[command(flatten)]
        store: access_cmds::AccountStoreArgs,
    },
    /// Issue and revoke bearer tokens.
    Token {
        #[command(subcommand)]
        what: access_cmds::TokenCommand,
        #[command(flatten)]
        store: access_cmds::AccountStoreArgs,
    },
    /// Apply the store's migrations.
    #[cfg(feature = "proj")]
    Migrate(store_cmds::StoreArgs),
    /// Read grids or regions from a file (GDAL formats, any CRS) into the store.
    #[cfg(feature = "proj")]
    Import {
        #[command(subcommand)]
        what: store_cmds::ImportCommand,
        #[command(flatten)]
        store: store_cmds::StoreArgs,
    },
    /// Write current or historic grids or regions to GeoJSON, GeoPackage or Shapefile.
    #[cfg(feature = "proj")]
    Export {
        #[command(flatten)]
        args: store_cmds::ExportArgs,
        #[command(flatten)]
        store: store_cmds::StoreArgs,
    },
    /// Review and activate boundary plans.
    #[cfg(feature = "proj")]
    Plan {
        #[command(subcommand)]
        what: store_cmds::PlanCommand,
        #[command(flatten)]
        store: store_cmds::StoreArgs,
    },
    /// The server's upload reader (a child process; reads one job from stdin).
    #[cfg(feature = "proj")]
    #[command(name = "internal-read-upload", hide = true)]
    InternalReadUpload,
}

/// A grid file and what to read it with: what `validate` and `repair` share.
#[derive(Args)]
struct GridInput {
    /// Grids: GeoJSON, or (built with GDAL) a Shapefile plain or zipped, a GeoPackage,
    /// KML/KMZ — what `import` and uploads read.
    grids: PathBuf,
    /// The grid file's CRS, overriding what it declares (anything PROJ knows, or gcj02
    /// / bd09); reading through GDAL.
    #[cfg(feature = "proj")]
    #[arg(long)]
    crs: Option<String>,
    /// Attribute encoding of a Shapefile (e.g. GBK); reading through GDAL.
    #[cfg(feature = "proj")]
    #[arg(long)]
    encoding: Option<String>,
    /// The dataset layer to read (default: the first); reading through GDAL.
    #[cfg(feature = "proj")]
    #[arg(long)]
    source_layer: Option<String>,
    /// Parent boundary (one feature), or several parents matched to grids by
    /// `--parent-field` / `--parent-id-field`.
    #[arg(long)]
    parent: Option<PathBuf>,
    /// Grid id property (falls back to the feature id).
    #[arg(long, default_value = "grid_id")]
    id_field: String,
    /// Grid property naming its parent.
    #[arg(long, default_value = "community")]
    parent_field: String,
    /// Grid property holding its name [default: name, 网格名称, 名称, WGMC…].
    #[arg(long)]
    name_field: Option<String>,
    /// Grid property holding its household count [default: households, 户数, HS…].
    #[arg(long)]
    households_field: Option<String>,
    /// Parent id property in the parent file (falls back to the feature id).
    #[arg(long, default_value = "code")]
    parent_id_field: String,
    /// Coordinate system of both files.
    #[arg(long, default_value = "wgs84")]
    coord_sys: CoordSys,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    input: GridInput,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write the problems as a GeoJSON FeatureCollection.
    #[arg(long)]
    problems_out: Option<PathBuf>,
    /// Print timings and sizes as one JSON line on stderr.
    #[arg(long)]
    stats: bool,
    /// Gaps/overlaps narrower than this (metres) are reported as edge_mismatch.
    #[arg(long, default_value_t = ValidateOptions::default().sliver_width_m)]
    sliver_width_m: f64,
    /// Grids smaller than this (m²) get a warning.
    #[arg(long, default_value_t = ValidateOptions::default().min_area_m2)]
    min_area_m2: f64,
}

#[derive(Args)]
struct RepairArgs {
    #[command(flatten)]
    input: GridInput,
    /// Where to write the repaired grids (GeoJSON, every attribute kept).
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Vertices and edges closer than this (metres) are made to coincide.
    #[arg(long, default_value_t = RepairOptions::default().snap_m)]
    snap_m: f64,
    /// Gaps narrower than this (mean width, metres) go to a neighbour; wider gaps stay.
    #[arg(long, default_value_t = RepairOptions::default().max_gap_width_m)]
    max_gap_width_m: f64,
    /// Print exactly one JSON object on stdout: the proposals and the validation of
    /// the result.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LocateArgs {
    /// GeoJSON FeatureCollection of grids.
    #[arg(long)]
    grids: PathBuf,
    /// One point as LON,LAT.
    #[arg(long, conflicts_with = "points")]
    point: Option<String>,
    /// CSV file with lon,lat per line.
    #[arg(long)]
    points: Option<PathBuf>,
    /// Coordinate system of the points.
    #[arg(long, default_value = "wgs84")]
    coord_sys: CoordSys,
    /// Any CRS PROJ knows for the points (e.g. EPSG:4549), instead of --coord-sys.
    #[cfg(feature = "proj")]
    #[arg(long, conflicts_with = "coord_sys")]
    crs: Option<String>,
    #[arg(long, default_value = "grid_id")]
    id_field: String,
    /// Flag points this close (metres) to another grid.
    #[arg(long, default_value_t = LocateOptions::default().near_boundary_m)]
    near_boundary_m: f64,
    /// Give points in no grid the nearest grid within this distance (metres).
    #[arg(long, default_value_t = LocateOptions::default().max_outside_m)]
    max_outside_m: f64,
    /// One JSON object per line with ancestors and distances instead of CSV.
    #[arg(long)]
    json: bool,
    /// Print timings as one JSON line on stderr.
    #[arg(long)]
    stats: bool,
}

/// Runs the command line; maps errors to exit code 2 with the message on stderr.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = set_clock_from_env() {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Validate(a) => validate(a),
        Command::Repair(a) => repair(a),
        Command::Locate(a) => locate(a),
        Command::Synth(a) => synth_cmd::run(a).map(|_| ExitCode::SUCCESS),
        Command::Demo(a) => demo::run(a),
        Command::Serve(a) => serve::run(a),
        Command::User { what, store } => access_cmds::user(what, store),
        Command::Token { what, store } => access_cmds::token(what, store),
        #[cfg(feature = "proj")]
        Command::Migrate(s) => store_cmds::migrate(s),
        #[cfg(feature = "proj")]
        Command::Import { what, store } => store_cmds::import(what, store),
        #[cfg(feature = "proj")]
        Command::Export { args, store } => store_cmds::export(args, store),
        #[cfg(feature = "proj")]
        Command::Plan { what, store } => store_cmds::plan(what, store),
        #[cfg(feature = "proj")]
        Command::InternalReadUpload => Ok(ExitCode::from(
            u8::try_from(wangge::io::upload_reader::child_main()).unwrap_or(1),
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `WANGGE_NOW` (RFC 3339, e.g. `2027-02-05T23:59:58+08:00`) sets the service's clock
/// for this process: tests and holiday drills run at a chosen moment, and the clock
/// keeps running from there. Said on stderr, so nobody mistakes it for real time.
fn set_clock_from_env() -> Result<()> {
    let Ok(value) = std::env::var("WANGGE_NOW") else {
        return Ok(());
    };
    let at = chrono::DateTime::parse_from_rfc3339(value.trim())
        .with_context(|| format!("WANGGE_NOW {value:?} is not an RFC 3339 time"))?;
    wangge::domain::set_now(at.with_timezone(&chrono::Utc));
    eprintln!("wangge: the clock is set to {at} by WANGGE_NOW, and runs on from there");
    Ok(())
}

pub(crate) fn spinner(msg: &str, len: u64) -> ProgressBar {
    bar(msg, len, "{msg} [{bar:30}] {pos}/{len} {elapsed}")
}

/// A progress bar counting bytes (of a file being read).
pub(crate) fn byte_bar(msg: &str) -> ProgressBar {
    bar(msg, 0, "{msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}")
}

fn bar(msg: &str, len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Validates grids grouped by the parent each names in `parent_field` (or the only
/// parent), with a progress bar.
pub(crate) fn validate_grids(
    grids: &[Grid],
    parents: &BTreeMap<String, MultiPolygon<f64>>,
    parent_field: &str,
    options: &ValidateOptions,
) -> Result<Validation> {
    let parent_of = parents_of(grids, parents, parent_field)?;
    let pb = spinner("validating", 0);
    let v = validate_groups(grids, &parent_of, parents, options, |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    Ok(v)
}

/// Each grid's parent: the only one, or the one it names in `parent_field`.
fn parents_of(
    grids: &[Grid],
    parents: &BTreeMap<String, MultiPolygon<f64>>,
    parent_field: &str,
) -> Result<Vec<Option<String>>> {
    let single_parent = (parents.len() == 1)
        .then(|| parents.keys().next().cloned())
        .flatten();
    let mut parent_of = Vec::with_capacity(grids.len());
    for g in grids {
        let parent = if parents.is_empty() {
            None
        } else if let Some(only) = &single_parent {
            Some(only.clone())
        } else {
            let own = g.properties.get(parent_field).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            match own {
                Some(p) if parents.contains_key(&p) => Some(p),
                Some(p) => bail!(
                    "grid {:?} names parent {p:?}, which is not in the parent file",
                    g.id
                ),
                None => bail!(
                    "grid {:?} has no {parent_field:?} property to match it to one of {} parents",
                    g.id,
                    parents.len()
                ),
            }
        };
        parent_of.push(parent);
    }
    Ok(parent_of)
}

fn repair(a: RepairArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let Some(Loaded { grids, parents, .. }) = load_input(&a.input, a.json) else {
        return Ok(ExitCode::from(2));
    };
    let is_geojson = a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("geojson") || e.eq_ignore_ascii_case("json"));
    if !is_geojson {
        eprintln!(
            "error: {}: repairs are written as GeoJSON (.geojson), every attribute kept",
            a.output.display()
        );
        return Ok(ExitCode::from(2));
    }
    for (name, v) in [
        ("--snap-m", a.snap_m),
        ("--max-gap-width-m", a.max_gap_width_m),
    ] {
        if !(0.0..=100.0).contains(&v) {
            eprintln!("error: {name} {v} is not between 0 and 100 metres");
            return Ok(ExitCode::from(2));
        }
    }
    let parent_of = match parents_of(&grids, &parents, &a.input.parent_field) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let options = RepairOptions {
        snap_m: a.snap_m,
        max_gap_width_m: a.max_gap_width_m,
        ..RepairOptions::default()
    };
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let repairing = Instant::now();
    let pb = spinner("repairing", 0);
    let proposals = repair_groups(&grids, &parent_of, &parents, &options, |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    let mut repaired = grids.clone();
    proposals.apply(&mut repaired, None);
    let repair_ms = repairing.elapsed().as_secs_f64() * 1e3;
    // The repaired grids are checked exactly as `validate` would check them.
    let validating = Instant::now();
    let check = ValidateOptions::default();
    let pb = spinner("validating the repair", 0);
    let after = validate_groups(&repaired, &parent_of, &parents, &check, |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    let validate_ms = validating.elapsed().as_secs_f64() * 1e3;
    let collection = gj::grids_to_json(&repaired);
    std::fs::write(&a.output, serde_json::to_string(&collection)?)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut report = proposals.to_json(&grids, false);
        report["output"] = json!(a.output.display().to_string());
        report["validation"] = after.to_json(&repaired, json!({}));
        // Where the time went, so a comparison can take the repair step alone.
        report["timings"] = json!({"read_ms": read_ms, "repair_ms": repair_ms,
            "validate_ms": validate_ms, "total_ms": started.elapsed().as_secs_f64() * 1e3});
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        proposals.write_text(&grids, &mut out)?;
        writeln!(out, "wrote {}; validating it:", a.output.display())?;
        after.write_text(&mut out)?;
    }
    Ok(if after.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_parents(
    path: &Path,
    id_field: &str,
    coord_sys: CoordSys,
) -> Result<BTreeMap<String, MultiPolygon<f64>>> {
    let opts = ReadOptions {
        id_field: id_field.to_string(),
        coord_sys,
        index_as_missing_id: true,
        ..ReadOptions::default()
    };
    let parents = gj::read_grids_file(path, &opts)
        .with_context(|| format!("parent file {}", path.display()))?;
    Ok(parents.into_iter().map(|p| (p.id, p.boundary)).collect())
}

/// A grid file read, its mapping choices applied, with its parents.
struct Loaded {
    grids: Vec<Grid>,
    parents: BTreeMap<String, MultiPolygon<f64>>,
    /// How GDAL read it (driver, source CRS, encoding), when it did.
    source: Option<Value>,
}

/// Reads what `input` names; a rejected file is said on stderr and gives `None` (the
/// caller exits 2). Unless `quiet`, says how the file was read.
fn load_input(a: &GridInput, quiet: bool) -> Option<Loaded> {
    let read = ReadOptions {
        id_field: a.id_field.clone(),
        allow_duplicate_ids: true,
        coord_sys: a.coord_sys,
        ..ReadOptions::default()
    };
    let parents = match &a.parent {
        Some(p) => match read_parents(p, &a.parent_id_field, a.coord_sys) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                return None;
            }
        },
        None => BTreeMap::new(),
    };
    // Where the parents lie names the zone of Gauss–Krüger metres without a zone number.
    let near_lon = wangge::spatial::geom::middle_longitude(parents.values());
    let (mut grids, source) = match read_validated(a, &read, near_lon) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {}: {e:#}", a.grids.display());
            return None;
        }
    };
    if a.name_field.is_some() || a.households_field.is_some() {
        let choice = wangge::io::mapping::FieldChoice {
            name_field: a.name_field.clone(),
            households_field: a.households_field.clone(),
            parent_field: None,
        };
        if let Err(e) = choice.apply(&mut grids) {
            eprintln!("error: {}: {e}", a.grids.display());
            return None;
        }
    }
    if !quiet && let Some(source) = &source {
        eprintln!(
            "read {} with {}: coordinates from {}{}",
            a.grids.display(),
            source["driver"].as_str().unwrap_or_default(),
            source["source_crs"].as_str().unwrap_or_default(),
            source["encoding"]
                .as_str()
                .map(|e| format!(", attributes as {e}"))
                .unwrap_or_default()
        );
    }
    Some(Loaded {
        grids,
        parents,
        source,
    })
}

fn validate(a: ValidateArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let Some(Loaded {
        grids,
        parents,
        source,
    }) = load_input(&a.input, a.json)
    else {
        return Ok(ExitCode::from(2));
    };
    let parse_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let options = ValidateOptions {
        sliver_width_m: a.sliver_width_m,
        min_area_m2: a.min_area_m2,
        ..ValidateOptions::default()
    };
    let mut v = validate_grids(&grids, &parents, &a.input.parent_field, &options)?;
    v.mapping = Some(wangge::io::mapping::review(&grids));
    let validate_ms = t1.elapsed().as_secs_f64() * 1e3;
    let valid = v.is_valid();
    let mut stats = json!({"parse_ms": parse_ms, "validate_ms": validate_ms});
    if let (Some(source), Some(o)) = (source, stats.as_object_mut()) {
        o.insert("source".into(), source);
    }
    let report = v.to_json(&grids, stats);
    if let Some(path) = &a.problems_out {
        let features: Vec<Value> = v
            .problems
            .iter()
            .map(|(parent, layer, p)| {
                let mut props = problem_json(&grids, parent, *layer, p);
                let geometry = props.as_object_mut().and_then(|o| o.remove("geometry")).filter(|g| !g.is_null());
                json!({
                    "type": "Feature",
                    "properties": props,
                    "geometry": geometry.unwrap_or_else(|| json!({"type": "Point", "coordinates": [p.location.x, p.location.y]})),
                })
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_string(&json!({"type": "FeatureCollection", "features": features}))?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        v.write_text(&mut out)?;
    }
    if a.stats {
        eprintln!("{}", report["stats"]);
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn locate(a: LocateArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let read = ReadOptions {
        id_field: a.id_field.clone(),
        ..ReadOptions::default()
    };
    let Some(grids) = read_or_report(&a.grids, &read) else {
        return Ok(ExitCode::from(2));
    };
    #[cfg(feature = "proj")]
    let lon_lat = a.crs.is_none();
    #[cfg(not(feature = "proj"))]
    let lon_lat = true;
    let points: Vec<Coord<f64>> = match (&a.point, &a.points) {
        (Some(p), _) => vec![wangge::io::points::parse_pair(p, lon_lat)?],
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            wangge::io::points::parse_csv_in(&text, &path.display().to_string(), lon_lat)?
        }
        (None, None) => bail!("give --point LON,LAT or --points FILE.csv"),
    };
    #[cfg(feature = "proj")]
    let (query, coord_sys): (Vec<Coord<f64>>, CoordSys) = match &a.crs {
        Some(crs) => {
            let t = wangge::spatial::crs::proj::ToCgcs2000::new(crs)?;
            (
                points
                    .iter()
                    .map(|&p| t.convert(p))
                    .collect::<Result<_, _>>()?,
                CoordSys::Cgcs2000,
            )
        }
        None => (points.clone(), a.coord_sys),
    };
    #[cfg(not(feature = "proj"))]
    let (query, coord_sys) = (points.clone(), a.coord_sys);
    let t_index = Instant::now();
    let locator = GridLocator::new(grids);
    let index_ms = t_index.elapsed().as_secs_f64() * 1e3;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    for (name, metres) in [
        ("--near-boundary-m", a.near_boundary_m),
        ("--max-outside-m", a.max_outside_m),
    ] {
        if !(metres.is_finite() && metres >= 0.0) {
            bail!("{name} must be a distance in metres, 0 or more (got {metres})");
        }
    }
    let options = LocateOptions {
        near_boundary_m: a.near_boundary_m,
        max_outside_m: a.max_outside_m,
        boundary_distance: a.json,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // The timed part is the lookups: the grid and flags of every point. What only
    // the output needs (names, ancestors, dedicated grids) is read afterwards.
    let t1 = Instant::now();
    let locate_s;
    if a.json {
        let results: Vec<_> = query
            .iter()
            .map(|&p| locator.locate(p, coord_sys, &options))
            .collect();
        locate_s = t1.elapsed().as_secs_f64();
        for (p, r) in points.iter().zip(&results) {
            let mut v = serde_json::to_value(r)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("lon".into(), json!(p.x));
                o.insert("lat".into(), json!(p.y));
            }
            writeln!(out, "{v}")?;
        }
    } else {
        let results = locator.locate_many_brief_parallel(&query, coord_sys, &options);
        locate_s = t1.elapsed().as_secs_f64();
        writeln!(out, "lon,lat,grid_id,flags")?;
        for ((p, q), r) in points.iter().zip(&query).zip(&results) {
            let grid = r.grid.and_then(|i| locator.grids().get(i as usize));
            let id = grid.map(|g| g.id.as_str()).unwrap_or("");
            let flags = wangge::workflow::locate::flags_text(
                r.near_boundary,
                r.outside,
                locator.in_dedicated(*q, coord_sys),
            );
            writeln!(out, "{},{},{},{}", p.x, p.y, csv_field(id), flags)?;
        }
    }
    out.flush()?;
    if a.stats {
        let n = points.len();
        eprintln!(
            "{}",
            json!({"build_ms": build_ms, "index_ms": index_ms, "locate_ms": locate_s * 1e3, "points": n,
                   "points_per_s": if locate_s > 0.0 { n as f64 / locate_s } else { 0.0 },
                   "index_bytes": locator.index_bytes()})
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The grids to validate, and (read through GDAL) what they were read as: driver, the
/// CRS the coordinates came from, the attribute encoding. GeoJSON without GDAL options
/// takes wangge's own strict reader.
fn read_validated(
    a: &GridInput,
    read: &ReadOptions,
    near_lon: Option<f64>,
) -> Result<(Vec<Grid>, Option<Value>)> {
    let geojson = a
        .grids
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("geojson") || e.eq_ignore_ascii_case("json"));
    #[cfg(feature = "proj")]
    if !geojson || a.crs.is_some() || a.encoding.is_some() || a.source_layer.is_some() {
        let options = wangge::io::gdal_files::ImportOptions {
            // The default name means "the usual fields" (grid_id, code, id).
            id_field: (a.id_field != "grid_id").then(|| a.id_field.clone()),
            crs: a.crs.clone(),
            encoding: a.encoding.clone(),
            source_layer: a.source_layer.clone(),
            near_lon,
            ..Default::default()
        };
        let pb = spinner("reading", 0);
        let file = wangge::io::gdal_files::read_local_file(&a.grids, &options, |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        });
        pb.finish_and_clear();
        let file = file?;
        let source = json!({"driver": file.driver, "source_crs": file.source_crs, "encoding": file.encoding});
        return Ok((file.grids, Some(source)));
    }
    #[cfg(not(feature = "proj"))]
    let _ = near_lon;
    #[cfg(not(feature = "proj"))]
    if !geojson {
        bail!("this build reads GeoJSON only (build with the proj feature for GDAL formats)");
    }
    let pb = byte_bar("reading");
    let grids = gj::read_grids_file_with_progress(&a.grids, read, |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    Ok((grids?, None))
}

/// Reads a grid file; a rejected file is reported on stderr (the caller exits 2).
fn read_or_report(path: &Path, read: &ReadOptions) -> Option<Vec<Grid>> {
    gj::read_grids_file(path, read)
        .map_err(|e| eprintln!("error: {}: {e}", path.display()))
        .ok()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
