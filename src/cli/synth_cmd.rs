//! `wangge synth`: synthetic partitions for demos, tests and benchmarks.

use anyhow::{Context, Result, bail};
use clap::Args;
use geo_types::{MultiPolygon, polygon};
use std::path::PathBuf;
use wangge::domain::{Grid, Layer, Level};
use wangge::io::geojson::{self as gj, ReadOptions};
use wangge::spatial::crs::CoordSys;
use wangge::spatial::synth::{SynthOptions, tile};
use wangge::workflow::hierarchy::{self, HierarchyOptions, Region};

#[derive(Args)]
pub struct SynthArgs {
    /// Parent polygon (GeoJSON, first feature) to cut into --cells cells.
    #[arg(long, conflicts_with_all = ["rect", "counties"])]
    parent: Option<PathBuf>,
    /// Parent rectangle MINLON,MINLAT,MAXLON,MAXLAT instead of a file.
    #[arg(long, conflicts_with = "counties")]
    rect: Option<String>,
    /// Hierarchical mode: county boundaries (GeoJSON) to fill with townships,
    /// communities and grids.
    #[arg(long)]
    counties: Option<PathBuf>,
    /// County code property (6 digits) in --counties.
    #[arg(long, default_value = "adcode")]
    county_code_field: String,
    /// Coordinate system of the input file.
    #[arg(long, default_value = "wgs84")]
    coord_sys: CoordSys,
    /// Number of cells (flat mode).
    #[arg(long, default_value_t = 100)]
    cells: usize,
    /// Townships per county (hierarchical mode).
    #[arg(long, default_value_t = HierarchyOptions::default().townships)]
    townships: usize,
    /// Communities per township (hierarchical mode).
    #[arg(long, default_value_t = HierarchyOptions::default().communities_per_township)]
    communities: usize,
    /// Grids per community (hierarchical mode).
    #[arg(long, default_value_t = HierarchyOptions::default().grids_per_community)]
    grids: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Extra vertices on each border between two cells (≈ 9 gives ~120 vertices a cell).
    #[arg(long, default_value_t = 0)]
    densify: usize,
    /// Triangulation points per cell.
    #[arg(long, default_value_t = 6.0)]
    points_per_cell: f64,
    /// Output file (flat mode) or directory (hierarchical mode).
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(a: SynthArgs) -> Result<()> {
    if let Some(counties) = &a.counties {
        return run_hierarchy(&a, counties);
    }
    let parent: MultiPolygon<f64> = match (&a.parent, &a.rect) {
        (Some(p), _) => {
            let read = ReadOptions {
                allow_duplicate_ids: true,
                coord_sys: a.coord_sys,
                index_as_missing_id: true,
                ..ReadOptions::default()
            };
            gj::read_grids_file(p, &read)?
                .into_iter()
                .next()
                .map(|g| g.boundary)
                .context("the parent file has no feature")?
        }
        (None, Some(r)) => {
            let v: Vec<f64> = r
                .split(',')
                .map(|s| s.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("--rect {r:?}: expected MINLON,MINLAT,MAXLON,MAXLAT"))?;
            let [x0, y0, x1, y1] = v[..] else {
                bail!("--rect {r:?}: expected 4 numbers")
            };
            if !(x0 < x1 && y0 < y1) {
                bail!("--rect {r:?}: min must be below max");
            }
            MultiPolygon(vec![
                polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1)],
            ])
        }
        (None, None) => {
            bail!("give --parent FILE, --rect MINLON,MINLAT,MAXLON,MAXLAT or --counties FILE")
        }
    };
    let pb = crate::cli::spinner("generating", 1);
    let t = tile(
        &parent,
        a.cells,
        &SynthOptions {
            seed: a.seed,
            points_per_cell: a.points_per_cell,
            densify: a.densify,
        },
    )?;
    pb.finish_and_clear();
    let grids: Vec<Grid> = t
        .cells
        .into_iter()
        .enumerate()
        .map(|(i, boundary)| {
            let mut props = serde_json::Map::new();
            props.insert("synthetic".into(), serde_json::Value::Bool(true));
            Grid {
                id: format!("{i}"),
                name: None,
                layer: Layer::Comprehensive,
                parent: None,
                ancestors: vec![],
                boundary,
                properties: props,
            }
        })
        .collect();
    write(&a.out, &gj::grids_to_json(&grids))?;
    eprintln!("wrote {} cells to {}", grids.len(), a.out.display());
    Ok(())
}

fn write(path: &std::path::Path, v: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string(v)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads county boundaries with their codes and names.
pub fn read_counties(
    path: &std::path::Path,
    code_field: &str,
    coord_sys: CoordSys,
) -> Result<Vec<Region>> {
    let read = ReadOptions {
        id_field: code_field.to_string(),
        coord_sys,
        ..ReadOptions::default()
    };
    let counties = gj::read_grids_file(path, &read)
        .with_context(|| format!("county file {}", path.display()))?;
    counties
        .into_iter()
        .map(|c| {
            if c.id.len() != 6 || !c.id.bytes().all(|b| b.is_ascii_digit()) {
                bail!("county {:?}: the code must have 6 digits", c.id);
            }
            Ok(Region {
                level: Level::County,
                name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                code: c.id,
                parent: None,
                boundary: c.boundary,
                synthetic: false,
            })
        })
        .collect()
}

/// The whole hierarchy under the given counties.
pub fn generate_all(
    counties: &[Region],
    options: &HierarchyOptions,
) -> Result<hierarchy::Hierarchy> {
    let pb = crate::cli::spinner("generating", counties.len() as u64);
    let mut all = hierarchy::Hierarchy::default();
    for c in counties {
        let h = hierarchy::generate(c, options)
            .with_context(|| format!("county {} {}", c.code, c.name))?;
        all.townships.extend(h.townships);
        all.communities.extend(h.communities);
        all.grids.extend(h.grids);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(all)
}

/// Writes counties.geojson, townships.geojson, communities.geojson and grids.geojson.
pub fn write_hierarchy(
    dir: &std::path::Path,
    counties: &[Region],
    h: &hierarchy::Hierarchy,
) -> Result<()> {
    let records = |rs: &[Region]| rs.iter().map(Region::to_record).collect::<Vec<_>>();
    write(
        &dir.join("counties.geojson"),
        &gj::grids_to_json(&records(counties)),
    )?;
    write(
        &dir.join("townships.geojson"),
        &gj::grids_to_json(&records(&h.townships)),
    )?;
    write(
        &dir.join("communities.geojson"),
        &gj::grids_to_json(&records(&h.communities)),
    )?;
    write(&dir.join("grids.geojson"), &gj::grids_to_json(&h.grids))?;
    Ok(())
}

fn run_hierarchy(a: &SynthArgs, counties: &std::path::Path) -> Result<()> {
    let counties = read_counties(counties, &a.county_code_field, a.coord_sys)?;
    let options = HierarchyOptions {
        seed: a.seed,
        townships: a.townships,
        communities_per_township: a.communities,
        grids_per_community: a.grids,
        points_per_cell: a.points_per_cell,
        densify: a.densify,
    };
    let h = generate_all(&counties, &options)?;
    write_hierarchy(&a.out, &counties, &h)?;
    eprintln!(
        "wrote {} counties, {} townships, {} communities, {} grids to {}",
        counties.len(),
        h.townships.len(),
        h.communities.len(),
        h.grids.len(),
        a.out.display()
    );
    Ok(())
}
