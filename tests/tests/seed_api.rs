//! The seed document's own spellings of the public API answer exactly as the canonical routes
//! do: `GET /product?<toy_name>` (and `?name=`), `POST /order` with `toy` or `name`, and
//! `GET /order?<order_number>` / `GET /order/<n>`, whose answers carry the seed implementation's
//! `"Order number"`, `"Toy name"` and `"Quantity"` beside the store's own fields. Malformed
//! seed-style requests get a JSON 400 and change nothing.

use serde_json::json;
use toystore_e2e::{Cluster, TOYS};

#[test]
fn product_lookups_in_the_seed_spellings_match_the_canonical_route() {
    let c = Cluster::start();
    for toy in TOYS {
        let canonical = c.get(&format!("/products/{toy}"));
        assert_eq!(canonical.status, 200, "{}", canonical.body);
        for path in [format!("/product?{toy}"), format!("/product?name={toy}"), format!("/product?toy={toy}")] {
            let r = c.get(&path);
            assert_eq!((r.status, &r.body), (200, &canonical.body), "{path}");
        }
    }
    let missing = c.get("/product?Unicorn");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, json!({"error": {"code": 404, "message": "product not found"}}));
    for bare in ["/product", "/product?", "/product?name="] {
        let r = c.get(bare);
        assert_eq!(r.status, 400, "{bare}: {}", r.body);
        assert!(r.error_message().contains("name the toy"), "{bare}: {}", r.body);
    }
}

#[test]
fn orders_placed_and_read_in_the_seed_spellings() {
    let c = Cluster::start();
    let mut placed = Vec::new();
    for (path, body) in [
        ("/order", r#"{"toy":"Tux","quantity":2}"#),
        ("/order", r#"{"name":"Tux","quantity":1}"#),
        ("/orders", r#"{"toy":"Tux","quantity":3}"#),
    ] {
        let r = c.post(path, body);
        assert_eq!(r.status, 200, "{path} {body}: {}", r.body);
        let quantity = serde_json::from_str::<serde_json::Value>(body).expect("JSON")["quantity"].clone();
        placed.push((r.data()["order_number"].as_u64().expect("order_number"), quantity));
    }
    assert_eq!(c.stock("Tux"), 100 - 6, "each order took exactly its quantity");
    for (n, quantity) in placed {
        let canonical = c.get(&format!("/orders/{n}"));
        assert_eq!(canonical.status, 200, "{}", canonical.body);
        // The seed's client reads the seed implementation's spellings; the store's own stay.
        let data = canonical.data();
        for (seed, own, want) in
            [("Order number", "number", json!(n)), ("Toy name", "name", json!("Tux")), ("Quantity", "quantity", quantity)]
        {
            assert_eq!((&data[seed], &data[own]), (&want, &want), "{seed} / {own} of order {n}: {data}");
        }
        for path in [format!("/order?{n}"), format!("/order?number={n}"), format!("/order/{n}")] {
            let r = c.get(&path);
            assert_eq!((r.status, &r.body), (200, &canonical.body), "{path}");
        }
    }
    // Rejected seed-style requests: a clear 400, and the stock and the logs stay as they were.
    let logs: Vec<Vec<u8>> = c.settled_orders_files();
    for (path, body) in [
        ("/order", r#"{"toy":"Tux","name":"Fox","quantity":1}"#),
        ("/order", r#"{"toy":"Tux"}"#),
        ("/order", r#"{"quantity":1}"#),
    ] {
        let r = c.post(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
    }
    for bad in ["/order", "/order?", "/order?x", "/order?number=-1"] {
        let r = c.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert_eq!(c.stock("Tux"), 94);
    assert_eq!(c.stock("Fox"), 100);
    let after: Vec<Vec<u8>> = (1..=3).map(|id| c.orders_file(id)).collect();
    assert_eq!(logs, after, "rejected requests changed an order log");
}
