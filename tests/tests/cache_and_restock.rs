//! The frontend's LRU cache with push invalidation, and the catalog's restock.

use std::time::{Duration, Instant};

use toystore_e2e::{LocalCalls, test_settings, Cluster, Settings, TOYS};

/// How calls between the components travel in these tests. `tests/local_calls.rs` includes this
/// file as a module and runs every test again with its own crate-level `LOCAL_CALLS` (`direct`).
#[allow(dead_code)]
const LOCAL_CALLS: LocalCalls = LocalCalls::Http;

fn stats(c: &Cluster) -> serde_json::Value {
    let r = c.get("/cache/stats");
    assert_eq!(r.status, 200, "{}", r.body);
    r.data().clone()
}

fn stat(c: &Cluster, name: &str) -> u64 {
    stats(c)[name].as_u64().unwrap_or_else(|| panic!("stat {name} in {}", stats(c)))
}

/// Rewrite one toy's quantity in catalog.csv behind every service's back.
fn edit_stock_on_disk(c: &Cluster, toy: &str, quantity: u32) {
    let path = c.data_dir("catalog").join("catalog.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| match line.split(',').collect::<Vec<_>>().as_slice() {
            [name, price, _] if *name == toy => format!("{name},{price},{quantity}"),
            _ => line.to_string(),
        })
        .collect();
    // Atomically, like the catalog itself, so a concurrent reader never sees a torn file.
    let tmp = path.with_extension("edit");
    std::fs::write(&tmp, edited.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

#[test]
fn second_lookup_is_a_hit_and_an_order_invalidates() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let s0 = stats(&c);
    assert_eq!(s0["enabled"], true);
    assert_eq!(s0["capacity"], 5);
    assert_eq!(s0["size"], 0, "the cache starts empty");

    assert_eq!(c.get("/products/Tux").data()["quantity"], 100);
    let (hits, misses) = (stat(&c, "hits"), stat(&c, "misses"));
    assert_eq!(c.get("/products/Tux").data()["quantity"], 100);
    assert_eq!(stat(&c, "hits"), hits + 1, "second lookup is a hit");
    assert_eq!(stat(&c, "misses"), misses);

    // Proof that the hit came from the cache: a change behind the catalog's back is not seen.
    edit_stock_on_disk(&c, "Tux", 42);
    assert_eq!(c.get("/products/Tux").data()["quantity"], 100, "served from the cache");
    edit_stock_on_disk(&c, "Tux", 100);

    let inval = stat(&c, "invalidations");
    assert_eq!(c.order("Tux", 5).status, 200);
    assert_eq!(c.get("/products/Tux").data()["quantity"], 95, "never the old quantity after an order");
    assert!(stat(&c, "invalidations") > inval, "the order invalidated Tux");
    // Back in the cache with the new value.
    let hits = stat(&c, "hits");
    assert_eq!(c.get("/products/Tux").data()["quantity"], 95);
    assert_eq!(stat(&c, "hits"), hits + 1);
}

#[test]
fn invalidate_route_drops_an_entry() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    c.get("/products/Fox");
    edit_stock_on_disk(&c, "Fox", 7);
    assert_eq!(c.get("/products/Fox").data()["quantity"], 100, "cached");
    assert_eq!(c.post("/invalidate/Fox", "").status, 200);
    assert_eq!(c.get("/products/Fox").data()["quantity"], 7, "re-read after invalidation");
}

#[test]
fn capacity_five_evicts_when_ten_toys_are_looked_up() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let e0 = stat(&c, "evictions");
    for toy in TOYS {
        assert_eq!(c.get(&format!("/products/{toy}")).status, 200);
    }
    let s = stats(&c);
    assert_eq!(s["size"], 5, "{s}");
    assert_eq!(s["evictions"].as_u64().unwrap(), e0 + 5, "{s}");
    // Least recently used went first: the first five are gone, the last five are hits.
    let hits = stat(&c, "hits");
    for toy in &TOYS[5..] {
        c.get(&format!("/products/{toy}"));
    }
    assert_eq!(stat(&c, "hits"), hits + 5);
    let misses = stat(&c, "misses");
    c.get("/products/Tux");
    assert_eq!(stat(&c, "misses"), misses + 1, "Tux was evicted");
}

#[test]
fn with_caching_off_every_lookup_reaches_the_catalog() {
    let c = Cluster::start_with_calls(Settings { cache_enabled: false, ..test_settings() }, crate::LOCAL_CALLS);
    assert_eq!(stats(&c)["enabled"], false);
    for round in 0..3u32 {
        edit_stock_on_disk(&c, "Whale", 50 + round);
        assert_eq!(c.get("/products/Whale").data()["quantity"], 50 + round, "round {round}");
    }
    assert_eq!(stat(&c, "hits"), 0);
    assert_eq!(stats(&c)["size"], 0);
}

#[test]
fn low_stock_is_restocked_within_one_period() {
    let period = 2;
    let c = Cluster::start_with_calls(Settings { restock_interval_secs: period, tick_interval_ms: 200, ..test_settings() }, crate::LOCAL_CALLS);
    // Cache Python, then drive its stock to 10 (the threshold).
    c.get("/products/Python");
    let r = c.order("Python", 90);
    assert_eq!(r.status, 200, "{}", r.body);
    let low = c.get("/products/Python").data()["quantity"].as_i64().unwrap();
    let started = Instant::now();
    assert!(low <= 10 || low == 100, "either not yet restocked (<= 10) or already: {low}");
    let deadline = Duration::from_secs(period + 1);
    loop {
        if c.get("/products/Python").data()["quantity"] == 100 {
            break;
        }
        assert!(started.elapsed() <= deadline, "not restocked within {deadline:?}; log:\n{}", c.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.stock("Python"), 100, "restock is durable in the catalog");
    let on_disk = std::fs::read_to_string(c.data_dir("catalog").join("catalog.csv")).unwrap();
    assert!(on_disk.lines().any(|l| l.starts_with("Python,") && l.ends_with(",100")), "{on_disk}");
    // A toy above the threshold is left alone.
    assert_eq!(c.order("Tux", 5).status, 200);
    std::thread::sleep(Duration::from_secs(period + 1));
    assert_eq!(c.stock("Tux"), 95);
}
