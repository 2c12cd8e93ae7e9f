//! The embedded store: one SQLite file. Boundaries are WKB blobs with an R*Tree of their
//! bounding boxes; dates are ISO 8601 text, which sorts like the dates it names.

use super::access::{AuditEntry, AuditQuery, NewAuditEntry, TokenRecord, UserRecord};
use super::records::*;
use super::rules::{
    check_effective_after, check_transition, first_containing, precheck_activation, refusal,
};
use super::{GridsWatch, Store, StoreError, StoreResult, shards, wkb};
use crate::domain::Grant;
use crate::domain::Layer;
use crate::spatial::geom;
use async_trait::async_trait;
use chrono::NaiveDate;
use geo_types::Coord;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::path::Path;
use std::time::Duration;

/// Rows per multi-row INSERT (12 parameters each, well under SQLite's 32 766).
const ROWS_PER_STATEMENT: usize = 500;

/// The SQLite backend.
pub struct SqliteStore {
    pool: SqlitePool,
}

const GRID_COLUMNS: &str = "g.id, g.code, g.name, g.layer, g.parent_code, g.boundary, \
     g.households, g.attributes, g.valid_from, g.valid_to, g.plan_id";
const PLAN_COLUMNS: &str = "id, scope_code, layer, title, status, effective_date, created_by, \
     created_at, updated_at, error_count, warning_count, validation";

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`, in WAL mode with full
    /// synchronous commits: an acknowledged write survives a crash.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }
}

super::rows::row_decoders!(SqliteRow);

/// The grid versions matching a [`Store::grids`] query with ids in `[from, to)`,
/// decoded. Owns its pool handle so that it can run as its own task.
async fn read_grids(
    pool: SqlitePool,
    validity: Validity,
    layer: Option<Layer>,
    like: String,
    (from, to): (i64, i64),
) -> StoreResult<Vec<GridVersion>> {
    let (current, first_day, last_day) = validity.bounds();
    let rows = sqlx::query(&format!(
        "SELECT {GRID_COLUMNS} FROM grid_versions g WHERE g.code LIKE ?1 \
             AND (?2 IS NULL OR g.layer = ?2) AND CASE WHEN ?3 THEN g.valid_to IS NULL \
             ELSE (?4 IS NULL OR g.valid_to IS NULL OR g.valid_to > ?4) \
             AND (?5 IS NULL OR g.valid_from <= ?5) END \
             AND g.id >= ?6 AND g.id < ?7"
    ))
    .bind(like)
    .bind(layer.map(Layer::as_str))
    .bind(current)
    .bind(first_day)
    .bind(last_day)
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await?;
    rows.iter().map(grid_from_row).collect()
}

async fn plan_in(tx: &mut Transaction<'_, Sqlite>, id: i64) -> StoreResult<Plan> {
    let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = ?1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })?;
    plan_from_row(&row)
}

async fn record_event(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    from: Option<PlanStatus>,
    to: PlanStatus,
    actor: &str,
    reason: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO plan_events (plan_id, from_status, to_status, actor, at, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(id)
    .bind(from.map(PlanStatus::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(crate::domain::now())
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_content(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    layer: Layer,
    content: &PlanContent,
) -> StoreResult<()> {
    for table in ["plan_grids", "plan_lineage", "plan_bases"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE plan_id = ?1"))
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    // Many rows per statement: each statement is a round trip to sqlx's worker thread.
    let rows: Vec<(usize, &PlanGrid, Vec<u8>, geo_types::Rect<f64>)> = content
        .grids
        .iter()
        .enumerate()
        .map(|(seq, g)| {
            let bbox = geom::bounds(&g.boundary).ok_or_else(|| {
                StoreError::Corrupt(format!("grid {} has an empty boundary", g.code))
            })?;
            Ok((seq, g, wkb::encode(&g.boundary)?, bbox))
        })
        .collect::<StoreResult<_>>()?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO plan_grids (plan_id, seq, code, name, parent_code, boundary, \
             households, attributes, min_x, max_x, min_y, max_y) ",
        );
        insert.push_values(chunk, |mut row, (seq, g, wkb, bbox)| {
            row.push_bind(id)
                .push_bind(*seq as i64)
                .push_bind(&g.code)
                .push_bind(&g.name)
                .push_bind(&g.parent_code)
                .push_bind(wkb.as_slice())
                .push_bind(g.households)
                .push_bind(Json(&g.attributes))
                .push_bind(bbox.min().x)
                .push_bind(bbox.max().x)
                .push_bind(bbox.min().y)
                .push_bind(bbox.max().y);
        });
        insert.build().execute(&mut **tx).await?;
    }
    for chunk in content.lineage.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO plan_lineage (plan_id, from_code, to_code, kind, area_m2) ",
        );
        insert.push_values(chunk, |mut row, l| {
            row.push_bind(id)
                .push_bind(&l.from_code)
                .push_bind(&l.to_code)
                .push_bind(l.kind.as_str())
                .push_bind(l.area_m2);
        });
        insert.build().execute(&mut **tx).await?;
    }
    for (community, generation) in &content.bases {
        sqlx::query(
            "INSERT INTO plan_bases (plan_id, community_code, generation) VALUES (?1, ?2, ?3)",
        )
        .bind(id)
        .bind(community)
        .bind(generation)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO layer_heads (community_code, layer, generation) VALUES (?1, ?2, 0) \
             ON CONFLICT DO NOTHING",
        )
        .bind(community)
        .bind(layer.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    async fn upsert_regions(&self, regions: &[RegionRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Parents first, so the foreign key holds whatever order the caller used.
        let mut sorted: Vec<&RegionRecord> = regions.iter().collect();
        sorted.sort_by_key(|r| r.code.len());
        for r in sorted {
            let boundary = r.boundary.as_ref().map(wkb::encode).transpose()?;
            sqlx::query(
                "INSERT INTO regions (code, name, level, parent_code, boundary) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (code) DO UPDATE SET \
                 name = excluded.name, level = excluded.level, \
                 parent_code = excluded.parent_code, boundary = excluded.boundary",
            )
            .bind(&r.code)
            .bind(&r.name)
            .bind(r.level.as_str())
            .bind(&r.parent_code)
            .bind(boundary)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn regions(&self, under: Option<&str>) -> StoreResult<Vec<RegionRecord>> {
        let rows = sqlx::query(
            "SELECT code, name, level, parent_code, boundary FROM regions \
             WHERE code LIKE ?1 ORDER BY code",
        )
        .bind(super::like_prefix(under))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(region_from_row).collect()
    }

    async fn grids(
        &self,
        validity: Validity,
        layer: Option<Layer>,
        under: Option<&str>,
    ) -> StoreResult<Vec<GridVersion>> {
        let pool = &self.pool;
        shards::grids(
            self,
            under,
            || async {
                Ok(sqlx::query_as("SELECT MIN(id), MAX(id) FROM grid_versions")
                    .fetch_one(pool)
                    .await?)
            },
            |like, range| read_grids(pool.clone(), validity, layer, like, range),
        )
        .await
    }

    async fn grid_at(
        &self,
        point: Coord<f64>,
        date: NaiveDate,
        layer: Layer,
    ) -> StoreResult<Option<GridVersion>> {
        let rows = sqlx::query(&format!(
            "SELECT {GRID_COLUMNS} FROM grid_versions g JOIN grid_versions_bbox b ON b.id = g.id \
             WHERE b.min_x <= ?1 AND b.max_x >= ?1 AND b.min_y <= ?2 AND b.max_y >= ?2 \
             AND g.layer = ?3 AND g.valid_from <= ?4 AND (g.valid_to IS NULL OR g.valid_to > ?4) \
             ORDER BY g.id"
        ))
        .bind(point.x)
        .bind(point.y)
        .bind(layer.as_str())
        .bind(date)
        .fetch_all(&self.pool)
        .await?;
        let candidates = rows
            .iter()
            .map(grid_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(first_containing(candidates, point))
    }

    async fn grid_history(&self, code: &str) -> StoreResult<Vec<GridVersion>> {
        let rows = sqlx::query(&format!(
            "SELECT {GRID_COLUMNS} FROM grid_versions g WHERE g.code = ?1 ORDER BY g.valid_from, g.id"
        ))
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grid_from_row).collect()
    }

    async fn grid_lineage(&self, code: &str) -> StoreResult<Vec<LineageLink>> {
        let rows = sqlx::query(
            "SELECT from_code, to_code, kind, area_m2 FROM grid_lineage \
             WHERE from_code = ?1 OR to_code = ?1 ORDER BY plan_id, from_code, to_code",
        )
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lineage_from_row).collect()
    }

    async fn highest_codes(&self, communities: &[String]) -> StoreResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for c in communities {
            let max: Option<String> =
                sqlx::query_scalar("SELECT max(code) FROM grid_versions WHERE parent_code = ?1")
                    .bind(c)
                    .fetch_one(&self.pool)
                    .await?;
            if let Some(m) = max {
                out.push((c.clone(), m));
            }
        }
        Ok(out)
    }

    async fn generations(
        &self,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut out = Vec::with_capacity(communities.len());
        for c in communities {
            let g: Option<i64> = sqlx::query_scalar(
                "SELECT generation FROM layer_heads WHERE community_code = ?1 AND layer = ?2",
            )
            .bind(c)
            .bind(layer.as_str())
            .fetch_optional(&self.pool)
            .await?;
            out.push((c.clone(), g.unwrap_or(0)));
        }
        Ok(out)
    }

    async fn create_plan(
        &self,
        plan: &NewPlan,
        content: &PlanContent,
        audit: Option<&crate::store::NewAuditEntry>,
    ) -> StoreResult<Plan> {
        let mut tx = self.pool.begin().await?;
        let now = crate::domain::now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO plans (scope_code, layer, title, status, effective_date, created_by, \
             created_at, updated_at, error_count, warning_count, validation) \
             VALUES (?1, ?2, ?3, 'draft', ?4, ?5, ?6, ?6, ?7, ?8, ?9) RETURNING id",
        )
        .bind(&plan.scope_code)
        .bind(plan.layer.as_str())
        .bind(&plan.title)
        .bind(plan.effective_date)
        .bind(&plan.actor)
        .bind(now)
        .bind(content.error_count)
        .bind(content.warning_count)
        .bind(Json(&content.validation))
        .fetch_one(&mut *tx)
        .await?;
        write_content(&mut tx, id, plan.layer, content).await?;
        record_event(&mut tx, id, None, PlanStatus::Draft, &plan.actor, None).await?;
        if let Some(entry) = audit {
            insert_audit(&mut tx, entry, Some(id)).await?;
        }
        let stored = plan_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn replace_plan_content(
        &self,
        id: i64,
        actor: &str,
        content: &PlanContent,
        note: &str,
        audit: Option<&crate::store::NewAuditEntry>,
    ) -> StoreResult<Plan> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE plans SET error_count = ?2, warning_count = ?3, validation = ?4, \
             updated_at = ?5 WHERE id = ?1 AND status = 'draft'",
        )
        .bind(id)
        .bind(content.error_count)
        .bind(content.warning_count)
        .bind(Json(&content.validation))
        .bind(crate::domain::now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let plan = plan_in(&mut tx, id).await?;
        if changed == 0 {
            let (status, status_zh) = (plan.status.as_str(), plan.status.zh());
            return Err(StoreError::Refused(crate::msg!(
                "plan {id} is {status}: only a draft can be changed",
                "方案 {id} 的状态是“{status_zh}”：只有草稿才能修改"
            )));
        }
        write_content(&mut tx, id, plan.layer, content).await?;
        record_event(
            &mut tx,
            id,
            Some(PlanStatus::Draft),
            PlanStatus::Draft,
            actor,
            Some(note),
        )
        .await?;
        if let Some(entry) = audit {
            insert_audit(&mut tx, entry, None).await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    async fn plan(&self, id: i64) -> StoreResult<Plan> {
        let mut tx = self.pool.begin().await?;
        let plan = plan_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn plans(
        &self,
        under: Option<&str>,
        status: Option<PlanStatus>,
    ) -> StoreResult<Vec<Plan>> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE scope_code LIKE ?1 \
             AND (?2 IS NULL OR status = ?2) ORDER BY id DESC"
        ))
        .bind(super::like_prefix(under))
        .bind(status.map(PlanStatus::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    async fn plan_grids(&self, id: i64) -> StoreResult<Vec<PlanGrid>> {
        let rows = sqlx::query(
            "SELECT code, name, parent_code, boundary, households, attributes FROM plan_grids \
             WHERE plan_id = ?1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_grid_from_row).collect()
    }

    async fn plan_lineage(&self, id: i64) -> StoreResult<Vec<LineageLink>> {
        let rows = sqlx::query(
            "SELECT from_code, to_code, kind, area_m2 FROM plan_lineage WHERE plan_id = ?1 \
             ORDER BY kind, from_code, to_code",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lineage_from_row).collect()
    }

    async fn plan_events(&self, id: i64) -> StoreResult<Vec<PlanEvent>> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, actor, at, reason FROM plan_events \
             WHERE plan_id = ?1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn transition(&self, id: i64, change: &Transition) -> StoreResult<Plan> {
        check_transition(change)?;
        let mut tx = self.pool.begin().await?;
        let needs_clean = matches!(change.to, PlanStatus::Submitted | PlanStatus::Approved);
        let changed = sqlx::query(
            "UPDATE plans SET status = ?3, updated_at = ?4, \
             effective_date = coalesce(?5, effective_date) \
             WHERE id = ?1 AND status = ?2 AND (?6 = 0 OR error_count = 0)",
        )
        .bind(id)
        .bind(change.from.as_str())
        .bind(change.to.as_str())
        .bind(crate::domain::now())
        .bind(change.effective_date)
        .bind(needs_clean as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let plan = plan_in(&mut tx, id).await?;
        if changed == 0 {
            return Err(refusal(&plan, change));
        }
        record_event(
            &mut tx,
            id,
            Some(change.from),
            change.to,
            &change.actor,
            change.reason.as_deref(),
        )
        .await?;
        if let Some(entry) = &change.audit {
            insert_audit(&mut tx, entry, None).await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    async fn activate(
        &self,
        id: i64,
        actor: &str,
        audit: Option<&crate::store::NewAuditEntry>,
    ) -> StoreResult<Activation> {
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so SQLite takes the write lock now: a racing
        // activation waits here and then finds the generations moved on.
        let bumped = sqlx::query(
            "UPDATE layer_heads SET generation = generation + 1 WHERE EXISTS ( \
               SELECT 1 FROM plan_bases b JOIN plans p ON p.id = b.plan_id \
               WHERE b.plan_id = ?1 AND p.status = 'approved' \
               AND b.community_code = layer_heads.community_code AND p.layer = layer_heads.layer \
               AND b.generation = layer_heads.generation)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let plan = plan_in(&mut tx, id).await?;
        let bases: i64 = sqlx::query_scalar("SELECT count(*) FROM plan_bases WHERE plan_id = ?1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let effective = precheck_activation(&plan, bumped, bases)?;
        let uncovered: Option<String> =
            sqlx::query_scalar(&super::rules::FIRST_UNCOVERED_BASE.replace("$1", "?1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        super::rules::refuse_uncovered(id, uncovered)?;
        let too_early: Option<NaiveDate> = sqlx::query_scalar(
            "SELECT max(valid_from) FROM grid_versions WHERE valid_to IS NULL AND layer = ?1 \
             AND parent_code IN (SELECT community_code FROM plan_bases WHERE plan_id = ?2)",
        )
        .bind(plan.layer.as_str())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        check_effective_after(&plan, effective, too_early)?;
        let closed = sqlx::query(
            "UPDATE grid_versions SET valid_to = ?1 WHERE valid_to IS NULL AND layer = ?2 \
             AND parent_code IN (SELECT community_code FROM plan_bases WHERE plan_id = ?3)",
        )
        .bind(effective)
        .bind(plan.layer.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let inserted = sqlx::query(
            "INSERT INTO grid_versions (code, name, layer, parent_code, boundary, households, \
             attributes, valid_from, valid_to, plan_id) \
             SELECT code, name, ?2, parent_code, boundary, households, attributes, ?3, NULL, ?1 \
             FROM plan_grids WHERE plan_id = ?1 ORDER BY seq",
        )
        .bind(id)
        .bind(plan.layer.as_str())
        .bind(effective)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Bounding boxes of the new versions for grid_at.
        sqlx::query(
            "INSERT INTO grid_versions_bbox (id, min_x, max_x, min_y, max_y) \
             SELECT g.id, p.min_x, p.max_x, p.min_y, p.max_y FROM grid_versions g \
             JOIN plan_grids p ON p.plan_id = g.plan_id AND p.code = g.code WHERE g.plan_id = ?1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO grid_lineage (plan_id, from_code, to_code, kind, area_m2) \
             SELECT plan_id, from_code, to_code, kind, area_m2 FROM plan_lineage WHERE plan_id = ?1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE plans SET status = 'active', updated_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(crate::domain::now())
            .execute(&mut *tx)
            .await?;
        record_event(
            &mut tx,
            id,
            Some(PlanStatus::Approved),
            PlanStatus::Active,
            actor,
            None,
        )
        .await?;
        let superseded: Vec<i64> = sqlx::query_scalar(
            "UPDATE plans SET status = 'superseded', updated_at = ?2 WHERE status = 'active' \
             AND id <> ?1 AND NOT EXISTS (SELECT 1 FROM grid_versions g \
             WHERE g.plan_id = plans.id AND g.valid_to IS NULL) RETURNING id",
        )
        .bind(id)
        .bind(crate::domain::now())
        .fetch_all(&mut *tx)
        .await?;
        for &s in &superseded {
            let reason = format!("replaced by plan {id}");
            record_event(
                &mut tx,
                s,
                Some(PlanStatus::Active),
                PlanStatus::Superseded,
                actor,
                Some(&reason),
            )
            .await?;
        }
        let plan = plan_in(&mut tx, id).await?;
        if let Some(entry) = audit {
            let mut entry = entry.clone();
            entry.detail["closed"] = serde_json::json!(closed);
            entry.detail["inserted"] = serde_json::json!(inserted);
            insert_audit(&mut tx, &entry, None).await?;
        }
        tx.commit().await?;
        Ok(Activation {
            plan,
            closed,
            inserted,
            superseded,
        })
    }

    async fn add_member(
        &self,
        member: &NewMember,
        audit: Option<&crate::store::NewAuditEntry>,
    ) -> StoreResult<i64> {
        self.insert_members(std::slice::from_ref(member), audit)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("INSERT returned no id".into()))
    }

    async fn add_members(&self, members: &[NewMember]) -> StoreResult<Vec<i64>> {
        self.insert_members(members, None).await
    }

    async fn members(&self, scope_code: &str) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT id, scope_code, role, name, phone, duty_schedule FROM members \
             WHERE scope_code = ?1 ORDER BY id",
        )
        .bind(scope_code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn set_supervision_phone(&self, scope_code: &str, phone: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO supervision_phones (scope_code, phone) VALUES (?1, ?2) \
             ON CONFLICT (scope_code) DO UPDATE SET phone = excluded.phone",
        )
        .bind(scope_code)
        .bind(phone)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn supervision_phone(&self, scope_codes: &[String]) -> StoreResult<Option<String>> {
        for code in scope_codes {
            let phone: Option<String> =
                sqlx::query_scalar("SELECT phone FROM supervision_phones WHERE scope_code = ?1")
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?;
            if phone.is_some() {
                return Ok(phone);
            }
        }
        Ok(None)
    }

    async fn all_members(&self) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT id, scope_code, role, name, phone, duty_schedule FROM members \
             ORDER BY scope_code, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn supervision_phones(&self) -> StoreResult<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT scope_code, phone FROM supervision_phones ORDER BY scope_code")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn directory_version(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar(
                "SELECT CAST(version AS BIGINT) FROM directory_version WHERE id = 1",
            )
            .fetch_one(&self.pool)
            .await?,
        )
    }

    async fn grids_version(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(generation), 0) AS BIGINT) FROM layer_heads",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn watch_grids(&self) -> StoreResult<Option<GridsWatch>> {
        Ok(None)
    }
}

/// SQLite's positional parameters are `?n`; the shared statements are written `$n`.
impl SqliteStore {
    /// [`DispatchStore::event_feed_start`](crate::store::DispatchStore::event_feed_start):
    /// the newest id. SQLite has one writer, which draws an event's id inside its
    /// transaction, so events commit in id order.
    async fn feed_start(&self) -> StoreResult<crate::store::EventCursor> {
        let id = crate::store::DispatchStore::last_event_id(self).await?;
        Ok(crate::store::EventCursor { horizon: 0, id })
    }

    /// [`DispatchStore::event_position`](crate::store::DispatchStore::event_position).
    async fn position_of(&self, id: i64) -> StoreResult<crate::store::EventCursor> {
        Ok(crate::store::EventCursor { horizon: 0, id })
    }

    /// [`DispatchStore::events_committed_after`](crate::store::DispatchStore::events_committed_after):
    /// ids in order suffice here (see `feed_start`).
    async fn committed_after(
        &self,
        cursor: crate::store::EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(crate::store::EventCursor, crate::store::CaseEvent)>> {
        let events = crate::store::DispatchStore::events_after(self, cursor.id, limit).await?;
        Ok(events
            .into_iter()
            .map(|e| {
                (
                    crate::store::EventCursor {
                        horizon: 0,
                        id: e.id,
                    },
                    e,
                )
            })
            .collect())
    }

    /// [`DispatchStore::create_case`](crate::store::DispatchStore::create_case): one
    /// transaction per case (SQLite has a single writer; see `postgres/intake.rs` for
    /// the batched PostGIS path).
    async fn store_case(
        &self,
        case: &crate::store::CaseRecord,
        event: &crate::store::NewCaseEvent,
        idempotency: Option<&crate::store::IdempotencyKey>,
    ) -> StoreResult<(crate::store::CaseRecord, bool)> {
        store_one_case(&self.pool, case, event, idempotency).await
    }
}

fn sql(s: &str) -> String {
    s.replace('$', "?")
}

impl SqliteStore {
    /// Inserts members in one transaction; with `audit`, its row too (`{id}` in its
    /// resource stands for the first member's id).
    async fn insert_members(
        &self,
        members: &[NewMember],
        audit: Option<&crate::store::NewAuditEntry>,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(members.len());
        for member in members {
            ids.push(
                sqlx::query_scalar(
                    "INSERT INTO members (scope_code, role, name, phone, duty_schedule) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                )
                .bind(&member.scope_code)
                .bind(member.role.as_str())
                .bind(&member.name)
                .bind(&member.phone)
                .bind(Json(&member.duty_schedule))
                .fetch_one(&mut *tx)
                .await?,
            );
        }
        if let Some(entry) = audit {
            insert_audit(&mut tx, entry, ids.first().copied()).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }
}

super::access_sql::access_store_impl!(SqliteStore, sql);
super::dispatch_sql::dispatch_store_impl!(SqliteStore, sql, sqlx::sqlite::SqliteRow, false, false);
