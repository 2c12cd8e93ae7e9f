//! [`Store`] for both backends: regions, grid versions, plans and their activation,
//! members and supervision phones.

use super::SqlStore;
use super::dialect::{Dialect, ReadRow, query};
use super::dispatch::insert_audit;
use super::rows::{
    grid_from_row, lineage_from_row, member_from_row, plan_event_from_row, plan_from_row,
    plan_grid_from_row, region_from_row,
};
use crate::domain::Layer;
use crate::store::access::NewAuditEntry;
use crate::store::records::*;
use crate::store::rules::{
    FIRST_UNCOVERED_BASE, check_effective_after, check_transition, first_containing,
    precheck_activation, refusal, refuse_uncovered,
};
use crate::store::{GridsWatch, Store, StoreError, StoreResult, like_prefix, shards, wkb};
use async_trait::async_trait;
use chrono::NaiveDate;
use geo_types::Coord;
use sqlx::Transaction;
use sqlx::types::Json;

const PLAN_COLUMNS: &str = "id, scope_code, layer, title, status, effective_date, created_by, \
     created_at, updated_at, error_count, warning_count, validation";

/// The columns of a grid version `g`, its boundary as WKB.
fn grid_columns<D: Dialect>() -> String {
    format!(
        "g.id, g.code, g.name, g.layer, g.parent_code, {} AS boundary, g.households, \
         g.attributes, g.valid_from, g.valid_to, g.plan_id",
        D::geometry_out("g.boundary")
    )
}

/// The grid versions matching a [`Store::grids`] query with ids in `[from, to)`,
/// decoded. Owns its pool handle so that it can run as its own task.
async fn read_grids<D: Dialect>(
    pool: sqlx::Pool<D::DB>,
    validity: Validity,
    layer: Option<Layer>,
    like: String,
    (from, to): (i64, i64),
) -> StoreResult<Vec<GridVersion>> {
    let (current, first_day, last_day) = validity.bounds();
    let rows = query::<D>(&format!(
        "SELECT {} FROM grid_versions g WHERE g.code LIKE $1 \
             AND ($2 IS NULL OR g.layer = $2) AND CASE WHEN $3 THEN g.valid_to IS NULL \
             ELSE ($4 IS NULL OR g.valid_to IS NULL OR g.valid_to > $4) \
             AND ($5 IS NULL OR g.valid_from <= $5) END \
             AND g.id >= $6 AND g.id < $7",
        grid_columns::<D>()
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

async fn plan_in<D: Dialect>(tx: &mut Transaction<'_, D::DB>, id: i64) -> StoreResult<Plan> {
    let row = query::<D>(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound {
            what: "plan",
            id: id.to_string(),
        })?;
    plan_from_row(&row)
}

async fn record_event<D: Dialect>(
    tx: &mut Transaction<'_, D::DB>,
    id: i64,
    from: Option<PlanStatus>,
    to: PlanStatus,
    actor: &str,
    reason: Option<&str>,
) -> StoreResult<()> {
    query::<D>(
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

async fn write_content<D: Dialect>(
    tx: &mut Transaction<'_, D::DB>,
    id: i64,
    layer: Layer,
    content: &PlanContent,
) -> StoreResult<()> {
    for table in ["plan_grids", "plan_lineage", "plan_bases"] {
        query::<D>(&format!("DELETE FROM {table} WHERE plan_id = $1"))
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    D::write_plan_rows(tx, id, layer, content).await
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn migrate(&self) -> StoreResult<()> {
        D::migrate(&self.pool).await
    }

    async fn upsert_regions(&self, regions: &[RegionRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Parents first, so the foreign key holds whatever order the caller used.
        let mut sorted: Vec<&RegionRecord> = regions.iter().collect();
        sorted.sort_by_key(|r| r.code.len());
        for r in sorted {
            let boundary = r.boundary.as_ref().map(wkb::encode).transpose()?;
            query::<D>(&format!(
                "INSERT INTO regions (code, name, level, parent_code, boundary) \
                 VALUES ($1, $2, $3, $4, {}) ON CONFLICT (code) DO UPDATE SET \
                 name = excluded.name, level = excluded.level, \
                 parent_code = excluded.parent_code, boundary = excluded.boundary",
                D::geometry_in("$5")
            ))
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
        let rows = query::<D>(&format!(
            "SELECT code, name, level, parent_code, {} AS boundary FROM regions \
             WHERE code LIKE $1 ORDER BY code",
            D::geometry_out("boundary")
        ))
        .bind(like_prefix(under))
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
                let row = query::<D>("SELECT MIN(id), MAX(id) FROM grid_versions")
                    .fetch_one(pool)
                    .await?;
                Ok((row.try_get_at(0)?, row.try_get_at(1)?))
            },
            |like, range| read_grids::<D>(pool.clone(), validity, layer, like, range),
        )
        .await
    }

    async fn grid_at(
        &self,
        point: Coord<f64>,
        date: NaiveDate,
        layer: Layer,
    ) -> StoreResult<Option<GridVersion>> {
        let (join, holds) = D::bbox_holds_point();
        let rows = query::<D>(&format!(
            "SELECT {} FROM grid_versions g {join} WHERE {holds} \
             AND g.layer = $3 AND g.valid_from <= $4 AND (g.valid_to IS NULL OR g.valid_to > $4) \
             ORDER BY g.id",
            grid_columns::<D>()
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
        let rows = query::<D>(&format!(
            "SELECT {} FROM grid_versions g WHERE g.code = $1 ORDER BY g.valid_from, g.id",
            grid_columns::<D>()
        ))
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grid_from_row).collect()
    }

    async fn grid_lineage(&self, code: &str) -> StoreResult<Vec<LineageLink>> {
        let rows = query::<D>(
            "SELECT from_code, to_code, kind, area_m2 FROM grid_lineage \
             WHERE from_code = $1 OR to_code = $1 ORDER BY plan_id, from_code, to_code",
        )
        .bind(code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lineage_from_row).collect()
    }

    async fn highest_codes(&self, communities: &[String]) -> StoreResult<Vec<(String, String)>> {
        D::highest_codes(&self.pool, communities).await
    }

    async fn generations(
        &self,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        D::generations(&self.pool, layer, communities).await
    }

    async fn create_plan(
        &self,
        plan: &NewPlan,
        content: &PlanContent,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Plan> {
        let mut tx = self.pool.begin().await?;
        let now = crate::domain::now();
        let id: i64 = query::<D>(
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
        .scalar(&mut *tx)
        .await?;
        write_content::<D>(&mut tx, id, plan.layer, content).await?;
        record_event::<D>(&mut tx, id, None, PlanStatus::Draft, &plan.actor, None).await?;
        if let Some(entry) = audit {
            insert_audit::<D>(&mut tx, entry, Some(id)).await?;
        }
        let stored = plan_in::<D>(&mut tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn replace_plan_content(
        &self,
        id: i64,
        actor: &str,
        content: &PlanContent,
        note: &str,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Plan> {
        let mut tx = self.pool.begin().await?;
        let changed = query::<D>(
            "UPDATE plans SET error_count = $2, warning_count = $3, validation = $4, \
             updated_at = $5 WHERE id = $1 AND status = 'draft'",
        )
        .bind(id)
        .bind(content.error_count)
        .bind(content.warning_count)
        .bind(Json(&content.validation))
        .bind(crate::domain::now())
        .execute(&mut *tx)
        .await?;
        let plan = plan_in::<D>(&mut tx, id).await?;
        if changed == 0 {
            let (status, status_zh) = (plan.status.as_str(), plan.status.zh());
            return Err(StoreError::Refused(crate::msg!(
                "plan {id} is {status}: only a draft can be changed",
                "方案 {id} 的状态是“{status_zh}”：只有草稿才能修改"
            )));
        }
        write_content::<D>(&mut tx, id, plan.layer, content).await?;
        record_event::<D>(
            &mut tx,
            id,
            Some(PlanStatus::Draft),
            PlanStatus::Draft,
            actor,
            Some(note),
        )
        .await?;
        if let Some(entry) = audit {
            insert_audit::<D>(&mut tx, entry, None).await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    async fn plan(&self, id: i64) -> StoreResult<Plan> {
        let mut tx = self.pool.begin().await?;
        let plan = plan_in::<D>(&mut tx, id).await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn plans(
        &self,
        under: Option<&str>,
        status: Option<PlanStatus>,
    ) -> StoreResult<Vec<Plan>> {
        let rows = query::<D>(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE scope_code LIKE $1 \
             AND ($2 IS NULL OR status = $2) ORDER BY id DESC"
        ))
        .bind(like_prefix(under))
        .bind(status.map(PlanStatus::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    async fn plan_grids(&self, id: i64) -> StoreResult<Vec<PlanGrid>> {
        let rows = query::<D>(&format!(
            "SELECT code, name, parent_code, {} AS boundary, households, attributes \
             FROM plan_grids WHERE plan_id = $1 ORDER BY seq",
            D::geometry_out("boundary")
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_grid_from_row).collect()
    }

    async fn plan_lineage(&self, id: i64) -> StoreResult<Vec<LineageLink>> {
        let rows = query::<D>(
            "SELECT from_code, to_code, kind, area_m2 FROM plan_lineage WHERE plan_id = $1 \
             ORDER BY kind, from_code, to_code",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lineage_from_row).collect()
    }

    async fn plan_events(&self, id: i64) -> StoreResult<Vec<PlanEvent>> {
        let rows = query::<D>(
            "SELECT from_status, to_status, actor, at, reason FROM plan_events \
             WHERE plan_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_event_from_row).collect()
    }

    async fn transition(&self, id: i64, change: &Transition) -> StoreResult<Plan> {
        check_transition(change)?;
        let mut tx = self.pool.begin().await?;
        let needs_clean = matches!(change.to, PlanStatus::Submitted | PlanStatus::Approved);
        let changed = query::<D>(
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
        .await?;
        let plan = plan_in::<D>(&mut tx, id).await?;
        if changed == 0 {
            return Err(refusal(&plan, change));
        }
        record_event::<D>(
            &mut tx,
            id,
            Some(change.from),
            change.to,
            &change.actor,
            change.reason.as_deref(),
        )
        .await?;
        if let Some(entry) = &change.audit {
            insert_audit::<D>(&mut tx, entry, None).await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    async fn activate(
        &self,
        id: i64,
        actor: &str,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Activation> {
        let mut tx = self.pool.begin().await?;
        // A racing activation waits for these locks (PostgreSQL) or for the write lock the
        // UPDATE below takes (SQLite), and then finds the generations moved on.
        D::lock_for_activation(&mut tx, id).await?;
        let bumped = query::<D>(
            "UPDATE layer_heads SET generation = generation + 1 WHERE EXISTS ( \
               SELECT 1 FROM plan_bases b JOIN plans p ON p.id = b.plan_id \
               WHERE b.plan_id = $1 AND p.status = 'approved' \
               AND b.community_code = layer_heads.community_code AND p.layer = layer_heads.layer \
               AND b.generation = layer_heads.generation)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let plan = plan_in::<D>(&mut tx, id).await?;
        let bases: i64 = query::<D>("SELECT count(*) FROM plan_bases WHERE plan_id = $1")
            .bind(id)
            .scalar(&mut *tx)
            .await?;
        let effective = precheck_activation(&plan, bumped, bases)?;
        let uncovered: Option<String> = query::<D>(FIRST_UNCOVERED_BASE)
            .bind(id)
            .scalar_optional(&mut *tx)
            .await?;
        refuse_uncovered(id, uncovered)?;
        let too_early: Option<NaiveDate> = query::<D>(
            "SELECT max(valid_from) FROM grid_versions WHERE valid_to IS NULL AND layer = $1 \
             AND parent_code IN (SELECT community_code FROM plan_bases WHERE plan_id = $2)",
        )
        .bind(plan.layer.as_str())
        .bind(id)
        .scalar(&mut *tx)
        .await?;
        check_effective_after(&plan, effective, too_early)?;
        let closed = query::<D>(
            "UPDATE grid_versions SET valid_to = $1 WHERE valid_to IS NULL AND layer = $2 \
             AND parent_code IN (SELECT community_code FROM plan_bases WHERE plan_id = $3)",
        )
        .bind(effective)
        .bind(plan.layer.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let inserted = query::<D>(
            "INSERT INTO grid_versions (code, name, layer, parent_code, boundary, households, \
             attributes, valid_from, valid_to, plan_id) \
             SELECT code, name, $2, parent_code, boundary, households, attributes, $3, NULL, $1 \
             FROM plan_grids WHERE plan_id = $1 ORDER BY seq",
        )
        .bind(id)
        .bind(plan.layer.as_str())
        .bind(effective)
        .execute(&mut *tx)
        .await?;
        D::grids_activated(&mut tx, id).await?;
        query::<D>(
            "INSERT INTO grid_lineage (plan_id, from_code, to_code, kind, area_m2) \
             SELECT plan_id, from_code, to_code, kind, area_m2 FROM plan_lineage WHERE plan_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        query::<D>("UPDATE plans SET status = 'active', updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(crate::domain::now())
            .execute(&mut *tx)
            .await?;
        record_event::<D>(
            &mut tx,
            id,
            Some(PlanStatus::Approved),
            PlanStatus::Active,
            actor,
            None,
        )
        .await?;
        let superseded: Vec<i64> = query::<D>(
            "UPDATE plans SET status = 'superseded', updated_at = $2 WHERE status = 'active' \
             AND id <> $1 AND NOT EXISTS (SELECT 1 FROM grid_versions g \
             WHERE g.plan_id = plans.id AND g.valid_to IS NULL) RETURNING id",
        )
        .bind(id)
        .bind(crate::domain::now())
        .scalars(&mut *tx)
        .await?;
        for &s in &superseded {
            let reason = format!("replaced by plan {id}");
            record_event::<D>(
                &mut tx,
                s,
                Some(PlanStatus::Active),
                PlanStatus::Superseded,
                actor,
                Some(&reason),
            )
            .await?;
        }
        let plan = plan_in::<D>(&mut tx, id).await?;
        if let Some(entry) = audit {
            let mut entry = entry.clone();
            entry.detail["closed"] = serde_json::json!(closed);
            entry.detail["inserted"] = serde_json::json!(inserted);
            insert_audit::<D>(&mut tx, &entry, None).await?;
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
        audit: Option<&NewAuditEntry>,
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
        let rows = query::<D>(
            "SELECT id, scope_code, role, name, phone, duty_schedule FROM members \
             WHERE scope_code = $1 ORDER BY id",
        )
        .bind(scope_code)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn set_supervision_phone(&self, scope_code: &str, phone: &str) -> StoreResult<()> {
        query::<D>(
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
                query::<D>("SELECT phone FROM supervision_phones WHERE scope_code = $1")
                    .bind(code)
                    .scalar_optional(&self.pool)
                    .await?;
            if phone.is_some() {
                return Ok(phone);
            }
        }
        Ok(None)
    }

    async fn all_members(&self) -> StoreResult<Vec<Member>> {
        let rows = query::<D>(
            "SELECT id, scope_code, role, name, phone, duty_schedule FROM members \
             ORDER BY scope_code, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn supervision_phones(&self) -> StoreResult<Vec<(String, String)>> {
        let rows =
            query::<D>("SELECT scope_code, phone FROM supervision_phones ORDER BY scope_code")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get_at(0)?, row.try_get_at(1)?)))
            .collect()
    }

    async fn directory_version(&self) -> StoreResult<i64> {
        Ok(
            query::<D>("SELECT CAST(version AS BIGINT) FROM directory_version WHERE id = 1")
                .scalar(&self.pool)
                .await?,
        )
    }

    async fn grids_version(&self) -> StoreResult<i64> {
        Ok(
            query::<D>("SELECT CAST(COALESCE(SUM(generation), 0) AS BIGINT) FROM layer_heads")
                .scalar(&self.pool)
                .await?,
        )
    }

    async fn watch_grids(&self) -> StoreResult<Option<GridsWatch>> {
        D::watch_grids(&self.pool).await
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Inserts members in one transaction; with `audit`, its row too (`{id}` in its
    /// resource stands for the first member's id).
    async fn insert_members(
        &self,
        members: &[NewMember],
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(members.len());
        for member in members {
            ids.push(
                query::<D>(
                    "INSERT INTO members (scope_code, role, name, phone, duty_schedule) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(&member.scope_code)
                .bind(member.role.as_str())
                .bind(&member.name)
                .bind(&member.phone)
                .bind(Json(&member.duty_schedule))
                .scalar(&mut *tx)
                .await?,
            );
        }
        if let Some(entry) = audit {
            insert_audit::<D>(&mut tx, entry, ids.first().copied()).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }
}
