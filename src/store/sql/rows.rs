//! Rows decoded into records: one text for both backends (the column names and Rust
//! types are the same in both schemas; geometry arrives as WKB, a blob in SQLite and
//! `ST_AsBinary` in PostGIS; case times are epoch milliseconds).

use super::dialect::ReadRow;
use crate::domain::TimeLimit;
use crate::store::dispatch::*;
use crate::store::records::*;
use crate::store::{StoreResult, wkb};
use sqlx::types::Json;

/// Milliseconds since the epoch (how case times are stored).
pub(crate) fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant `ms` milliseconds after the epoch.
pub(crate) fn from_ms(ms: i64) -> StoreResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| crate::store::StoreError::Corrupt(format!("time {ms} ms is out of range")))
}

pub(crate) fn grid_from_row<R: ReadRow>(row: &R) -> StoreResult<GridVersion> {
    let boundary: Vec<u8> = row.try_get("boundary")?;
    let layer: String = row.try_get("layer")?;
    let Json(attributes): Json<serde_json::Map<String, serde_json::Value>> =
        row.try_get("attributes")?;
    Ok(GridVersion {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        layer: parse_layer(&layer)?,
        parent_code: row.try_get("parent_code")?,
        boundary: wkb::decode(&boundary)?,
        households: row.try_get("households")?,
        attributes,
        valid_from: row.try_get("valid_from")?,
        valid_to: row.try_get("valid_to")?,
        plan_id: row.try_get("plan_id")?,
    })
}

pub(crate) fn plan_from_row<R: ReadRow>(row: &R) -> StoreResult<Plan> {
    let layer: String = row.try_get("layer")?;
    let status: String = row.try_get("status")?;
    let Json(validation): Json<serde_json::Value> = row.try_get("validation")?;
    Ok(Plan {
        id: row.try_get("id")?,
        scope_code: row.try_get("scope_code")?,
        layer: parse_layer(&layer)?,
        title: row.try_get("title")?,
        status: parse_stored(&status)?,
        effective_date: row.try_get("effective_date")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        error_count: row.try_get("error_count")?,
        warning_count: row.try_get("warning_count")?,
        validation,
    })
}

pub(crate) fn lineage_from_row<R: ReadRow>(row: &R) -> StoreResult<LineageLink> {
    let kind: String = row.try_get("kind")?;
    Ok(LineageLink {
        from_code: row.try_get("from_code")?,
        to_code: row.try_get("to_code")?,
        kind: parse_stored(&kind)?,
        area_m2: row.try_get("area_m2")?,
    })
}

pub(crate) fn region_from_row<R: ReadRow>(row: &R) -> StoreResult<RegionRecord> {
    let level: String = row.try_get("level")?;
    let boundary: Option<Vec<u8>> = row.try_get("boundary")?;
    Ok(RegionRecord {
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        level: parse_level(&level)?,
        parent_code: row.try_get("parent_code")?,
        boundary: boundary.as_deref().map(wkb::decode).transpose()?,
    })
}

pub(crate) fn plan_grid_from_row<R: ReadRow>(row: &R) -> StoreResult<PlanGrid> {
    let boundary: Vec<u8> = row.try_get("boundary")?;
    let Json(attributes) = row.try_get("attributes")?;
    Ok(PlanGrid {
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        parent_code: row.try_get("parent_code")?,
        boundary: wkb::decode(&boundary)?,
        households: row.try_get("households")?,
        attributes,
    })
}

pub(crate) fn plan_event_from_row<R: ReadRow>(row: &R) -> StoreResult<PlanEvent> {
    let from: Option<String> = row.try_get("from_status")?;
    let to: String = row.try_get("to_status")?;
    Ok(PlanEvent {
        from: from.as_deref().map(parse_stored).transpose()?,
        to: parse_stored(&to)?,
        actor: row.try_get("actor")?,
        at: row.try_get("at")?,
        reason: row.try_get("reason")?,
    })
}

pub(crate) fn member_from_row<R: ReadRow>(row: &R) -> StoreResult<Member> {
    let role: String = row.try_get("role")?;
    let Json(duty_schedule) = row.try_get("duty_schedule")?;
    Ok(Member {
        id: row.try_get("id")?,
        scope_code: row.try_get("scope_code")?,
        role: parse_stored(&role)?,
        name: row.try_get("name")?,
        phone: row.try_get("phone")?,
        duty_schedule,
    })
}

/// A REAL column: SQLite's RETURNING hands back a whole number of degrees
/// (118.0) as an INTEGER, which f64 alone refuses to decode.
fn degrees<R: ReadRow>(row: &R, name: &str) -> StoreResult<f64> {
    match row.try_get::<f64>(name) {
        Ok(v) => Ok(v),
        Err(_) => Ok(row.try_get::<i64>(name)? as f64),
    }
}

pub(crate) fn case_from_row<R: ReadRow>(row: &R) -> StoreResult<CaseRecord> {
    let opt_ms = |name: &str| -> StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
        let v: Option<i64> = row.try_get(name)?;
        v.map(from_ms).transpose()
    };
    let state: String = row.try_get("state")?;
    let source: String = row.try_get("source")?;
    let category: Option<String> = row.try_get("category")?;
    let Json(photos): Json<Vec<String>> = row.try_get("photos")?;
    let extension: Option<Json<serde_json::Value>> = row.try_get("extension_request")?;
    Ok(CaseRecord {
        id: row.try_get("id")?,
        state: parse_stored(&state)?,
        source: parse_stored(&source)?,
        matter_code: row.try_get("matter_code")?,
        matter_version: row.try_get("matter_version")?,
        category: category.as_deref().map(parse_stored).transpose()?,
        description: row.try_get("description")?,
        photos,
        address: row.try_get("address")?,
        lon: degrees(row, "lon")?,
        lat: degrees(row, "lat")?,
        coord_sys: row.try_get("coord_sys")?,
        grid_code: row.try_get("grid_code")?,
        community_code: row.try_get("community_code")?,
        township_code: row.try_get("township_code")?,
        county_code: row.try_get("county_code")?,
        city_code: row.try_get("city_code")?,
        near_boundary: row.try_get("near_boundary")?,
        neighbour_grid: row.try_get("neighbour_grid")?,
        outside: row.try_get("outside")?,
        reporter: row.try_get("reporter")?,
        reporter_name: row.try_get("reporter_name")?,
        reporter_phone: row.try_get("reporter_phone")?,
        reporter_email: row.try_get("reporter_email")?,
        centre_code: row.try_get("centre_code")?,
        department_code: row.try_get("department_code")?,
        deadline: opt_ms("deadline")?,
        assigned_at: opt_ms("assigned_at")?,
        extension_request: extension.map(|Json(v)| v),
        merged_into: row.try_get("merged_into")?,
        returns: row.try_get("returns")?,
        extensions: row.try_get("extensions")?,
        supervisions: row.try_get("supervisions")?,
        escalations: row.try_get("escalations")?,
        verification_failures: row.try_get("verification_failures")?,
        due_soon_noticed: row.try_get("due_soon_noticed")?,
        overdue_noticed: row.try_get("overdue_noticed")?,
        reported_at: from_ms(row.try_get("reported_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
        closed_at: opt_ms("closed_at")?,
        follow_up_key: row.try_get("follow_up_key")?,
        version: row.try_get("version")?,
    })
}

pub(crate) fn case_event_from_row<R: ReadRow>(row: &R) -> StoreResult<CaseEvent> {
    let from: Option<String> = row.try_get("from_state")?;
    let to: String = row.try_get("to_state")?;
    let Json(detail): Json<serde_json::Value> = row.try_get("detail")?;
    Ok(CaseEvent {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        at: from_ms(row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        from_state: from.as_deref().map(parse_stored).transpose()?,
        to_state: parse_stored(&to)?,
        note: row.try_get("note")?,
        detail,
    })
}

pub(crate) fn matter_from_row<R: ReadRow>(row: &R) -> StoreResult<MatterVersion> {
    let category: String = row.try_get("category")?;
    let unit: String = row.try_get("limit_unit")?;
    let status: String = row.try_get("status")?;
    let Json(responsible): Json<std::collections::BTreeMap<crate::domain::CentreLevel, String>> =
        row.try_get("responsible")?;
    let amount: i32 = row.try_get("limit_amount")?;
    let decided_at: Option<i64> = row.try_get("decided_at")?;
    Ok(MatterVersion {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        matter: NewMatter {
            code: row.try_get("code")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            category: parse_stored(&category)?,
            responsible,
            time_limit: TimeLimit {
                amount: amount.max(0) as u32,
                unit: parse_stored(&unit)?,
            },
            public: row.try_get("public")?,
            valid_from: row.try_get("valid_from")?,
            valid_to: row.try_get("valid_to")?,
            proposed_by: row.try_get("proposed_by")?,
            region_code: row.try_get("region_code")?,
        },
        status: parse_stored(&status)?,
        decided_by: row.try_get("decided_by")?,
        decided_at: decided_at.map(from_ms).transpose()?,
    })
}
