//! Locating points among grids: the engine's polygon indices turned into grids, their
//! ancestors and the layer they belong to.

use crate::domain::{Grid, Layer, RegionRef};
use crate::spatial::crs::CoordSys;
use crate::spatial::{LocateOptions, Location, Partition};
use geo_types::Coord;
use serde::Serialize;

/// An immutable snapshot of grids ready for lookups: one partition for the
/// comprehensive layer and one for dedicated grids.
pub struct GridLocator {
    grids: Vec<Grid>,
    comprehensive: Partition,
    comprehensive_ids: Vec<u32>,
    dedicated: Partition,
    dedicated_ids: Vec<u32>,
}

/// A grid in a lookup answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GridRef {
    pub id: String,
    pub name: Option<String>,
    pub layer: Layer,
}

/// The neighbour of a point near a boundary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Neighbour {
    pub grid: GridRef,
    pub distance_m: f64,
}

/// The answer for one point.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Located {
    /// The comprehensive grid containing the point, or the nearest one when `outside`.
    pub grid: Option<GridRef>,
    /// Community/village, township, county of `grid`, nearest first.
    pub ancestors: Vec<RegionRef>,
    /// Distance in metres from the point to the grid's boundary.
    pub boundary_distance_m: Option<f64>,
    /// The point is within the near-boundary distance of another grid.
    pub near_boundary: bool,
    pub neighbour: Option<Neighbour>,
    /// The point lies in no grid; `grid` is the nearest within the limit, if any.
    pub outside: bool,
    /// Dedicated grids (park, school, market…) that also contain the point.
    pub dedicated: Vec<GridRef>,
}

/// A point's grid and flags, by index (see [`GridLocator::locate_brief`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brief {
    pub grid: Option<u32>,
    pub near_boundary: bool,
    pub outside: bool,
}

impl Located {
    /// The flags as a `;`-separated list (`near_boundary`, `outside`, `dedicated`).
    pub fn flags(&self) -> String {
        flags_text(self.near_boundary, self.outside, !self.dedicated.is_empty())
    }
}

/// The flags of a lookup as a `;`-separated list, in the order `near_boundary`,
/// `outside`, `dedicated`: what a CSV answer's flags column holds.
///
/// ```
/// assert_eq!(wangge::workflow::locate::flags_text(true, false, true), "near_boundary;dedicated");
/// ```
pub fn flags_text(near_boundary: bool, outside: bool, dedicated: bool) -> String {
    [
        (near_boundary, "near_boundary"),
        (outside, "outside"),
        (dedicated, "dedicated"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect::<Vec<_>>()
    .join(";")
}

impl GridLocator {
    /// Builds the snapshot.
    pub fn new(grids: Vec<Grid>) -> Self {
        let split = |layer: Layer| -> (Vec<u32>, Partition) {
            let ids: Vec<u32> = (0..grids.len() as u32)
                .filter(|&i| grids[i as usize].layer == layer)
                .collect();
            let polys: Vec<_> = ids.iter().map(|&i| &grids[i as usize].boundary).collect();
            (ids, Partition::build(&polys))
        };
        let (comprehensive_ids, comprehensive) = split(Layer::Comprehensive);
        let (dedicated_ids, dedicated) = split(Layer::Dedicated);
        GridLocator {
            grids,
            comprehensive,
            comprehensive_ids,
            dedicated,
            dedicated_ids,
        }
    }

    /// The grids, in input order.
    pub fn grids(&self) -> &[Grid] {
        &self.grids
    }

    /// A point inside grid `i` (into [`Self::grids`]) that the lookup answers with that
    /// grid (see [`Partition::point_inside`]), in lon/lat.
    pub fn point_inside(&self, i: u32) -> Option<Coord<f64>> {
        let grid = self.grids.get(i as usize)?;
        let (ids, partition) = match grid.layer {
            Layer::Comprehensive => (&self.comprehensive_ids, &self.comprehensive),
            Layer::Dedicated => (&self.dedicated_ids, &self.dedicated),
        };
        let j = ids.binary_search(&i).ok()?;
        partition.point_inside(j as u32, &grid.boundary)
    }

    /// Heap bytes of the lookup indexes (geometry included).
    pub fn index_bytes(&self) -> usize {
        self.comprehensive.heap_bytes() + self.dedicated.heap_bytes()
    }

    fn grid_ref(&self, i: u32) -> GridRef {
        let g = &self.grids[i as usize];
        GridRef {
            id: g.id.clone(),
            name: g.name.clone(),
            layer: g.layer,
        }
    }

    /// Locates a point given in `coord_sys`.
    pub fn locate(&self, p: Coord<f64>, coord_sys: CoordSys, options: &LocateOptions) -> Located {
        let p = coord_sys.to_wgs84(p);
        let loc: Location = self.comprehensive.locate(p, options);
        let grid_index = loc.polygon.map(|i| self.comprehensive_ids[i as usize]);
        let mut dedicated = Vec::new();
        if !self.dedicated.is_empty() {
            let mut hits = Vec::new();
            self.dedicated.polygons_at(p, &mut hits);
            dedicated = hits
                .into_iter()
                .map(|i| self.grid_ref(self.dedicated_ids[i as usize]))
                .collect();
        }
        Located {
            grid: grid_index.map(|i| self.grid_ref(i)),
            ancestors: grid_index
                .map(|i| self.grids[i as usize].ancestors.clone())
                .unwrap_or_default(),
            boundary_distance_m: loc.boundary_distance_m,
            near_boundary: loc.near_boundary,
            neighbour: loc.neighbour.map(|(j, d)| Neighbour {
                grid: self.grid_ref(self.comprehensive_ids[j as usize]),
                distance_m: d,
            }),
            outside: loc.outside,
            dedicated,
        }
    }

    /// The comprehensive grid (index into [`Self::grids`]) of a point in `coord_sys`,
    /// with the flags, without building names or ancestors: the batch path.
    pub fn locate_brief(
        &self,
        p: Coord<f64>,
        coord_sys: CoordSys,
        options: &LocateOptions,
    ) -> Brief {
        let loc = self.comprehensive.locate(coord_sys.to_wgs84(p), options);
        Brief {
            grid: loc.polygon.map(|i| self.comprehensive_ids[i as usize]),
            near_boundary: loc.near_boundary,
            outside: loc.outside,
        }
    }

    /// [`Self::locate_brief`] for many points in `coord_sys`, answered in order: the
    /// lookups are pipelined (see [`Partition::locate_many`]).
    pub fn locate_many_brief(
        &self,
        points: &[Coord<f64>],
        coord_sys: CoordSys,
        options: &LocateOptions,
    ) -> Vec<Brief> {
        let converted: Vec<Coord<f64>>;
        let points = if matches!(coord_sys, CoordSys::Wgs84 | CoordSys::Cgcs2000) {
            points
        } else {
            converted = points.iter().map(|&p| coord_sys.to_wgs84(p)).collect();
            &converted
        };
        let mut found = Vec::new();
        self.comprehensive.locate_many(points, options, &mut found);
        found
            .into_iter()
            .map(|loc| Brief {
                grid: loc.polygon.map(|i| self.comprehensive_ids[i as usize]),
                near_boundary: loc.near_boundary,
                outside: loc.outside,
            })
            .collect()
    }

    /// [`Self::locate_many_brief`] spread over the cores for large batches (from 20 000
    /// points; below that one thread, as spawning costs more than it saves), each
    /// core taking a contiguous run of the points: the same answers in the same
    /// order. The `locate` command and `POST /v1/locate` use it. A panic in a worker
    /// is raised again here, never an answer missing the worker's points.
    pub fn locate_many_brief_parallel(
        &self,
        points: &[Coord<f64>],
        coord_sys: CoordSys,
        options: &LocateOptions,
    ) -> Vec<Brief> {
        let threads = if points.len() < 20_000 {
            1
        } else {
            crate::spatial::parallel::build_threads(points.len())
        };
        crate::spatial::parallel::in_parallel(points.len(), threads, |range| {
            self.locate_many_brief(&points[range], coord_sys, options)
        })
        .concat()
    }

    /// Whether a dedicated grid contains the point given in `coord_sys`.
    pub fn in_dedicated(&self, p: Coord<f64>, coord_sys: CoordSys) -> bool {
        !self.dedicated.is_empty() && self.dedicated.polygon_at(coord_sys.to_wgs84(p)).is_some()
    }

    /// The comprehensive grid index (into [`Self::grids`]) of each point, in order:
    /// the fast path for batches that need only the grid.
    pub fn grid_indices(&self, points: &[Coord<f64>]) -> Vec<Option<u32>> {
        let mut out = Vec::new();
        self.comprehensive.polygon_at_many(points, &mut out);
        out.into_iter()
            .map(|i| i.map(|i| self.comprehensive_ids[i as usize]))
            .collect()
    }
}
