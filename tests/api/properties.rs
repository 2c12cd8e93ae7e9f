//! Invariants on random synthetic partitions.

use crate::helpers::{cases, check, lenient, synthetic};
use geo::Contains;
use geo_types::{Coord, Point};
use proptest::prelude::*;
use wangge::spatial::{LocateOptions, Partition};

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    /// Every clean synthetic partition validates with nothing to report.
    #[test]
    fn validation_of_a_clean_synthetic_tiling_finds_nothing(cells in 2usize..80, seed in 0u64..10_000, densify in 0usize..6) {
        let (parent, cells) = synthetic(cells, seed, densify);
        let report = check(&cells, Some(&parent), &lenient());
        prop_assert!(report.problems.is_empty(), "{:?}", &report.problems[..report.problems.len().min(2)]);
    }

    /// Lookups agree with a brute-force scan using geo's predicates, and in a tiling
    /// every point of the parent has exactly one grid.
    #[test]
    fn lookups_agree_with_a_brute_force_scan(
        cells in 2usize..60,
        seed in 0u64..10_000,
        densify in 0usize..5,
        points in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0), 200),
    ) {
        let (parent, cells) = synthetic(cells, seed, densify);
        let part = Partition::build(&cells);
        let mut batch = Vec::new();
        let mut expected = Vec::new();
        for (u, v) in points {
            // Over the parent's box and a margin around it.
            let p = Coord { x: 117.998 + u * 0.024, y: 37.298 + v * 0.020 };
            let brute: Vec<u32> = (0..cells.len() as u32).filter(|&i| cells[i as usize].contains(&Point(p))).collect();
            let got = part.polygon_at(p);
            prop_assert!(brute.len() <= 1);
            prop_assert_eq!(got, brute.first().copied(), "at {:?}", p);
            prop_assert_eq!(parent.contains(&Point(p)), got.is_some());
            let loc = part.locate(p, &LocateOptions::default());
            if let Some(i) = got {
                prop_assert_eq!(loc.polygon, Some(i));
                prop_assert!(!loc.outside);
                prop_assert!(loc.boundary_distance_m.is_some_and(|d| d >= 0.0));
            } else {
                prop_assert!(loc.outside);
            }
            batch.push(p);
            expected.push(got);
        }
        let mut many = Vec::new();
        part.polygon_at_many(&batch, &mut many);
        prop_assert_eq!(many, expected);
    }

    /// The proximity flags equal a scan of every edge of every grid: `near_boundary`
    /// when any boundary is within the distance, the neighbour the nearest other grid
    /// within it, and the batch answers equal the single ones. Points are taken at
    /// random and a few metres from vertices, with distances from under a raster cell
    /// to many cells.
    #[test]
    fn proximity_flags_agree_with_a_scan_of_every_edge(
        cells in 2usize..50,
        seed in 0u64..10_000,
        densify in 0usize..4,
        radius in prop::sample::select(vec![0.5f64, 4.0, 15.0, 60.0, 250.0]),
        points in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0usize..1_000_000), 150),
    ) {
        use wangge::spatial::measure::LocalScale;
        let (_, cells) = synthetic(cells, seed, densify);
        let part = Partition::build(&cells);
        let edges: Vec<Vec<(Coord<f64>, Coord<f64>)>> = cells
            .iter()
            .map(|c| {
                wangge::spatial::geom::rings(c)
                    .flat_map(|r| r.0.windows(2).map(|w| (w[0], w[1])).collect::<Vec<_>>())
                    .collect()
            })
            .collect();
        let vertices: Vec<Coord<f64>> = edges.iter().flatten().map(|e| e.0).collect();
        let options = LocateOptions { near_boundary_m: radius, boundary_distance: false, ..LocateOptions::default() };
        let mut batch = Vec::new();
        for (k, (u, v, pick)) in points.into_iter().enumerate() {
            let p = if k % 2 == 0 {
                Coord { x: 117.998 + u * 0.024, y: 37.298 + v * 0.020 }
            } else {
                // Within about 20 m of a vertex.
                let at = vertices[pick % vertices.len()];
                Coord { x: at.x + (u - 0.5) * 4e-4, y: at.y + (v - 0.5) * 4e-4 }
            };
            batch.push(p);
            let loc = part.locate(p, &options);
            let Some(own) = part.polygon_at(p) else {
                prop_assert!(loc.outside);
                continue;
            };
            prop_assert_eq!(loc.polygon, Some(own));
            let scale = LocalScale::at(p.y);
            let nearest = |i: usize| {
                edges[i].iter().map(|&(a, b)| scale.segment_distance2(p, a, b)).fold(f64::INFINITY, f64::min).sqrt()
            };
            let own_d = nearest(own as usize);
            let other = (0..cells.len())
                .filter(|&i| i != own as usize)
                .map(|i| (nearest(i), i))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let other_near = other.filter(|&(d, _)| d <= radius);
            prop_assert_eq!(loc.near_boundary, own_d <= radius || other_near.is_some(), "at {:?}", p);
            match (loc.neighbour, other_near) {
                (None, None) => {}
                (Some((j, d)), Some((best, _))) => {
                    prop_assert!((d - best).abs() < 1e-9, "{} vs {} at {:?}", d, best, p);
                    prop_assert!((nearest(j as usize) - best).abs() < 1e-9);
                    prop_assert_ne!(j, own);
                }
                (got, want) => prop_assert!(false, "neighbour {:?}, scan {:?} at {:?}", got, want, p),
            }
            if own_d <= radius {
                prop_assert!(loc.boundary_distance_m.is_some_and(|d| (d - own_d).abs() < 1e-9));
            }
        }
        let mut many = Vec::new();
        part.locate_many(&batch, &options, &mut many);
        let single: Vec<_> = batch.iter().map(|&p| part.locate(p, &options)).collect();
        prop_assert_eq!(many, single);
    }
}

#[test]
fn points_near_a_boundary_are_flagged_with_the_neighbour() {
    let (_, cells) = synthetic(20, 3, 0);
    let part = Partition::build(&cells);
    // A vertex shared by two cells: on the boundary, so within any threshold.
    let shared = cells[0].0[0].exterior().0[1];
    let loc = part.locate(shared, &LocateOptions::default());
    assert!(loc.near_boundary);
    let (neighbour, d) = loc.neighbour.expect("a neighbour");
    assert!(d < 1e-6);
    assert_ne!(Some(neighbour), loc.polygon);
}

#[test]
fn a_point_just_outside_gets_the_nearest_grid_within_the_limit() {
    let (parent, cells) = synthetic(20, 4, 0);
    let part = Partition::build(&cells);
    let b = wangge::spatial::geom::bounds(&parent).unwrap();
    // 100 m west of the parent's west edge (x), mid-height.
    let p = Coord {
        x: b.min().x - 100.0 / 88_600.0,
        y: b.center().y,
    };
    let loc = part.locate(p, &LocateOptions::default());
    assert!(loc.outside);
    let d = loc.boundary_distance_m.expect("distance");
    assert!((d - 100.0).abs() < 1.0, "{d}");
    let far = Coord {
        x: b.min().x - 300.0 / 88_600.0,
        y: b.center().y,
    };
    let loc = part.locate(far, &LocateOptions::default());
    assert!(loc.outside && loc.polygon.is_none());
}

#[test]
fn the_exact_boundary_distance_matches_a_brute_force_minimum() {
    let (_, cells) = synthetic(30, 5, 3);
    let part = Partition::build(&cells);
    let p = Coord {
        x: 118.0071,
        y: 37.3077,
    };
    let i = part.polygon_at(p).expect("inside");
    let scale = wangge::spatial::measure::LocalScale::at(p.y);
    let brute = wangge::spatial::geom::rings(&cells[i as usize])
        .flat_map(|r| r.0.windows(2).map(|w| (w[0], w[1])).collect::<Vec<_>>())
        .map(|(a, b)| scale.segment_distance2(p, a, b).sqrt())
        .fold(f64::INFINITY, f64::min);
    let d = part.boundary_distance(i, p).expect("distance");
    assert!((d - brute).abs() < 1e-9, "{d} vs {brute}");
}

#[test]
fn a_dedicated_grid_is_returned_beside_the_comprehensive_one() {
    use wangge::domain::{Grid, Layer};
    use wangge::spatial::crs::CoordSys;
    use wangge::workflow::locate::GridLocator;
    let grid = |id: &str, layer: Layer, boundary| Grid {
        id: id.into(),
        name: None,
        layer,
        parent: None,
        ancestors: vec![],
        boundary,
        properties: Default::default(),
    };
    let locator = GridLocator::new(vec![
        grid(
            "W",
            Layer::Comprehensive,
            crate::helpers::square(118.0, 37.0, 0.01, 0.01),
        ),
        grid(
            "E",
            Layer::Comprehensive,
            crate::helpers::square(118.01, 37.0, 0.01, 0.01),
        ),
        grid(
            "school",
            Layer::Dedicated,
            crate::helpers::square(118.008, 37.004, 0.004, 0.002),
        ),
    ]);
    let r = locator.locate(
        Coord {
            x: 118.0085,
            y: 37.005,
        },
        CoordSys::Wgs84,
        &LocateOptions::default(),
    );
    assert_eq!(r.grid.as_ref().map(|g| g.id.as_str()), Some("W"));
    assert_eq!(
        r.dedicated
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        vec!["school"]
    );
    assert!(r.flags().contains("dedicated"));
    let r = locator.locate(
        Coord {
            x: 118.002,
            y: 37.005,
        },
        CoordSys::Wgs84,
        &LocateOptions::default(),
    );
    assert!(r.dedicated.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes given to the readers of untrusted input end in a value or an error,
    /// never a panic: GeoJSON, CSV points, WKB from the store, and upload sniffing.
    #[test]
    fn readers_of_untrusted_input_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = wangge::io::geojson::read_grids(&text, &wangge::io::ReadOptions::default());
        let _ = wangge::io::points::parse_csv(&text, "fuzz.csv");
        let _ = wangge::store::wkb::decode(&bytes);
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("upload.raw");
        std::fs::write(&raw, &bytes).unwrap();
        let _ = wangge::io::upload::prepare(&raw, dir.path(), &wangge::io::upload::UploadLimits::default());
    }

    /// The same for input shaped like what the readers expect, with the shape broken
    /// somewhere: a GeoJSON polygon with arbitrary numbers, a zip of arbitrary entries.
    #[test]
    fn near_miss_geojson_and_zips_never_panic(
        coords in prop::collection::vec((any::<f64>(), any::<f64>()), 0..12),
        names in prop::collection::vec("[a-z./]{0,12}", 0..4),
        content in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let ring: Vec<Vec<f64>> = coords.iter().map(|&(x, y)| vec![x, y]).collect();
        let doc = serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "g", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        ]});
        let _ = wangge::io::geojson::read_grids(&doc.to_string(), &wangge::io::ReadOptions::default());
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for n in &names {
                if w.start_file(n.as_str(), zip::write::SimpleFileOptions::default()).is_ok() {
                    use std::io::Write;
                    let _ = w.write_all(&content);
                }
            }
            let _ = w.finish();
        }
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("upload.raw");
        std::fs::write(&raw, out.into_inner()).unwrap();
        let _ = wangge::io::upload::prepare(&raw, dir.path(), &wangge::io::upload::UploadLimits::default());
    }
}

#[test]
fn a_large_batch_located_on_all_cores_gets_the_answers_of_one_core_in_order() {
    use wangge::domain::{Grid, Layer};
    use wangge::spatial::crs::CoordSys;
    use wangge::workflow::locate::GridLocator;
    // A 20 × 20 block of squares and 50 000 points over and around it: enough for the
    // batch to be split, some points outside and near a boundary.
    let grids: Vec<Grid> = (0..400)
        .map(|i| Grid {
            id: format!("g{i}"),
            name: None,
            layer: Layer::Comprehensive,
            parent: None,
            ancestors: vec![],
            boundary: crate::helpers::square(
                118.0 + 0.01 * f64::from(i % 20),
                37.0 + 0.01 * f64::from(i / 20),
                0.01,
                0.01,
            ),
            properties: Default::default(),
        })
        .collect();
    let locator = GridLocator::new(grids);
    let points: Vec<Coord<f64>> = (0..50_000u32)
        .map(|k| Coord {
            x: 117.99 + 0.22 * f64::from(k.wrapping_mul(7_919) % 50_000) / 50_000.0,
            y: 36.99 + 0.22 * f64::from(k.wrapping_mul(104_729) % 49_999) / 49_999.0,
        })
        .collect();
    let options = LocateOptions::default();
    let one = locator.locate_many_brief(&points, CoordSys::Wgs84, &options);
    let all = locator.locate_many_brief_parallel(&points, CoordSys::Wgs84, &options);
    assert_eq!(all, one);
    assert!(one.iter().any(|b| b.grid.is_none()));
    assert!(one.iter().any(|b| b.near_boundary));
    assert!(one.iter().filter(|b| b.grid.is_some()).count() > 30_000);
}
