//! The whole request path on the real host — lookups, orders, bad input, restarts.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;

use toystore_e2e::{LocalCalls, Cluster, TOYS};

/// How calls between the components travel in these tests. `tests/local_calls.rs` includes this
/// file as a module and runs every test again with its own crate-level `LOCAL_CALLS` (`direct`).
#[allow(dead_code)]
const LOCAL_CALLS: LocalCalls = LocalCalls::Http;

#[test]
fn every_toy_can_be_looked_up_under_both_spellings() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    for toy in TOYS {
        for route in ["products", "product"] {
            let r = c.get(&format!("/{route}/{toy}"));
            assert_eq!(r.status, 200, "{route}/{toy}: {}", r.body);
            assert_eq!(r.data()["name"], toy);
            assert_eq!(r.data()["quantity"], 100);
            assert!(r.data()["price"].as_f64().unwrap() > 0.0);
        }
    }
    let tux = c.get("/products/Tux");
    assert_eq!(tux.body, serde_json::json!({"data": {"name": "Tux", "price": 25.99, "quantity": 100}}));
    let missing = c.get("/products/Unicorn");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, serde_json::json!({"error": {"code": 404, "message": "product not found"}}));
}

#[test]
fn an_order_takes_exactly_its_quantity_and_reads_back() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let r = c.order("Whale", 3);
    assert_eq!(r.status, 200, "{}", r.body);
    let n = r.data()["order_number"].as_u64().expect("order_number");
    assert_eq!(c.stock("Whale"), 97);
    assert_eq!(c.get("/products/Whale").data()["quantity"], 97, "frontend must not show the old quantity");
    let back = c.get(&format!("/orders/{n}"));
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.body, serde_json::json!({"data": {"number": n, "name": "Whale", "quantity": 3, "price": 34.5,
        "Order number": n, "Toy name": "Whale", "Quantity": 3}}), "the unit price it was ordered at, and the seed's spellings");
    // The order was replicated: every replica's log ends with it.
    c.wait_for("replicas to hold the order", std::time::Duration::from_secs(5), || {
        (1..=3).all(|id| String::from_utf8_lossy(&c.orders_file(id)).contains(",Whale,3,"))
    });
    let unknown = c.get(&format!("/orders/{}", n + 1000));
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[test]
fn fifty_concurrent_orders_get_distinct_numbers_and_take_the_sum() {
    let c = Arc::new(Cluster::start_calls(crate::LOCAL_CALLS));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let c = Arc::clone(&c);
            let qty = 1 + (i % 3) as i64;
            thread::spawn(move || {
                let r = c.order("Lego", qty);
                assert_eq!(r.status, 200, "order {i}: {}", r.body);
                (r.data()["order_number"].as_u64().unwrap(), qty)
            })
        })
        .collect();
    let results: Vec<(u64, i64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let numbers: BTreeSet<u64> = results.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers.len(), 50, "numbers must be distinct: {results:?}");
    assert_eq!(numbers.iter().copied().collect::<Vec<_>>(), (0..50).collect::<Vec<_>>(), "contiguous from 0");
    let total: i64 = results.iter().map(|(_, q)| q).sum();
    assert_eq!(c.stock("Lego"), 100 - total);
    for (n, qty) in &results {
        let back = c.get(&format!("/orders/{n}"));
        assert_eq!(back.data()["quantity"], *qty);
        assert_eq!(back.data()["name"], "Lego");
    }
}

#[test]
fn bad_input_gets_its_status_and_changes_nothing() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    assert_eq!(c.order("Fox", 1).status, 200);
    let stock_before: Vec<i64> = TOYS.iter().map(|t| c.stock(t)).collect();
    let orders_before: Vec<Vec<u8>> = c.settled_orders_files();

    let cases: &[(&str, &str, u16)] = &[
        ("not json", "{nope", 400),
        ("empty body", "", 400),
        ("array", "[1,2]", 400),
        ("missing quantity", r#"{"name":"Fox"}"#, 400),
        ("missing name", r#"{"quantity":1}"#, 400),
        ("zero", r#"{"name":"Fox","quantity":0}"#, 400),
        ("negative", r#"{"name":"Fox","quantity":-2}"#, 400),
        ("fraction", r#"{"name":"Fox","quantity":1.5}"#, 400),
        ("string quantity", r#"{"name":"Fox","quantity":"2"}"#, 400),
        ("name not a string", r#"{"name":7,"quantity":1}"#, 400),
        ("more than in stock", r#"{"name":"Fox","quantity":1000}"#, 400),
        ("unknown toy", r#"{"name":"Unicorn","quantity":1}"#, 404),
    ];
    for (what, body, status) in cases {
        let r = c.post("/orders", body);
        assert_eq!(r.status, *status, "{what}: {}", r.body);
        assert_eq!(r.body["error"]["code"], *status, "{what}: error envelope {}", r.body);
        assert!(!r.error_message().is_empty(), "{what}: message");
    }
    let stock_msg = c.post("/orders", r#"{"name":"Fox","quantity":1000}"#);
    assert!(stock_msg.error_message().contains("stock"), "a clear message: {}", stock_msg.body);

    assert_eq!(c.get("/orders/abc").status, 400);
    assert_eq!(c.get("/orders/-1").status, 400);
    assert_eq!(c.get("/nowhere").status, 404);
    assert_eq!(c.get("/nowhere").body["error"]["code"], 404);
    let wrong_method = c.request("DELETE", &format!("{}/orders", c.frontend_url()), None).unwrap();
    assert!(matches!(wrong_method.status, 404 | 405), "{}", wrong_method.body);
    let wrong_method = c.request("PUT", &format!("{}/products/Tux", c.frontend_url()), Some("{}")).unwrap();
    assert!(matches!(wrong_method.status, 404 | 405), "{}", wrong_method.body);

    let stock_after: Vec<i64> = TOYS.iter().map(|t| c.stock(t)).collect();
    assert_eq!(stock_before, stock_after, "rejected requests must not change stock");
    let orders_after: Vec<Vec<u8>> = (1..=3).map(|id| c.orders_file(id)).collect();
    assert_eq!(orders_before, orders_after, "rejected requests must not add orders");
}

#[test]
fn an_idempotency_key_names_one_order_and_every_order_answer_carries_it() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let first = c.order_with_key("Whale", 2, "e2e-key-1");
    assert_eq!((first.status, first.header("Idempotency-Key")), (200, Some("e2e-key-1")), "{}", first.body);
    let n = first.data()["order_number"].as_u64().expect("order_number");
    let again = c.order_with_key("Whale", 2, "e2e-key-1");
    assert_eq!((again.data()["order_number"].as_u64(), again.header("Idempotency-Key")), (Some(n), Some("e2e-key-1")));

    // The same key for a different order: 422, and nothing changes anywhere.
    let stock = c.stock("Whale");
    let files: Vec<Vec<u8>> = c.settled_orders_files();
    for (toy, qty) in [("Whale", 3), ("Tux", 2)] {
        let r = c.order_with_key(toy, qty, "e2e-key-1");
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.error_message().contains("idempotency key \"e2e-key-1\" was used for a different order"), "{}", r.body);
        assert_eq!(r.header("Idempotency-Key"), Some("e2e-key-1"));
    }
    assert_eq!(c.stock("Whale"), stock);
    assert_eq!(c.stock("Tux"), 100);
    assert_eq!((1..=3).map(|id| c.orders_file(id)).collect::<Vec<_>>(), files, "no order added or changed");

    // Without a key the frontend makes one up and says which: retrying with it is safe.
    let keyless = c.order("Marbles", 1);
    let made_up = keyless.header("Idempotency-Key").expect("the made-up key").to_string();
    let retry = c.order_with_key("Marbles", 1, &made_up);
    assert_eq!(retry.data()["order_number"], keyless.data()["order_number"], "the retry found the order");
    assert_eq!(c.stock("Marbles"), 99);
    // Errors once the key is known carry it too.
    let unknown = c.order("Unicorn", 1);
    assert_eq!(unknown.status, 404);
    assert!(unknown.header("Idempotency-Key").is_some_and(|k| !k.is_empty()));
}

#[test]
fn stock_and_orders_survive_a_restart_and_a_crash() {
    let mut c = Cluster::start_calls(crate::LOCAL_CALLS);
    let a = c.order("Dolphin", 4).data()["order_number"].as_u64().unwrap();
    let b = c.order("Marbles", 2).data()["order_number"].as_u64().unwrap();
    c.restart();
    assert_eq!(c.stock("Dolphin"), 96);
    assert_eq!(c.get("/products/Marbles").data()["quantity"], 98);
    assert_eq!(c.get(&format!("/orders/{a}")).data()["name"], "Dolphin");
    assert_eq!(c.get(&format!("/orders/{b}")).data()["quantity"], 2);
    // A new order continues the numbering.
    let next = c.order("Dolphin", 1).data()["order_number"].as_u64().unwrap();
    assert!(next > b, "numbers keep increasing across restarts: {next} after {b}");

    // SIGKILL: nothing is flushed at exit, so only what was on disk at the reply survives.
    c.crash();
    c.restart();
    assert_eq!(c.stock("Dolphin"), 95);
    assert_eq!(c.get(&format!("/orders/{next}")).data()["name"], "Dolphin");
}
