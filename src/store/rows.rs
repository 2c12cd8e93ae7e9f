//! Row decoding shared by both backends. The column names and Rust types are the same
//! in both schemas (geometry arrives as WKB: a blob in SQLite, `ST_AsBinary` in
//! PostGIS), so one text serves both; a macro because sqlx rows of different databases
//! share no trait that `try_get` could be written against without a dozen bounds.

macro_rules! row_decoders {
    ($row:ty) => {
        fn grid_from_row(row: &$row) -> StoreResult<GridVersion> {
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

        fn plan_from_row(row: &$row) -> StoreResult<Plan> {
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

        fn lineage_from_row(row: &$row) -> StoreResult<LineageLink> {
            let kind: String = row.try_get("kind")?;
            Ok(LineageLink {
                from_code: row.try_get("from_code")?,
                to_code: row.try_get("to_code")?,
                kind: parse_stored(&kind)?,
                area_m2: row.try_get("area_m2")?,
            })
        }

        fn region_from_row(row: &$row) -> StoreResult<RegionRecord> {
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

        fn plan_grid_from_row(row: &$row) -> StoreResult<PlanGrid> {
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

        fn event_from_row(row: &$row) -> StoreResult<PlanEvent> {
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

        fn member_from_row(row: &$row) -> StoreResult<Member> {
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
    };
}

pub(super) use row_decoders;
