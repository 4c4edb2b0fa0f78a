//! Whether a soak ended flat. A series (RSS, descriptors, tasks) is judged
//! from its baseline sample (minute 2 by default, when pools and allocator
//! arenas have filled; earlier in a shorter soak) to its last. pingora's
//! timer wheel keeps filling until its longest timeout has passed (300 s with
//! our conf/; see the soak in BENCHMARKS.md), so `--baseline-minute 6` judges
//! what comes after it. RSS may grow by a
//! fraction, counts by a small constant, since an idle keep-alive connection
//! more or less at the sampling instant is not a leak. The least-squares
//! slope over the same samples is reported beside it.

use serde::Serialize;

/// How much a series may grow from its baseline to its end.
#[derive(Clone, Copy, Debug)]
pub enum Allowance {
    /// A fraction of the baseline (0.2 = 20 %).
    Fraction(f64),
    /// An absolute amount.
    Slack(f64),
}

#[derive(Serialize, Debug)]
pub struct Check {
    pub what: String,
    /// The sample the growth is measured from.
    pub baseline_sample: usize,
    pub baseline: f64,
    pub last: f64,
    /// Least squares over the baseline and later samples, per sample (a minute).
    pub slope_per_sample: f64,
    pub allowed: String,
    pub ok: bool,
}

/// The sample growth is measured from: `wanted` (a minute) when there is a later one.
pub fn baseline_index(samples: usize, wanted: usize) -> usize {
    wanted.min(samples.saturating_sub(2))
}

pub fn check(what: &str, values: &[f64], from_minute: usize, allowance: Allowance) -> Check {
    let from = baseline_index(values.len(), from_minute);
    let tail = values.get(from..).unwrap_or_default();
    let baseline = tail.first().copied().unwrap_or(0.0);
    let last = tail.last().copied().unwrap_or(0.0);
    let (limit, allowed) = match allowance {
        Allowance::Fraction(f) => (baseline * (1.0 + f), format!("+{:.0} %", f * 100.0)),
        Allowance::Slack(n) => (baseline + n, format!("+{n}")),
    };
    Check {
        what: what.to_string(),
        baseline_sample: from,
        baseline,
        last,
        slope_per_sample: slope(tail),
        allowed,
        ok: !tail.is_empty() && last <= limit,
    }
}

/// Least-squares slope of `ys` against 0, 1, 2, …; 0 for fewer than two points.
pub fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes() {
        assert_eq!(slope(&[5.0]), 0.0);
        assert!((slope(&[1.0, 2.0, 3.0, 4.0]) - 1.0).abs() < 1e-9);
        assert!(slope(&[3.0, 3.0, 3.0]).abs() < 1e-9);
    }

    #[test]
    fn growth_from_minute_two() {
        // Minutes 0 and 1 warm up and are not judged.
        let rss = [50.0, 90.0, 100.0, 104.0, 110.0, 119.0];
        let c = check("rss", &rss, 2, Allowance::Fraction(0.2));
        assert_eq!((c.baseline_sample, c.baseline, c.last, c.ok), (2, 100.0, 119.0, true));
        assert!(!check("rss", &[50.0, 90.0, 100.0, 121.0], 2, Allowance::Fraction(0.2)).ok);
        assert!(check("rss", &[50.0, 90.0, 100.0, 121.0, 122.0], 3, Allowance::Fraction(0.2)).ok);
        assert!(check("fds", &[10.0, 40.0, 41.0], 2, Allowance::Slack(8.0)).ok);
        assert_eq!(check("fds", &[10.0, 40.0, 41.0], 2, Allowance::Slack(8.0)).baseline_sample, 1);
        assert!(!check("tasks", &[10.0, 10.0, 10.0, 30.0], 2, Allowance::Slack(8.0)).ok);
        assert!(!check("none", &[], 2, Allowance::Slack(8.0)).ok);
    }
}
