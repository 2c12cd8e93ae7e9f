//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), and a
//! self-contained page that renders it: no script from a CDN, because municipal
//! networks are often closed.

use super::{access, cases, locate, matters, ogc, ops, plans, public, reports, tiles};
use axum::Json;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "wangge", description = "Social-governance grids: locate, plans, public grid cards, case dispatch, Open311 under /open311/v2, OGC API – Features under /ogc"),
    paths(
        ops::healthz, ops::readyz, ops::metrics,
        locate::locate_one, locate::locate_batch,
        public::card, public::locate, public::search, public::map_config,
        access::login, access::logout, access::me, access::members, access::add_member, access::audit,
        plans::list, plans::show, plans::validation, plans::problems, plans::plan_grids, plans::impact, plans::events,
        plans::upload, plans::replace, plans::remap, plans::repair, plans::step, plans::grid_history, plans::area_history,
        ogc::landing, ogc::conformance, ogc::collections, ogc::collection, ogc::items, ogc::item, ogc::queryables,
        cases::create, cases::list, cases::show, cases::events, cases::act, cases::stream, cases::stream_ticket,
        cases::overdue, cases::due_soon, cases::assess, cases::analysis, cases::density,
        matters::public_list, matters::all_versions, matters::propose, matters::decide,
        matters::departments, matters::put_department, matters::add_staff,
        matters::calendar, matters::put_day, matters::delete_day,
        reports::public_report, reports::public_status,
        reports::discovery, reports::services, reports::service, reports::post_request,
        reports::requests, reports::request,
        tiles::tile, tiles::tilejson,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "locate", description = "Dispatch: which grid, who to call"),
        (name = "public", description = "Grid cards for residents (Art. 6)"),
        (name = "plans", description = "Boundary plans: draft, validate, approve, activate"),
        (name = "members", description = "Grid members (personal data)"),
        (name = "access", description = "Login, tokens, audit log"),
        (name = "cases", description = "Dispatch (Art. 11–12): intake, workflow, deadlines, supervision, assessment"),
        (name = "matters", description = "The matters list (Art. 10), departments, working-day calendar"),
        (name = "open311", description = "Open311 GeoReport v2 for residents' apps"),
        (name = "ogc", description = "OGC API – Features (Part 1 Core, Part 2 CRS) for GIS tools"),
        (name = "map", description = "Vector tiles of grids and regions for web maps"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/openapi-3.0.json", get(|| async { Json(openapi_3_0()) }))
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}

/// The same document as OpenAPI 3.0, for clients that read no other (OWSLib looks for
/// `application/vnd.oai.openapi+json;version=3.0` on the OGC landing page; many code
/// generators too).
pub fn openapi_3_0() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    downgrade(&mut doc);
    doc["openapi"] = "3.0.3".into();
    if let Some(license) = doc
        .pointer_mut("/info/license")
        .and_then(Value::as_object_mut)
    {
        license.remove("identifier");
    }
    doc
}

/// Rewrites the JSON Schema 2020-12 forms utoipa writes into their OpenAPI 3.0
/// equivalents: `type: [T, "null"]` and a `null` branch of `oneOf` become `nullable`,
/// a `$ref` with siblings goes under `allOf`, and keywords 3.0 lacks are dropped.
fn downgrade(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(downgrade),
        Value::Object(o) => {
            for child in o.values_mut() {
                downgrade(child);
            }
            if let Some(Value::Array(types)) = o.get("type").cloned() {
                let non_null: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                if non_null.len() == 1 {
                    o.insert("type".into(), non_null[0].clone());
                    o.insert("nullable".into(), true.into());
                }
            }
            for key in ["oneOf", "anyOf"] {
                if let Some(Value::Array(branches)) = o.get(key).cloned() {
                    let is_null = |b: &Value| b.get("type").is_some_and(|t| t == "null");
                    if branches.iter().any(is_null) {
                        let rest: Vec<Value> =
                            branches.into_iter().filter(|b| !is_null(b)).collect();
                        o.remove(key);
                        o.insert("nullable".into(), true.into());
                        if rest.len() == 1 {
                            o.insert("allOf".into(), Value::Array(rest));
                        } else {
                            o.insert(key.into(), Value::Array(rest));
                        }
                    }
                }
            }
            if o.len() > 1
                && let Some(reference) = o.remove("$ref")
            {
                o.insert("allOf".into(), json!([{"$ref": reference}]));
            }
            if let Some(Value::Array(examples)) = o.remove("examples")
                && let Some(first) = examples.into_iter().next()
            {
                o.insert("example".into(), first);
            }
            if let Some(c) = o.remove("const") {
                o.insert("enum".into(), json!([c]));
            }
            for key in [
                "propertyNames",
                "contentMediaType",
                "contentEncoding",
                "$schema",
            ] {
                o.remove(key);
            }
        }
        _ => {}
    }
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wangge API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{margin:.6rem 0;padding:.5rem .8rem;border-left:4px solid #4a7;background:#f7f9f7}
.m{font-weight:600;text-transform:uppercase;display:inline-block;width:4.5rem}
.post .m{color:#b60}.put .m{color:#06b}.get .m{color:#072}
code{font-size:90%}small{color:#666}table{border-collapse:collapse;margin-top:.3rem}td{padding:0 .6rem 0 0;vertical-align:top}
</style></head><body>
<h1>wangge API</h1>
<p>The machine-readable definition is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1; <a href="/openapi-3.0.json">3.0</a> for older tools). GIS tools: <a href="/ogc">/ogc</a> (OGC API – Features).</p>
<div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  const byTag={};
  for(const [path,item] of Object.entries(doc.paths)) for(const [method,op] of Object.entries(item)){
    const tag=(op.tags||['other'])[0]; (byTag[tag]=byTag[tag]||[]).push({path,method,op});
  }
  const esc=s=>String(s??'').replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  let html='';
  for(const t of doc.tags||[]) if(byTag[t.name]){
    html+=`<h2>${esc(t.name)}</h2><p><small>${esc(t.description)}</small></p>`;
    for(const {path,method,op} of byTag[t.name]){
      const params=(op.parameters||[]).map(p=>`<tr><td><code>${esc(p.name)}</code></td><td><small>${esc(p.in)}${p.required?', required':''}</small></td><td>${esc(p.description)}</td></tr>`).join('');
      const codes=Object.entries(op.responses||{}).map(([c,r])=>`${c} ${esc(r.description)}`).join(' · ');
      html+=`<div class="op ${method}"><span class="m">${method}</span><code>${esc(path)}</code>${op.security?' 🔒':''}
        <div>${esc(op.summary||'')} <small>${esc(op.description||'')}</small></div>
        ${params?`<table>${params}</table>`:''}<div><small>${codes}</small></div></div>`;
    }
  }
  document.getElementById('ops').innerHTML=html;
});
</script></body></html>"#;
