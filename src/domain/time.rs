//! China's civil time (UTC+8 all year, no daylight saving) and what a calendar entry
//! makes of a date. Deadlines, duty shifts, effective dates and `as_of` are all read in
//! it, whatever the server's own time zone: this is the one place that says so.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, Utc};

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

/// Today's date in China.
pub fn today_in_china() -> NaiveDate {
    date_in_china(Utc::now())
}
