//! Cron schedules read in an IANA time zone: parsing, next fire times and missed runs.
//!
//! Pure: no Kubernetes, no clock. Callers pass the instant to compute from, so every decision is
//! testable with fixed times (daylight-saving transitions included).

mod missed;

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use missed::{Due, MISSED_LIMIT};

/// A parsed cron expression bound to a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

/// Why a schedule cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error(
        "invalid cron expression {expression:?}: {reason}; use five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly"
    )]
    InvalidCron { expression: String, reason: String },
    #[error("unknown time zone {0:?}: use an IANA name such as UTC, Europe/Paris or America/New_York")]
    UnknownTimeZone(String),
}

impl Schedule {
    /// Parses a five-field cron expression (or a nickname) and an IANA time zone name.
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let zone = parse_time_zone(time_zone)?;
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expression).map_err(|e| ScheduleError::InvalidCron {
            expression: expression.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { cron, zone })
    }

    /// The first fire time strictly after `after`, or `None` when the expression never fires
    /// again (e.g. February 30th).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let local = after.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// Resolves an IANA time zone name from the bundled database (no host zoneinfo needed).
pub fn parse_time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    if name.is_empty() {
        return Err(ScheduleError::UnknownTimeZone(name.to_string()));
    }
    TimeZone::get(name).map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Parses an expression read in UTC.
    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Self::parse(expression, "UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_and_nicknames_parse() {
        for expr in ["*/5 * * * *", "0 3 * * 1-5", "@hourly", "@daily", "@weekly", "@monthly"] {
            Schedule::parse(expr, "UTC").unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
    }

    #[test]
    fn wrong_field_counts_and_garbage_are_rejected() {
        for expr in [
            "",
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "every day",
            "0 0 * * * 2026",
        ] {
            let err = Schedule::parse(expr, "UTC").unwrap_err();
            assert!(matches!(err, ScheduleError::InvalidCron { .. }), "{expr}: {err}");
        }
    }

    #[test]
    fn unknown_time_zones_are_rejected_with_a_hint() {
        let err = Schedule::parse("@daily", "Mars/Olympus").unwrap_err();
        assert_eq!(err, ScheduleError::UnknownTimeZone("Mars/Olympus".into()));
        assert!(err.to_string().contains("IANA"));
        assert!(Schedule::parse("@daily", "").is_err());
    }

    #[test]
    fn next_fire_is_read_in_the_time_zone() {
        let daily_3am_paris = Schedule::parse("0 3 * * *", "Europe/Paris").unwrap();
        // 2026-01-10 is winter time in Paris: UTC+1.
        assert_eq!(
            daily_3am_paris.next_after(ts("2026-01-10T00:00:00Z")),
            Some(ts("2026-01-10T02:00:00Z"))
        );
        // Strictly after: a fire time is not returned for itself.
        assert_eq!(
            daily_3am_paris.next_after(ts("2026-01-10T02:00:00Z")),
            Some(ts("2026-01-11T02:00:00Z"))
        );
    }

    #[test]
    fn skipped_local_hour_fires_once_at_the_next_valid_time() {
        // 2026-03-29: Paris skips 02:00-03:00 local. A 02:30 job fires once, at 03:00 local (01:00Z).
        let s = Schedule::parse("30 2 * * *", "Europe/Paris").unwrap();
        let first = s.next_after(ts("2026-03-28T23:00:00Z")).unwrap();
        assert_eq!(first, ts("2026-03-29T01:00:00Z"));
        assert_eq!(s.next_after(first), Some(ts("2026-03-30T00:30:00Z")));
    }

    #[test]
    fn repeated_local_hour_fires_once() {
        // 2026-10-25: Paris repeats 02:00-03:00 local. A 02:30 job fires once that day.
        let s = Schedule::parse("30 2 * * *", "Europe/Paris").unwrap();
        let first = s.next_after(ts("2026-10-24T22:00:00Z")).unwrap();
        assert_eq!(first, ts("2026-10-25T00:30:00Z"));
        assert_eq!(s.next_after(first), Some(ts("2026-10-26T01:30:00Z")));
    }

    #[test]
    fn impossible_dates_never_fire() {
        let s = Schedule::parse("0 0 30 2 *", "UTC").unwrap();
        assert_eq!(s.next_after(ts("2026-01-01T00:00:00Z")), None);
    }
}
