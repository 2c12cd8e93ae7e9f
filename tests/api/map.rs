//! The map's server side: vector tiles of the current and past grids, search, the map's
//! starting area, on both backends.

use crate::backends::Backend;
use crate::service::{Server, client, seeded};
use geozero::mvt::{Message, Tile};
use reqwest::StatusCode;
use serde_json::Value;
use wangge::spatial::tiles::TileId;

async fn tile(url: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = client().get(url).send().await.expect("tile");
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.bytes().await.expect("bytes").to_vec())
}

fn feature_ids(bytes: &[u8]) -> Vec<u64> {
    let t = Tile::decode(bytes).expect("a valid vector tile");
    t.layers
        .iter()
        .flat_map(|l| l.features.iter().filter_map(|f| f.id))
        .collect()
}

pub async fn tiles_carry_the_current_and_past_grids_and_answer_304_when_unchanged(b: Backend) {
    seeded(b.store.as_ref()).await;
    let s = Server::start(&b.url, &[]);
    // The seeded community lies around (118.0, 37.3); its four grids share the corner
    // tile at zoom 12.
    let t = TileId::at(
        12,
        geo::Coord {
            x: 118.01,
            y: 37.31,
        },
    );
    let at =
        |layer: &str, q: &str| format!("{}/tiles/{layer}/{}/{}/{}.mvt{q}", s.url, t.z, t.x, t.y);

    let (status, headers, bytes) = tile(&at("grids", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/vnd.mapbox-vector-tile"
    );
    let mut ids = feature_ids(&bytes);
    ids.sort();
    let codes: Vec<u64> = (1..=4)
        .map(|i| {
            crate::store_contract::code(i)
                .parse()
                .expect("numeric code")
        })
        .collect();
    assert_eq!(ids, codes, "the four current grids, by their codes");
    let layer = &Tile::decode(bytes.as_slice()).expect("tile").layers[0];
    assert_eq!(layer.name, "grids");
    assert!(layer.keys.iter().any(|k| k == "code") && layer.keys.iter().any(|k| k == "name"));

    // Unchanged since the ETag: 304, no body.
    let etag = headers["etag"].clone();
    let r = client()
        .get(at("grids", ""))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // A low zoom is cut and gzipped once per snapshot: asked with gzip, the same tile
    // comes gzipped as kept, twice the same; asked without, plain.
    let low = TileId::at(
        10,
        geo::Coord {
            x: 118.01,
            y: 37.31,
        },
    );
    let low_url = format!("{}/tiles/grids/{}/{}/{}.mvt", s.url, low.z, low.x, low.y);
    let (status, headers, plain) = tile(&low_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(feature_ids(&plain).len(), 4);
    for _ in 0..2 {
        let r = client()
            .get(&low_url)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("gzip tile");
        assert_eq!(r.headers()["content-encoding"], "gzip");
        assert_eq!(r.headers()["vary"], "accept-encoding");
        let body = r.bytes().await.expect("bytes");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped)
            .expect("gzip");
        assert_eq!(unzipped, plain);
    }
    // A 304 says what it confirms; a past date's low-zoom tile is kept gzipped too.
    let r = client()
        .get(&low_url)
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .expect("conditional");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], headers["etag"]);
    assert_eq!(r.headers()["vary"], "accept-encoding");
    for _ in 0..2 {
        let r = client()
            .get(format!("{low_url}?as_of=2026-06-01"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("past gzip tile");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let body = r.bytes().await.expect("bytes");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped)
            .expect("gzip");
        assert_eq!(feature_ids(&unzipped).len(), 4);
    }

    // Before the plan took effect there were no grids; after, the same four.
    let (status, _, before) = tile(&at("grids", "?as_of=2025-06-01")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(feature_ids(&before).is_empty());
    let (_, _, after) = tile(&at("grids", "?as_of=2026-06-01")).await;
    assert_eq!(feature_ids(&after).len(), 4);

    // A tile far away is empty but valid; bad layers and tiles are problems.
    let far = TileId::at(12, geo::Coord { x: 90.0, y: 30.0 });
    let (status, _, empty) =
        tile(&format!("{}/tiles/grids/12/{}/{}.mvt", s.url, far.x, far.y)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(feature_ids(&empty).is_empty());
    for bad in [
        "/tiles/roads/1/0/0.mvt",
        "/tiles/grids/25/0/0.mvt",
        "/tiles/grids/2/4/0.mvt",
        "/tiles/grids/2/0/0.png",
    ] {
        let r = client()
            .get(format!("{}{bad}", s.url))
            .send()
            .await
            .expect("bad tile");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }

    // Search by code and by name; the map starts over the regions.
    let code = crate::store_contract::code(1);
    let hits: Value = client()
        .get(format!("{}/v1/public/search?q={code}", s.url))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert_eq!(hits[0]["code"], code.as_str());
    assert_eq!(hits[0]["kind"], "grid");
    assert_eq!(hits[0]["bbox"].as_array().map(Vec::len), Some(4));
    let r = client()
        .get(format!("{}/v1/public/search?q=%20", s.url))
        .send()
        .await
        .expect("empty");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let cfg: Value = client()
        .get(format!("{}/v1/public/map-config", s.url))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    let bounds = cfg["bounds"].as_array().expect("bounds");
    let (west, east) = (
        bounds[0].as_f64().expect("west bound"),
        bounds[2].as_f64().expect("east bound"),
    );
    assert!(west < 118.01 && east > 118.01, "{cfg}");
    assert!(cfg["basemap"].is_null());
}

crate::contract!(tiles_carry_the_current_and_past_grids_and_answer_304_when_unchanged);
