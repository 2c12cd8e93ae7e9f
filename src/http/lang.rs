//! The caller's language for the words of an answer: `Accept-Language` read once per
//! request and kept in a task-local, so an error built anywhere below a handler speaks
//! it without every handler passing it on.

use crate::domain::Lang;

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the request being answered (English outside a request).
pub fn current() -> Lang {
    LANG.try_with(|l| *l).unwrap_or_default()
}

/// Says on an answer which language its words are in, and that caches must keep one
/// copy per `Accept-Language`.
pub fn mark_language(headers: &mut axum::http::HeaderMap, lang: Lang) {
    use axum::http::{HeaderValue, header};
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.tag()),
    );
    headers.append(header::VARY, HeaderValue::from_static("accept-language"));
}

/// Runs the rest of the stack in the language the request's `Accept-Language` prefers.
pub(crate) async fn with_caller_language(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let lang = request
        .headers()
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::from_accept_language)
        .unwrap_or_default();
    LANG.scope(lang, next.run(request)).await
}
