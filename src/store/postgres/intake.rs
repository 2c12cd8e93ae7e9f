//! Case intake on PostGIS by group commit: submissions that arrive together are stored
//! by one statement — all their cases and first events, one transaction, one WAL flush.
//! Each commit costs the server a flush and a round trip; sharing them is what lets
//! a 2-core machine take thousands of durable submissions a second.

use super::PgDialect;
use crate::store::dispatch::{CaseRecord, IdempotencyKey, NewCaseEvent};
use crate::store::group_commit::{Flush, GroupCommit};
use crate::store::sql::{CASE_COLUMNS, case_from_row, ms, replayed_case, store_one_case};
use crate::store::{StoreError, StoreResult};
use sqlx::Row;
use sqlx::postgres::PgPool;
use std::sync::Arc;

/// Batches under way at once: enough to keep a commit in flight while the next batch
/// gathers, few enough to leave the pool's other connections to readers.
const FLUSHES: usize = 4;
/// Submissions per statement at most (35 arrays of this length are bound).
const BATCH: usize = 128;

/// A submission waiting for its batch.
pub(super) struct PendingCase {
    case: CaseRecord,
    event: NewCaseEvent,
    idempotency: Option<IdempotencyKey>,
}

/// What a submission is answered: the stored case, and whether this call stored it.
type Stored = StoreResult<(CaseRecord, bool)>;

pub(super) type Intake = Arc<GroupCommit<PendingCase, Stored>>;

/// The intake of a store over `pool`.
pub(super) fn intake(pool: PgPool) -> Intake {
    let flush: Flush<PendingCase, Stored> = Arc::new(move |batch| {
        let pool = pool.clone();
        Box::pin(async move { store_batch(&pool, batch).await })
    });
    GroupCommit::new(FLUSHES, BATCH, flush)
}

/// [`DispatchStore::create_case`](crate::store::DispatchStore::create_case) through
/// the group commit: answered once the batch holding it has committed.
pub(super) async fn store_case(
    intake: &Intake,
    case: &CaseRecord,
    event: &NewCaseEvent,
    idempotency: Option<&IdempotencyKey>,
) -> Stored {
    let pending = PendingCase {
        case: case.clone(),
        event: event.clone(),
        idempotency: idempotency.cloned(),
    };
    // `None`: the flush task died (a panic, or the runtime shutting down); the case
    // may or may not be stored, which a retry with the same Idempotency-Key settles.
    intake
        .submit(pending)
        .await
        .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
}

async fn store_batch(pool: &PgPool, batch: Vec<PendingCase>) -> Vec<Stored> {
    if batch.len() > 1 {
        match insert_together(pool, &batch).await {
            Ok(inserted) => {
                let mut answers = Vec::with_capacity(batch.len());
                for (pending, stored) in batch.iter().zip(inserted) {
                    answers.push(match stored {
                        Some(case) => Ok((case, true)),
                        // Its key was taken, by an earlier request or by one in this batch.
                        None => replayed_case::<PgDialect>(pool, pending.idempotency.as_ref())
                            .await
                            .map(|case| (case, false)),
                    });
                }
                return answers;
            }
            // Nothing of the batch was stored (one statement): store each alone, so that
            // only a submission that is itself at fault fails.
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "batched case insert failed; storing one by one")
            }
        }
    }
    let mut answers = Vec::with_capacity(batch.len());
    for p in &batch {
        answers.push(
            store_one_case::<PgDialect>(pool, &p.case, &p.event, p.idempotency.as_ref()).await,
        );
    }
    answers
}

/// Inserts every case of `batch` (those whose idempotency key is free) with its first
/// event; answers, in batch order, the stored case or `None` for a taken key.
async fn insert_together(
    pool: &PgPool,
    batch: &[PendingCase],
) -> StoreResult<Vec<Option<CaseRecord>>> {
    // The input is materialised once (it is read three times), so each row draws its id
    // once; the events join their case by that id, and so does the answer, with the
    // row's position in the batch.
    let sql = format!(
        "WITH input AS MATERIALIZED (
           SELECT nextval('cases_id_seq') AS id, t.*
           FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::float8[], $10::float8[], $11::text[], $12::text[],
                       $13::text[], $14::text[], $15::text[], $16::text[], $17::bool[], $18::text[],
                       $19::bool[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
                       $25::int8[], $26::text[], $27::text[], $28::int8[], $29::text[], $30::text[],
                       $31::text[], $32::text[], $33::text[], $34::text[], $35::int8[])
                WITH ORDINALITY AS t(state, source, matter_code, matter_version, category,
                  description, photos, address, lon, lat, coord_sys, grid_code, community_code,
                  township_code, county_code, city_code, near_boundary, neighbour_grid, outside,
                  reporter, reporter_name, reporter_phone, reporter_email, centre_code,
                  reported_at, idempotency_key, request_hash, event_at, event_actor, event_kind,
                  event_from_state, event_note, event_detail, follow_up_key, deadline, position)
         ), c AS (
           INSERT INTO cases (id, state, source, matter_code, matter_version, category,
             description, photos, address, lon, lat, coord_sys, grid_code, community_code,
             township_code, county_code, city_code, near_boundary, neighbour_grid, outside,
             reporter, reporter_name, reporter_phone, reporter_email, centre_code, reported_at,
             updated_at, idempotency_key, request_hash, follow_up_key, deadline)
           SELECT id, state, source, matter_code, matter_version, category, description,
             photos::jsonb, address, lon, lat, coord_sys, grid_code, community_code,
             township_code, county_code, city_code, near_boundary, neighbour_grid, outside,
             reporter, reporter_name, reporter_phone, reporter_email, centre_code, reported_at,
             reported_at, idempotency_key, request_hash, follow_up_key, deadline
           FROM input ORDER BY position
           ON CONFLICT (idempotency_key) DO NOTHING
           RETURNING {CASE_COLUMNS}
         ), e AS (
           INSERT INTO case_events (case_id, at, actor, kind, from_state, to_state, note, detail)
           SELECT c.id, i.event_at, i.event_actor, i.event_kind, i.event_from_state, c.state,
             i.event_note, i.event_detail::jsonb
           FROM c JOIN input i ON i.id = c.id ORDER BY i.position
         )
         SELECT i.position, c.* FROM c JOIN input i ON i.id = c.id"
    );
    let cases = || batch.iter().map(|p| &p.case);
    let events = || batch.iter().map(|p| &p.event);
    let text = |f: fn(&CaseRecord) -> &str| cases().map(f).map(str::to_owned).collect::<Vec<_>>();
    let optional = |f: fn(&CaseRecord) -> Option<&str>| {
        cases().map(|c| f(c).map(str::to_owned)).collect::<Vec<_>>()
    };
    let mut photos = Vec::with_capacity(batch.len());
    let mut details = Vec::with_capacity(batch.len());
    for p in batch {
        photos.push(serde_json::to_string(&p.case.photos).map_err(json_error)?);
        details.push(serde_json::to_string(&p.event.detail).map_err(json_error)?);
    }
    let rows = sqlx::query(&sql)
        .bind(text(|c| c.state.as_str()))
        .bind(text(|c| c.source.as_str()))
        .bind(optional(|c| c.matter_code.as_deref()))
        .bind(cases().map(|c| c.matter_version).collect::<Vec<_>>())
        .bind(optional(|c| c.category.map(|k| k.as_str())))
        .bind(text(|c| &c.description))
        .bind(photos)
        .bind(optional(|c| c.address.as_deref()))
        .bind(cases().map(|c| c.lon).collect::<Vec<_>>())
        .bind(cases().map(|c| c.lat).collect::<Vec<_>>())
        .bind(text(|c| &c.coord_sys))
        .bind(text(|c| &c.grid_code))
        .bind(text(|c| &c.community_code))
        .bind(text(|c| &c.township_code))
        .bind(text(|c| &c.county_code))
        .bind(text(|c| &c.city_code))
        .bind(cases().map(|c| c.near_boundary).collect::<Vec<_>>())
        .bind(optional(|c| c.neighbour_grid.as_deref()))
        .bind(cases().map(|c| c.outside).collect::<Vec<_>>())
        .bind(optional(|c| c.reporter.as_deref()))
        .bind(optional(|c| c.reporter_name.as_deref()))
        .bind(optional(|c| c.reporter_phone.as_deref()))
        .bind(optional(|c| c.reporter_email.as_deref()))
        .bind(text(|c| &c.centre_code))
        .bind(cases().map(|c| ms(c.reported_at)).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|p| p.idempotency.as_ref().map(|i| i.key.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|p| p.idempotency.as_ref().map(|i| i.request_hash.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(events().map(|e| ms(e.at)).collect::<Vec<_>>())
        .bind(events().map(|e| e.actor.clone()).collect::<Vec<_>>())
        .bind(events().map(|e| e.kind.clone()).collect::<Vec<_>>())
        .bind(
            events()
                .map(|e| e.from_state.map(|s| s.as_str().to_owned()))
                .collect::<Vec<_>>(),
        )
        .bind(events().map(|e| e.note.clone()).collect::<Vec<_>>())
        .bind(details)
        .bind(optional(|c| c.follow_up_key.as_deref()))
        .bind(cases().map(|c| c.deadline.map(ms)).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    let mut stored: Vec<Option<CaseRecord>> = vec![None; batch.len()];
    for row in &rows {
        let position: i64 = row.try_get("position")?;
        let slot = usize::try_from(position - 1)
            .ok()
            .and_then(|i| stored.get_mut(i))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("batch position {position} out of range"))
            })?;
        *slot = Some(case_from_row(row)?);
    }
    Ok(stored)
}

fn json_error(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("cannot encode a case as JSON: {e}"))
}
