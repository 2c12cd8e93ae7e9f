//! Open311 GeoReport v2 speaks two formats, chosen by the path's suffix (`.xml` or
//! `.json`, JSON without one), and answers errors as `[{code, description}]` (or
//! `<errors><error>…`). The handlers in `reports` write JSON; this middleware turns
//! every answer under `/open311` into what the spec shows, so each handler is written
//! once and no error, not even the router's own, leaves in another shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Answers larger than this are not rewritten (a page is at most 1 000 requests of
/// a few hundred bytes each).
const LARGEST_ANSWER: usize = 64 << 20;

/// Rewrites answers under `/open311`: problem documents become Open311 error lists,
/// and `.xml` paths get XML.
pub async fn open311_answers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if !path.starts_with("/open311") {
        return next.run(request).await;
    }
    let xml = path.ends_with(".xml");
    let response = next.run(request).await;
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let problem = content_type.starts_with("application/problem+json");
    let json = problem || content_type.starts_with("application/json");
    if !json || (!problem && !xml) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, LARGEST_ANSWER).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if problem {
        let detail = value
            .get("detail")
            .or_else(|| value.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string();
        value = json!([{"code": parts.status.as_u16(), "description": detail}]);
    }
    let (body, kind) = if xml {
        let root = root_of(&path, parts.status);
        (to_xml(root, &value), "text/xml; charset=utf-8")
    } else {
        (value.to_string(), "application/json")
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The document element of an answer, as the spec's examples name it.
fn root_of(path: &str, status: StatusCode) -> &'static str {
    if status.is_client_error() || status.is_server_error() {
        return "errors";
    }
    let last = path.rsplit('/').next().unwrap_or("");
    let parent = path.rsplit('/').nth(1).unwrap_or("");
    match (parent, last) {
        (_, "discovery.xml") => "discovery",
        (_, "services.xml") => "services",
        ("services", _) => "service_definition",
        _ => "service_requests",
    }
}

/// The element each member of a list is written as.
fn member_of(list: &str) -> &'static str {
    match list {
        "errors" => "error",
        "services" => "service",
        "service_requests" => "request",
        "endpoints" => "endpoint",
        "formats" => "format",
        "notes" => "note",
        "attributes" => "attribute",
        "values" => "value",
        _ => "item",
    }
}

/// A JSON answer as Open311 XML under `root`.
///
/// ```
/// let xml = wangge::http::open311::to_xml(
///     "errors",
///     &serde_json::json!([{"code": 404, "description": "no <such> request"}]),
/// );
/// assert_eq!(
///     xml,
///     "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<errors><error><code>404</code>\
///      <description>no &lt;such&gt; request</description></error></errors>\n"
/// );
/// ```
pub fn to_xml(root: &str, value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    element(&mut out, root, value);
    out.push('\n');
    out
}

fn element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        Value::Array(items) => {
            open(out, name);
            let member = member_of(name);
            for item in items {
                element(out, member, item);
            }
            close(out, name);
        }
        Value::Object(fields) => {
            open(out, name);
            for (key, v) in fields {
                element(out, key, v);
            }
            close(out, name);
        }
        Value::String(s) => {
            open(out, name);
            escape(out, s);
            close(out, name);
        }
        Value::Bool(b) => {
            open(out, name);
            out.push_str(if *b { "true" } else { "false" });
            close(out, name);
        }
        Value::Number(n) => {
            open(out, name);
            out.push_str(&n.to_string());
            close(out, name);
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Text as XML 1.0 character data: markup escaped, and the control characters XML
/// cannot carry at all (a resident may paste anything) dropped.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_take_the_element_names_of_the_spec() {
        let xml = to_xml(
            "service_requests",
            &json!([{"service_request_id": "7", "notes": [{"type": "opened"}], "address_id": null}]),
        );
        // Fields come in the order of the JSON object (serde_json's, by name).
        assert!(xml.contains(
            "<service_requests><request><address_id/><notes><note><type>opened</type></note>\
             </notes><service_request_id>7</service_request_id></request></service_requests>"
        ));
    }

    #[test]
    fn control_characters_xml_cannot_carry_are_dropped() {
        let mut out = String::new();
        escape(&mut out, "a\u{0}b\u{1b}c\td & e");
        assert_eq!(out, "abc\td &amp; e");
    }

    #[test]
    fn each_path_has_its_document_element() {
        let ok = StatusCode::OK;
        assert_eq!(root_of("/open311/v2/services.xml", ok), "services");
        assert_eq!(
            root_of("/open311/v2/services/WG-001.xml", ok),
            "service_definition"
        );
        assert_eq!(
            root_of("/open311/v2/requests/3.xml", ok),
            "service_requests"
        );
        assert_eq!(
            root_of("/open311/v2/requests.xml", StatusCode::CREATED),
            "service_requests"
        );
        assert_eq!(root_of("/open311/v2/discovery.xml", ok), "discovery");
        assert_eq!(
            root_of("/open311/v2/requests.xml", StatusCode::TOO_MANY_REQUESTS),
            "errors"
        );
    }
}
