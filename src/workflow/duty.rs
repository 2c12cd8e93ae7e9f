//! Who is on duty in a grid now. A member's duty schedule is JSON:
//! `{"shifts": [{"days": [1,2,3,4,5], "from": "08:00", "to": "17:30"}]}` with ISO
//! weekdays (1 = Monday) in China Standard Time; an overnight shift has `to` < `from`.
//! A member without shifts is always on duty.

use crate::store::{Member, Role};
use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Schedule {
    #[serde(default)]
    shifts: Vec<Shift>,
}

#[derive(Debug, Deserialize)]
struct Shift {
    #[serde(default = "every_day")]
    days: Vec<u32>,
    from: NaiveTime,
    to: NaiveTime,
}

fn every_day() -> Vec<u32> {
    (1..=7).collect()
}

/// Whether `member` is on duty at `at`. An unreadable schedule counts as "always", so a
/// typo never leaves a grid without anyone to call.
pub fn is_on_duty(member: &Member, at: DateTime<Utc>) -> bool {
    // Read from the stored value in place: a lookup asks this of every member of the
    // grid, and a copy of each schedule per request cost more than the lookup.
    let Ok(schedule) = Schedule::deserialize(&member.duty_schedule) else {
        return true;
    };
    if schedule.shifts.is_empty() {
        return true;
    }
    let local = crate::domain::in_china(at);
    let day = local.weekday().number_from_monday();
    let yesterday = if day == 1 { 7 } else { day - 1 };
    let t =
        NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second()).unwrap_or_default();
    schedule.shifts.iter().any(|s| {
        if s.from <= s.to {
            s.days.contains(&day) && s.from <= t && t < s.to
        } else {
            (s.days.contains(&day) && t >= s.from) || (s.days.contains(&yesterday) && t < s.to)
        }
    })
}

/// The member to call: the first on duty among grid leader, full-time, part-time members
/// (in that order); failing that, the grid leader; failing that, anyone.
pub fn on_duty(members: &[Member], at: DateTime<Utc>) -> Option<&Member> {
    let rank = |m: &Member| match m.role {
        Role::GridLeader => 0,
        Role::FullTime => 1,
        Role::PartTime => 2,
        Role::Instructor => 3,
        Role::TeamMember => 4,
    };
    let mut ordered: Vec<&Member> = members.iter().filter(|m| rank(m) <= 2).collect();
    ordered.sort_by_key(|m| (rank(m), m.id));
    ordered
        .iter()
        .find(|m| is_on_duty(m, at))
        .or(ordered.first())
        .copied()
        .or(members.first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(id: i64, role: Role, schedule: serde_json::Value) -> Member {
        Member {
            id,
            scope_code: "371602001001001".into(),
            role,
            name: format!("m{id}"),
            phone: None,
            duty_schedule: schedule,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn day_shifts_are_read_in_china_time() {
        let m = member(
            1,
            Role::FullTime,
            json!({"shifts": [{"days": [1,2,3,4,5], "from": "08:00", "to": "17:30"}]}),
        );
        // Monday 2026-11-23 09:00 in Beijing is 01:00 UTC.
        assert!(is_on_duty(&m, at("2026-11-23T01:00:00Z")));
        assert!(!is_on_duty(&m, at("2026-11-23T10:00:00Z"))); // 18:00 CST
        assert!(!is_on_duty(&m, at("2026-11-22T02:00:00Z"))); // Sunday
    }

    #[test]
    fn night_shifts_run_past_midnight() {
        let m = member(
            1,
            Role::PartTime,
            json!({"shifts": [{"days": [5], "from": "20:00", "to": "06:00"}]}),
        );
        assert!(is_on_duty(&m, at("2026-11-27T13:00:00Z"))); // Fri 21:00
        assert!(is_on_duty(&m, at("2026-11-27T20:00:00Z"))); // Sat 04:00
        assert!(!is_on_duty(&m, at("2026-11-28T13:00:00Z"))); // Sat 21:00
    }

    #[test]
    fn the_leader_answers_when_nobody_is_on_shift() {
        let day = json!({"shifts": [{"from": "08:00", "to": "17:00"}]});
        let members = [
            member(1, Role::FullTime, day.clone()),
            member(2, Role::GridLeader, day),
            member(3, Role::TeamMember, json!({})),
        ];
        assert_eq!(on_duty(&members, at("2026-11-23T02:00:00Z")).unwrap().id, 2);
        assert_eq!(on_duty(&members, at("2026-11-23T15:00:00Z")).unwrap().id, 2);
        let night = [
            member(
                1,
                Role::FullTime,
                json!({"shifts": [{"from": "08:00", "to": "09:00"}]}),
            ),
            member(4, Role::PartTime, json!({})),
        ];
        assert_eq!(on_duty(&night, at("2026-11-23T15:00:00Z")).unwrap().id, 4);
    }
}
