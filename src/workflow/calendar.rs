//! The working-day calendar every deadline is counted on: weekends off, public holidays
//! off, make-up working days (调休) on, working hours in China time (UTC+8, no DST).

use crate::domain::{DayKind, TimeLimit, TimeUnit, china};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use std::collections::BTreeMap;

/// Working days and hours.
///
/// ```
/// use wangge::workflow::calendar::WorkCalendar;
/// use chrono::{TimeZone, Utc};
/// let cal = WorkCalendar::default();
/// // Friday 2026-11-27 10:00 China time + 3 working days = Wednesday 17:00.
/// let from = Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap();
/// let due = cal.add_working_days(from, 3);
/// assert_eq!(due, Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct WorkCalendar {
    /// Exceptions to the weekday rule.
    pub days: BTreeMap<NaiveDate, DayKind>,
    /// Working hours, China time.
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Default for WorkCalendar {
    fn default() -> Self {
        WorkCalendar {
            days: BTreeMap::new(),
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or_default(),
        }
    }
}

impl WorkCalendar {
    /// A calendar with these exceptions and the default hours (09:00–17:00).
    pub fn with_days(days: impl IntoIterator<Item = (NaiveDate, DayKind)>) -> Self {
        WorkCalendar {
            days: days.into_iter().collect(),
            ..WorkCalendar::default()
        }
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.days.get(&date) {
            Some(DayKind::Holiday) => false,
            Some(DayKind::Workday) => true,
            None => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
    }

    fn at(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        china()
            .from_local_datetime(&date.and_time(time))
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&date.and_time(time)))
    }

    /// The deadline `limit` after `from`.
    pub fn deadline(&self, from: DateTime<Utc>, limit: TimeLimit) -> DateTime<Utc> {
        match limit.unit {
            TimeUnit::WorkingDays => self.add_working_days(from, limit.amount),
            TimeUnit::WorkingHours => {
                self.add_working_time(from, Duration::hours(i64::from(limit.amount)))
            }
        }
    }

    /// The end of the working hours of the `days`-th working day after `from`'s day
    /// (the day of `from` does not count, as in "within 3 working days").
    pub fn add_working_days(&self, from: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut date = from.with_timezone(&china()).date_naive();
        let mut left = days;
        // Bounded: a calendar cannot hold years of holidays in a row.
        for _ in 0..(days as usize * 7 + 3700) {
            if left == 0 {
                break;
            }
            date = date.succ_opt().unwrap_or(date);
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        if days == 0 {
            return from;
        }
        self.at(date, self.end)
    }

    /// `from` plus `amount` of working time: the clock runs only within working hours of
    /// working days.
    pub fn add_working_time(&self, from: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        let mut left = amount;
        let local = from.with_timezone(&china());
        let mut date = local.date_naive();
        let mut time = local.time();
        for _ in 0..(amount.num_days() as usize * 7 + amount.num_hours().max(0) as usize + 3700) {
            if self.is_working_day(date) && time < self.end {
                let begin = time.max(self.start);
                let available = self.end - begin;
                if left <= available {
                    return self.at(date, begin) + left;
                }
                left -= available;
            }
            date = date.succ_opt().unwrap_or(date);
            time = self.start;
        }
        self.at(date, self.end)
    }

    /// Working time between two instants (zero when `to` is before `from`).
    pub fn working_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let (a, b) = (from.with_timezone(&china()), to.with_timezone(&china()));
        let mut total = Duration::zero();
        let mut date = a.date_naive();
        let last = b.date_naive();
        while date <= last {
            if self.is_working_day(date) {
                let lo = if date == a.date_naive() {
                    a.time().max(self.start)
                } else {
                    self.start
                };
                let hi = if date == last {
                    b.time().min(self.end)
                } else {
                    self.end
                };
                if hi > lo {
                    total += hi - lo;
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cst(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        china()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn working_days_skip_weekends_and_holidays_and_count_make_up_days() {
        // National Day 2026: Oct 1–7 off, Sat Oct 10 a make-up working day.
        let mut days: Vec<_> = (1..=7)
            .map(|d| (date(2026, 10, d), DayKind::Holiday))
            .collect();
        days.push((date(2026, 10, 10), DayKind::Workday));
        let cal = WorkCalendar::with_days(days);
        // Wed Sep 30 16:00 + 2 working days: Oct 8 (Thu), Oct 9 (Fri) → Oct 9 17:00.
        assert_eq!(
            cal.add_working_days(cst(2026, 9, 30, 16, 0), 2),
            cst(2026, 10, 9, 17, 0)
        );
        // + 3 → Saturday Oct 10, the make-up day.
        assert_eq!(
            cal.add_working_days(cst(2026, 9, 30, 16, 0), 3),
            cst(2026, 10, 10, 17, 0)
        );
        assert!(!cal.is_working_day(date(2026, 10, 11)));
    }

    #[test]
    fn working_hours_run_only_inside_working_time() {
        let cal = WorkCalendar::default();
        // Fri 15:00 + 4 h: 2 h on Friday, 2 h on Monday → Mon 11:00.
        assert_eq!(
            cal.add_working_time(cst(2026, 11, 27, 15, 0), Duration::hours(4)),
            cst(2026, 11, 30, 11, 0)
        );
        // Reported at night: the clock starts at 09:00.
        assert_eq!(
            cal.add_working_time(cst(2026, 11, 25, 22, 0), Duration::hours(2)),
            cst(2026, 11, 26, 11, 0)
        );
        // Before opening the same day.
        assert_eq!(
            cal.add_working_time(cst(2026, 11, 26, 7, 0), Duration::hours(8)),
            cst(2026, 11, 26, 17, 0)
        );
    }

    proptest! {
        #[test]
        fn adding_working_time_is_measured_back_exactly(start_min in 0i64..(60 * 24 * 60), hours in 0i64..200) {
            let cal = WorkCalendar::with_days([(date(2026, 12, 31), DayKind::Holiday), (date(2027, 1, 2), DayKind::Workday)]);
            let from = cst(2026, 11, 1, 0, 0) + Duration::minutes(start_min);
            let due = cal.add_working_time(from, Duration::hours(hours));
            prop_assert!(due >= from);
            prop_assert_eq!(cal.working_time_between(from, due), Duration::hours(hours));
        }
    }
}
