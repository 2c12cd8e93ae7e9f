//! Subcommands that use the store: migrate, import, export, plan.

use super::spinner;
use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use wangge::app::{PlanStep, PlanSteps, StepRequest};
use wangge::auth::Principal;
use wangge::domain::{Layer, Level};
use wangge::io::gdal_files::{
    self, ExportFormat, ImportOptions, ImportedFile, OutFeature, OutValue,
};
use wangge::store::{self, PlanStatus, RegionRecord, Store};
use wangge::workflow::plans;

/// Where the store is.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// postgres://… for PostGIS, sqlite://path for the embedded store.
    #[arg(long, env = "DATABASE_URL", default_value = store::DEFAULT_URL, global = true)]
    pub database_url: String,
}

/// Who is acting (recorded on every plan event).
#[derive(Args, Clone)]
pub struct ActorArgs {
    #[arg(long, env = "WANGGE_ACTOR", default_value = "cli")]
    pub actor: String,
}

#[derive(Args)]
pub struct FileArgs {
    /// GeoJSON, Shapefile (.shp or zipped), GeoPackage, KML, or anything else GDAL reads.
    pub file: PathBuf,
    /// Layer of the file to read (default: the first).
    #[arg(long)]
    pub source_layer: Option<String>,
    /// Source CRS when the file has none or a wrong one: EPSG:4528, a WKT, gcj02, bd09…
    #[arg(long)]
    pub crs: Option<String>,
    /// Shapefile attribute encoding (GBK, GB18030, UTF-8…); default: the .cpg.
    #[arg(long)]
    pub encoding: Option<String>,
    /// Attribute with the grid's id or 15-digit code [default: grid_id, code or id].
    #[arg(long)]
    pub id_field: Option<String>,
    /// Attribute with the name [default: name].
    #[arg(long)]
    pub name_field: Option<String>,
    /// Attribute with the parent community's code [default: community or parent].
    #[arg(long)]
    pub parent_field: Option<String>,
    /// Attribute with the household count [default: households].
    #[arg(long)]
    pub households_field: Option<String>,
}

impl FileArgs {
    fn options(&self) -> ImportOptions {
        ImportOptions {
            id_field: self.id_field.clone(),
            name_field: self.name_field.clone(),
            parent_field: self.parent_field.clone(),
            households_field: self.households_field.clone(),
            layer_field: None,
            source_layer: self.source_layer.clone(),
            crs: self.crs.clone(),
            encoding: self.encoding.clone(),
            ..ImportOptions::default()
        }
    }

    fn read_with(&self, options: &ImportOptions) -> Result<ImportedFile> {
        let pb = spinner("reading", 0);
        let file = gdal_files::read_local_file(&self.file, options, |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        });
        pb.finish_and_clear();
        file.with_context(|| format!("importing {}", self.file.display()))
    }
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Grids as a draft plan replacing the grids under --scope (validated first).
    Grids(ImportGridsArgs),
    /// Region boundaries (counties, townships, communities): inserted or updated.
    Regions(ImportRegionsArgs),
}

#[derive(Args)]
pub struct ImportGridsArgs {
    #[command(flatten)]
    file: FileArgs,
    /// Region whose grids the plan replaces (community, township, county or city code).
    #[arg(long)]
    scope: String,
    #[arg(long, default_value = "comprehensive")]
    layer: Layer,
    #[arg(long)]
    title: Option<String>,
    /// Date from which the grids apply (can also be set on approval).
    #[arg(long)]
    effective: Option<NaiveDate>,
    /// Parse, transform and validate only; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Store the draft even when validation finds errors (to fix it later).
    #[arg(long)]
    keep_invalid: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    actor: ActorArgs,
}

#[derive(Args)]
pub struct ImportRegionsArgs {
    #[command(flatten)]
    file: FileArgs,
    /// Level of every region in the file.
    #[arg(long, value_parser = parse_level)]
    level: Level,
}

fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "city" => Ok(Level::City),
        "county" => Ok(Level::County),
        "township" => Ok(Level::Township),
        "community" | "village" => Ok(Level::Community),
        other => Err(format!(
            "unknown level {other:?}: expected city, county, township or community"
        )),
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// Output file (.geojson, .gpkg or .shp).
    file: PathBuf,
    /// Output format [default: from the extension].
    #[arg(long)]
    format: Option<String>,
    /// Grids valid on this date instead of the current ones.
    #[arg(long)]
    as_of: Option<NaiveDate>,
    /// What to export.
    #[arg(long, default_value = "grid", value_parser = parse_export_level)]
    level: Level,
    /// Only this region's subtree (a code prefix).
    #[arg(long)]
    under: Option<String>,
    /// Grid layer (default: both).
    #[arg(long)]
    layer: Option<Layer>,
}

fn parse_export_level(s: &str) -> Result<Level, String> {
    if s == "grid" {
        Ok(Level::Grid)
    } else {
        parse_level(s)
    }
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Plans, newest first.
    List {
        #[arg(long)]
        under: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// One plan with its events and validation summary.
    Show { id: i64 },
    /// Draft → submitted (refused while validation errors remain).
    Submit {
        id: i64,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Submitted → approved, with the date the grids take effect.
    Approve {
        id: i64,
        #[arg(long)]
        effective: Option<NaiveDate>,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Submitted/approved → rejected, with the reason.
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Submitted → draft, for changes.
    Return {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Approved → active: the plan's grids become the current ones.
    Activate {
        id: i64,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Activate every approved plan whose effective date has come (run daily).
    ActivateDue {
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// What activation would change: grids, lineage, members, households.
    Impact { id: i64 },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn open(store: &StoreArgs) -> Result<Arc<dyn Store>> {
    store::open(&store.database_url)
        .await
        .with_context(|| format!("opening the store at {}", store.database_url))
}

pub fn migrate(store: StoreArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let s = open(&store).await?;
        eprintln!(
            "{} store at {} is up to date",
            s.backend(),
            store.database_url
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn import(command: ImportCommand, store: StoreArgs) -> Result<ExitCode> {
    match command {
        ImportCommand::Grids(a) => import_grids(a, store),
        ImportCommand::Regions(a) => import_regions(a, store),
    }
}

fn import_grids(a: ImportGridsArgs, store_args: StoreArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let t0 = Instant::now();
        // One store for the whole import. Where the scope lies names the zone of
        // Gauss–Krüger metres without a zone number; the file's own errors come first
        // even when the store cannot be opened.
        let opened = open(&store_args).await;
        let near_lon = match &opened {
            Ok(store) => plans::scope_longitude(store.as_ref(), &a.scope).await,
            Err(_) => None,
        };
        let file = a.file.read_with(&ImportOptions {
            near_lon,
            ..a.file.options()
        })?;
        let read_ms = t0.elapsed().as_secs_f64() * 1e3;
        let features = file.grids.len();
        let store = opened?;
        let t1 = Instant::now();
        let prepared = plans::prepare(store.as_ref(), &a.scope, a.layer, file.grids).await?;
        let validate_ms = t1.elapsed().as_secs_f64() * 1e3;
        let valid = prepared.validation.is_valid();
        let mut plan = None;
        let t2 = Instant::now();
        if !a.dry_run && (valid || a.keep_invalid) {
            let new = wangge::store::NewPlan {
                scope_code: a.scope.clone(),
                layer: a.layer,
                title: a
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("import of {}", a.file.file.display())),
                effective_date: a.effective,
                actor: a.actor.actor.clone(),
            };
            // Stored with its audit row, in one transaction, as the service does.
            let audit = wangge::store::NewAuditEntry {
                actor: a.actor.actor.clone(),
                action: "plan_draft".into(),
                resource: "plans/{id}".into(),
                scope_code: a.scope.clone(),
                detail: json!({"grids": features, "errors": prepared.content.error_count,
                    "file": a.file.file.display().to_string(), "via": "cli"}),
            };
            let stored = store
                .create_plan(&new, &prepared.content, Some(&audit))
                .await?;
            plan = Some(stored);
        }
        let store_ms = t2.elapsed().as_secs_f64() * 1e3;
        let stats = json!({
            "features": features, "driver": file.driver, "source_crs": file.source_crs,
            "encoding": file.encoding, "read_ms": read_ms, "validate_ms": validate_ms,
            "store_ms": store_ms,
        });
        let mut report = prepared.validation.to_json(&prepared.grids, stats);
        report["plan_id"] = json!(plan.as_ref().map(|p| p.id));
        report["stored"] = json!(plan.is_some());
        let mut out = std::io::stdout().lock();
        if a.json {
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{features} features from {} ({}, CRS {})",
                a.file.file.display(),
                file.driver,
                file.source_crs
            )?;
            prepared.validation.write_text(&mut out)?;
            match (&plan, a.dry_run) {
                (Some(p), _) => writeln!(
                    out,
                    "stored as draft plan {} ({} grids, {} error(s), {} warning(s))",
                    p.id, features, p.error_count, p.warning_count
                )?,
                (None, true) => writeln!(out, "dry run: nothing stored")?,
                (None, false) => writeln!(
                    out,
                    "rejected: nothing stored (fix the errors, or pass --keep-invalid to keep \
                     the draft)"
                )?,
            }
        }
        Ok(if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

fn import_regions(a: ImportRegionsArgs, store_args: StoreArgs) -> Result<ExitCode> {
    let mut options = a.file.options();
    if options.id_field.is_none() {
        options.id_field = Some("code".into());
    }
    let file = a.file.read_with(&options)?;
    let mut regions = Vec::with_capacity(file.grids.len());
    for g in file.grids {
        let code: wangge::domain::RegionCode =
            g.id.parse()
                .with_context(|| format!("region {:?}", g.name))?;
        if code.level() != a.level {
            bail!(
                "region {code} has a {}-level code, not {}",
                code.level().as_str(),
                a.level.as_str()
            );
        }
        regions.push(RegionRecord {
            parent_code: g
                .parent
                .clone()
                .or_else(|| code.parent().map(|p| p.to_string())),
            name: g.name.clone().unwrap_or_else(|| code.to_string()),
            code: code.to_string(),
            level: a.level,
            boundary: Some(g.boundary),
        });
    }
    runtime()?.block_on(async {
        let store = open(&store_args).await?;
        store.upsert_regions(&regions).await?;
        println!("{} {} regions stored", regions.len(), a.level.as_str());
        Ok(ExitCode::SUCCESS)
    })
}

pub fn export(a: ExportArgs, store_args: StoreArgs) -> Result<ExitCode> {
    let format = match &a.format {
        Some(f) => ExportFormat::parse(f)?,
        None => ExportFormat::parse(
            a.file
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default(),
        )?,
    };
    let features = runtime()?.block_on(async {
        let store = open(&store_args).await?;
        let text = |s: &str| Some(OutValue::Text(s.to_string()));
        let date = |d: Option<NaiveDate>| d.map(OutValue::Date);
        if a.level == Level::Grid {
            let grids = store
                .grids(a.as_of.into(), a.layer, a.under.as_deref())
                .await?;
            Ok::<_, anyhow::Error>(
                grids
                    .into_iter()
                    .map(|g| OutFeature {
                        attributes: vec![
                            ("code", text(&g.code)),
                            ("name", g.name.as_deref().and_then(text)),
                            ("layer", text(g.layer.as_str())),
                            ("community", text(&g.parent_code)),
                            (
                                "households",
                                g.households.map(|h| OutValue::Integer(h.into())),
                            ),
                            ("valid_from", date(Some(g.valid_from))),
                            ("valid_to", date(g.valid_to)),
                        ],
                        boundary: g.boundary,
                    })
                    .collect::<Vec<_>>(),
            )
        } else {
            let regions = store.regions(a.under.as_deref()).await?;
            Ok(regions
                .into_iter()
                .filter(|r| r.level == a.level)
                .filter_map(|r| {
                    Some(OutFeature {
                        attributes: vec![
                            ("code", text(&r.code)),
                            ("name", text(&r.name)),
                            ("level", text(r.level.as_str())),
                            ("parent", r.parent_code.as_deref().and_then(text)),
                        ],
                        boundary: r.boundary?,
                    })
                })
                .collect())
        }
    })?;
    let layer_name = a.level.as_str();
    gdal_files::write_features(&a.file, format, layer_name, &features)
        .with_context(|| format!("writing {}", a.file.display()))?;
    eprintln!(
        "{} features written to {}",
        features.len(),
        a.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn plan(command: PlanCommand, store_args: StoreArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&store_args).await?;
        let s = store.as_ref();
        let today = wangge::domain::today_in_china();
        // The service's rules hold at the console too: the same use case, with the
        // second-person rule from the same WANGGE_* environment the server reads.
        let steps = PlanSteps {
            store: s,
            live: None,
            four_eyes: wangge::settings::Settings::load(None)?.four_eyes,
            via: Some("cli"),
        };
        let step = |id: i64, step: PlanStep, req: StepRequest, actor: &str| {
            let principal = Principal::console(actor);
            let steps = &steps;
            async move {
                let taken = steps.take(&principal, id, step, &req).await?;
                anyhow::Ok(match taken.activation {
                    Some(a) => json!(a),
                    None => json!(taken.plan),
                })
            }
        };
        let value = match command {
            PlanCommand::List { under, status } => {
                let status = status
                    .map(|s| s.parse::<PlanStatus>())
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                let plans = s.plans(under.as_deref(), status).await?;
                let rows: Vec<_> = plans
                    .into_iter()
                    .map(|p| {
                        json!({"id": p.id, "scope": p.scope_code, "layer": p.layer,
                        "status": p.status, "title": p.title, "effective_date": p.effective_date,
                        "errors": p.error_count, "warnings": p.warning_count})
                    })
                    .collect();
                json!(rows)
            }
            PlanCommand::Show { id } => {
                let plan = s.plan(id).await?;
                let events = s.plan_events(id).await?;
                json!({"plan": plan, "events": events})
            }
            PlanCommand::Submit { id, actor } => {
                step(id, PlanStep::Submit, StepRequest::default(), &actor.actor).await?
            }
            PlanCommand::Approve {
                id,
                effective,
                actor,
            } => {
                let req = StepRequest {
                    effective,
                    ..StepRequest::default()
                };
                step(id, PlanStep::Approve, req, &actor.actor).await?
            }
            PlanCommand::Reject { id, reason, actor } => {
                let req = StepRequest {
                    reason: Some(reason),
                    ..StepRequest::default()
                };
                step(id, PlanStep::Reject, req, &actor.actor).await?
            }
            PlanCommand::Return { id, reason, actor } => {
                let req = StepRequest {
                    reason: Some(reason),
                    ..StepRequest::default()
                };
                step(id, PlanStep::Return, req, &actor.actor).await?
            }
            PlanCommand::Activate { id, actor } => {
                step(id, PlanStep::Activate, StepRequest::default(), &actor.actor).await?
            }
            PlanCommand::Impact { id } => json!(plans::impact(s, id).await?),
            PlanCommand::ActivateDue { actor } => {
                let results =
                    plans::activate_due(s, &actor.actor, today, None, Some("cli")).await?;
                let rows: Vec<_> = results
                    .into_iter()
                    .map(|(id, r)| match r {
                        Ok(a) => json!({"plan": id, "activated": true,
                            "closed": a.closed, "inserted": a.inserted}),
                        Err(e) => json!({"plan": id, "activated": false, "error": e.to_string()}),
                    })
                    .collect();
                json!(rows)
            }
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(ExitCode::SUCCESS)
    })
}
