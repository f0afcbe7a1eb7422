//! Latencies per operation, error and conflict counts, percentiles from sorted samples.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Default)]
pub struct Stats {
    /// Latency in microseconds of every request answered (errors included), per operation.
    ops: BTreeMap<&'static str, Vec<u64>>,
    /// Transport failures and unexpected statuses.
    pub errors: u64,
    /// Commits refused with 409 because another commit changed the table first.
    pub conflicts: u64,
    /// The first few errors, to make a failing run explain itself.
    pub error_samples: Vec<String>,
}

/// Nearest-rank percentile of ascending `sorted` (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Stats {
    pub fn record(&mut self, op: &'static str, d: Duration) {
        self.ops.entry(op).or_default().push(d.as_micros() as u64);
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }

    pub fn merge(&mut self, other: Stats) {
        for (op, lat) in other.ops {
            self.ops.entry(op).or_default().extend(lat);
        }
        self.errors += other.errors;
        self.conflicts += other.conflicts;
        for e in other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(e);
            }
        }
    }

    /// The workload's JSON: totals over every operation, then each operation alone.
    pub fn report(&mut self, workload: &str, elapsed: Duration, extra: Value) -> Value {
        let secs = elapsed.as_secs_f64();
        let mut all: Vec<u64> = Vec::new();
        let mut ops = Map::new();
        for (op, lat) in self.ops.iter_mut() {
            lat.sort_unstable();
            all.extend_from_slice(lat);
            ops.insert(
                op.to_string(),
                json!({
                    "requests": lat.len(),
                    "requests_per_s": (lat.len() as f64 / secs).round(),
                    "p50_ms": ms(percentile(lat, 50.0)),
                    "p99_ms": ms(percentile(lat, 99.0)),
                }),
            );
        }
        all.sort_unstable();
        json!({
            "workload": workload,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "requests": all.len(),
            "requests_per_s": (all.len() as f64 / secs).round(),
            "p50_ms": ms(percentile(&all, 50.0)),
            "p99_ms": ms(percentile(&all, 99.0)),
            "errors": self.errors,
            "conflicts": self.conflicts,
            "error_samples": self.error_samples,
            "ops": ops,
            "params": extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn merge_and_report() {
        let mut a = Stats::default();
        a.record("x", Duration::from_millis(1));
        let mut b = Stats::default();
        b.record("x", Duration::from_millis(3));
        b.record("y", Duration::from_millis(2));
        b.conflicts = 1;
        b.error("boom".into());
        a.merge(b);
        let r = a.report("w", Duration::from_secs(1), json!({}));
        assert_eq!(r["requests"], 3);
        assert_eq!(r["p50_ms"], 2.0);
        assert_eq!(r["conflicts"], 1);
        assert_eq!(r["errors"], 1);
        assert_eq!(r["ops"]["x"]["requests"], 2);
    }
}
