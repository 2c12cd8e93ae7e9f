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

/// The app at `/`, gzip when asked; the fallback of the whole service.
pub fn routes() -> Router<AppState> {
    Router::new()
        .fallback(asset_or_not_found)
        .layer(super::compression())
}

/// `/` and the app's files; every other unknown path is a problem 404.
async fn asset_or_not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::not_found(crate::msg!("no such endpoint", "没有这个接口"))
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = Assets::get(path) else {
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

/// Whether the request's `Accept-Encoding` takes gzip (`gzip;q=0` refuses it).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
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
    }
}
