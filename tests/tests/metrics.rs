//! `GET /metrics` on the admin address, scraped after real traffic and read with a Prometheus
//! text parser (`prometheus-parse`): the counters move by exactly what the traffic did.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use toystore_e2e::Cluster;

/// One scrape, parsed.
struct Metrics(Scrape);

impl Metrics {
    fn scrape(c: &Cluster) -> Self {
        let response = ureq::get(&format!("{}/metrics", c.admin_url())).call().expect("GET /metrics");
        assert!(response.content_type().contains("text"), "content type {}", response.content_type());
        let text = response.into_string().expect("metrics text");
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text");
        Self(scrape)
    }

    /// The sum of the samples named `name` whose labels include all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{name}: unexpected {other:?}"),
            })
            .sum()
    }

    /// Whether any sample of `name` has exactly `labels` among its labels.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.0.samples.iter().any(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }
}

#[test]
fn metrics_move_with_real_traffic() {
    let c = Cluster::start();
    c.wait_for("a leader", Duration::from_secs(30), || c.leader().is_some());
    let leader = c.leader().expect("a leader");
    c.wait_for("the replicas' pings to name it", Duration::from_secs(30), || {
        Metrics::scrape(&c).sum("toystore_order_leader", &[]) == leader as f64
    });
    let before = Metrics::scrape(&c);

    // Lookups: the first of a toy misses the cache, the second hits.
    for _ in 0..2 {
        assert_eq!(c.get("/products/Marbles").status, 200);
    }
    // One committed order, one refused for an unknown toy.
    assert_eq!(c.order("Marbles", 1).status, 200);
    assert_eq!(c.order("NoSuchToy", 1).status, 404);

    let after = Metrics::scrape(&c);
    let delta = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(delta("toystore_orders_committed_total", &[]), 1.0, "an order raises committed by one");
    assert_eq!(delta("toystore_orders_rejected_total", &[("reason", "unknown_product")]), 1.0);
    let lookups = [("service", "frontend"), ("route", "/products/<name>"), ("status", "200")];
    assert_eq!(delta("toystore_requests_total", &lookups), 2.0);
    assert!(!after.has("toystore_requests_total", &[("route", "/products/Marbles")]), "paths are normalised");
    let histogram = after.0.samples.iter().find(|s| {
        s.metric == "toystore_request_duration_seconds"
            && lookups.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    });
    match histogram.map(|s| &s.value) {
        Some(Value::Histogram(buckets)) => {
            let total = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert!(total >= 2.0, "latency histogram counts the lookups: {buckets:?}");
        }
        other => panic!("no latency histogram for the lookups: {other:?}"),
    }
    assert!(delta("toystore_cache_events_total", &[("event", "misses")]) >= 1.0);
    assert!(delta("toystore_cache_events_total", &[("event", "hits")]) >= 1.0);
    assert_eq!(after.sum("toystore_order_leader", &[]), leader as f64);
    assert!(after.sum("toystore_order_epoch", &[]) >= 1.0);
    for id in ["1", "2", "3"] {
        assert_eq!(after.sum("toystore_replica_up", &[("replica", id)]), 1.0, "replica {id} answers");
        assert!(after.sum("toystore_replica_last_contact_seconds", &[("replica", id)]) < 5.0);
    }

    // Kill a follower: restarts by cause `kill` rise by one, and the orders it misses show
    // as its lag.
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let label = follower.to_string();
    let service = format!("order-{follower}");
    let restarts = [("service", service.as_str()), ("cause", "kill")];
    c.wait_for("the follower to have every order", Duration::from_secs(10), || {
        Metrics::scrape(&c).sum("toystore_replica_lag_records", &[("replica", &label)]) == 0.0
    });
    c.kill_replica(follower as usize);
    for _ in 0..2 {
        assert_eq!(c.order("Marbles", 1).status, 200);
    }
    let killed = Metrics::scrape(&c);
    assert_eq!(killed.sum("toystore_instance_restarts_total", &restarts) - after.sum("toystore_instance_restarts_total", &restarts), 1.0);
    assert_eq!(killed.sum("toystore_replica_up", &[("replica", &label)]), 0.0);
    assert_eq!(killed.sum("toystore_replica_lag_records", &[("replica", &label)]), 2.0, "two orders behind");
    assert_eq!(killed.sum("toystore_orders_committed_total", &[]) - after.sum("toystore_orders_committed_total", &[]), 2.0);

    // A trap counts as a restart with cause `trap`.
    let trap = [("service", "catalog"), ("cause", "trap")];
    let _ = c.request("POST", &format!("{}/debug/trap", c.catalog_url()), Some(""));
    c.wait_for("the trap to be counted", Duration::from_secs(10), || {
        Metrics::scrape(&c).sum("toystore_instance_restarts_total", &trap) == killed.sum("toystore_instance_restarts_total", &trap) + 1.0
    });

    // Back up, it catches up: lag 0 again.
    c.restart_replica(follower as usize);
    c.wait_for("the follower to catch up", Duration::from_secs(30), || {
        let m = Metrics::scrape(&c);
        m.sum("toystore_replica_up", &[("replica", &label)]) == 1.0
            && m.sum("toystore_replica_lag_records", &[("replica", &label)]) == 0.0
    });
}
