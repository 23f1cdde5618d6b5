//! Significance tests for mined patterns: does a pattern go with success more than chance, and
//! does it still when sessions of the same task are compared with each other?
//!
//! Fisher's exact test (one-sided) for one 2×2 table; the Mantel–Haenszel test for a 2×2 table
//! per stratum (task or intent), which controls for a confounder: "sessions that transfer to a
//! human succeed more" is often "easy tasks end in a transfer", and only a comparison within the
//! same task can tell the two apart.

use statrs::distribution::{DiscreteCDF, Hypergeometric};
use statrs::function::erf::erfc;

/// Sessions with and without a pattern, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub with_success: u32,
    pub with_failure: u32,
    pub without_success: u32,
    pub without_failure: u32,
}

impl Table {
    pub fn with(&self) -> u32 {
        self.with_success + self.with_failure
    }

    pub fn without(&self) -> u32 {
        self.without_success + self.without_failure
    }

    fn total(&self) -> u32 {
        self.with() + self.without()
    }

    fn successes(&self) -> u32 {
        self.with_success + self.without_success
    }

    /// Success rate with the pattern minus without it (`None` when a group is empty).
    pub fn lift(&self) -> Option<f64> {
        (self.with() > 0 && self.without() > 0).then(|| {
            f64::from(self.with_success) / f64::from(self.with())
                - f64::from(self.without_success) / f64::from(self.without())
        })
    }

    /// Fisher's exact test, one-sided: the probability of at least this many successes with
    /// the pattern if the pattern had nothing to do with success.
    pub fn fisher_greater(&self) -> f64 {
        let (total, successes, with) = (self.total(), self.successes(), self.with());
        if total == 0 || with == 0 {
            return 1.0;
        }
        match Hypergeometric::new(u64::from(total), u64::from(successes), u64::from(with)) {
            // P(X >= a) = 1 - P(X <= a - 1)
            Ok(dist) if self.with_success > 0 => dist.sf(u64::from(self.with_success - 1)).clamp(0.0, 1.0),
            Ok(_) => 1.0,
            Err(_) => 1.0,
        }
    }
}

/// The Mantel–Haenszel comparison across strata.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stratified {
    /// One-sided p-value that success goes with the pattern within strata.
    pub p_greater: f64,
    /// Strata where sessions with the pattern did better than those without, and worse.
    pub better: u32,
    pub worse: u32,
}

/// Mantel–Haenszel test (one-sided) over per-stratum tables. Strata where everyone or no one
/// used the pattern, or everyone succeeded or failed, say nothing and are left out. `None` when
/// no stratum says anything.
///
/// No continuity correction: with many small strata (a task run twice) the corrected statistic
/// is far more conservative than the exact conditional test it approximates, and would refuse
/// every within-task comparison real transcripts can offer.
pub fn mantel_haenszel(tables: impl IntoIterator<Item = Table>) -> Option<Stratified> {
    let (mut observed, mut expected, mut variance) = (0.0, 0.0, 0.0);
    let (mut better, mut worse) = (0, 0);
    for table in tables {
        let n = f64::from(table.total());
        let (with, without) = (f64::from(table.with()), f64::from(table.without()));
        let successes = f64::from(table.successes());
        let failures = n - successes;
        if n < 2.0 || with == 0.0 || without == 0.0 || successes == 0.0 || failures == 0.0 {
            continue;
        }
        observed += f64::from(table.with_success);
        expected += with * successes / n;
        variance += with * without * successes * failures / (n * n * (n - 1.0));
        match table.lift() {
            Some(lift) if lift > 0.0 => better += 1,
            Some(lift) if lift < 0.0 => worse += 1,
            _ => {}
        }
    }
    if variance <= 0.0 {
        return None;
    }
    let z = (observed - expected) / variance.sqrt();
    Some(Stratified {
        p_greater: (0.5 * erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0),
        better,
        worse,
    })
}

/// Mann–Whitney U test, one-sided: the probability that scores at least this much higher than
/// the rest come from a pattern unrelated to the score. `with` are the scores of the sessions
/// with the pattern, `all_sorted` the scores of every session (the pattern's included), sorted.
/// For graded outcomes (0.62, 0.9 …), where a success/failure table would throw the grading
/// away. Normal approximation with tie correction and continuity correction.
pub fn mann_whitney_greater(with: &[f32], all_sorted: &[f32]) -> f64 {
    let (n1, n) = (with.len() as f64, all_sorted.len() as f64);
    let n2 = n - n1;
    if n1 == 0.0 || n2 <= 0.0 {
        return 1.0;
    }
    // Mid-rank of a value in the whole sample: those below, plus half of the ties.
    let rank = |v: f32| {
        let below = all_sorted.partition_point(|x| *x < v) as f64;
        let equal = all_sorted.partition_point(|x| *x <= v) as f64 - below;
        below + (equal + 1.0) / 2.0
    };
    let rank_sum: f64 = with.iter().map(|v| rank(*v)).sum();
    let u = rank_sum - n1 * (n1 + 1.0) / 2.0;
    let mut ties = 0.0;
    let mut at = 0;
    while at < all_sorted.len() {
        let run = all_sorted[at..].iter().take_while(|x| **x == all_sorted[at]).count();
        let t = run as f64;
        ties += t * t * t - t;
        at += run;
    }
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    (0.5 * erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0)
}

/// A p-value as a reviewer reads it.
pub fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}

/// A difference between two groups (after minus before) with its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// The interval lies wholly above zero.
    pub fn above_zero(&self) -> bool {
        self.low > 0.0
    }

    /// The interval lies wholly below zero.
    pub fn below_zero(&self) -> bool {
        self.high < 0.0
    }
}

/// The two-sided normal quantile for `confidence` (1.96 for 0.95).
pub fn normal_quantile(confidence: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    let normal = Normal::new(0.0, 1.0).expect("the standard normal exists");
    normal.inverse_cdf(0.5 + confidence.clamp(0.5, 0.999_999) / 2.0)
}

/// Wilson's score interval for `occurrences` of `n` (`n > 0`): unlike the textbook interval it
/// stays inside 0..1 and keeps its coverage at rates near 0 or 1 and for small `n`.
pub fn wilson(occurrences: u32, n: u32, z: f64) -> (f64, f64) {
    let n = f64::from(n);
    let p = f64::from(occurrences) / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 (or n) occurrences the bound is exactly 0 (or 1); rounding must not move it.
    let low = if occurrences == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if f64::from(occurrences) == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

/// The difference of two rates, `after − before`, with Newcombe's hybrid score interval
/// (method 10), built from each rate's Wilson interval. `None` when a group is empty.
pub fn rate_difference(after: (u32, u32), before: (u32, u32), confidence: f64) -> Option<Interval> {
    let ((x1, n1), (x2, n2)) = (after, before);
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let z = normal_quantile(confidence);
    let (p1, p2) = (f64::from(x1) / f64::from(n1), f64::from(x2) / f64::from(n2));
    let (l1, u1) = wilson(x1, n1, z);
    let (l2, u2) = wilson(x2, n2, z);
    let difference = p1 - p2;
    Some(Interval {
        difference,
        low: difference - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        high: difference + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    })
}

/// Count, mean and sample variance of a group of values (outcome scores).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub n: u32,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    pub fn add(&mut self, value: f64) {
        self.n += 1;
        self.sum += value;
        self.sum_sq += value * value;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }

    /// The sample variance (n − 1 in the denominator); `None` below two values.
    pub fn variance(&self) -> Option<f64> {
        let n = f64::from(self.n);
        (self.n > 1).then(|| ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0))
    }
}

/// The difference of two means, `after − before`, with Welch's interval (unequal variances,
/// Welch–Satterthwaite degrees of freedom). `None` below two values in a group. When neither
/// group varies the interval is the difference itself.
pub fn mean_difference(after: &Moments, before: &Moments, confidence: f64) -> Option<Interval> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let (m1, m2) = (after.mean()?, before.mean()?);
    let (v1, v2) = (after.variance()?, before.variance()?);
    let (n1, n2) = (f64::from(after.n), f64::from(before.n));
    let difference = m1 - m2;
    let (a, b) = (v1 / n1, v2 / n2);
    let se = (a + b).sqrt();
    if se == 0.0 {
        return Some(Interval {
            difference,
            low: difference,
            high: difference,
        });
    }
    let df = (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    let t = StudentsT::new(0.0, 1.0, df)
        .map(|t| t.inverse_cdf(0.5 + confidence.clamp(0.5, 0.999_999) / 2.0))
        .unwrap_or_else(|_| normal_quantile(confidence));
    Some(Interval {
        difference,
        low: difference - t * se,
        high: difference + t * se,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(a: u32, b: u32, c: u32, d: u32) -> Table {
        Table {
            with_success: a,
            with_failure: b,
            without_success: c,
            without_failure: d,
        }
    }

    #[test]
    fn fisher_matches_hand_computed_values() {
        // Tea tasting: 3 of 4 right; P(X >= 3) = (16 + 1) / 70.
        assert!((table(3, 1, 1, 3).fisher_greater() - 17.0 / 70.0).abs() < 1e-9);
        // All successes with, all failures without: 1 / C(8,4).
        assert!((table(4, 0, 0, 4).fisher_greater() - 1.0 / 70.0).abs() < 1e-9);
        // Nothing to say.
        assert_eq!(table(0, 0, 3, 3).fisher_greater(), 1.0);
        assert_eq!(table(0, 4, 4, 0).fisher_greater(), 1.0);
    }

    #[test]
    fn lift_needs_both_groups() {
        assert_eq!(table(3, 1, 0, 0).lift(), None);
        assert!((table(3, 1, 1, 3).lift().unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_confounder_that_explains_the_pooled_effect_is_caught() {
        // Pooled, the pattern looks strong (easy strata use it more), but within each stratum
        // sessions with it do exactly as well as those without.
        let easy = table(16, 0, 4, 0);
        let hard = table(2, 6, 4, 12);
        let pooled = table(18, 6, 8, 12);
        assert!(pooled.fisher_greater() < 0.05, "{}", pooled.fisher_greater());
        let stratified = mantel_haenszel([easy, hard]).unwrap();
        assert!(stratified.p_greater > 0.3, "{stratified:?}");
        // A pattern that helps within every stratum passes.
        let helps = mantel_haenszel([table(5, 0, 1, 4), table(4, 1, 0, 5), table(3, 0, 1, 3)]).unwrap();
        assert!(helps.p_greater < 0.01, "{helps:?}");
        assert_eq!((helps.better, helps.worse), (3, 0));
    }

    #[test]
    fn mann_whitney_sees_graded_scores() {
        // Six sessions scoring above all 26 others: as strong as ranks can be.
        let with = [0.9_f32, 0.93, 0.94, 0.95, 0.96, 0.97];
        let mut all: Vec<f32> = (0..26).map(|i| 0.3 + 0.02 * i as f32).chain(with).collect();
        all.sort_by(f32::total_cmp);
        assert!(mann_whitney_greater(&with, &all) < 0.001);
        // Drawn from the middle of the same scores: nothing.
        let middle = [all[10], all[12], all[14], all[16], all[18], all[20]];
        assert!(mann_whitney_greater(&middle, &all) > 0.3);
        // Everyone scored the same: no evidence either way.
        assert_eq!(mann_whitney_greater(&[1.0, 1.0], &[1.0; 8]), 1.0);
    }

    #[test]
    fn strata_that_say_nothing_are_left_out() {
        assert_eq!(mantel_haenszel([table(3, 0, 0, 0), table(2, 0, 2, 0)]), None);
    }

    #[test]
    fn wilson_and_newcombe_match_published_values() {
        // Newcombe (1998), example (a): 56/70 vs 48/80, difference 0.2000, 95% CI 0.0524 to 0.3339.
        let d = rate_difference((56, 70), (48, 80), 0.95).unwrap();
        assert!((d.difference - 0.2).abs() < 1e-9);
        assert!((d.low - 0.0524).abs() < 5e-4, "{d:?}");
        assert!((d.high - 0.3339).abs() < 5e-4, "{d:?}");
        // Wilson for 0 of 10 still has a width: 0 to 0.2775.
        let (low, high) = wilson(0, 10, normal_quantile(0.95));
        assert_eq!(low, 0.0);
        assert!((high - 0.2775).abs() < 5e-4, "{high}");
        assert!(rate_difference((1, 0), (1, 2), 0.95).is_none());
    }

    #[test]
    fn welch_interval_matches_a_hand_computation() {
        let mut after = Moments::default();
        for v in [0.9, 0.8, 0.85, 0.95, 0.7] {
            after.add(v);
        }
        let mut before = Moments::default();
        for v in [0.4, 0.6, 0.5, 0.3, 0.55, 0.45] {
            before.add(v);
        }
        let d = mean_difference(&after, &before, 0.95).unwrap();
        // means 0.84 and 0.4667; variances 0.00925 and 0.01167; Welch df ≈ 8.93, t ≈ 2.264.
        assert!((d.difference - 0.373_333).abs() < 1e-5, "{d:?}");
        assert!((d.low - 0.2339).abs() < 2e-3, "{d:?}");
        assert!((d.high - 0.5128).abs() < 2e-3, "{d:?}");
        assert!(d.above_zero());
        let mut one = Moments::default();
        one.add(1.0);
        assert!(mean_difference(&one, &before, 0.95).is_none());
    }
}
