//! The PostGIS backend, the system of record: geometry columns
//! `geometry(MultiPolygon, 4490)` with GiST indexes, which QGIS can open directly.
//! Bulk writes of plan grids go through `COPY … (FORMAT binary)`.

use super::GRIDS_CHANNEL;
use super::access::{AuditEntry, AuditQuery, NewAuditEntry, TokenRecord, UserRecord};
use super::records::*;
use super::rules::{
    check_effective_after, check_transition, first_containing, precheck_activation, refusal,
};
use super::{GridsWatch, Store, StoreError, StoreResult, shards, wkb};
use crate::domain::Grant;
use crate::domain::Layer;
use async_trait::async_trait;
use chrono::NaiveDate;
use geo_types::Coord;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The PostGIS backend.
pub struct PgStore {
    pool: PgPool,
    /// New cases, stored in batches (see [`intake`]).
    intake: intake::Intake,
}

const GRID_COLUMNS: &str = "g.id, g.code, g.name, g.layer, g.parent_code, \
     ST_AsBinary(g.boundary) AS boundary, g.households, g.attributes, g.valid_from, g.valid_to, \
     g.plan_id";
const PLAN_COLUMNS: &str = "id, scope_code, layer, title, status, effective_date, created_by, \
     created_at, updated_at, error_count, warning_count, validation";

/// Connections per process: enough for commits to share a disk flush under load
/// (`WANGGE_PG_POOL` overrides; mind the server's `max_connections` across replicas).
fn pool_size() -> u32 {
    std::env::var("WANGGE_PG_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(16)
}

impl PgStore {
    /// Connects to the database `url` names (PostGIS must be installable there).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size())
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let intake = intake::intake(pool.clone());
        Ok(PgStore { pool, intake })
    }

    /// The connection pool (for tests and benches that need raw SQL).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

mod event_feed;
mod intake;

super::rows::row_decoders!(PgRow);

/// The grid versions matching a [`Store::grids`] query with ids in `[from, to)`,
/// decoded. Owns its pool handle so that it can run as its own task.
async fn read_grids(
    pool: PgPool,
    validity: Validity,
    layer: Option<Layer>,
    like: String,
    (from, to): (i64, i64),
) -> StoreResult<Vec<GridVersion>> {
    let (current, first_day, last_day) = validity.bounds();
    let rows = sqlx::query(&format!(
        "SELECT {GRID_COLUMNS} FROM grid_versions g WHERE g.code LIKE $1 \
             AND ($2::text IS NULL OR g.layer = $2) AND CASE WHEN $3 THEN g.valid_to IS NULL \
             ELSE ($4::date IS NULL OR g.valid_to IS NULL OR g.valid_to > $4) \
             AND ($5::date IS NULL OR g.valid_from <= $5) END \
             AND g.id >= $6 AND g.id < $7"
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

async fn plan_in(tx: &mut Transaction<'_, Postgres>, id: i64) -> StoreResult<Plan> {
    let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
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
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    from: Option<PlanStatus>,
    to: PlanStatus,
    actor: &str,
    reason: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO plan_events (plan_id, from_status, to_status, actor, at, reason) \
         VALUES ($1, $2, $3, $4, $5, $6)",
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
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    layer: Layer,
    content: &PlanContent,
) -> StoreResult<()> {
    for table in ["plan_grids", "plan_lineage", "plan_bases"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE plan_id = $1"))
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    copy_plan_grids(tx, id, &content.grids).await?;
    // Whole arrays per statement: one round trip however many links a plan has.
    let from: Vec<Option<&str>> = content
        .lineage
        .iter()
        .map(|l| l.from_code.as_deref())
        .collect();
    let to: Vec<Option<&str>> = content
        .lineage
        .iter()
        .map(|l| l.to_code.as_deref())
        .collect();
    let kind: Vec<&str> = content.lineage.iter().map(|l| l.kind.as_str()).collect();
    let area: Vec<f64> = content.lineage.iter().map(|l| l.area_m2).collect();
    sqlx::query(
        "INSERT INTO plan_lineage (plan_id, from_code, to_code, kind, area_m2) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::float8[])",
    )
    .bind(id)
    .bind(&from)
    .bind(&to)
    .bind(&kind)
    .bind(&area)
    .execute(&mut **tx)
    .await?;
    let communities: Vec<&str> = content.bases.iter().map(|(c, _)| c.as_str()).collect();
    let generations: Vec<i64> = content.bases.iter().map(|(_, g)| *g).collect();
    sqlx::query(
        "INSERT INTO plan_bases (plan_id, community_code, generation) \
         SELECT $1, * FROM UNNEST($2::text[], $3::int8[])",
    )
    .bind(id)
    .bind(&communities)
    .bind(&generations)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO layer_heads (community_code, layer, generation) \
         SELECT c, $2, 0 FROM UNNEST($1::text[]) AS c ON CONFLICT DO NOTHING",
    )
    .bind(&communities)
    .bind(layer.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgis"
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await?;
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
                 VALUES ($1, $2, $3, $4, ST_GeomFromWKB($5, 4490)) ON CONFLICT (code) DO UPDATE SET \
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
            "SELECT code, name, level, parent_code, ST_AsBinary(boundary) AS boundary FROM regions \
             WHERE code LIKE $1 ORDER BY code",
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
            "SELECT {GRID_COLUMNS} FROM grid_versions g \
             WHERE g.boundary && ST_SetSRID(ST_MakePoint($1, $2), 4490) \
             AND g.layer = $3 AND g.valid_from <= $4 AND (g.valid_to IS NULL OR g.valid_to > $4) \
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
            "SELECT {GRID_COLUMNS} FROM grid_versions g WHERE g.code = $1 ORDER BY g.valid_from, g.id"
        ))
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grid_from_row).collect()
    }

    async fn grid_lineage(&self, code: &str) -> StoreResult<Vec<LineageLink>> {
        let rows = sqlx::query(
            "SELECT from_code, to_code, kind, area_m2 FROM grid_lineage \
             WHERE from_code = $1 OR to_code = $1 ORDER BY plan_id, from_code, to_code",
        )
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lineage_from_row).collect()
    }

    async fn highest_codes(&self, communities: &[String]) -> StoreResult<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT parent_code, max(code) FROM grid_versions WHERE parent_code = ANY($1) \
             GROUP BY parent_code ORDER BY parent_code",
        )
        .bind(communities)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn generations(
        &self,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c, coalesce(h.generation, 0) FROM UNNEST($1::text[]) AS c \
             LEFT JOIN layer_heads h ON h.community_code = c AND h.layer = $2 ORDER BY c",
        )
        .bind(communities)
        .bind(layer.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
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
             VALUES ($1, $2, $3, 'draft', $4, $5, $6, $6, $7, $8, $9) RETURNING id",
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
            "UPDATE plans SET error_count = $2, warning_count = $3, validation = $4, \
             updated_at = $5 WHERE id = $1 AND status = 'draft'",
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
            "SELECT {PLAN_COLUMNS} FROM plans WHERE scope_code LIKE $1 \
             AND ($2::text IS NULL OR status = $2) ORDER BY id DESC"
        ))
        .bind(super::like_prefix(under))
        .bind(status.map(PlanStatus::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    async fn plan_grids(&self, id: i64) -> StoreResult<Vec<PlanGrid>> {
        let rows = sqlx::query(
            "SELECT code, name, parent_code, ST_AsBinary(boundary) AS boundary, households, \
             attributes FROM plan_grids \
             WHERE plan_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_grid_from_row).collect()
    }

    async fn plan_lineage(&self, id: i64) -> StoreResult<Vec<LineageLink>> {
        let rows = sqlx::query(
            "SELECT from_code, to_code, kind, area_m2 FROM plan_lineage WHERE plan_id = $1 \
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
             WHERE plan_id = $1 ORDER BY id",
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
            "UPDATE plans SET status = $3, updated_at = $4, \
             effective_date = coalesce($5, effective_date) \
             WHERE id = $1 AND status = $2 AND (NOT $6 OR error_count = 0)",
        )
        .bind(id)
        .bind(change.from.as_str())
        .bind(change.to.as_str())
        .bind(crate::domain::now())
        .bind(change.effective_date)
        .bind(needs_clean)
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
        // Lock the heads in code order so racing activations queue instead of
        // deadlocking; the loser then finds the generations moved on.
        sqlx::query(
            "SELECT h.community_code FROM layer_heads h JOIN plan_bases b \
             ON b.community_code = h.community_code JOIN plans p ON p.id = b.plan_id \
             AND p.layer = h.layer WHERE b.plan_id = $1 ORDER BY h.community_code FOR UPDATE OF h",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let bumped = sqlx::query(
            "UPDATE layer_heads SET generation = generation + 1 WHERE EXISTS ( \
               SELECT 1 FROM plan_bases b JOIN plans p ON p.id = b.plan_id \
               WHERE b.plan_id = $1 AND p.status = 'approved' \
               AND b.community_code = layer_heads.community_code AND p.layer = layer_heads.layer \
               AND b.generation = layer_heads.generation)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let plan = plan_in(&mut tx, id).await?;
        let bases: i64 = sqlx::query_scalar("SELECT count(*) FROM plan_bases WHERE plan_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let effective = precheck_activation(&plan, bumped, bases)?;
        let uncovered: Option<String> = sqlx::query_scalar(super::rules::FIRST_UNCOVERED_BASE)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        super::rules::refuse_uncovered(id, uncovered)?;
        let too_early: Option<NaiveDate> = sqlx::query_scalar(
            "SELECT max(valid_from) FROM grid_versions WHERE valid_to IS NULL AND layer = $1 \
             AND parent_code IN (SELECT community_code FROM plan_bases WHERE plan_id = $2)",
        )
        .bind(plan.layer.as_str())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        check_effective_after(&plan, effective, too_early)?;
        let closed = sqlx::query(
            "UPDATE grid_versions SET valid_to = $1 WHERE valid_to IS NULL AND layer = $2 \
             AND parent_code IN (SELECT community_code FROM plan_bases WHERE plan_id = $3)",
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
             SELECT code, name, $2, parent_code, boundary, households, attributes, $3, NULL, $1 \
             FROM plan_grids WHERE plan_id = $1 ORDER BY seq",
        )
        .bind(id)
        .bind(plan.layer.as_str())
        .bind(effective)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO grid_lineage (plan_id, from_code, to_code, kind, area_m2) \
             SELECT plan_id, from_code, to_code, kind, area_m2 FROM plan_lineage WHERE plan_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE plans SET status = 'active', updated_at = $2 WHERE id = $1")
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
            "UPDATE plans SET status = 'superseded', updated_at = $2 WHERE status = 'active' \
             AND id <> $1 AND NOT EXISTS (SELECT 1 FROM grid_versions g \
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
        // Delivered at commit, to every replica listening (none on rollback).
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(GRIDS_CHANNEL)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
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
             WHERE scope_code = $1 ORDER BY id",
        )
        .bind(scope_code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn set_supervision_phone(&self, scope_code: &str, phone: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO supervision_phones (scope_code, phone) VALUES ($1, $2) \
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
                sqlx::query_scalar("SELECT phone FROM supervision_phones WHERE scope_code = $1")
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
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(GRIDS_CHANNEL).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            // PgListener reconnects by itself; an error here is a notification we may
            // have missed, so the receiver is told to check.
            loop {
                let missed = listener.recv().await.is_err();
                if tx.try_send(()).is_err() && tx.is_closed() {
                    return;
                }
                if missed {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        Ok(Some(rx))
    }
}

/// Writes a plan's grids with one binary `COPY`: one round trip for any number of rows.
async fn copy_plan_grids(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    grids: &[PlanGrid],
) -> StoreResult<()> {
    if grids.is_empty() {
        return Ok(());
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY plan_grids (plan_id, seq, code, name, parent_code, boundary, households, \
             attributes) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = copy_binary::header();
    for (seq, g) in grids.iter().enumerate() {
        copy_binary::tuple(&mut buf, 8);
        copy_binary::int8(&mut buf, id);
        copy_binary::int4(&mut buf, seq as i32);
        copy_binary::text(&mut buf, Some(&g.code));
        copy_binary::text(&mut buf, g.name.as_deref());
        copy_binary::text(&mut buf, Some(&g.parent_code));
        copy_binary::bytes(&mut buf, &wkb::encode_ewkb(&g.boundary)?);
        match g.households {
            Some(h) => copy_binary::int4(&mut buf, h),
            None => copy_binary::null(&mut buf),
        }
        let json = serde_json::to_vec(&g.attributes)
            .map_err(|e| StoreError::Corrupt(format!("attributes of {}: {e}", g.code)))?;
        copy_binary::jsonb(&mut buf, &json);
        if buf.len() > 4 << 20 {
            copy.send(std::mem::take(&mut buf)).await?;
        }
    }
    copy_binary::trailer(&mut buf);
    copy.send(buf).await?;
    copy.finish().await?;
    Ok(())
}

/// PostgreSQL's binary COPY format: a header, then per row a field count and each
/// field as a length-prefixed value in the type's binary (`recv`) representation.
mod copy_binary {
    pub fn header() -> Vec<u8> {
        let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
        b.extend_from_slice(&0i32.to_be_bytes()); // flags
        b.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        b
    }
    pub fn tuple(b: &mut Vec<u8>, fields: i16) {
        b.extend_from_slice(&fields.to_be_bytes());
    }
    pub fn null(b: &mut Vec<u8>) {
        b.extend_from_slice(&(-1i32).to_be_bytes());
    }
    pub fn bytes(b: &mut Vec<u8>, v: &[u8]) {
        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
        b.extend_from_slice(v);
    }
    pub fn int8(b: &mut Vec<u8>, v: i64) {
        bytes(b, &v.to_be_bytes());
    }
    pub fn int4(b: &mut Vec<u8>, v: i32) {
        bytes(b, &v.to_be_bytes());
    }
    pub fn text(b: &mut Vec<u8>, v: Option<&str>) {
        match v {
            Some(s) => bytes(b, s.as_bytes()),
            None => null(b),
        }
    }
    /// jsonb's binary form is a version byte (1) followed by the JSON text.
    pub fn jsonb(b: &mut Vec<u8>, json: &[u8]) {
        b.extend_from_slice(&((json.len() + 1) as i32).to_be_bytes());
        b.push(1);
        b.extend_from_slice(json);
    }
    pub fn trailer(b: &mut Vec<u8>) {
        b.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

fn sql(s: &str) -> String {
    s.to_string()
}

impl PgStore {
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
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
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

super::access_sql::access_store_impl!(PgStore, sql);
super::dispatch_sql::dispatch_store_impl!(PgStore, sql, sqlx::postgres::PgRow, true, true);
