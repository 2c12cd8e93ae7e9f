//! China's civil time (UTC+8 all year, no daylight saving) and what a calendar entry
//! makes of a date. Deadlines, duty shifts, effective dates and `as_of` are all read in
//! it, whatever the server's own time zone: this is the one place that says so.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// What a calendar entry makes of its date.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// A public holiday (no work even on a weekday).
    Holiday,
    /// A make-up working day (work even on a weekend).
    Workday,
}

/// China Standard Time.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or(Utc.fix())
}

/// The wall-clock time in China at `at`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let at = Utc.with_ymd_and_hms(2026, 12, 1, 17, 30, 0).unwrap();
/// assert_eq!(wangge::domain::in_china(at).to_string(), "2026-12-02 01:30:00");
/// ```
pub fn in_china(at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&china()).naive_local()
}

/// The date in China at `at`.
pub fn date_in_china(at: DateTime<Utc>) -> NaiveDate {
    in_china(at).date()
}

/// How far the service's clock is set from the real one, in milliseconds (0 unless
/// [`set_now`] was called).
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The service's time: every deadline, duty shift, token expiry, effective date and
/// audit time reads this, never the system clock directly. It is real time unless
/// [`set_now`] moved it (`WANGGE_NOW`, for tests and holiday drills); it keeps running
/// from there.
pub fn now() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(CLOCK_OFFSET_MS.load(Ordering::Relaxed))
}

/// Sets the service's clock to `at` from this moment on (it keeps running). For a
/// whole process: the CLI calls it once at start when `WANGGE_NOW` is set.
///
/// ```rust,standalone_crate
/// use chrono::{TimeZone, Utc};
/// let at = Utc.with_ymd_and_hms(2031, 2, 3, 15, 59, 59).unwrap();
/// wangge::domain::set_now(at);
/// assert!((wangge::domain::now() - at).num_seconds().abs() < 5);
/// assert_eq!(wangge::domain::today_in_china().to_string(), "2031-02-03");
/// ```
pub fn set_now(at: DateTime<Utc>) {
    CLOCK_OFFSET_MS.store((at - Utc::now()).num_milliseconds(), Ordering::Relaxed);
}

/// Today's date in China, by the service's clock.
pub fn today_in_china() -> NaiveDate {
    date_in_china(now())
}
