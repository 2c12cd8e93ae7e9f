//! Webhook deliveries from the outbox: each queued (event, department) pair is POSTed
//! to the department's URL as JSON until it answers 2xx, with growing pauses between
//! tries. At least once: a receiver deduplicates by `event.id` (also the
//! `X-Wangge-Event-Id` header).

use crate::store::{Store, StoreResult};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: u32,
    pub failed: u32,
}

/// The pause before try `attempts + 1`: 10 s, 20 s, 40 s … at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let secs = 10i64.saturating_mul(1i64 << attempts.clamp(0, 12));
    Duration::seconds(secs.min(3600))
}

/// Sends the deliveries due at `now` (at most `limit`).
pub async fn deliver_due(
    store: &dyn Store,
    client: &reqwest::Client,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Round> {
    let mut round = Round::default();
    for d in store.due_deliveries(now, limit).await? {
        let event = store
            .events_after(d.event_id - 1, 1)
            .await?
            .into_iter()
            .find(|e| e.id == d.event_id);
        let Some(event) = event else { continue };
        let case = store.case(event.case_id).await?;
        let body = json!({
            "department": d.department_code,
            "event": event,
            "case": {
                "id": case.id,
                "state": case.state,
                "matter_code": case.matter_code,
                "grid_code": case.grid_code,
                "department_code": case.department_code,
                "deadline": case.deadline,
                "description": case.description,
                "lon": case.lon,
                "lat": case.lat,
            },
        });
        let outcome = match client
            .post(&d.url)
            .header("x-wangge-event-id", d.event_id.to_string())
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        match &outcome {
            Ok(()) => round.delivered += 1,
            Err(e) => {
                round.failed += 1;
                tracing::warn!(url = %d.url, event = d.event_id, error = %e, "webhook delivery failed; will retry");
            }
        }
        store
            .finish_delivery(
                d.event_id,
                &d.department_code,
                outcome,
                now + backoff(d.attempts),
            )
            .await?;
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::seconds(10));
        assert_eq!(backoff(3), Duration::seconds(80));
        assert_eq!(backoff(30), Duration::seconds(3600));
    }
}
