//! Vector tiles of the grids and regions for the web map: an R-tree of bounds per layer,
//! built once per snapshot (or per past date), and a Mapbox Vector Tile (protobuf) per
//! request, cut and rounded by [`crate::spatial::tiles`].
//!
//! Layers, each a source-layer of the same name inside its tile: `grids` (code, name,
//! layer, community, households), `communities`, `townships`, `counties` (code, name).

use crate::domain::{Grid, Level};
use crate::spatial::tiles::{BUFFER, EXTENT, TileId, polygon_commands};
use crate::store::{RegionRecord, StoreError};
use geo::{BoundingRect, MultiPolygon};
use geozero::mvt::tile::{Feature, GeomType, Layer as MvtLayer};
use geozero::mvt::{Message, TagsBuilder, Tile, TileValue};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

/// The layers a tile can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileLayer {
    Grids,
    Communities,
    Townships,
    Counties,
}

impl TileLayer {
    /// All layers, finest first.
    pub const ALL: [TileLayer; 4] = [
        TileLayer::Grids,
        TileLayer::Communities,
        TileLayer::Townships,
        TileLayer::Counties,
    ];

    /// The name in URLs and inside the tile.
    pub fn name(self) -> &'static str {
        match self {
            TileLayer::Grids => "grids",
            TileLayer::Communities => "communities",
            TileLayer::Townships => "townships",
            TileLayer::Counties => "counties",
        }
    }

    /// The layer of a URL name.
    pub fn parse(name: &str) -> Option<TileLayer> {
        TileLayer::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The region level drawn, or `None` for grids.
    pub fn level(self) -> Option<Level> {
        match self {
            TileLayer::Grids => None,
            TileLayer::Communities => Some(Level::Community),
            TileLayer::Townships => Some(Level::Township),
            TileLayer::Counties => Some(Level::County),
        }
    }
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// Bounds of one layer's shapes, by their index in the owner's list.
struct BoundsIndex(RTree<Entry>);

impl BoundsIndex {
    fn new<'a>(shapes: impl Iterator<Item = (u32, &'a MultiPolygon<f64>)>) -> Self {
        let entries = shapes
            .filter_map(|(i, mp)| {
                let r = mp.bounding_rect()?;
                Some(Entry::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect();
        BoundsIndex(RTree::bulk_load(entries))
    }

    fn within(&self, tile: TileId) -> Vec<u32> {
        let b = tile.lonlat_bounds(BUFFER as f64);
        let envelope = AABB::from_corners([b.min().x, b.min().y], [b.max().x, b.max().y]);
        let mut hits: Vec<u32> = self
            .0
            .locate_in_envelope_intersecting(&envelope)
            .map(|e| e.data)
            .collect();
        // Features in a stable order, so equal inputs give equal bytes.
        hits.sort_unstable();
        hits
    }
}

/// Bounds of a list of grids and of the communities, townships and counties in a list of
/// regions: what a tile is cut from, without a copy of the shapes (the snapshot owns them).
pub struct TileIndex {
    grid_index: BoundsIndex,
    region_index: [BoundsIndex; 3],
}

impl TileIndex {
    /// Indexes `grids` and the communities, townships and counties among `regions`.
    pub fn new(grids: &[Grid], regions: &[RegionRecord]) -> TileIndex {
        let grid_index = BoundsIndex::new(
            grids
                .iter()
                .enumerate()
                .map(|(i, g)| (i as u32, &g.boundary)),
        );
        let of_level = |level: Level| {
            BoundsIndex::new(regions.iter().enumerate().filter_map(move |(i, r)| {
                (r.level == level)
                    .then_some(r.boundary.as_ref().map(|b| (i as u32, b)))
                    .flatten()
            }))
        };
        let region_index = [
            of_level(Level::Community),
            of_level(Level::Township),
            of_level(Level::County),
        ];
        TileIndex {
            grid_index,
            region_index,
        }
    }

    /// The tile as MVT bytes (an empty tile is a valid, empty protobuf). `grids` and
    /// `regions` are the lists the index was built from.
    pub fn render(
        &self,
        grids: &[Grid],
        regions: &[RegionRecord],
        layer: TileLayer,
        tile: TileId,
    ) -> Vec<u8> {
        let mut tags = TagsBuilder::new();
        let mut features = Vec::new();
        match layer.level() {
            None => {
                for i in self.grid_index.within(tile) {
                    let Some(g) = grids.get(i as usize) else {
                        continue;
                    };
                    let Some(geometry) = polygon_commands(&g.boundary, tile) else {
                        continue;
                    };
                    let mut t = vec![];
                    push_tag(&mut t, &mut tags, "code", TileValue::Str(g.id.clone()));
                    if let Some(name) = &g.name {
                        push_tag(&mut t, &mut tags, "name", TileValue::Str(name.clone()));
                    }
                    push_tag(
                        &mut t,
                        &mut tags,
                        "layer",
                        TileValue::Str(g.layer.as_str().into()),
                    );
                    if let Some(parent) = &g.parent {
                        push_tag(
                            &mut t,
                            &mut tags,
                            "community",
                            TileValue::Str(parent.clone()),
                        );
                    }
                    if let Some(h) = g.properties.get("households").and_then(|v| v.as_i64()) {
                        push_tag(&mut t, &mut tags, "households", TileValue::Int(h));
                    }
                    features.push(feature(&g.id, t, geometry));
                }
            }
            Some(level) => {
                let index = match level {
                    Level::Community => &self.region_index[0],
                    Level::Township => &self.region_index[1],
                    _ => &self.region_index[2],
                };
                for i in index.within(tile) {
                    let Some(r) = regions.get(i as usize) else {
                        continue;
                    };
                    let Some(geometry) =
                        r.boundary.as_ref().and_then(|b| polygon_commands(b, tile))
                    else {
                        continue;
                    };
                    let mut t = vec![];
                    push_tag(&mut t, &mut tags, "code", TileValue::Str(r.code.clone()));
                    push_tag(&mut t, &mut tags, "name", TileValue::Str(r.name.clone()));
                    features.push(feature(&r.code, t, geometry));
                }
            }
        }
        let (keys, values) = tags.into_tags();
        let layer = MvtLayer {
            version: 2,
            name: layer.name().to_string(),
            features,
            keys,
            values: values.into_iter().map(Into::into).collect(),
            extent: Some(EXTENT),
        };
        Tile {
            layers: vec![layer],
        }
        .encode_to_vec()
    }
}

fn push_tag(out: &mut Vec<u32>, tags: &mut TagsBuilder, key: &str, value: TileValue) {
    let (k, v) = tags.insert_ref(key, value);
    out.push(k);
    out.push(v);
}

fn feature(code: &str, tags: Vec<u32>, geometry: Vec<u32>) -> Feature {
    Feature {
        // Region and grid codes are all digits, so they make numeric ids MapLibre can
        // use for feature state (hover, selection).
        id: code.parse::<u64>().ok(),
        tags,
        r#type: Some(GeomType::Polygon as i32),
        geometry,
    }
}

/// The grids of a past date with their index, for tiles `as_of` that date. (Regions are
/// not versioned: they come from the current snapshot.)
pub struct PastGrids {
    pub date: chrono::NaiveDate,
    pub grids: Vec<Grid>,
    pub index: TileIndex,
}

impl PastGrids {
    /// Reads and indexes the grids valid on `date`.
    pub async fn load(
        store: &dyn crate::store::Store,
        date: chrono::NaiveDate,
    ) -> Result<PastGrids, StoreError> {
        let grids: Vec<Grid> = store
            .grids(crate::store::Validity::On(date), None, None)
            .await?
            .into_iter()
            .map(|v| v.into_grid())
            .collect();
        let index = TileIndex::new(&grids, &[]);
        Ok(PastGrids { date, grids, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Layer;
    use geo::{Coord, polygon};
    use geozero::mvt::Message;

    fn grid(code: &str, x: f64, y: f64, d: f64) -> Grid {
        Grid {
            id: code.into(),
            name: Some(format!("网格 {code}")),
            layer: Layer::Comprehensive,
            parent: None,
            ancestors: vec![],
            boundary: MultiPolygon(vec![
                polygon![(x: x, y: y), (x: x + d, y: y), (x: x + d, y: y + d), (x: x, y: y + d)],
            ]),
            properties: Default::default(),
        }
    }

    #[test]
    fn a_tile_holds_the_grids_it_touches_with_their_codes() {
        let grids = vec![
            grid("371602001001001", 118.0, 37.4, 0.01),
            grid("371602001001002", 118.01, 37.4, 0.01),
            grid("371602001001003", 100.0, 30.0, 0.01),
        ];
        let index = TileIndex::new(&grids, &[]);
        let tile = TileId::at(
            12,
            Coord {
                x: 118.01,
                y: 37.405,
            },
        );
        let bytes = index.render(&grids, &[], TileLayer::Grids, tile);
        let decoded = Tile::decode(bytes.as_slice()).unwrap();
        let layer = &decoded.layers[0];
        assert_eq!(layer.name, "grids");
        assert_eq!(layer.extent, Some(EXTENT));
        let ids: Vec<u64> = layer.features.iter().filter_map(|f| f.id).collect();
        assert_eq!(ids, vec![371602001001001, 371602001001002]);
        assert!(layer.keys.contains(&"code".to_string()));
        let empty = index.render(&grids, &[], TileLayer::Townships, tile);
        assert!(
            Tile::decode(empty.as_slice()).unwrap().layers[0]
                .features
                .is_empty()
        );
    }
}
