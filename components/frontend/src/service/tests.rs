//! The frontend's routes against the fake catalog and replicas.

use std::cell::Cell;
use std::rc::{Rc, Weak};

use futures::executor::block_on;
use serde_json::{json, Value};

use super::*;
use crate::fake::World;
use toystore_guest::Listener;

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(1_000_000) };
}

fn now() -> u64 {
    NOW.with(Cell::get)
}

fn advance(ms: u64) {
    NOW.with(|n| n.set(n.get() + ms));
}

fn config(world: &World) -> Config {
    Config {
        catalog_url: "http://catalog".into(),
        order_replicas: world.replica_list(),
        retry: RetryPolicy { first_backoff: Duration::from_millis(1), ..RetryPolicy::default() },
        ..Config::default()
    }
}

fn frontend_with(world: &World, f: impl FnOnce(&mut Config)) -> Frontend<World> {
    let mut cfg = config(world);
    f(&mut cfg);
    Frontend::new(cfg, world.clone()).with_clock(now)
}

/// A request on the internal listener, where every route answers (the host's and the
/// catalog's view); [`call_public`] is a client's.
fn call(fe: &Frontend<World>, method: Method, path: &str, body: &str) -> Reply {
    block_on(fe.handle(&Request::new(method, path, body).on(Listener::Internal)))
}

fn call_public(fe: &Frontend<World>, method: Method, path: &str, body: &str) -> Reply {
    block_on(fe.handle(&Request::new(method, path, body).on(Listener::Public)))
}

fn get(fe: &Frontend<World>, path: &str) -> Reply {
    call(fe, Method::GET, path, "")
}

fn stats(fe: &Frontend<World>) -> Value {
    get(fe, "/cache/stats").data().cloned().unwrap_or_default()
}

#[test]
fn product_lookup_is_cached_and_both_spellings_work() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    let r = get(&fe, "/products/Tux");
    assert_eq!(r.body, json!({"data": {"name": "Tux", "price": 25.99, "quantity": 100}}));
    let r = get(&fe, "/product/Tux");
    assert_eq!(r.body["data"]["quantity"], 100);
    assert_eq!(world.catalog_calls(), 1, "second lookup was a hit");
    let s = stats(&fe);
    assert_eq!((s["hits"].clone(), s["misses"].clone(), s["size"].clone()), (json!(1), json!(1), json!(1)));
}

#[test]
fn unknown_product_is_404_and_not_cached() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    for _ in 0..2 {
        let r = get(&fe, "/products/Unicorn");
        assert_eq!(r.body, json!({"error": {"code": 404, "message": "product not found"}}));
    }
    assert_eq!(world.catalog_calls(), 2);
    assert_eq!(stats(&fe)["size"], 0);
}

#[test]
fn catalog_down_is_503() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    world.set_catalog_up(false);
    assert_eq!(get(&fe, "/products/Tux").status, 503);
}

#[test]
fn invalidation_makes_the_next_lookup_fresh() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    get(&fe, "/products/Tux");
    world.set_quantity("Tux", 42);
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 100, "cached");
    let r = call(&fe, Method::POST, "/invalidate/Tux", "");
    assert_eq!(r.status, 200);
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 42);
    assert_eq!(stats(&fe)["invalidations"], 1);
}

#[test]
fn one_call_invalidates_several_toys_and_a_bad_list_changes_nothing() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    for name in ["Tux", "Fox", "Whale"] {
        get(&fe, &format!("/products/{name}"));
    }
    assert_eq!(stats(&fe)["size"], 3);
    for bad in ["", "{}", r#"{"names": "Tux"}"#, r#"{"names": [""]}"#, r#"{"names": ["Tux", 7]}"#, r#"{"names": ["Tux"], "also": 1}"#] {
        let r = call(&fe, Method::POST, "/invalidate", bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(stats(&fe)["size"], 3, "{bad}: nothing dropped");
    }
    let r = call(&fe, Method::POST, "/invalidate", r#"{"names": ["Tux", "Fox", "NeverCached"]}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["invalidated"], json!(["Tux", "Fox", "NeverCached"]));
    assert_eq!(stats(&fe)["size"], 1, "only Whale is left");
    assert_eq!(stats(&fe)["invalidations"], 3);
}

#[test]
fn lookup_racing_with_an_invalidation_does_not_cache_the_old_value() {
    let world = World::new(3);
    let fe = Rc::new(frontend_with(&world, |_| {}));
    // While the catalog's answer (quantity 100) is on its way, a buy changes the toy and the
    // catalog's invalidation reaches the frontend first.
    let weak: Weak<Frontend<World>> = Rc::downgrade(&fe);
    let w = world.clone();
    world.set_catalog_hook(Some(Rc::new(move || {
        w.set_quantity("Tux", 97);
        if let Some(fe) = weak.upgrade() {
            fe.invalidate("Tux");
        }
    })));
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 100, "the answer itself is served");
    world.set_catalog_hook(None);
    assert_eq!(stats(&fe)["size"], 0, "but not cached");
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 97);
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 97);
    assert_eq!(world.catalog_calls(), 2);
}

#[test]
fn lru_capacity_and_evictions_in_stats() {
    let world = World::new(3);
    let fe = frontend_with(&world, |c| c.cache_capacity = 2);
    for name in ["Tux", "Fox", "Tux", "Whale", "Fox"] {
        get(&fe, &format!("/products/{name}"));
    }
    let s = stats(&fe);
    assert_eq!(s["capacity"], 2);
    assert_eq!(s["size"], 2);
    assert_eq!(s["hits"], 1);
    assert_eq!(s["misses"], 4);
    assert_eq!(s["evictions"], 2, "Whale evicted Fox, then Fox evicted Tux");
    assert_eq!(s["entries"], json!(["Fox", "Whale"]));
}

#[test]
fn cache_disabled_always_asks_the_catalog() {
    let world = World::new(3);
    let fe = frontend_with(&world, |c| c.cache_enabled = false);
    for _ in 0..3 {
        assert_eq!(get(&fe, "/products/Tux").status, 200);
    }
    assert_eq!(world.catalog_calls(), 3);
    let s = stats(&fe);
    assert_eq!((s["enabled"].clone(), s["misses"].clone(), s["hits"].clone()), (json!(false), json!(3), json!(0)));
}

#[test]
fn ttl_bounds_staleness_of_a_lost_invalidation() {
    let world = World::new(3);
    let fe = frontend_with(&world, |c| c.cache_ttl = Duration::from_secs(30));
    get(&fe, "/products/Tux");
    world.set_quantity("Tux", 5); // and the invalidation is lost
    advance(29_999);
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 100);
    advance(1);
    assert_eq!(get(&fe, "/products/Tux").body["data"]["quantity"], 5);
}

#[test]
fn orders_go_to_the_leader_and_invalidate_locally() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    get(&fe, "/products/Tux");
    let r = call(&fe, Method::POST, "/orders", r#"{"name":"Tux","quantity":2}"#);
    assert_eq!(r.body, json!({"data": {"order_number": 0}}));
    assert_eq!(stats(&fe)["size"], 0, "ordered product dropped from the cache");
    assert_eq!(get(&fe, "/leader").body, json!({"data": {"leader": 3, "epoch": 1}}));
    let r = get(&fe, "/orders/0");
    assert_eq!(r.body, json!({"data": {"number": 0, "name": "Tux", "quantity": 2}}));
    assert_eq!(get(&fe, "/orders/7").status, 404);
    assert_eq!(get(&fe, "/orders/abc").status, 400);
    assert_eq!(get(&fe, "/orders/-1").status, 400);
}

#[test]
fn client_idempotency_key_is_used() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    let req = || Request::new(Method::POST, "/orders", r#"{"name":"Fox","quantity":1}"#).with_header("Idempotency-Key", "client-1");
    assert_eq!(block_on(fe.handle(&req())).body["data"]["order_number"], 0);
    let again = block_on(fe.handle(&req()));
    assert_eq!(again.body["data"]["order_number"], 0, "same key, same order");
    assert_eq!(again.header("Idempotency-Key"), Some("client-1"), "the client's key is echoed");
    assert_eq!(world.order_count(), 1);
    // The same key for another order: the replica's 422 passes through, with the key.
    let other = Request::new(Method::POST, "/orders", r#"{"name":"Fox","quantity":2}"#).with_header("Idempotency-Key", "client-1");
    let r = block_on(fe.handle(&other));
    assert_eq!((r.status, r.header("Idempotency-Key")), (422, Some("client-1")), "{r:?}");
    assert_eq!(world.order_count(), 1);
    // Without a header every request is a new order.
    let a = call(&fe, Method::POST, "/orders", r#"{"name":"Fox","quantity":1}"#);
    let b = call(&fe, Method::POST, "/orders", r#"{"name":"Fox","quantity":1}"#);
    assert_eq!(world.order_count(), 3);
    // ... and its answer carries the key the frontend made up, so the client can retry it.
    let (ka, kb) = (a.header("Idempotency-Key").unwrap(), b.header("Idempotency-Key").unwrap());
    assert!(!ka.is_empty() && ka != kb && ka != "client-1", "{ka} {kb}");
    let unknown = call(&fe, Method::POST, "/orders", r#"{"name":"Unicorn","quantity":1}"#);
    assert_eq!(unknown.status, 404);
    assert!(unknown.header("Idempotency-Key").is_some(), "errors once the key is known carry it too");
}

#[test]
fn bad_orders_are_400_and_reach_no_replica() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    for body in [
        "", "nope", "[]", "{}", r#"{"name":"Tux"}"#, r#"{"quantity":1}"#, r#"{"name":"","quantity":1}"#,
        r#"{"name":5,"quantity":1}"#, r#"{"name":"Tux","quantity":0}"#, r#"{"name":"Tux","quantity":-2}"#,
        r#"{"name":"Tux","quantity":1.5}"#, r#"{"name":"Tux","quantity":"2"}"#, r#"{"name":"Tux","quantity":null}"#,
    ] {
        let r = call(&fe, Method::POST, "/orders", body);
        assert_eq!(r.status, 400, "{body}");
        assert!(r.error_message().is_some(), "{body}");
    }
    assert_eq!(world.selections(), 0);
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let req = Request::new(Method::POST, "/orders", r#"{"name":"Tux","quantity":1}"#).with_header("Idempotency-Key", &long);
    assert_eq!(block_on(fe.handle(&req)).status, 400);
}

#[test]
fn unknown_toy_order_is_404_from_downstream() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    let r = call(&fe, Method::POST, "/orders", r#"{"name":"Unicorn","quantity":1}"#);
    assert_eq!(r.body, json!({"error": {"code": 404, "message": "product not found"}}));
}

#[test]
fn leader_crash_is_invisible_to_the_client() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    call(&fe, Method::POST, "/orders", r#"{"name":"Tux","quantity":1}"#);
    world.set_up(3, false);
    let r = call(&fe, Method::POST, "/orders", r#"{"name":"Tux","quantity":1}"#);
    assert_eq!(r.body, json!({"data": {"order_number": 1}}));
    assert_eq!(get(&fe, "/leader").body["data"]["leader"], 2);
    assert_eq!(get(&fe, "/orders/0").body["data"]["number"], 0);
}

#[test]
fn all_replicas_down_is_503() {
    let world = World::new(3);
    let fe = frontend_with(&world, |c| c.retry.attempts = 3);
    for id in 1..=3 {
        world.set_up(id, false);
    }
    assert_eq!(call(&fe, Method::POST, "/orders", r#"{"name":"Tux","quantity":1}"#).status, 503);
    // Reads of products still work.
    assert_eq!(get(&fe, "/products/Tux").status, 200);
}

#[test]
fn tick_runs_the_health_check_at_its_interval() {
    let world = World::new(3);
    let fe = frontend_with(&world, |c| c.health_check_interval = Duration::from_millis(1000));
    let r = call(&fe, Method::POST, "/tick", "");
    assert_eq!(r.body["data"]["leader"], 3, "first tick selects");
    assert_eq!(r.body["data"]["health_checked"], true);
    world.set_up(3, false);
    advance(500);
    let r = call(&fe, Method::POST, "/tick", "");
    assert_eq!(r.body["data"]["health_checked"], false);
    assert_eq!(r.body["data"]["leader"], 3);
    advance(500);
    let r = call(&fe, Method::POST, "/tick", "");
    assert_eq!(r.body["data"]["leader"], 2, "dead leader replaced");
}

#[test]
fn routes_methods_health_and_debug_trap() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    assert_eq!(get(&fe, "/health").status, 200);
    assert_eq!(get(&fe, "/nope").status, 404);
    assert_eq!(get(&fe, "/").status, 404);
    assert_eq!(get(&fe, "/orders").status, 405);
    assert_eq!(call(&fe, Method::POST, "/products/Tux", "").status, 405);
    assert_eq!(call(&fe, Method::DELETE, "/leader", "").status, 405);
    assert_eq!(call(&fe, Method::POST, "/debug/trap", "").status, 404);
    let fe = frontend_with(&world, |c| c.debug_routes = true);
    let trapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&fe, Method::POST, "/debug/trap", "")));
    assert!(trapped.is_err());
}

#[test]
fn internal_routes_are_unknown_on_the_public_listener_and_public_ones_answer_on_both() {
    let world = World::new(3);
    let fe = frontend_with(&world, |c| c.debug_routes = true);
    assert_eq!(call(&fe, Method::POST, "/tick", "").status, 200, "chooses a leader");
    let internal = [
        (Method::POST, "/invalidate/Tux"),
        (Method::POST, "/invalidate"),
        (Method::GET, "/cache/stats"),
        (Method::GET, "/leader"),
        (Method::POST, "/tick"),
        (Method::POST, "/debug/trap"),
        (Method::POST, "/debug/spin"),
        // Another method on an internal path: still unknown, not 405.
        (Method::DELETE, "/leader"),
    ];
    for (method, path) in internal {
        let r = call_public(&fe, method.clone(), path, "");
        assert_eq!(r.status, 404, "{method} {path}: {:?}", r.body);
        assert_eq!(r.error_message(), Some(format!("no route for {method} {path}").as_str()), "as an unknown path");
    }
    assert_eq!(stats(&fe)["invalidations"], 0, "the public invalidation did nothing");
    assert_eq!(call(&fe, Method::POST, "/invalidate/Tux", "").status, 200);
    assert_eq!(call(&fe, Method::GET, "/leader", "").body["data"]["leader"], 3);
    for (method, path) in [(Method::GET, "/products/Tux"), (Method::GET, "/product?Tux"),
        (Method::GET, "/health"), (Method::GET, "/openapi.json")]
    {
        assert_eq!(call_public(&fe, method.clone(), path, "").status, 200, "{method} {path} on the public listener");
        assert_eq!(call(&fe, method.clone(), path, "").status, 200, "{method} {path} on the internal listener");
    }
    let placed = call_public(&fe, Method::POST, "/orders", r#"{"name":"Fox","quantity":1}"#);
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    assert_eq!(call_public(&fe, Method::GET, "/orders/0", "").status, 200);
}

#[test]
fn names_are_encoded_for_the_catalog() {
    assert_eq!(encode_segment("Tux Jr/2"), "Tux%20Jr%2F2");
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    // "Tux%20Jr" decodes to "Tux Jr", which the fake catalog does not know: a clean 404.
    assert_eq!(get(&fe, "/products/Tux%20Jr").status, 404);
}

#[test]
fn the_seeds_lookup_and_order_by_path_spellings() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    let canonical = call_public(&fe, Method::GET, "/products/Tux", "");
    for path in ["/lookup?Tux", "/lookup?name=Tux", "/lookup?toy=Tux"] {
        assert_eq!(call_public(&fe, Method::GET, path, "").body, canonical.body, "{path}");
    }
    assert_eq!(call_public(&fe, Method::GET, "/lookup", "").status, 400);

    // The path names the order; a body, if any, must name the same one.
    let r = call_public(&fe, Method::POST, "/orders/Tux/2", "");
    assert_eq!(r.body, json!({"data": {"order_number": 0}}));
    assert!(r.header("Idempotency-Key").is_some());
    let r = call_public(&fe, Method::POST, "/orders/Tux/1", r#"{"name":"Tux","quantity":1}"#);
    assert_eq!(r.body, json!({"data": {"order_number": 1}}));
    assert_eq!(call_public(&fe, Method::POST, "/orders/Tux%20Jr/1", "").status, 404, "a percent-encoded name, unknown");
    let ordered = world.order_count();
    for (path, body) in [
        ("/orders/Tux/0", ""),
        ("/orders/Tux/-1", ""),
        ("/orders/Tux/1.5", ""),
        ("/orders/Tux/two", ""),
        ("/orders/Tux/9223372036854775808", ""),
        ("/orders/Tux/1", r#"{"name":"Fox","quantity":1}"#),
        ("/orders/Tux/1", r#"{"toy":"Tux","quantity":2}"#),
        ("/orders/Tux/1", "nope"),
    ] {
        let r = call_public(&fe, Method::POST, path, body);
        assert_eq!(r.status, 400, "{path} {body}: {:?}", r.body);
        assert!(r.error_message().is_some(), "{path} {body}");
    }
    assert_eq!(world.order_count(), ordered, "a refused order reaches no replica");
    assert_eq!(call_public(&fe, Method::GET, "/orders/Tux/1", "").status, 405);
}

#[test]
fn the_seeds_invalidation_spelling_drops_the_entry_on_the_internal_listener_only() {
    let world = World::new(3);
    let fe = frontend_with(&world, |_| {});
    get(&fe, "/products/Tux");
    assert_eq!(stats(&fe)["size"], 1);
    assert_eq!(call_public(&fe, Method::POST, "/invalidation/Tux", "").status, 404);
    assert_eq!(stats(&fe)["size"], 1, "not from the public listener");
    let r = call(&fe, Method::POST, "/invalidation/Tux", "");
    assert_eq!(r.body, json!({"data": {"invalidated": "Tux"}}));
    assert_eq!(stats(&fe)["size"], 0);
}
