//! HTTP request counters by route and status code, rendered as Prometheus text next to the
//! node's own metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Requests served, by (route, status). The set of keys is bounded: routes are a fixed list
/// of names and statuses a handful of codes. A clone counts into the same table (a watch
/// answered later counts from the registry's thread).
#[derive(Debug, Default, Clone)]
pub struct HttpMetrics {
    requests: Arc<Mutex<BTreeMap<(&'static str, u16), u64>>>,
}

impl HttpMetrics {
    pub fn count(&self, route: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route, status)).or_insert(0) += 1;
    }

    pub fn render(&self, out: &mut String) {
        let name = "rafting_http_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests served, by route and status code\n# TYPE {name} counter"
        );
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, status), count) in requests.iter() {
            let _ = writeln!(out, "{name}{{route=\"{route}\",code=\"{status}\"}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_one_line_per_route_and_code() {
        let metrics = HttpMetrics::default();
        metrics.count("kv_put", 200);
        metrics.count("kv_put", 200);
        metrics.count("unknown", 404);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("rafting_http_requests_total{route=\"kv_put\",code=\"200\"} 2"));
        assert!(out.contains("rafting_http_requests_total{route=\"unknown\",code=\"404\"} 1"));
    }
}
