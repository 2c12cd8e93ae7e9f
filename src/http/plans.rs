//! The planner's API: upload a draft (multipart: GeoJSON, zipped Shapefile, GeoPackage,
//! with the CLI's CRS, encoding and field options), read its validation and problems,
//! replace it, move it through submit → approve → activate (or reject/return), read its
//! impact and the history of a grid or an area. A township submits, a county approves.

use super::extract::Caller;
use super::{ApiError, AppState};
use crate::app::PlanStep;
use crate::domain::{Grid, Layer};
use crate::io::mapping::FieldChoice;
use crate::store::{GridVersion, LineageLink, Plan, PlanEvent, PlanStatus};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/plans", get(list).post(upload))
        .route("/v1/plans/{id}", get(show).put(replace))
        .route("/v1/plans/{id}/validation", get(validation))
        .route("/v1/plans/{id}/problems", get(problems))
        .route("/v1/plans/{id}/grids", get(plan_grids))
        .route("/v1/plans/{id}/impact", get(impact))
        .route("/v1/plans/{id}/events", get(events))
        // Commands, not uploads: the small limit, checked before a byte is buffered.
        .route(
            "/v1/plans/{id}/mapping",
            post(remap).layer(DefaultBodyLimit::max(super::COMMAND_BODY)),
        )
        .route(
            "/v1/plans/{id}/repair",
            post(repair).layer(DefaultBodyLimit::max(super::COMMAND_BODY)),
        )
        .route(
            "/v1/plans/{id}/{step}",
            post(step).layer(DefaultBodyLimit::max(super::COMMAND_BODY)),
        )
        .route("/v1/grids/{code}/history", get(grid_history))
        .route("/v1/regions/{code}/history", get(area_history))
}

/// A plan's header, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanSummary {
    pub id: i64,
    pub scope_code: String,
    pub layer: Layer,
    pub title: String,
    pub status: String,
    pub effective_date: Option<NaiveDate>,
    pub created_by: String,
    pub error_count: i32,
    pub warning_count: i32,
}

fn summary(p: &Plan) -> PlanSummary {
    PlanSummary {
        id: p.id,
        scope_code: p.scope_code.clone(),
        layer: p.layer,
        title: p.title.clone(),
        status: p.status.as_str().to_string(),
        effective_date: p.effective_date,
        created_by: p.created_by.clone(),
        error_count: p.error_count,
        warning_count: p.warning_count,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Plans of this region and below.
    pub under: Option<String>,
    /// draft, submitted, approved, active, superseded or rejected.
    pub status: Option<String>,
}

fn parse_status(s: &str) -> Result<PlanStatus, ApiError> {
    serde_json::from_value(json!(s)).map_err(|_| {
        ApiError::bad_request(crate::msg!(
            "unknown plan status {s:?}",
            "未知的方案状态 {s:?}"
        ))
    })
}

/// Plans in the caller's jurisdiction, newest first.
#[utoipa::path(get, path = "/v1/plans", tag = "plans", operation_id = "list_plans", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = [PlanSummary])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<PlanSummary>>, ApiError> {
    let status = q.status.as_deref().map(parse_status).transpose()?;
    let plans = state
        .app
        .plans(&caller.0, q.under.as_deref(), status)
        .await?;
    Ok(Json(plans.iter().map(summary).collect()))
}

async fn readable(state: &AppState, caller: &Caller, id: i64) -> Result<Plan, ApiError> {
    Ok(state.app.plan(&caller.0, id).await?)
}

/// A plan with its validation summary.
#[utoipa::path(get, path = "/v1/plans/{id}", tag = "plans", operation_id = "show_plan", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = PlanSummary), (status = 403, description = "outside the jurisdiction"), (status = 404)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<PlanSummary>, ApiError> {
    Ok(Json(summary(&readable(&state, &caller, id).await?)))
}

/// The stored validation report (the same JSON as `wangge validate --json`).
#[utoipa::path(get, path = "/v1/plans/{id}/validation", tag = "plans", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "validation report")))]
pub async fn validation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(readable(&state, &caller, id).await?.validation))
}

/// The plan's problems as a GeoJSON FeatureCollection.
#[utoipa::path(get, path = "/v1/plans/{id}/problems", tag = "plans", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json")))]
pub async fn problems(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let plan = readable(&state, &caller, id).await?;
    let features: Vec<Value> = plan
        .validation
        .get("problems")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let geometry = match p.get("geometry") {
                        Some(g) if !g.is_null() => g.clone(),
                        _ => json!({"type": "Point", "coordinates": p.get("location").cloned().unwrap_or(Value::Null)}),
                    };
                    let mut props = p.as_object().cloned().unwrap_or_default();
                    props.remove("geometry");
                    json!({"type": "Feature", "geometry": geometry, "properties": props})
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(
        json!({"type": "FeatureCollection", "features": features}),
    ))
}

/// The plan's grids as a GeoJSON FeatureCollection (code, name, community, households),
/// for drawing the draft beside the current grids.
#[utoipa::path(get, path = "/v1/plans/{id}/grids", tag = "plans", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json")))]
pub async fn plan_grids(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let features: Vec<Value> = state
        .app
        .plan_grids(&caller.0, id)
        .await?
        .into_iter()
        .map(|g| {
            json!({
                "type": "Feature",
                "id": g.code,
                "geometry": crate::io::geojson::geometry_json(&geo_types::Geometry::MultiPolygon(g.boundary)),
                "properties": {"code": g.code, "name": g.name, "community": g.parent_code, "households": g.households},
            })
        })
        .collect();
    Ok(Json(
        json!({"type": "FeatureCollection", "features": features}),
    ))
}

/// What activating the plan would change.
#[utoipa::path(get, path = "/v1/plans/{id}/impact", tag = "plans", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "impact preview")))]
pub async fn impact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.app.plan_impact(&caller.0, id).await?))
}

/// Who moved the plan when, and why.
#[utoipa::path(get, path = "/v1/plans/{id}/events", tag = "plans", operation_id = "plan_events", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "events, oldest first")))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(
        state
            .app
            .plan_events(&caller.0, id)
            .await?
            .iter()
            .map(event_json)
            .collect(),
    ))
}

fn event_json(e: &PlanEvent) -> Value {
    json!({"from": e.from.map(|s| s.as_str()), "to": e.to.as_str(), "actor": e.actor, "at": e.at, "reason": e.reason})
}

/// An upload: its form fields, and its file streamed to a directory of its own.
struct Upload {
    fields: HashMap<String, String>,
    /// The directory (removed when dropped) and the file as received.
    file: Option<(tempfile::TempDir, std::path::PathBuf)>,
    /// The client's file name, for messages only (never a path on this server).
    file_name: String,
}

/// Form fields besides the file are short: codes, options, a title.
const FIELD_MAX: usize = 4096;

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The upload is too large",
            {
                let text = e.body_text();
                crate::msg!("{text}", "上传的文件过大：{text}")
            },
        )
    } else {
        ApiError::bad_request(crate::msg!(
            "unreadable multipart body: {}",
            "无法读取 multipart 请求体：{}",
            e.body_text()
        ))
    }
}

/// Reads the form, writing the file part to disk as it arrives. `allowed(scope)` is
/// asked as soon as a `scope` field is seen, so an upload to someone else's area is
/// refused before its file is read.
async fn read_upload(
    mut multipart: Multipart,
    allowed: impl Fn(&str) -> Result<(), ApiError>,
) -> Result<Upload, ApiError> {
    use tokio::io::AsyncWriteExt;
    let mut fields = HashMap::new();
    let mut file = None;
    let mut file_name = String::from("upload");
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if file.is_some() {
                return Err(ApiError::bad_request(crate::msg!(
                    "the form has more than one `file` part",
                    "表单中有多个 `file` 部分"
                )));
            }
            file_name = field
                .file_name()
                .map(|n| {
                    n.rsplit(['/', '\\'])
                        .next()
                        .unwrap_or(n)
                        .chars()
                        .take(64)
                        .collect()
                })
                .unwrap_or_else(|| "upload".into());
            let dir = tempfile::tempdir().map_err(|e| {
                ApiError::internal(crate::msg!(
                    "no temporary directory: {e}",
                    "没有临时目录：{e}"
                ))
            })?;
            let path = dir.path().join("upload.raw");
            let mut out = tokio::fs::File::create(&path).await.map_err(|e| {
                ApiError::internal(crate::msg!(
                    "cannot keep the upload: {e}",
                    "无法保存上传的文件：{e}"
                ))
            })?;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                out.write_all(&chunk).await.map_err(|e| {
                    ApiError::internal(crate::msg!(
                        "cannot keep the upload: {e}",
                        "无法保存上传的文件：{e}"
                    ))
                })?;
            }
            out.flush().await.map_err(|e| {
                ApiError::internal(crate::msg!(
                    "cannot keep the upload: {e}",
                    "无法保存上传的文件：{e}"
                ))
            })?;
            file = Some((dir, path));
        } else {
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                text.extend_from_slice(&chunk);
                if text.len() > FIELD_MAX {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too-large",
                        "The upload is too large",
                        crate::msg!(
                            "the form field {} is longer than {FIELD_MAX} bytes",
                            "表单字段 {} 超过 {FIELD_MAX} 字节",
                            crate::io::upload::quote(&name)
                        ),
                    ));
                }
            }
            let text = String::from_utf8(text).map_err(|_| {
                ApiError::bad_request(crate::msg!(
                    "the form field {} is not UTF-8 text",
                    "表单字段 {} 不是 UTF-8 文本",
                    crate::io::upload::quote(&name)
                ))
            })?;
            if name == "scope" {
                allowed(&text)?;
            }
            fields.insert(name, text);
        }
    }
    Ok(Upload {
        fields,
        file,
        file_name,
    })
}

/// Parses the uploaded file into grids: in a child process with limits (GDAL and
/// PROJ), or as GeoJSON in a build without them.
async fn grids_of(
    state: &AppState,
    upload: &mut Upload,
    scope: &str,
) -> Result<Vec<Grid>, ApiError> {
    let (dir, raw) = upload.file.take().ok_or_else(|| {
        ApiError::bad_request(crate::msg!(
            "the form needs a `file` part",
            "表单需要一个 `file` 部分"
        ))
    })?;
    let f = |k: &str| upload.fields.get(k).filter(|v| !v.is_empty()).cloned();
    #[cfg(feature = "proj")]
    {
        use crate::io::upload_reader::{ReadJob, ReaderLimits, read_isolated};
        let options = crate::io::gdal_files::ImportOptions {
            id_field: f("id_field"),
            name_field: f("name_field"),
            parent_field: f("parent_field"),
            households_field: f("households_field"),
            source_layer: f("source_layer"),
            crs: f("crs"),
            encoding: f("encoding"),
            display_name: Some(upload.file_name.clone()),
            asked_by: crate::io::gdal_files::OptionStyle::FormFields,
            near_lon: state.app.scope_longitude(scope).await,
            ..Default::default()
        };
        let exe = std::env::current_exe().map_err(|e| {
            ApiError::internal(crate::msg!(
                "cannot find the reader: {e}",
                "找不到文件读取程序：{e}"
            ))
        })?;
        let job = ReadJob {
            raw,
            options,
            max_unpacked_bytes: state.settings.upload_unpacked_limit_bytes,
        };
        let limits = ReaderLimits {
            memory_bytes: state
                .settings
                .upload_reader_memory_mb
                .saturating_mul(1 << 20),
            cpu_secs: state.settings.upload_reader_cpu_secs,
        };
        let file = read_isolated(&exe, &job, limits).await;
        drop(dir);
        Ok(file?.grids)
    }
    #[cfg(not(feature = "proj"))]
    {
        let _ = (state, scope);
        let bytes = tokio::fs::read(&raw).await.map_err(|e| {
            ApiError::internal(crate::msg!(
                "cannot read the upload back: {e}",
                "无法读回上传的文件：{e}"
            ))
        })?;
        drop(dir);
        let text = String::from_utf8(bytes).map_err(|_| {
            ApiError::bad_request(crate::msg!(
                "this build reads GeoJSON only, and {} is not UTF-8 text",
                "此版本只读取 GeoJSON，而 {} 不是 UTF-8 文本",
                crate::io::upload::quote(&upload.file_name)
            ))
        })?;
        let options = crate::io::ReadOptions {
            id_field: f("id_field").unwrap_or_else(|| "grid_id".into()),
            ..crate::io::ReadOptions::default()
        };
        Ok(crate::io::geojson::read_grids(&text, &options)?)
    }
}

/// Waits for the plan checker (one upload is read and checked at a time).
async fn checker_turn(state: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    state.plan_checks.acquire().await.map_err(|_| {
        ApiError::internal(crate::msg!(
            "the plan checker is shutting down",
            "方案检查程序正在关闭"
        ))
    })
}

/// The form of a plan upload (`multipart/form-data`), field by field, for the API
/// document; the handler reads the parts as they stream in.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PlanUploadForm {
    /// The boundaries: GeoJSON, a zipped Shapefile, a GeoPackage or KML.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
    /// The region code whose grids the plan replaces (upload only; a replacement keeps
    /// the plan's).
    scope: Option<String>,
    /// A title for the plan.
    title: Option<String>,
    /// `comprehensive` (default) or `dedicated`.
    layer: Option<String>,
    /// The day the plan takes effect, YYYY-MM-DD.
    effective: Option<String>,
    /// The file's coordinate system when it has none (`EPSG:4527`, `gcj02`, …).
    crs: Option<String>,
    /// The text encoding of a Shapefile's attributes (`GBK`, `UTF-8`).
    encoding: Option<String>,
    /// The field holding the 15-digit grid code.
    id_field: Option<String>,
    /// The field holding the grid's name.
    name_field: Option<String>,
    /// The field holding the community or village code.
    parent_field: Option<String>,
    /// The field holding the number of households.
    households_field: Option<String>,
    /// Which layer of a multi-layer file (GeoPackage) to read.
    source_layer: Option<String>,
}

/// Uploads a draft plan. Form fields: `file` (GeoJSON, zipped Shapefile, GeoPackage,
/// KML), `scope` (region code the plan replaces grids of), `title`, optional `layer`
/// (comprehensive), `effective` (YYYY-MM-DD), `crs`, `encoding`, `id_field`,
/// `name_field`, `parent_field`, `households_field`, `source_layer`.
#[utoipa::path(post, path = "/v1/plans", tag = "plans", operation_id = "upload_plan", security(("bearer" = [])),
    request_body(content = PlanUploadForm, content_type = "multipart/form-data", description = "file + fields"),
    responses((status = 201, body = PlanSummary), (status = 422, description = "the file or plan was rejected; nothing stored")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Multipart,
) -> Result<(StatusCode, Json<PlanSummary>), ApiError> {
    let started = std::time::Instant::now();
    // Authorised before a byte of the file is read: a planner somewhere, and of the
    // form's scope as soon as it is seen.
    state.app.may_draft_somewhere(&caller.0)?;
    let mut form = read_upload(multipart, |scope| {
        Ok(state.app.may_draft(&caller.0, scope)?)
    })
    .await?;
    let received_in = started.elapsed();
    let scope = form.fields.get("scope").cloned().ok_or_else(|| {
        ApiError::bad_request(crate::msg!(
            "the form needs a `scope` field (a region code)",
            "表单需要 `scope` 字段（区划编码）"
        ))
    })?;
    state.app.may_draft(&caller.0, &scope)?;
    let layer = match form.fields.get("layer").map(String::as_str) {
        None | Some("") | Some("comprehensive") => Layer::Comprehensive,
        Some("dedicated") => Layer::Dedicated,
        Some(other) => {
            return Err(ApiError::bad_request(crate::msg!(
                "unknown layer {other:?}",
                "未知的图层 {other:?}"
            )));
        }
    };
    let effective_date = form
        .fields
        .get("effective")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<NaiveDate>().map_err(|_| {
                ApiError::bad_request(crate::msg!(
                    "effective {s:?} is not YYYY-MM-DD",
                    "生效日期 {s:?} 不是 YYYY-MM-DD 格式"
                ))
            })
        })
        .transpose()?;
    let title = form
        .fields
        .get("title")
        .cloned()
        .unwrap_or_else(|| format!("plan for {scope}"));
    let _turn = checker_turn(&state).await?;
    let grids = grids_of(&state, &mut form, &scope).await?;
    tracing::debug!(
        grids = grids.len(),
        receive_ms = received_in.as_millis() as u64,
        read_ms = (started.elapsed() - received_in).as_millis() as u64,
        "plan upload read"
    );
    let plan = state
        .app
        .draft_plan(&caller.0, scope, layer, title, effective_date, grids)
        .await?;
    Ok((StatusCode::CREATED, Json(summary(&plan))))
}

/// Replaces a draft's grids (same form as the upload; `scope` and `layer` are the plan's).
#[utoipa::path(put, path = "/v1/plans/{id}", tag = "plans", operation_id = "replace_plan_grids", params(("id" = i64, Path)), security(("bearer" = [])),
    request_body(content = PlanUploadForm, content_type = "multipart/form-data", description = "file + options"),
    responses((status = 200, body = PlanSummary), (status = 409, description = "not a draft")))]
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    multipart: Multipart,
) -> Result<Json<PlanSummary>, ApiError> {
    let plan = state.app.plan_to_revise(&caller.0, id).await?;
    let mut form = read_upload(multipart, |_| Ok(())).await?;
    let _turn = checker_turn(&state).await?;
    let grids = grids_of(&state, &mut form, &plan.scope_code).await?;
    let plan = state.app.revise_plan(&caller.0, id, grids).await?;
    Ok(Json(summary(&plan)))
}

/// Reads a draft's grid names, households or communities from other fields of the
/// file it was uploaded with (named in its validation's `mapping.fields`) and validates
/// it again; no new upload. Body: any of `name_field`, `households_field`,
/// `parent_field`.
#[utoipa::path(post, path = "/v1/plans/{id}/mapping", tag = "plans", params(("id" = i64, Path)),
    request_body = FieldChoice, security(("bearer" = [])),
    responses((status = 200, body = PlanSummary), (status = 409, description = "not a draft"),
        (status = 400, description = "a chosen field is not one of the file's"),
        (status = 422, description = "a chosen field gives names or households the rules refuse")))]
pub async fn remap(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(choice): Json<FieldChoice>,
) -> Result<Json<PlanSummary>, ApiError> {
    // Authorised before waiting for the plan checker: refusals queue behind nobody.
    state.app.plan_to_revise(&caller.0, id).await?;
    let _turn = checker_turn(&state).await?;
    let plan = state.app.remap_plan(&caller.0, id, &choice).await?;
    Ok(Json(summary(&plan)))
}

/// A repair's outcome: the plan (a new revision unless previewed), how many grids it
/// changed, and the proposals.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepairAnswer {
    pub plan: PlanSummary,
    /// Grids whose boundary the new revision changed (0 for a preview).
    pub applied: usize,
    /// `{changed, options, grids: [{grid, area_before_m2, area_after_m2, exchanged,
    /// from_gaps_m2, dropped_m2, moved_m2, actions, before?, after?}], gaps_left, applied?}`.
    #[schema(value_type = Object)]
    pub proposals: Value,
}

/// Repair proposals for a draft: snap near-matching edges, give overlaps and narrow
/// gaps to one neighbour, make geometries valid, clip spill. With `preview` nothing
/// changes and each proposal carries its boundary before and after; otherwise the
/// proposals (all, or those for `grids`) become a new revision of the draft.
#[utoipa::path(post, path = "/v1/plans/{id}/repair", tag = "plans",
    params(("id" = i64, Path)), request_body = RepairRequest, security(("bearer" = [])),
    responses((status = 200, body = RepairAnswer), (status = 403, description = "may not draft plans here"),
        (status = 409, description = "not a draft"), (status = 400, description = "a limit out of range or an unknown grid")))]
pub async fn repair(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(request): Json<RepairRequest>,
) -> Result<Json<RepairAnswer>, ApiError> {
    // Authorised before waiting for the plan checker: refusals queue behind nobody.
    state.app.plan_to_revise(&caller.0, id).await?;
    let _turn = checker_turn(&state).await?;
    let outcome = state.app.repair_plan(&caller.0, id, &request).await?;
    Ok(Json(RepairAnswer {
        plan: summary(&outcome.plan),
        applied: outcome.applied,
        proposals: outcome.proposals,
    }))
}

pub use crate::app::{RepairRequest, StepRequest};

/// `submit`, `approve`, `reject`, `return` or `activate`.
#[utoipa::path(post, path = "/v1/plans/{id}/{step}", tag = "plans",
    params(("id" = i64, Path), ("step" = String, Path, description = "submit, approve, reject, return or activate")),
    request_body(content = StepRequest, description = "optional"),
    security(("bearer" = [])),
    responses((status = 200, body = PlanSummary), (status = 403, description = "wrong role or level"), (status = 409, description = "not allowed in the current state")))]
pub async fn step(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, step)): Path<(i64, String)>,
    body: Option<Json<StepRequest>>,
) -> Result<Json<PlanSummary>, ApiError> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let step: PlanStep = step.parse().map_err(ApiError::not_found)?;
    let plan = state.app.plan_step(&caller.0, id, step, &req).await?;
    Ok(Json(summary(&plan)))
}

/// Every version of a grid and the lineage that leads to and from it.
#[utoipa::path(get, path = "/v1/grids/{code}/history", tag = "plans", params(("code" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "versions and lineage")))]
pub async fn grid_history(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (versions, lineage): (Vec<GridVersion>, Vec<LineageLink>) =
        state.app.grid_history(&code).await?.ok_or_else(|| {
            ApiError::not_found(crate::msg!(
                "grid {code} never existed",
                "网格 {code} 从未存在过"
            ))
        })?;
    Ok(Json(json!({
        "code": code,
        "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
        "lineage": lineage,
    })))
}

fn version_json(v: &GridVersion) -> Value {
    json!({
        "name": v.name, "layer": v.layer, "community_code": v.parent_code, "households": v.households,
        "valid_from": v.valid_from, "valid_to": v.valid_to, "plan_id": v.plan_id,
        "geometry": crate::io::geojson::geometry_json(&geo_types::Geometry::MultiPolygon(v.boundary.clone())),
    })
}

/// The plans of an area, with their events: who redrew it when.
#[utoipa::path(get, path = "/v1/regions/{code}/history", tag = "plans", params(("code" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "plans with events, newest first")))]
pub async fn area_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for (plan, events) in state.app.area_history(&caller.0, &code).await? {
        let events: Vec<Value> = events.iter().map(event_json).collect();
        out.push(json!({"plan": summary(&plan), "events": events}));
    }
    Ok(Json(json!({"code": code, "plans": out})))
}
