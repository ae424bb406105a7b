//! The tests of calls between components again, with `local_calls = "direct"`: a component's
//! call to another service of the same host is handed over in process instead of going over a
//! loopback HTTP connection (`host/src/local.rs`). Same files, same assertions: each included
//! file starts its clusters with `crate::LOCAL_CALLS`, which here is this crate root's.
//!
//! Run only these: `cargo test --release <the native -p list> --test local_calls`.

use toystore_e2e::LocalCalls;

const LOCAL_CALLS: LocalCalls = LocalCalls::Direct;

#[path = "cache_and_restock.rs"]
mod cache_and_restock;
#[path = "foundation.rs"]
mod foundation;
#[path = "pause.rs"]
mod pause;
#[path = "replication.rs"]
mod replication;

/// `toystore_local_calls_total` of `service` in the host's `/metrics`.
fn local_calls_of(c: &toystore_e2e::Cluster, service: &str) -> f64 {
    let text = ureq::get(&format!("{}/metrics", c.admin_url())).call().expect("GET /metrics").into_string().expect("text");
    let prefix = format!("toystore_local_calls_total{{service=\"{service}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
}

/// The tests above would pass just as well over HTTP; this one proves they did not run over it:
/// with `direct`, a lookup's call to the catalog and an order's calls to the replicas are taken
/// in process; with `http`, none is.
#[test]
fn direct_calls_are_taken_in_process_and_http_calls_are_not() {
    for (local_calls, in_process) in [(LocalCalls::Direct, true), (LocalCalls::Http, false)] {
        let c = toystore_e2e::Cluster::start_calls(local_calls);
        assert_eq!(c.get("/products/Fox").status, 200);
        assert_eq!(c.order("Fox", 1).status, 200);
        let catalog = local_calls_of(&c, "catalog");
        let leader = local_calls_of(&c, &format!("order-{}", c.leader().expect("a leader")));
        if in_process {
            assert!(catalog >= 2.0, "the lookup and the order's /buy reach the catalog in process: {catalog}");
            assert!(leader >= 1.0, "the order reaches the leader in process: {leader}");
        } else {
            assert_eq!((catalog, leader), (0.0, 0.0), "over HTTP nothing is taken in process");
        }
    }
}
