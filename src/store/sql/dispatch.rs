//! [`DispatchStore`] for both backends: departments, matter versions, the calendar,
//! cases and their events, the webhook outbox. Case times are epoch milliseconds in both
//! schemas, JSON travels as `sqlx::types::Json`, booleans as booleans (SQLite stores
//! 0/1).

use super::SqlStore;
use super::access::INSERT_AUDIT;
use super::dialect::{Dialect, ReadRow, query};
use super::rows::{case_event_from_row, case_from_row, matter_from_row, ms};
use crate::store::access::NewAuditEntry;
use crate::store::dispatch::*;
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::types::Json;

pub(crate) const CASE_COLUMNS: &str = "id, state, source, matter_code, matter_version, category, \
    description, photos, address, lon, lat, coord_sys, grid_code, community_code, township_code, \
    county_code, city_code, near_boundary, neighbour_grid, outside, reporter, reporter_name, \
    reporter_phone, reporter_email, centre_code, department_code, deadline, assigned_at, \
    extension_request, merged_into, returns, extensions, supervisions, escalations, \
    verification_failures, due_soon_noticed, overdue_noticed, reported_at, updated_at, closed_at, \
    version, follow_up_key";

pub(crate) const MATTER_COLUMNS: &str = "id, code, version, name, description, category, \
    responsible, limit_amount, limit_unit, public, valid_from, valid_to, status, proposed_by, \
    decided_by, decided_at, region_code";

pub(crate) const EVENT_COLUMNS: &str =
    "id, case_id, at, actor, kind, from_state, to_state, note, detail";

/// A value bound to a dynamically built statement.
enum Param {
    Text(String),
    Int(i64),
}

#[async_trait]
impl<D: Dialect> DispatchStore for SqlStore<D> {
    async fn apply_audited(
        &self,
        changes: &[DirectoryChange],
        audit: &[NewAuditEntry],
    ) -> StoreResult<Vec<Applied>> {
        let mut tx = D::begin_write(&self.pool).await?;
        let mut applied = Vec::with_capacity(changes.len());
        for change in changes {
            applied.push(apply_change::<D>(&mut tx, change).await?);
        }
        let id = applied.iter().find_map(|a| match a {
            Applied::Matter(m) => Some(m.id),
            Applied::Done => None,
        });
        for entry in audit {
            insert_audit::<D>(&mut tx, entry, id).await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn department_held_case(&self, code: &str) -> StoreResult<Option<i64>> {
        Ok(query::<D>(HELD_CASE)
            .bind(code)
            .scalar_optional(&self.pool)
            .await?)
    }

    async fn upsert_department(&self, d: &Department) -> StoreResult<()> {
        self.apply_audited(&[DirectoryChange::PutDepartment(d.clone())], &[])
            .await?;
        Ok(())
    }

    async fn set_webhook_secret(&self, code: &str, secret: Option<&str>) -> StoreResult<()> {
        let change = DirectoryChange::SetWebhookSecret {
            department: code.to_string(),
            secret: secret.map(str::to_string),
        };
        self.apply_audited(&[change], &[]).await?;
        Ok(())
    }

    async fn add_staff(&self, user: &str, department: &str) -> StoreResult<()> {
        let change = DirectoryChange::AddStaff {
            user: user.into(),
            department: department.into(),
        };
        self.apply_audited(&[change], &[]).await?;
        Ok(())
    }

    async fn remove_staff(&self, user: &str, department: &str) -> StoreResult<()> {
        let change = DirectoryChange::RemoveStaff {
            user: user.into(),
            department: department.into(),
        };
        self.apply_audited(&[change], &[]).await?;
        Ok(())
    }

    async fn propose_matter(&self, m: &NewMatter) -> StoreResult<MatterVersion> {
        match self
            .apply_audited(&[DirectoryChange::ProposeMatter(m.clone())], &[])
            .await?
            .pop()
        {
            Some(Applied::Matter(v)) => Ok(*v),
            _ => Err(StoreError::Refused(crate::msg!(
                "the proposal was not stored",
                "提议未能保存"
            ))),
        }
    }

    async fn decide_matter(
        &self,
        id: i64,
        admit: bool,
        actor: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<MatterVersion> {
        let change = DirectoryChange::DecideMatter {
            id,
            admit,
            actor: actor.into(),
            at,
        };
        match self.apply_audited(&[change], &[]).await?.pop() {
            Some(Applied::Matter(v)) => Ok(*v),
            _ => Err(StoreError::Refused(crate::msg!(
                "the decision was not stored",
                "决定未能保存"
            ))),
        }
    }

    async fn set_calendar_day(
        &self,
        date: chrono::NaiveDate,
        kind: Option<crate::domain::DayKind>,
        note: &str,
    ) -> StoreResult<()> {
        let change = DirectoryChange::SetCalendarDay {
            date,
            kind,
            note: note.into(),
        };
        self.apply_audited(&[change], &[]).await?;
        Ok(())
    }

    async fn departments(&self) -> StoreResult<Vec<Department>> {
        let sql =
            "SELECT code, name, kind, region_code, webhook_url FROM departments ORDER BY code";
        let rows = query::<D>(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(Department {
                    code: row.try_get("code")?,
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    region_code: row.try_get("region_code")?,
                    webhook_url: row.try_get("webhook_url")?,
                })
            })
            .collect()
    }

    async fn department_staff(&self, department: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT user_name FROM department_staff WHERE department_code = $1 ORDER BY 1";
        Ok(query::<D>(sql).bind(department).scalars(&self.pool).await?)
    }

    async fn staff_departments(&self, user: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT department_code FROM department_staff WHERE user_name = $1 ORDER BY 1";
        Ok(query::<D>(sql).bind(user).scalars(&self.pool).await?)
    }

    async fn matter_versions(&self, code: Option<&str>) -> StoreResult<Vec<MatterVersion>> {
        let sql = format!(
            "SELECT {} FROM matter_versions WHERE ($1 IS NULL OR code = $1) ORDER BY code, version",
            MATTER_COLUMNS
        );
        let rows = query::<D>(&sql).bind(code).fetch_all(&self.pool).await?;
        rows.iter().map(matter_from_row).collect()
    }

    async fn matter_version(&self, id: i64) -> StoreResult<MatterVersion> {
        let sql = format!(
            "SELECT {} FROM matter_versions WHERE id = $1",
            MATTER_COLUMNS
        );
        match query::<D>(&sql).bind(id).fetch_optional(&self.pool).await? {
            Some(row) => matter_from_row(&row),
            None => Err(StoreError::NotFound {
                what: "matter version",
                id: id.to_string(),
            }),
        }
    }

    async fn calendar_days(
        &self,
    ) -> StoreResult<Vec<(chrono::NaiveDate, crate::domain::DayKind, String)>> {
        let sql = "SELECT day, kind, note FROM calendar_days ORDER BY day";
        let rows = query::<D>(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let kind = match kind.as_str() {
                    "holiday" => crate::domain::DayKind::Holiday,
                    "workday" => crate::domain::DayKind::Workday,
                    other => return Err(StoreError::Corrupt(format!("calendar kind {other:?}"))),
                };
                Ok((row.try_get("day")?, kind, row.try_get("note")?))
            })
            .collect()
    }

    async fn create_case(
        &self,
        c: &CaseRecord,
        event: &NewCaseEvent,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(CaseRecord, bool)> {
        self.backend
            .store_case(&self.pool, c, event, idempotency)
            .await
    }

    async fn case(&self, id: i64) -> StoreResult<CaseRecord> {
        let sql = format!("SELECT {} FROM cases WHERE id = $1", CASE_COLUMNS);
        match query::<D>(&sql).bind(id).fetch_optional(&self.pool).await? {
            Some(row) => case_from_row(&row),
            None => Err(StoreError::NotFound {
                what: "case",
                id: id.to_string(),
            }),
        }
    }

    async fn update_case(
        &self,
        c: &CaseRecord,
        event: &NewCaseEvent,
        notify: Option<&str>,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<CaseRecord> {
        let mut tx = D::begin_write(&self.pool).await?;
        // A case is only ever held by a department serving its area: read under
        // the department's row lock, which a move takes too (`apply_audited`).
        if let Some(department) = &c.department_code {
            let lock = if D::ROW_LOCKS {
                "SELECT region_code FROM departments WHERE code = $1 FOR SHARE"
            } else {
                "SELECT region_code FROM departments WHERE code = $1"
            };
            let region: Option<String> = query::<D>(lock)
                .bind(department)
                .scalar_optional(&mut *tx)
                .await?;
            let area = [
                &c.grid_code,
                &c.community_code,
                &c.township_code,
                &c.county_code,
                &c.city_code,
            ]
            .into_iter()
            .find(|code| !code.is_empty())
            .map_or("", |code| code.as_str());
            if !region
                .as_ref()
                .is_some_and(|r| area.starts_with(r.as_str()))
            {
                return Err(StoreError::Conflict(crate::msg!(
                    "department {department} does not serve {area} (it moved meanwhile?): reload and retry",
                    "部门 {department} 不服务于 {area}（可能刚刚调整过）：请刷新后重试"
                )));
            }
        }
        let sql = format!(
            "UPDATE cases SET state = $3, matter_code = $4, matter_version = $5, category = $6, \
             centre_code = $7, department_code = $8, deadline = $9, assigned_at = $10, \
             extension_request = $11, merged_into = $12, returns = $13, extensions = $14, \
             supervisions = $15, escalations = $16, verification_failures = $17, \
             due_soon_noticed = $18, overdue_noticed = $19, updated_at = $20, closed_at = $21, \
             version = version + 1 WHERE id = $1 AND version = $2 RETURNING {}",
            CASE_COLUMNS
        );
        let row = query::<D>(&sql)
            .bind(c.id)
            .bind(c.version)
            .bind(c.state.as_str())
            .bind(&c.matter_code)
            .bind(c.matter_version)
            .bind(c.category.map(|k| k.as_str()))
            .bind(&c.centre_code)
            .bind(&c.department_code)
            .bind(c.deadline.map(ms))
            .bind(c.assigned_at.map(ms))
            .bind(c.extension_request.as_ref().map(Json))
            .bind(c.merged_into)
            .bind(c.returns)
            .bind(c.extensions)
            .bind(c.supervisions)
            .bind(c.escalations)
            .bind(c.verification_failures)
            .bind(c.due_soon_noticed)
            .bind(c.overdue_noticed)
            .bind(ms(event.at))
            .bind(c.closed_at.map(ms))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            drop(tx);
            let now = self.case(c.id).await?;
            let (id, was, is, state, state_zh) =
                (c.id, c.version, now.version, now.state, now.state.zh());
            return Err(StoreError::Conflict(crate::msg!(
                "case {id} changed meanwhile (version {was} → {is}, now {state}): reload and retry",
                "案件 {id} 已被他人改动（版本 {was} → {is}，现为“{state_zh}”）：请刷新后重试"
            )));
        };
        let stored = case_from_row(&row)?;
        let event_id = insert_event::<D>(&mut tx, stored.id, stored.state, event).await?;
        if let Some(department) = notify {
            let sql = "INSERT INTO webhook_deliveries (event_id, department_code, next_at) \
                 SELECT $1, code, $3 FROM departments WHERE code = $2 AND webhook_url IS NOT NULL";
            query::<D>(sql)
                .bind(event_id)
                .bind(department)
                .bind(ms(event.at))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(entry) = audit {
            insert_audit::<D>(&mut tx, entry, None).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn case_events(&self, id: i64) -> StoreResult<Vec<CaseEvent>> {
        let sql = format!(
            "SELECT {} FROM case_events WHERE case_id = $1 ORDER BY id",
            EVENT_COLUMNS
        );
        let rows = query::<D>(&sql).bind(id).fetch_all(&self.pool).await?;
        rows.iter().map(case_event_from_row).collect()
    }

    async fn cases(&self, q: &CaseQuery) -> StoreResult<Vec<CaseRecord>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        fn next(p: Param, params: &mut Vec<Param>) -> String {
            params.push(p);
            format!("${}", params.len())
        }
        if !q.under.is_empty() {
            let mut ors = Vec::new();
            for code in &q.under {
                let column = match code.len() {
                    0..=4 => "city_code",
                    5 | 6 => "county_code",
                    7..=9 => "township_code",
                    10..=12 => "community_code",
                    _ => "grid_code",
                };
                let p = next(Param::Text(code.clone()), &mut params);
                ors.push(format!("{column} = {p}"));
            }
            clauses.push(format!("({})", ors.join(" OR ")));
        }
        let list = |column: &str,
                    values: Vec<String>,
                    clauses: &mut Vec<String>,
                    params: &mut Vec<Param>| {
            if !values.is_empty() {
                let ps: Vec<String> = values
                    .into_iter()
                    .map(|v| next(Param::Text(v), params))
                    .collect();
                clauses.push(format!("{column} IN ({})", ps.join(", ")));
            }
        };
        list("centre_code", q.centres.clone(), &mut clauses, &mut params);
        list(
            "source",
            q.sources.iter().map(|s| s.as_str().to_string()).collect(),
            &mut clauses,
            &mut params,
        );
        list(
            "department_code",
            q.departments.clone(),
            &mut clauses,
            &mut params,
        );
        list(
            "matter_code",
            q.matter.iter().cloned().collect(),
            &mut clauses,
            &mut params,
        );
        list(
            "reporter",
            q.reporter.iter().cloned().collect(),
            &mut clauses,
            &mut params,
        );
        let compare =
            |sql: &str, v: Option<i64>, clauses: &mut Vec<String>, params: &mut Vec<Param>| {
                if let Some(v) = v {
                    params.push(Param::Int(v));
                    clauses.push(format!("{sql} ${}", params.len()));
                }
            };
        compare(
            "deadline <",
            q.deadline_before.map(ms),
            &mut clauses,
            &mut params,
        );
        compare(
            "reported_at >=",
            q.reported_from.map(ms),
            &mut clauses,
            &mut params,
        );
        compare(
            "reported_at <",
            q.reported_to.map(ms),
            &mut clauses,
            &mut params,
        );
        compare("id >", q.after_id, &mut clauses, &mut params);
        let order = if q.by_deadline { "deadline, id" } else { "id" };
        let limit = q.limit.clamp(1, 1_000_000);
        let columns = CASE_COLUMNS;
        let select = |clauses: &[String]| {
            let filter = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            format!("SELECT {columns} FROM cases {filter} ORDER BY {order} LIMIT {limit}")
        };
        // One branch per state, merged: each branch walks its (area, state, …)
        // index in order and stops at the limit, where one `state IN (…)` scan
        // would read and sort every match first.
        let text = match q.states.as_slice() {
            [] => select(&clauses),
            [one] => {
                let p = next(Param::Text(one.as_str().to_string()), &mut params);
                let mut c = clauses.clone();
                c.push(format!("state = {p}"));
                select(&c)
            }
            many => {
                let branches: Vec<String> = many
                    .iter()
                    .enumerate()
                    .map(|(k, state)| {
                        let p = next(Param::Text(state.as_str().to_string()), &mut params);
                        let mut c = clauses.clone();
                        c.push(format!("state = {p}"));
                        format!("SELECT * FROM ({}) b{k}", select(&c))
                    })
                    .collect();
                format!(
                    "SELECT {columns} FROM ({}) u ORDER BY {order} LIMIT {limit}",
                    branches.join(" UNION ALL ")
                )
            }
        };
        let sql = &text;
        // Not prepared for reuse: a generic plan cannot see which area or state is
        // asked for and may walk the primary key past every other case (measured:
        // 9 ms → 125 ms once many new cases sat in front); planning with the
        // actual values costs well under a millisecond.
        let mut query = query::<D>(sql).persistent(false);
        for p in params {
            query = match p {
                Param::Text(s) => query.bind(s),
                Param::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(case_from_row).collect()
    }

    async fn events_after(&self, after_id: i64, limit: i64) -> StoreResult<Vec<CaseEvent>> {
        let sql = format!(
            "SELECT {} FROM case_events WHERE id > $1 ORDER BY id LIMIT $2",
            EVENT_COLUMNS
        );
        let rows = query::<D>(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(case_event_from_row).collect()
    }

    async fn last_event_id(&self) -> StoreResult<i64> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM case_events";
        Ok(query::<D>(sql).scalar(&self.pool).await?)
    }

    async fn event_position(&self, id: i64) -> StoreResult<EventCursor> {
        D::position_of(self, id).await
    }

    async fn event_feed_start(&self) -> StoreResult<EventCursor> {
        D::feed_start(self).await
    }

    async fn events_committed_after(
        &self,
        cursor: EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(EventCursor, CaseEvent)>> {
        D::committed_after(self, cursor, limit).await
    }

    async fn events_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<CaseEvent>> {
        let sql = format!(
            "SELECT {} FROM case_events WHERE at >= $1 AND at < $2 ORDER BY id",
            EVENT_COLUMNS
        );
        let rows = query::<D>(&sql)
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(case_event_from_row).collect()
    }

    async fn has_webhook_secret(&self, code: &str) -> StoreResult<bool> {
        let sql = "SELECT COUNT(*) FROM departments WHERE code = $1 AND webhook_secret IS NOT NULL";
        let n: i64 = query::<D>(sql).bind(code).scalar(&self.pool).await?;
        Ok(n > 0)
    }

    async fn due_deliveries(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = "SELECT w.event_id, w.department_code, d.webhook_url, d.webhook_secret, w.attempts \
             FROM webhook_deliveries w JOIN departments d ON d.code = w.department_code \
             WHERE w.delivered_at IS NULL AND w.next_at <= $1 AND d.webhook_url IS NOT NULL \
             ORDER BY w.event_id LIMIT $2";
        let rows = query::<D>(sql)
            .bind(ms(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    event_id: row.try_get("event_id")?,
                    department_code: row.try_get("department_code")?,
                    url: row.try_get("webhook_url")?,
                    attempts: row.try_get("attempts")?,
                    secret: row.try_get("webhook_secret")?,
                })
            })
            .collect()
    }

    async fn finish_delivery(
        &self,
        event_id: i64,
        department: &str,
        outcome: Result<(), String>,
        retry_at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        let (delivered, error) = match outcome {
            Ok(()) => (Some(ms(crate::domain::now())), None),
            Err(e) => (None, Some(e)),
        };
        let sql = "UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = $3, \
             last_error = $4, next_at = $5 WHERE event_id = $1 AND department_code = $2";
        query::<D>(sql)
            .bind(event_id)
            .bind(department)
            .bind(delivered)
            .bind(error)
            .bind(ms(retry_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Stores one case with its first event, alone (see
/// [`DispatchStore::create_case`](DispatchStore::create_case)).
pub(crate) async fn store_one_case<D: Dialect>(
    pool: &sqlx::Pool<D::DB>,
    c: &CaseRecord,
    event: &NewCaseEvent,
    idempotency: Option<&IdempotencyKey>,
) -> StoreResult<(CaseRecord, bool)> {
    let insert = format!(
        "INSERT INTO cases (state, source, matter_code, matter_version, category, description, \
         photos, address, lon, lat, coord_sys, grid_code, community_code, township_code, \
         county_code, city_code, near_boundary, neighbour_grid, outside, reporter, \
         reporter_name, reporter_phone, reporter_email, centre_code, reported_at, updated_at, \
         idempotency_key, request_hash, follow_up_key, deadline) VALUES ($1, $2, $3, $4, $5, \
         $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, \
         $24, $25, $25, $26, $27, $28, $29) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {}",
        CASE_COLUMNS
    );
    // Where the database allows writes in a WITH clause, the case and its
    // first event are one statement: one round trip, one implicit transaction.
    let text = if D::WRITES_IN_WITH {
        format!(
            "WITH c AS ({insert}), e AS (INSERT INTO case_events (case_id, at, actor, kind, \
             from_state, to_state, note, detail) SELECT id, $30, $31, $32, $33, state, $34, $35 \
             FROM c) SELECT * FROM c"
        )
    } else {
        insert
    };
    let sql = &text;
    let query = query::<D>(sql)
        .bind(c.state.as_str())
        .bind(c.source.as_str())
        .bind(&c.matter_code)
        .bind(c.matter_version)
        .bind(c.category.map(|k| k.as_str()))
        .bind(&c.description)
        .bind(Json(&c.photos))
        .bind(&c.address)
        .bind(c.lon)
        .bind(c.lat)
        .bind(&c.coord_sys)
        .bind(&c.grid_code)
        .bind(&c.community_code)
        .bind(&c.township_code)
        .bind(&c.county_code)
        .bind(&c.city_code)
        .bind(c.near_boundary)
        .bind(&c.neighbour_grid)
        .bind(c.outside)
        .bind(&c.reporter)
        .bind(&c.reporter_name)
        .bind(&c.reporter_phone)
        .bind(&c.reporter_email)
        .bind(&c.centre_code)
        .bind(ms(c.reported_at))
        .bind(idempotency.map(|i| i.key.as_str()))
        .bind(idempotency.map(|i| i.request_hash.as_str()))
        .bind(&c.follow_up_key)
        .bind(c.deadline.map(ms));
    if D::WRITES_IN_WITH {
        let row = query
            .bind(ms(event.at))
            .bind(&event.actor)
            .bind(&event.kind)
            .bind(event.from_state.map(|s| s.as_str()))
            .bind(&event.note)
            .bind(Json(&event.detail))
            .fetch_optional(pool)
            .await?;
        return match row {
            Some(row) => Ok((case_from_row(&row)?, true)),
            None => Ok((replayed_case::<D>(pool, idempotency).await?, false)),
        };
    }
    let mut tx = pool.begin().await?;
    let Some(row) = query.fetch_optional(&mut *tx).await? else {
        drop(tx);
        return Ok((replayed_case::<D>(pool, idempotency).await?, false));
    };
    let stored = case_from_row(&row)?;
    insert_event::<D>(&mut tx, stored.id, stored.state, event).await?;
    tx.commit().await?;
    Ok((stored, true))
}

/// The case an idempotency key stored before, if the request is the same.
pub(crate) async fn replayed_case<D: Dialect>(
    pool: &sqlx::Pool<D::DB>,
    idempotency: Option<&IdempotencyKey>,
) -> StoreResult<CaseRecord> {
    let key = idempotency.map(|i| i.key.as_str()).unwrap_or_default();
    let sql = format!(
        "SELECT {}, request_hash FROM cases WHERE idempotency_key = $1",
        CASE_COLUMNS
    );
    let row = query::<D>(&sql).bind(key).fetch_one(pool).await?;
    let hash: Option<String> = row.try_get("request_hash")?;
    if hash.as_deref() != idempotency.map(|i| i.request_hash.as_str()) {
        return Err(StoreError::Refused(crate::msg!(
            "this Idempotency-Key was used for a different request",
            "此 Idempotency-Key 已用于另一个请求"
        )));
    }
    case_from_row(&row)
}

/// A case the department has ever held: any event naming it (each event
/// records the department the case had), or a case it holds now.
/// (`->>` reads a JSON member on both backends, and is what the index holds.)
const HELD_CASE: &str = "SELECT case_id FROM case_events WHERE detail->>'department' = $1 \
    UNION ALL SELECT id FROM cases WHERE department_code = $1 LIMIT 1";

/// Applies one directory change inside `tx`.
async fn apply_change<'c, D: Dialect>(
    tx: &mut sqlx::Transaction<'c, D::DB>,
    change: &DirectoryChange,
) -> StoreResult<Applied> {
    match change {
        DirectoryChange::PutDepartment(d) => {
            // A department that has held cases keeps its region: its cases
            // belong to the area it served. Checked under the department's row
            // lock, which every case write to it shares (`update_case`), so an
            // assignment racing a move is either seen here or refused there.
            let lock = if D::ROW_LOCKS {
                "SELECT region_code FROM departments WHERE code = $1 FOR UPDATE"
            } else {
                "SELECT region_code FROM departments WHERE code = $1"
            };
            let old: Option<String> = query::<D>(lock)
                .bind(&d.code)
                .scalar_optional(&mut **tx)
                .await?;
            if old.as_ref().is_some_and(|r| *r != d.region_code) {
                let held: Option<i64> = query::<D>(HELD_CASE)
                    .bind(&d.code)
                    .scalar_optional(&mut **tx)
                    .await?;
                if let Some(case) = held {
                    return Err(StoreError::Refused(crate::msg!(
                        "{} has held cases (case {case} among them): it keeps its region",
                        "{} 已有经办案件（其中包括案件 {case}）：其区域不能更改",
                        d.code
                    )));
                }
            }
            let sql = "INSERT INTO departments (code, name, kind, region_code, webhook_url) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE SET \
                 name = excluded.name, kind = excluded.kind, region_code = excluded.region_code, \
                 webhook_url = excluded.webhook_url";
            let done = query::<D>(sql)
                .bind(&d.code)
                .bind(&d.name)
                .bind(&d.kind)
                .bind(&d.region_code)
                .bind(&d.webhook_url)
                .execute(&mut **tx)
                .await;
            match done {
                Ok(_) => Ok(Applied::Done),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::Conflict(crate::msg!(
                        "{} already has a department of kind {}",
                        "{} 已有 {} 类部门",
                        d.region_code,
                        d.kind
                    )))
                }
                Err(e) => Err(e.into()),
            }
        }
        DirectoryChange::SetWebhookSecret { department, secret } => {
            let sql = "UPDATE departments SET webhook_secret = $2 WHERE code = $1";
            query::<D>(sql)
                .bind(department)
                .bind(secret)
                .execute(&mut **tx)
                .await?;
            Ok(Applied::Done)
        }
        DirectoryChange::AddStaff { user, department } => {
            let sql = "INSERT INTO department_staff (user_name, department_code) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING";
            match query::<D>(sql)
                .bind(user)
                .bind(department)
                .execute(&mut **tx)
                .await
            {
                Ok(_) => Ok(Applied::Done),
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    Err(StoreError::NotFound {
                        what: "user or department",
                        id: format!("{user} / {department}"),
                    })
                }
                Err(e) => Err(e.into()),
            }
        }
        DirectoryChange::RemoveStaff { user, department } => {
            let sql = "DELETE FROM department_staff WHERE user_name = $1 AND department_code = $2";
            query::<D>(sql)
                .bind(user)
                .bind(department)
                .execute(&mut **tx)
                .await?;
            Ok(Applied::Done)
        }
        DirectoryChange::ProposeMatter(m) => {
            let sql = format!(
                "INSERT INTO matter_versions (code, version, name, description, category, responsible, \
                 limit_amount, limit_unit, public, valid_from, valid_to, status, proposed_by, region_code) \
                 VALUES ($1, (SELECT COALESCE(MAX(version), 0) + 1 FROM matter_versions WHERE code = $1), \
                 $2, $3, $4, $5, $6, $7, $8, $9, $10, 'proposed', $11, $12) RETURNING {}",
                MATTER_COLUMNS
            );
            let row = query::<D>(&sql)
                .bind(&m.code)
                .bind(&m.name)
                .bind(&m.description)
                .bind(m.category.as_str())
                .bind(Json(&m.responsible))
                .bind(i32::try_from(m.time_limit.amount).unwrap_or(i32::MAX))
                .bind(m.time_limit.unit.as_str())
                .bind(m.public)
                .bind(m.valid_from)
                .bind(m.valid_to)
                .bind(&m.proposed_by)
                .bind(&m.region_code)
                .fetch_one(&mut **tx)
                .await?;
            Ok(Applied::Matter(Box::new(matter_from_row(&row)?)))
        }
        DirectoryChange::DecideMatter {
            id,
            admit,
            actor,
            at,
        } => {
            let sql = format!(
                "UPDATE matter_versions SET status = $2, decided_by = $3, decided_at = $4 \
                 WHERE id = $1 AND status = 'proposed' RETURNING {}",
                MATTER_COLUMNS
            );
            let row = query::<D>(&sql)
                .bind(id)
                .bind(if *admit { "admitted" } else { "refused" })
                .bind(actor)
                .bind(ms(*at))
                .fetch_optional(&mut **tx)
                .await?;
            let Some(row) = row else {
                let sql = "SELECT status FROM matter_versions WHERE id = $1";
                let status: Option<String> =
                    query::<D>(sql).bind(id).scalar_optional(&mut **tx).await?;
                return match status {
                    Some(status) => {
                        let status_zh = match status.as_str() {
                            "admitted" => "已同意",
                            "refused" => "已驳回",
                            other => other,
                        };
                        Err(StoreError::Refused(crate::msg!(
                            "matter version {id} is {status} already, not proposed",
                            "事项版本 {id} 已是“{status_zh}”，不在待审议状态"
                        )))
                    }
                    None => Err(StoreError::NotFound {
                        what: "matter version",
                        id: id.to_string(),
                    }),
                };
            };
            let decided = matter_from_row(&row)?;
            if *admit {
                // Earlier admitted versions end where this one starts.
                let sql = "UPDATE matter_versions SET valid_to = $3 WHERE code = $1 AND id <> $2 \
                     AND status = 'admitted' AND valid_from < $3 AND (valid_to IS NULL OR valid_to > $3)";
                query::<D>(sql)
                    .bind(&decided.matter.code)
                    .bind(id)
                    .bind(decided.matter.valid_from)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(Applied::Matter(Box::new(decided)))
        }
        DirectoryChange::SetCalendarDay { date, kind, note } => {
            let kind = kind.map(|k| match k {
                crate::domain::DayKind::Holiday => "holiday",
                crate::domain::DayKind::Workday => "workday",
            });
            match kind {
                Some(kind) => {
                    let sql = "INSERT INTO calendar_days (day, kind, note) VALUES ($1, $2, $3) \
                         ON CONFLICT (day) DO UPDATE SET kind = excluded.kind, note = excluded.note";
                    query::<D>(sql)
                        .bind(date)
                        .bind(kind)
                        .bind(note)
                        .execute(&mut **tx)
                        .await?;
                }
                None => {
                    let sql = "DELETE FROM calendar_days WHERE day = $1";
                    query::<D>(sql).bind(date).execute(&mut **tx).await?;
                }
            }
            Ok(Applied::Done)
        }
    }
}

/// Appends an audit row inside `tx`; `{id}` in its resource becomes `id`.
pub(crate) async fn insert_audit<'c, D: Dialect>(
    tx: &mut sqlx::Transaction<'c, D::DB>,
    entry: &NewAuditEntry,
    id: Option<i64>,
) -> StoreResult<()> {
    let sql = INSERT_AUDIT;
    let resource = match id {
        Some(id) => entry.resource.replace("{id}", &id.to_string()),
        None => entry.resource.clone(),
    };
    query::<D>(sql)
        .bind(crate::domain::now())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(resource)
        .bind(&entry.scope_code)
        .bind(Json(&entry.detail))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn insert_event<'c, D: Dialect>(
    tx: &mut sqlx::Transaction<'c, D::DB>,
    case_id: i64,
    to_state: crate::domain::CaseState,
    e: &NewCaseEvent,
) -> StoreResult<i64> {
    let sql = "INSERT INTO case_events (case_id, at, actor, kind, from_state, to_state, note, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
    Ok(query::<D>(sql)
        .bind(case_id)
        .bind(ms(e.at))
        .bind(&e.actor)
        .bind(&e.kind)
        .bind(e.from_state.map(|s| s.as_str()))
        .bind(to_state.as_str())
        .bind(&e.note)
        .bind(Json(&e.detail))
        .scalar(&mut **tx)
        .await?)
}
