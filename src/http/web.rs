//! The web app (built from `web/` into `web/dist` by `scripts/web`) served at `/`: the
//! files are inside the release binary, so `wangge serve` alone serves the app. Debug
//! builds read them from `web/dist` at run time, so a rebuilt app shows without a
//! rebuilt server.

use super::{ApiError, AppState};
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/dist"]
#[allow_missing = true]
struct Assets;

/// The app at `/`; the fallback of the whole service. No compression layer: the bundles
/// are gzipped once by scripts/web, and compressing a 1 MB script per request (for an
/// `Accept-Encoding` the prebuilt file does not match) cost 43 ms of CPU each, one
/// client's easy way to load the server.
pub fn routes() -> Router<AppState> {
    Router::new().fallback(asset_or_not_found)
}

/// `/` and the app's files; every other unknown path is a problem 404.
async fn asset_or_not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::not_found(crate::msg!("no such endpoint", "没有这个接口"))
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    // The prebuilt `.gz` files are a way of sending the bundles, not files of their own;
    // no path climbs out of the app (debug builds read web/dist from disk).
    let file = if path.ends_with(".gz") || path.split(['/', '\\']).any(|s| s == "..") {
        None
    } else {
        Assets::get(path)
    };
    let Some(file) = file else {
        if path == "index.html" {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "web-app-missing",
                "The web app was not built",
                crate::msg!("this binary was built without web/dist: run scripts/web, then build wangge again (scripts/demo does both)", "此程序构建时没有 web/dist：请运行 scripts/web 后重新构建 wangge（scripts/demo 会完成这两步）"),
            )
            .into_response();
        }
        return ApiError::not_found(crate::msg!("no such endpoint", "没有这个接口"))
            .into_response();
    };
    // Vite names files under assets/ by their content: they never change, cache them
    // for good. index.html names the current ones: always revalidate it.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    // scripts/web gzips the bundles once, at the best level: served as they are to a
    // browser that takes gzip (the compression layer leaves an encoded answer alone).
    let mime = HeaderValue::from_str(file.metadata.mimetype()).ok();
    let gzipped = takes_gzip(&headers)
        .then(|| Assets::get(&format!("{path}.gz")))
        .flatten();
    let encoded = gzipped.is_some();
    let mut response = gzipped.unwrap_or(file).data.into_owned().into_response();
    let h = response.headers_mut();
    if let Some(mime) = mime {
        h.insert(header::CONTENT_TYPE, mime);
    }
    if encoded {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // The app is never framed (a report form inside another site's page; the router
    // adds X-Frame-Options and nosniff to every answer) and sends no Referer (its
    // fragment holds follow-up keys). The script and style sources stay open to
    // MapLibre's workers and a configured basemap.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Whether the request's `Accept-Encoding` takes gzip (RFC 9110 §12.5.3): `gzip` or
/// its alias `x-gzip` with a quality above 0, or else `*` with one; a quality that is not
/// a number from 0 to 1 refuses.
pub(super) fn takes_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let mut accepted = true;
        for param in parts {
            if let Some((key, value)) = param.split_once('=')
                && key.trim().eq_ignore_ascii_case("q")
            {
                accepted = value
                    .trim()
                    .parse::<f32>()
                    .is_ok_and(|q| q > 0.0 && q <= 1.0);
            }
        }
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            // Named twice, the more refusing wins.
            named = Some(named.unwrap_or(true) && accepted);
        } else if name == "*" {
            any = Some(any.unwrap_or(true) && accepted);
        }
    }
    named.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_is_taken_when_offered_and_not_refused() {
        assert!(takes_gzip(&accepting(&["gzip, deflate, br, zstd"])));
        assert!(takes_gzip(&accepting(&["br", "GZIP;q=0.5"])));
        assert!(takes_gzip(&accepting(&["*"])));
        assert!(!takes_gzip(&accepting(&[])));
        assert!(!takes_gzip(&accepting(&["br, deflate"])));
        assert!(!takes_gzip(&accepting(&["gzip;q=0"])));
        assert!(!takes_gzip(&accepting(&["gzip; q=0.0, br"])));
        assert!(takes_gzip(&accepting(&["x-gzip"])));
        // `*` covers only what is not named; parameter names ignore case; a quality
        // that is no number refuses.
        assert!(!takes_gzip(&accepting(&["gzip;q=0, *"])));
        assert!(takes_gzip(&accepting(&["br;q=0, *"])));
        assert!(!takes_gzip(&accepting(&["gzip; Q=0"])));
        assert!(!takes_gzip(&accepting(&["gzip;q=NaN"])));
        assert!(!takes_gzip(&accepting(&["gzip;q=2"])));
    }
}
