//! Synthetic administrative hierarchies: townships, communities and grids generated
//! inside real county boundaries, with codes and names, for the demo and the tests.
//! Everything generated here is labelled `synthetic: true`.
//!
//! Grids come from [`crate::spatial::synth::tile`]; communities are unions of grids
//! and townships unions of communities (exact, by edge cancellation), so every level
//! tiles its parent vertex-for-vertex. Codes are assigned in reading order within the
//! parent: north to south in bands, west to east within a band.

use crate::domain::{Grid, Layer, Level, RegionCode, RegionRef};
use crate::spatial::synth::{self, SynthError, SynthOptions, make_groups_connected};
use crate::spatial::{geom, measure};
use geo_types::{Coord, MultiPolygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde_json::{Value, json};

/// A region of the hierarchy with its boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub level: Level,
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub boundary: MultiPolygon<f64>,
    pub synthetic: bool,
}

impl Region {
    /// As a feature-like grid record, for writing GeoJSON with [`crate::io::geojson::grids_to_json`].
    pub fn to_record(&self) -> Grid {
        let mut props = serde_json::Map::new();
        props.insert("code".into(), json!(self.code));
        props.insert("name".into(), json!(self.name));
        props.insert("level".into(), json!(self.level.as_str()));
        props.insert("parent".into(), json!(self.parent));
        props.insert("synthetic".into(), json!(self.synthetic));
        props.insert(
            "area_m2".into(),
            json!(measure::local_area_m2(&self.boundary).round()),
        );
        Grid {
            id: self.code.clone(),
            name: Some(self.name.clone()),
            layer: Layer::Comprehensive,
            parent: self.parent.clone(),
            ancestors: vec![],
            boundary: self.boundary.clone(),
            properties: props,
        }
    }
}

/// Sizes of a generated hierarchy.
#[derive(Debug, Clone, Copy)]
pub struct HierarchyOptions {
    pub seed: u64,
    pub townships: usize,
    pub communities_per_township: usize,
    pub grids_per_community: usize,
    pub points_per_cell: f64,
    pub densify: usize,
}

impl Default for HierarchyOptions {
    fn default() -> Self {
        HierarchyOptions {
            seed: 2026,
            townships: 8,
            communities_per_township: 6,
            grids_per_community: 12,
            points_per_cell: 6.0,
            densify: 3,
        }
    }
}

/// Townships, communities and grids of one county.
#[derive(Debug, Clone, Default)]
pub struct Hierarchy {
    pub townships: Vec<Region>,
    pub communities: Vec<Region>,
    pub grids: Vec<Grid>,
}

/// Generates the hierarchy below `county` (whose code must have 6 digits).
pub fn generate(county: &Region, options: &HierarchyOptions) -> Result<Hierarchy, SynthError> {
    let seed = options.seed
        ^ county
            .code
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(b as u64));
    let n_comm = (options.townships * options.communities_per_township).max(1);
    let n_grids = n_comm * options.grids_per_community.max(1);
    let tiling = synth::tile(
        &county.boundary,
        n_grids,
        &SynthOptions {
            seed,
            points_per_cell: options.points_per_cell,
            densify: options.densify,
        },
    )?;
    let cells = tiling.cells;
    let mut cell_nbrs: Vec<Vec<u32>> = vec![Vec::new(); cells.len()];
    for &(a, b) in &tiling.adjacency {
        cell_nbrs[a as usize].push(b);
        cell_nbrs[b as usize].push(a);
    }
    let centres: Vec<Coord<f64>> = cells.iter().map(centre).collect();
    let bbox = geom::bounds(&county.boundary).ok_or(SynthError::EmptyParent)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.rotate_left(17));

    // Grids → communities, communities → townships, by nearest seed among the members.
    let mut comm_of = group(&centres, n_comm.min(cells.len()), &mut rng);
    make_groups_connected(&mut comm_of, &cell_nbrs);
    let comm_ids = dense(&mut comm_of);
    let comm_members = members(&comm_of, comm_ids);
    let comm_centres: Vec<Coord<f64>> = comm_members
        .iter()
        .map(|m| mean(m.iter().map(|&i| centres[i as usize])))
        .collect();
    let mut comm_nbrs: Vec<Vec<u32>> = vec![Vec::new(); comm_ids];
    for &(a, b) in &tiling.adjacency {
        let (ca, cb) = (comm_of[a as usize], comm_of[b as usize]);
        if ca != cb {
            comm_nbrs[ca as usize].push(cb);
            comm_nbrs[cb as usize].push(ca);
        }
    }
    let mut town_of = group(
        &comm_centres,
        options.townships.min(comm_ids).max(1),
        &mut rng,
    );
    make_groups_connected(&mut town_of, &comm_nbrs);
    let town_ids = dense(&mut town_of);
    let town_members = members(&town_of, town_ids);

    let comm_bounds: Vec<MultiPolygon<f64>> = comm_members
        .iter()
        .map(|m| synth::union_of(&m.iter().map(|&i| &cells[i as usize]).collect::<Vec<_>>()))
        .collect();
    let town_bounds: Vec<MultiPolygon<f64>> = town_members
        .iter()
        .map(|m| {
            synth::union_of(
                &m.iter()
                    .map(|&i| &comm_bounds[i as usize])
                    .collect::<Vec<_>>(),
            )
        })
        .collect();

    let county_code: RegionCode = county
        .code
        .parse()
        .map_err(|e: crate::domain::region::BadCode| SynthError::Triangulation(e.to_string()))?;
    let mut out = Hierarchy::default();
    let town_order = reading_order(&town_bounds.iter().map(centre).collect::<Vec<_>>(), bbox);
    for (ti, &t) in town_order.iter().enumerate() {
        let tcode =
            RegionCode::child(county_code.clone(), ti as u32 + 1).ok_or(SynthError::NoCells(ti))?;
        let tname = format!("{}合成街道{:02}", short(&county.name), ti + 1);
        out.townships.push(Region {
            level: Level::Township,
            code: tcode.to_string(),
            name: tname.clone(),
            parent: Some(county.code.clone()),
            boundary: town_bounds[t].clone(),
            synthetic: true,
        });
        let comms = &town_members[t];
        let order = reading_order(
            &comms
                .iter()
                .map(|&c| centre(&comm_bounds[c as usize]))
                .collect::<Vec<_>>(),
            bbox,
        );
        for (ci, &k) in order.iter().enumerate() {
            let c = comms[k] as usize;
            let ccode =
                RegionCode::child(tcode.clone(), ci as u32 + 1).ok_or(SynthError::NoCells(ci))?;
            let cname = format!("合成社区{:02}", ci + 1);
            out.communities.push(Region {
                level: Level::Community,
                code: ccode.to_string(),
                name: format!("{tname}{cname}"),
                parent: Some(tcode.to_string()),
                boundary: comm_bounds[c].clone(),
                synthetic: true,
            });
            let grids = &comm_members[c];
            let gorder = reading_order(
                &grids
                    .iter()
                    .map(|&g| centres[g as usize])
                    .collect::<Vec<_>>(),
                bbox,
            );
            for (gi, &k) in gorder.iter().enumerate() {
                let g = grids[k] as usize;
                let gcode = RegionCode::child(ccode.clone(), gi as u32 + 1)
                    .ok_or(SynthError::NoCells(gi))?;
                let gname = format!("{cname}第{}网格", gi + 1);
                let ancestors = vec![
                    RegionRef {
                        level: Level::Community,
                        code: ccode.to_string(),
                        name: Some(format!("{tname}{cname}")),
                    },
                    RegionRef {
                        level: Level::Township,
                        code: tcode.to_string(),
                        name: Some(tname.clone()),
                    },
                    RegionRef {
                        level: Level::County,
                        code: county.code.clone(),
                        name: Some(county.name.clone()),
                    },
                ];
                let mut props = serde_json::Map::new();
                props.insert("name".into(), json!(gname));
                props.insert("layer".into(), json!("comprehensive"));
                for a in &ancestors {
                    props.insert(a.level.as_str().into(), json!(a.code));
                    props.insert(format!("{}_name", a.level.as_str()), json!(a.name));
                }
                props.insert("synthetic".into(), Value::Bool(true));
                props.insert(
                    "area_m2".into(),
                    json!(measure::local_area_m2(&cells[g]).round()),
                );
                out.grids.push(Grid {
                    id: gcode.to_string(),
                    name: Some(gname),
                    layer: Layer::Comprehensive,
                    parent: Some(ccode.to_string()),
                    ancestors,
                    boundary: cells[g].clone(),
                    properties: props,
                });
            }
        }
    }
    Ok(out)
}

fn short(name: &str) -> &str {
    name.trim_end_matches(['区', '县', '市'])
}

fn centre(mp: &MultiPolygon<f64>) -> Coord<f64> {
    use geo::InteriorPoint;
    mp.interior_point()
        .map(|p| p.0)
        .unwrap_or_else(|| mean(geom::rings(mp).flat_map(|r| r.0.iter().copied())))
}

fn mean(it: impl Iterator<Item = Coord<f64>>) -> Coord<f64> {
    let (mut s, mut n) = (Coord { x: 0.0, y: 0.0 }, 0.0);
    for c in it {
        s = s + c;
        n += 1.0;
    }
    if n > 0.0 { s / n } else { s }
}

/// Picks `k` of the points as seeds and gives every point the label of its nearest seed.
fn group(points: &[Coord<f64>], k: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let coslat = points.first().map_or(1.0, |p| p.y.to_radians().cos());
    let mut idx: Vec<usize> = (0..points.len()).collect();
    for i in 0..k.min(idx.len()) {
        let j = rng.random_range(i..idx.len());
        idx.swap(i, j);
    }
    let tree = RTree::bulk_load(
        idx[..k.min(idx.len())]
            .iter()
            .enumerate()
            .map(|(s, &i)| GeomWithData::new([points[i].x * coslat, points[i].y], s as u32))
            .collect(),
    );
    points
        .iter()
        .map(|p| {
            tree.nearest_neighbor(&[p.x * coslat, p.y])
                .map_or(0, |n| n.data)
        })
        .collect()
}

/// Renumbers labels 0..n in order of first appearance; returns n.
fn dense(labels: &mut [u32]) -> usize {
    let mut map = rustc_hash::FxHashMap::default();
    for l in labels.iter_mut() {
        let n = map.len() as u32;
        *l = *map.entry(*l).or_insert(n);
    }
    map.len()
}

fn members(labels: &[u32], n: usize) -> Vec<Vec<u32>> {
    let mut m = vec![Vec::new(); n];
    for (i, &l) in labels.iter().enumerate() {
        m[l as usize].push(i as u32);
    }
    m
}

/// Indices of `points` in reading order: bands from north to south, west to east
/// within a band; the band height divides the parent's extent into √n rows.
pub fn reading_order(points: &[Coord<f64>], parent: geo_types::Rect<f64>) -> Vec<usize> {
    let rows = (points.len() as f64).sqrt().ceil().max(1.0);
    let h = (parent.height() / rows).max(f64::MIN_POSITIVE);
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        let band = |p: Coord<f64>| ((parent.max().y - p.y) / h).floor() as i64;
        band(points[a])
            .cmp(&band(points[b]))
            .then(points[a].x.total_cmp(&points[b].x))
    });
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::coverage::{ValidateOptions, validate};
    use geo_types::polygon;

    #[test]
    fn every_level_tiles_its_parent_and_codes_nest() {
        let county = Region {
            level: Level::County,
            code: "371602".into(),
            name: "滨城区".into(),
            parent: None,
            boundary: MultiPolygon(vec![
                polygon![(x: 118.0, y: 37.3), (x: 118.2, y: 37.3), (x: 118.2, y: 37.45), (x: 118.0, y: 37.45)],
            ]),
            synthetic: false,
        };
        let opts = HierarchyOptions {
            townships: 3,
            communities_per_township: 3,
            grids_per_community: 4,
            ..Default::default()
        };
        let h = generate(&county, &opts).unwrap();
        let lenient = ValidateOptions {
            min_area_m2: 0.0,
            ..Default::default()
        };
        let check = |children: Vec<&MultiPolygon<f64>>, parent: &MultiPolygon<f64>| {
            let ids: Vec<String> = (0..children.len()).map(|i| i.to_string()).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let r = validate(&children, &ids, Some(parent), &lenient);
            assert!(r.problems.is_empty(), "{:?}", r.problems);
        };
        check(
            h.townships.iter().map(|t| &t.boundary).collect(),
            &county.boundary,
        );
        for t in &h.townships {
            assert!(t.code.starts_with("371602") && t.code.len() == 9);
            let comms: Vec<&Region> = h
                .communities
                .iter()
                .filter(|c| c.parent.as_deref() == Some(&t.code))
                .collect();
            check(comms.iter().map(|c| &c.boundary).collect(), &t.boundary);
        }
        for c in &h.communities {
            let grids: Vec<&Grid> = h
                .grids
                .iter()
                .filter(|g| g.parent.as_deref() == Some(&c.code))
                .collect();
            assert!(!grids.is_empty());
            assert!(
                grids
                    .iter()
                    .all(|g| g.id.len() == 15 && g.id.starts_with(&c.code))
            );
            check(grids.iter().map(|g| &g.boundary).collect(), &c.boundary);
        }
    }
}
