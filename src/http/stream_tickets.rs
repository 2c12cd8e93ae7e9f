//! Stream tickets: a browser's `EventSource` cannot send an `Authorization` header, so
//! a signed-in page asks for a ticket (`POST /v1/cases/stream-ticket`, with its bearer
//! token) and opens `GET /v1/cases/stream?ticket=…`. A ticket is 256 random bits, lives
//! 60 s, opens one stream once, and stands for the token that asked for it: the stream
//! then runs exactly as with that token (and ends when the token does).

use super::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket waits to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Most tickets waiting at once (each is a few dozen bytes); beyond it, new ones are
/// refused until old ones are used or expire.
const MAX_WAITING: usize = 10_000;
/// Tickets one account may have waiting: a page needs one per (re)connection. A new one
/// beyond this replaces the account's oldest, so no account can crowd out the others.
const PER_ACCOUNT: usize = 4;

/// A ticket waiting to be used.
struct Waiting {
    token: String,
    account: String,
    expires: Instant,
}

/// Tickets waiting to be used, by ticket.
#[derive(Default)]
pub struct StreamTickets {
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl StreamTickets {
    /// A new ticket standing for `token` of `account`, or `None` when too many are
    /// waiting in all.
    pub fn issue(&self, token: &str, account: &str, now: Instant) -> Option<String> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = format!("wgt_{}", hex::encode(bytes));
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|_, w| w.expires > now);
        let mut own: Vec<(String, Instant)> = waiting
            .iter()
            .filter(|(_, w)| w.account == account)
            .map(|(t, w)| (t.clone(), w.expires))
            .collect();
        if own.len() >= PER_ACCOUNT {
            own.sort_by_key(|(_, expires)| *expires);
            for (t, _) in &own[..=own.len() - PER_ACCOUNT] {
                waiting.remove(t);
            }
        }
        if waiting.len() >= MAX_WAITING {
            return None;
        }
        waiting.insert(
            ticket.clone(),
            Waiting {
                token: token.to_string(),
                account: account.to_string(),
                expires: now + TICKET_TTL,
            },
        );
        Some(ticket)
    }

    /// The token a ticket stands for, once: the ticket is gone after this call.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<String> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting
            .remove(ticket)
            .filter(|w| w.expires > now)
            .map(|w| w.token)
    }
}

/// On the stream route: a request without `Authorization` but with `?ticket=` is
/// answered as if it carried the ticket's token; an unknown, used or expired ticket is a
/// 401, as a bad token is.
pub async fn ticket_to_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let ticket = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("ticket="))
        .map(str::to_string);
    // GET only: a HEAD would spend the ticket on an answer without a stream.
    if let Some(ticket) = ticket
        && request.method() == axum::http::Method::GET
        && !request.headers().contains_key(header::AUTHORIZATION)
    {
        let token = state
            .stream_tickets
            .redeem(&ticket, Instant::now())
            .ok_or_else(|| {
                ApiError::unauthenticated(crate::msg!(
                    "the stream ticket is unknown, used or expired: ask for a new one",
                    "事件流票据无效、已使用或已过期：请重新申请"
                ))
            })?;
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ApiError::unauthenticated(crate::msg!(
                "the ticket's token is unusable",
                "票据对应的令牌无法使用"
            ))
        })?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_once_and_not_after_its_minute() {
        let tickets = StreamTickets::default();
        let t0 = Instant::now();
        let a = tickets.issue("wg_a", "li", t0).unwrap();
        assert_eq!(tickets.redeem(&a, t0).as_deref(), Some("wg_a"));
        assert_eq!(tickets.redeem(&a, t0), None, "used");
        let b = tickets.issue("wg_b", "li", t0).unwrap();
        assert_eq!(tickets.redeem(&b, t0 + TICKET_TTL), None, "expired");
        assert_eq!(tickets.redeem("wgt_guess", t0), None);
    }

    #[test]
    fn one_account_asking_again_and_again_keeps_only_its_newest_few() {
        let tickets = StreamTickets::default();
        let t0 = Instant::now();
        let other = tickets.issue("wg_other", "wang", t0).unwrap();
        let mine: Vec<String> = (0..100)
            .map(|i| {
                tickets
                    .issue("wg_mine", "li", t0 + Duration::from_millis(i))
                    .unwrap()
            })
            .collect();
        let later = t0 + Duration::from_millis(200);
        let open: Vec<usize> = (0..mine.len())
            .filter(|&i| tickets.redeem(&mine[i], later).is_some())
            .collect();
        assert_eq!(open, [96, 97, 98, 99], "the newest few");
        assert_eq!(tickets.redeem(&other, later).as_deref(), Some("wg_other"));
    }
}
