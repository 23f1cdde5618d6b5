//! Missed runs: what one reconcile of a schedule starts at `now`.
//!
//! Mirrors the Kubernetes CronJob controller: of the fire times missed while the operator was down
//! or the schedule suspended, only the most recent starts, and only within the starting deadline;
//! more than [`MISSED_LIMIT`] missed times raise a Warning event. Pure: `since` and `now` are
//! passed in.

use std::time::Duration;

use jiff::{RoundMode, SignedDuration, Timestamp, TimestampRound, Unit};

use super::Schedule;

/// How many missed fire times are tolerated before the controller warns (the CronJob controller's
/// limit). Counting stops one past it, so a long outage costs a bounded number of searches.
pub const MISSED_LIMIT: u64 = 100;

/// The decision for one reconcile of a schedule at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The fire time to start now: the most recent unstarted fire time, when within the deadline.
    /// Older missed times are dropped, not replayed, so an outage never causes a burst of runs.
    pub fire: Option<Timestamp>,
    /// Unstarted fire times in the window, counted up to `MISSED_LIMIT + 1` (the count stops there).
    pub unstarted: u64,
    /// More than MISSED_LIMIT (100) fire times were missed: the controller raises a Warning event,
    /// as the CronJob controller does.
    pub too_many_missed: bool,
    /// The most recent unstarted fire time that is older than the starting deadline and so will
    /// not start (for an event / log).
    pub past_deadline: Option<Timestamp>,
    /// The next fire time strictly after `now` (None: never fires again), where the controller
    /// requeues.
    pub next: Option<Timestamp>,
}

impl Schedule {
    /// Decides what a reconcile at `now` starts.
    ///
    /// `since`: the last fire time already handled (status.lastScheduleTime) or, for a schedule
    /// that never fired, its creation time. `deadline`: startingDeadlineSeconds.
    ///
    /// Unstarted fire times are those in `(since, now]`: `since` itself was handled, and a `since`
    /// after `now` (clock skew) leaves nothing due. The most recent one is found by searching
    /// backwards from `now`, so the cost does not grow with the length of an outage.
    pub fn due(&self, since: Timestamp, now: Timestamp, deadline: Option<Duration>) -> Due {
        let latest = self.previous_at_or_before(now).filter(|&t| t > since);
        let late = latest.filter(|&t| is_past_deadline(t, now, deadline));
        let unstarted = latest.map_or(0, |_| self.count_unstarted(since, now));
        Due {
            fire: latest.filter(|_| late.is_none()),
            unstarted,
            too_many_missed: unstarted > MISSED_LIMIT,
            past_deadline: late,
            next: self.next_after(now),
        }
    }

    /// The most recent fire time at or before `at` (croner find_previous_occurrence, inclusive).
    ///
    /// `None` when the expression never fired before `at`. Agrees with [`Schedule::next_after`]
    /// across daylight-saving changes: a skipped local time is found at the first instant after
    /// the gap, and a fixed local time in a repeated hour only at its earlier instant.
    ///
    /// `at` is floored to the whole second first: fire times are whole minutes, so the answer is
    /// the same, and croner 4.0's backward search, given a fraction of a second just before the
    /// second pass of a repeated hour, answers with that pass's first instant, after `at`.
    pub fn previous_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let local = floor_to_second(at)?.to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// Counts fire times in `(since, now]`, stopping at `MISSED_LIMIT + 1`: enough to know the
    /// limit was passed without walking a year of minutes.
    fn count_unstarted(&self, since: Timestamp, now: Timestamp) -> u64 {
        let mut count = 0;
        let mut cursor = since;
        while count <= MISSED_LIMIT {
            match self.next_after(cursor) {
                Some(t) if t <= now => (count, cursor) = (count + 1, t),
                _ => break,
            }
        }
        count
    }
}

/// `at` without its fraction of a second, rounded towards the past (also before 1970).
fn floor_to_second(at: Timestamp) -> Option<Timestamp> {
    let floor = TimestampRound::new().smallest(Unit::Second).mode(RoundMode::Floor);
    at.round(floor).ok()
}

/// Whether `fire` is older than the starting deadline at `now` (`now - fire > deadline`, as the
/// CronJob controller decides). No deadline means never too late; a deadline too large for a
/// `SignedDuration` is as good as none.
fn is_past_deadline(fire: Timestamp, now: Timestamp, deadline: Option<Duration>) -> bool {
    deadline.is_some_and(|d| SignedDuration::try_from(d).is_ok_and(|d| now.duration_since(fire) > d))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedule(expression: &str, zone: &str) -> Schedule {
        Schedule::parse(expression, zone).unwrap()
    }

    fn secs(n: i64) -> SignedDuration {
        SignedDuration::from_secs(n)
    }

    fn nothing_due(next: Option<Timestamp>) -> Due {
        Due {
            fire: None,
            unstarted: 0,
            too_many_missed: false,
            past_deadline: None,
            next,
        }
    }

    /// Every fire time in `(since, until]`, by forward search: the reference answer.
    fn forward(s: &Schedule, since: Timestamp, until: Timestamp) -> Vec<Timestamp> {
        std::iter::successors(s.next_after(since), |&t| s.next_after(t))
            .take_while(|&t| t <= until)
            .collect()
    }

    /// Reconciles every `step` from `since` to `until` as the controller does, recording each
    /// started fire time as handled, and returns the fire times started.
    fn walk(s: &Schedule, mut since: Timestamp, until: Timestamp, step: SignedDuration) -> Vec<Timestamp> {
        let (mut started, mut now) = (vec![], since);
        while now <= until {
            if let Some(fire) = s.due(since, now, None).fire {
                started.push(fire);
                since = fire;
            }
            now += step;
        }
        started
    }

    #[test]
    fn nothing_is_due_before_the_first_fire_time() {
        let s = schedule("0 3 * * *", "UTC");
        let due = s.due(ts("2026-01-10T01:00:00Z"), ts("2026-01-10T02:59:59.999Z"), None);
        assert_eq!(due, nothing_due(Some(ts("2026-01-10T03:00:00Z"))));
    }

    #[test]
    fn a_fire_time_is_due_at_its_exact_instant() {
        let s = schedule("0 3 * * *", "UTC");
        let due = s.due(ts("2026-01-10T01:00:00Z"), ts("2026-01-10T03:00:00Z"), None);
        let fire = Some(ts("2026-01-10T03:00:00Z"));
        let next = Some(ts("2026-01-11T03:00:00Z"));
        assert_eq!(
            due,
            Due {
                fire,
                unstarted: 1,
                next,
                ..nothing_due(None)
            }
        );
    }

    #[test]
    fn a_handled_fire_time_is_not_due_again() {
        let s = schedule("0 3 * * *", "UTC");
        let last = ts("2026-01-10T03:00:00Z");
        for now in [last, ts("2026-01-10T03:00:30Z"), ts("2026-01-11T02:59:59Z")] {
            assert_eq!(
                s.due(last, now, None),
                nothing_due(Some(ts("2026-01-11T03:00:00Z"))),
                "{now}"
            );
        }
    }

    #[test]
    fn one_missed_fire_time_starts_late() {
        let s = schedule("0 3 * * *", "UTC");
        let due = s.due(ts("2026-01-10T03:00:00Z"), ts("2026-01-11T05:00:00Z"), None);
        assert_eq!(due.fire, Some(ts("2026-01-11T03:00:00Z")));
        assert_eq!(
            (due.unstarted, due.too_many_missed, due.past_deadline),
            (1, false, None)
        );
        assert_eq!(due.next, Some(ts("2026-01-12T03:00:00Z")));
    }

    #[test]
    fn only_the_latest_of_many_missed_fire_times_starts() {
        let s = schedule("0 * * * *", "UTC");
        let due = s.due(ts("2026-01-10T00:00:00Z"), ts("2026-01-10T10:30:00Z"), None);
        assert_eq!(due.fire, Some(ts("2026-01-10T10:00:00Z")));
        assert_eq!((due.unstarted, due.too_many_missed), (10, false));
        assert_eq!(due.next, Some(ts("2026-01-10T11:00:00Z")));
    }

    #[test]
    fn more_than_100_missed_fire_times_warn() {
        let s = schedule("* * * * *", "UTC");
        let since = ts("2026-01-10T00:00:00Z");
        let hundred = s.due(since, since + secs(100 * 60), None);
        assert_eq!((hundred.unstarted, hundred.too_many_missed), (100, false));
        let hundred_and_one = s.due(since, since + secs(101 * 60), None);
        assert_eq!(
            (hundred_and_one.unstarted, hundred_and_one.too_many_missed),
            (101, true)
        );
        assert_eq!(hundred_and_one.fire, Some(since + secs(101 * 60)));
    }

    #[test]
    fn a_year_of_missed_minutes_is_counted_only_up_to_the_limit() {
        let s = schedule("* * * * *", "UTC");
        let due = s.due(ts("2025-01-10T00:00:00Z"), ts("2026-01-10T12:34:56Z"), None);
        assert_eq!(due.fire, Some(ts("2026-01-10T12:34:00Z")));
        assert_eq!((due.unstarted, due.too_many_missed), (MISSED_LIMIT + 1, true));
        assert_eq!(due.next, Some(ts("2026-01-10T12:35:00Z")));
    }

    #[test]
    fn a_fire_time_within_the_deadline_starts() {
        let s = schedule("0 3 * * *", "UTC");
        let (since, fire) = (ts("2026-01-09T03:00:00Z"), ts("2026-01-10T03:00:00Z"));
        // now - fire == deadline is still in time, as in the CronJob controller.
        let due = s.due(since, fire + secs(120), Some(Duration::from_secs(120)));
        assert_eq!((due.fire, due.past_deadline, due.unstarted), (Some(fire), None, 1));
    }

    #[test]
    fn a_fire_time_past_the_deadline_does_not_start_but_is_reported() {
        let s = schedule("0 3 * * *", "UTC");
        let (since, fire) = (ts("2026-01-09T03:00:00Z"), ts("2026-01-10T03:00:00Z"));
        let due = s.due(since, fire + secs(121), Some(Duration::from_secs(120)));
        assert_eq!((due.fire, due.past_deadline, due.unstarted), (None, Some(fire), 1));
        assert_eq!(due.next, Some(ts("2026-01-11T03:00:00Z")));
    }

    #[test]
    fn the_deadline_does_not_narrow_the_missed_count() {
        let s = schedule("* * * * *", "UTC");
        let since = ts("2026-01-10T00:00:00Z");
        let due = s.due(since, since + secs(150 * 60 + 30), Some(Duration::from_secs(60)));
        assert_eq!(due.fire, Some(since + secs(150 * 60)));
        assert_eq!(
            (due.unstarted, due.too_many_missed, due.past_deadline),
            (MISSED_LIMIT + 1, true, None)
        );
    }

    #[test]
    fn a_zero_deadline_starts_only_at_the_exact_instant() {
        let s = schedule("0 3 * * *", "UTC");
        let (since, fire) = (ts("2026-01-09T03:00:00Z"), ts("2026-01-10T03:00:00Z"));
        let zero = Some(Duration::ZERO);
        assert_eq!(s.due(since, fire, zero).fire, Some(fire));
        let late = s.due(since, fire + SignedDuration::from_millis(1), zero);
        assert_eq!((late.fire, late.past_deadline), (None, Some(fire)));
    }

    #[test]
    fn a_deadline_too_large_for_a_signed_duration_never_expires() {
        let s = schedule("0 3 * * *", "UTC");
        let due = s.due(
            ts("2000-01-01T00:00:00Z"),
            ts("2026-01-10T05:00:00Z"),
            Some(Duration::MAX),
        );
        assert_eq!((due.fire, due.past_deadline), (Some(ts("2026-01-10T03:00:00Z")), None));
    }

    #[test]
    fn since_after_now_leaves_nothing_due() {
        let s = schedule("0 * * * *", "UTC");
        let now = ts("2026-01-10T10:30:00Z");
        let due = s.due(now + secs(3600 * 5), now, Some(Duration::from_secs(60)));
        assert_eq!(due, nothing_due(Some(ts("2026-01-10T11:00:00Z"))));
    }

    #[test]
    fn impossible_dates_are_never_due() {
        let s = schedule("0 0 30 2 *", "UTC");
        let now = ts("2026-03-01T00:00:00Z");
        assert_eq!(s.due(ts("2026-01-01T00:00:00Z"), now, None), nothing_due(None));
        assert_eq!(s.previous_at_or_before(now), None);
    }

    #[test]
    fn weekly_fires_on_sunday_midnight() {
        // 2026-01-01 is a Thursday: Sundays 4, 11 and 18 were missed.
        let s = schedule("@weekly", "UTC");
        let due = s.due(ts("2026-01-01T00:00:00Z"), ts("2026-01-20T09:00:00Z"), None);
        assert_eq!((due.fire, due.unstarted), (Some(ts("2026-01-18T00:00:00Z")), 3));
        assert_eq!(due.next, Some(ts("2026-01-25T00:00:00Z")));
    }

    #[test]
    fn monthly_fires_on_the_first_at_local_midnight() {
        // Feb 1, Mar 1 (winter, UTC+1), Apr 1 and May 1 (summer, UTC+2) were missed.
        let s = schedule("@monthly", "Europe/Paris");
        let due = s.due(ts("2026-01-15T00:00:00Z"), ts("2026-05-10T00:00:00Z"), None);
        assert_eq!((due.fire, due.unstarted), (Some(ts("2026-04-30T22:00:00Z")), 4));
        assert_eq!(due.next, Some(ts("2026-05-31T22:00:00Z")));
        assert_eq!(
            s.previous_at_or_before(ts("2026-03-01T00:00:00Z")),
            Some(ts("2026-02-28T23:00:00Z"))
        );
    }

    #[test]
    fn previous_at_or_before_is_inclusive() {
        let s = schedule("0 3 * * *", "UTC");
        let fire = ts("2026-01-10T03:00:00Z");
        assert_eq!(s.previous_at_or_before(fire), Some(fire));
        assert_eq!(
            s.previous_at_or_before(fire - SignedDuration::from_nanos(1)),
            Some(fire - secs(86_400))
        );
        assert_eq!(
            s.previous_at_or_before(fire + SignedDuration::from_millis(999)),
            Some(fire)
        );
    }

    #[test]
    fn previous_at_or_before_ignores_fractions_of_a_second_in_a_repeated_hour() {
        // 2026-10-25 Paris: 01:00Z starts the second pass of 02:00 local. Unfloored, croner 4.0
        // answers 01:00Z for 00:59:59.5Z, half a second in the future.
        let s = schedule("0 * * * *", "Europe/Paris");
        assert_eq!(
            s.previous_at_or_before(ts("2026-10-25T00:59:59.5Z")),
            Some(ts("2026-10-25T00:00:00Z"))
        );
        let s = schedule("0 * * * *", "America/New_York");
        assert_eq!(
            s.previous_at_or_before(ts("2026-11-01T05:59:59.5Z")),
            Some(ts("2026-11-01T05:00:00Z"))
        );
    }

    #[test]
    fn skipped_daily_time_is_due_once_after_the_gap_in_paris() {
        // 2026-03-29: Paris skips 02:00-03:00 local; 02:30 runs at 03:00 CEST (01:00Z).
        let s = schedule("30 2 * * *", "Europe/Paris");
        let since = ts("2026-03-28T01:30:00Z");
        assert_eq!(s.due(since, ts("2026-03-29T00:59:59Z"), None).fire, None);
        assert_eq!(
            s.due(since, ts("2026-03-29T01:00:00Z"), None).fire,
            Some(ts("2026-03-29T01:00:00Z"))
        );
        let started = walk(&s, since, ts("2026-03-30T12:00:00Z"), secs(7 * 60));
        assert_eq!(started, [ts("2026-03-29T01:00:00Z"), ts("2026-03-30T00:30:00Z")]);
    }

    #[test]
    fn skipped_daily_time_is_due_once_after_the_gap_in_new_york() {
        // 2026-03-08: New York skips 02:00-03:00 local; 02:30 runs at 03:00 EDT (07:00Z).
        let s = schedule("30 2 * * *", "America/New_York");
        let since = ts("2026-03-07T07:30:00Z");
        assert_eq!(
            s.due(since, ts("2026-03-08T07:30:00Z"), None).fire,
            Some(ts("2026-03-08T07:00:00Z"))
        );
        let started = walk(&s, since, ts("2026-03-09T12:00:00Z"), secs(7 * 60));
        assert_eq!(started, [ts("2026-03-08T07:00:00Z"), ts("2026-03-09T06:30:00Z")]);
    }

    #[test]
    fn repeated_daily_time_is_due_once() {
        // Paris repeats 02:00-03:00 on 2026-10-25; New York repeats 01:00-02:00 on 2026-11-01.
        for (expr, zone, day_before, first, second, after) in [
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:45:00Z",
                "2026-10-26T01:30:00Z",
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:45:00Z",
                "2026-11-02T06:30:00Z",
            ),
        ] {
            let s = schedule(expr, zone);
            // In the second pass of the repeated hour, past 02:30 again: nothing new is due.
            assert_eq!(s.due(ts(first), ts(second), None).fire, None, "{zone}");
            let started = walk(&s, ts(day_before), ts(after) + secs(3600), secs(7 * 60));
            assert_eq!(started, [ts(first), ts(after)], "{zone}");
        }
    }

    /// Walks an hourly schedule across the local day `day` and checks it fires once per real hour.
    fn assert_hourly_across(zone: &str, day: &str, hours: usize) {
        let s = schedule("0 * * * *", zone);
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let date: jiff::civil::Date = day.parse().unwrap();
        let start = date.to_zoned(tz.clone()).unwrap().timestamp();
        let end = date.tomorrow().unwrap().to_zoned(tz.clone()).unwrap().timestamp();
        let started = walk(&s, start - secs(1), end - secs(1), secs(7 * 60));
        assert_eq!(started.len(), hours, "{zone} {day}: {started:?}");
        assert_eq!(started[0], start, "{zone} {day}");
        assert!(
            started.windows(2).all(|w| w[1].duration_since(w[0]) == secs(3600)),
            "{zone} {day}: {started:?}"
        );
        assert!(
            started.iter().all(|t| t.to_zoned(tz.clone()).date() == date),
            "{zone} {day}"
        );
    }

    #[test]
    fn hourly_schedule_fires_once_per_real_hour_across_daylight_saving() {
        assert_hourly_across("Europe/Paris", "2026-03-29", 23);
        assert_hourly_across("Europe/Paris", "2026-10-25", 25);
        assert_hourly_across("America/New_York", "2026-03-08", 23);
        assert_hourly_across("America/New_York", "2026-11-01", 25);
    }

    #[test]
    fn a_late_reconcile_in_the_repeated_hour_starts_its_second_pass() {
        // Operator down from 01:30 local (CEST) until the second 02:10 (CET): the hourly job's
        // 02:00 CEST and 02:00 CET were both missed; only the latest starts.
        let s = schedule("0 * * * *", "Europe/Paris");
        let due = s.due(ts("2026-10-24T23:00:00Z"), ts("2026-10-25T01:10:00Z"), None);
        assert_eq!((due.fire, due.unstarted), (Some(ts("2026-10-25T01:00:00Z")), 2));
        assert_eq!(due.next, Some(ts("2026-10-25T02:00:00Z")));
    }

    /// Instants one second and half a second apart around `center`, `reach` seconds each side.
    fn around(center: Timestamp, reach: i64) -> impl Iterator<Item = Timestamp> {
        (-2 * reach..=2 * reach).map(move |half| center + SignedDuration::from_millis(half * 500))
    }

    #[test]
    fn previous_agrees_with_forward_search_around_daylight_saving_changes() {
        let expressions = [
            "0 * * * *",
            "*/15 * * * *",
            "30 2 * * *",
            "0 2 * * *",
            "0 3 * * *",
            "30 1-3 * * *",
        ];
        for zone in ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"] {
            let tz = jiff::tz::TimeZone::get(zone).unwrap();
            let changes = tz.following(ts("2026-01-01T00:00:00Z")).take(2).map(|t| t.timestamp());
            for change in changes {
                for expr in expressions {
                    assert_previous_agrees(&schedule(expr, zone), change);
                }
            }
        }
    }

    /// Compares `previous_at_or_before` with forward search near `change` and near each fire time
    /// within three hours of it.
    fn assert_previous_agrees(s: &Schedule, change: Timestamp) {
        let fires = forward(s, change - secs(86_400 * 2), change + secs(86_400));
        let near: Vec<Timestamp> = fires
            .iter()
            .copied()
            .filter(|t| t.duration_since(change).abs() < secs(3 * 3600))
            .collect();
        for at in near.into_iter().chain([change]).flat_map(|c| around(c, 90)) {
            let want = fires.iter().copied().rfind(|&t| t <= at);
            assert_eq!(s.previous_at_or_before(at), want, "{s:?} at {at}");
        }
    }

    const EXPRESSIONS: [&str; 5] = [
        "0 * * * *",
        "*/20 * * * *",
        "30 2 * * *",
        "15 9 * * 1-5",
        "0 1,2,3 * * *",
    ];
    const ZONES: [&str; 3] = ["Europe/Paris", "America/New_York", "UTC"];
    /// Starts of the windows: ordinary days and the 2026 daylight-saving changes.
    const BASES: [&str; 5] = [
        "2026-01-10T00:00:00Z",
        "2026-03-27T00:00:00Z",
        "2026-10-23T00:00:00Z",
        "2026-03-06T00:00:00Z",
        "2026-10-30T00:00:00Z",
    ];

    /// The decision `due` should make, by iterating `next_after` from `since`.
    fn brute_force(s: &Schedule, since: Timestamp, now: Timestamp, deadline: Option<Duration>) -> Due {
        let fires = forward(s, since, now);
        let latest = fires.last().copied();
        let late = latest.filter(|&t| deadline.is_some_and(|d| now.duration_since(t).unsigned_abs() > d));
        let unstarted = (fires.len() as u64).min(MISSED_LIMIT + 1);
        let fire = latest.filter(|_| late.is_none());
        let next = s.next_after(now);
        Due {
            fire,
            unstarted,
            too_many_missed: unstarted > MISSED_LIMIT,
            past_deadline: late,
            next,
        }
    }

    proptest! {
        #[test]
        fn due_matches_forward_search(
            expr in prop::sample::select(&EXPRESSIONS[..]),
            zone in prop::sample::select(&ZONES[..]),
            base in prop::sample::select(&BASES[..]),
            since_ms in 0i64..4 * 86_400_000,
            now_ms in 0i64..4 * 86_400_000,
            deadline in prop::option::of(0u64..6 * 3600),
        ) {
            let s = schedule(expr, zone);
            let base = ts(base);
            let since = base + SignedDuration::from_millis(since_ms);
            let now = base + SignedDuration::from_millis(now_ms);
            let deadline = deadline.map(Duration::from_secs);
            prop_assert_eq!(s.due(since, now, deadline), brute_force(&s, since, now, deadline));
        }
    }
}
