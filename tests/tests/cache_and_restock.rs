//! The frontend's LRU cache with push invalidation, and the catalog's restock.

use std::time::{Duration, Instant};

use toystore_e2e::{LocalCalls, test_settings, Cluster, Settings, TOYS};

/// How calls between the components travel in these tests. `tests/local_calls.rs` includes this
/// file as a module and runs every test again with its own crate-level `LOCAL_CALLS` (`direct`).
#[allow(dead_code)]
const LOCAL_CALLS: LocalCalls = LocalCalls::Http;

fn stats(c: &Cluster) -> serde_json::Value {
    let r = c.internal_get("/cache/stats");
    assert_eq!(r.status, 200, "{}", r.body);
    r.data().clone()
}

fn stat(c: &Cluster, name: &str) -> u64 {
    stats(c)[name].as_u64().unwrap_or_else(|| panic!("stat {name} in {}", stats(c)))
}

/// Rewrite one toy's quantity in catalog.csv behind every service's back (either form of the
/// file: the seed's `name,price,quantity` or the full one with `seeded,restocked,applied_orders`),
/// then restart the catalog so that it serves the edit: under the toystore host it reads the file
/// once and keeps the table in memory. The frontend is told nothing.
fn edit_stock_on_disk(c: &Cluster, toy: &str, quantity: u32) {
    let path = c.data_dir("catalog").join("catalog.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| match line.split(',').collect::<Vec<_>>().as_slice() {
            [name, price, _, rest @ ..] if *name == toy => {
                [&[*name, *price, &quantity.to_string()][..], rest].concat().join(",")
            }
            _ => line.to_string(),
        })
        .collect();
    // Atomically, like the catalog itself, so a concurrent reader never sees a torn file.
    let tmp = path.with_extension("edit");
    std::fs::write(&tmp, edited.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let r = c.admin("POST", "/services/catalog/restart");
    assert_eq!(r.status, 200, "restart the catalog: {:?}", r.body);
    let want = quantity as u64;
    c.wait_for("the restarted catalog to serve the edit", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/products/{toy}", c.catalog_url()), None)
            .map(|r| r.status == 200 && r.data()["quantity"].as_u64() == Some(want))
            .unwrap_or(false)
    });
}

/// How long the catalog may trail a commit: the leader pushes `/apply` right after it, and
/// retries on its tick.
const APPLY_WITHIN: Duration = Duration::from_secs(5);

/// Wait (bounded) until the catalog itself has applied orders taking `toy` to `quantity`.
fn wait_for_stock(c: &Cluster, toy: &str, quantity: i64) {
    c.wait_for(&format!("{toy} at {quantity} in the catalog"), APPLY_WITHIN, || c.stock(toy) == quantity);
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
    // The catalog's quantity trails the commit by one `/apply` push (sent right after it). Two
    // invalidations follow an order: the frontend's own when the order succeeds, and the
    // catalog's once it has applied it (dropping whatever was cached from before the apply).
    c.wait_for("the frontend's and the catalog's invalidation of Tux", APPLY_WITHIN, || {
        stat(&c, "invalidations") >= inval + 2
    });
    assert_eq!(c.get("/products/Tux").data()["quantity"], 95, "never the old quantity once applied");
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
    assert_eq!(c.internal_post("/invalidate/Fox", "").status, 200);
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
    // The order reaches the catalog with the leader's `/apply` push, right after the commit;
    // only from then on can a restock see Python low.
    c.wait_for("the order applied at the catalog", APPLY_WITHIN, || {
        c.catalog("/stock").data()["applied_orders"].as_u64() >= Some(1)
    });
    let started = Instant::now();
    let low = c.get("/products/Python").data()["quantity"].as_i64().unwrap();
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
    assert!(on_disk.lines().any(|l| l.starts_with("Python,15.00,100,100,90,")), "restock recorded: {on_disk}");
    // A toy above the threshold is left alone.
    assert_eq!(c.order("Tux", 5).status, 200);
    wait_for_stock(&c, "Tux", 95);
    std::thread::sleep(Duration::from_secs(period + 1));
    assert_eq!(c.stock("Tux"), 95);
}

#[test]
fn the_catalog_invalidates_right_after_its_apply_reply_not_on_a_tick() {
    // Ticks a minute apart and a long TTL: only the catalog's after-reply work can drop the entry.
    let c = Cluster::start_with(Settings { tick_interval_ms: 60_000, cache_ttl_secs: 600, ..test_settings() });
    assert_eq!(c.get("/products/Fox").data()["quantity"], 100);
    assert_eq!(c.get("/products/Fox").data()["quantity"], 100, "cached");
    // What an order leader pushes after a commit (sent here by hand: no order is placed).
    let body = r#"{"from":0,"orders":[{"number":0,"name":"Fox","quantity":3}]}"#;
    let r = c.request("POST", &format!("{}/apply", c.catalog_url()), Some(body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["applied_orders"], 1);
    c.wait_for("the catalog's invalidation of Fox", Duration::from_secs(3), || {
        c.get("/products/Fox").data()["quantity"] == 97
    });
}
