//! `/metrics` in the Prometheus text format: requests by verb, resource and code,
//! request latency by verb, open watches, and the process's memory.

use api::Resource;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; 13],
    sum: f64,
    total: u64,
}

/// (verb, group, resource, code).
type RequestKey = (&'static str, &'static str, &'static str, u16);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    watchers: AtomicI64,
}

impl Metrics {
    pub fn observe(&self, verb: &'static str, res: &'static Resource, code: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((verb, res.group, res.plural, code)).or_default() += 1;
        }
    }

    pub fn observe_latency(&self, verb: &'static str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(verb).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.total += 1;
        }
    }

    pub fn watchers_changed(&self, delta: i64) {
        self.watchers.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn render(&self, feeds: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out by verb, group, resource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((verb, group, resource, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{code}\",group=\"{group}\",resource=\"{resource}\",verb=\"{verb}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb.\n",
        );
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (verb, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"+Inf\"}} {}",
                    h.total
                );
                let _ = writeln!(out, "apiserver_request_duration_seconds_sum{{verb=\"{verb}\"}} {}", h.sum);
                let _ = writeln!(out, "apiserver_request_duration_seconds_count{{verb=\"{verb}\"}} {}", h.total);
            }
        }
        out.push_str("# HELP apiserver_longrunning_requests Number of open watch requests.\n");
        out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
        let _ =
            writeln!(out, "apiserver_longrunning_requests{{verb=\"WATCH\"}} {}", self.watchers.load(Ordering::Relaxed));
        out.push_str("# HELP apiserver_watch_cache_feeds Number of resources with a shared store watch.\n");
        out.push_str("# TYPE apiserver_watch_cache_feeds gauge\n");
        let _ = writeln!(out, "apiserver_watch_cache_feeds {feeds}");
        if let Some(rss) = resident_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

/// Resident set size from `/proc/self/statm` (pages × 4 KiB).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let pods = api::registry::find("", "v1", "pods").unwrap();
        m.observe("LIST", pods, 200);
        m.observe("LIST", pods, 200);
        m.observe_latency("LIST", Duration::from_millis(3));
        m.watchers_changed(2);
        let text = m.render(1);
        assert!(text.contains("apiserver_request_total{code=\"200\",group=\"\",resource=\"pods\",verb=\"LIST\"} 2"));
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"LIST\",le=\"0.005\"} 1"));
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"LIST\",le=\"0.001\"} 0"));
        assert!(text.contains("apiserver_longrunning_requests{verb=\"WATCH\"} 2"));
    }
}
