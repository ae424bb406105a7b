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

/// The rest of what the seed document names, each on the listener it belongs to (README, "The
/// seed's API, route by route"): the client's `/lookup` and `POST /orders/<toy>/<quantity>` at
/// the frontend, the frontend's `GET /product?<toy>` at the catalog, and at the replicas
/// `GET /ping?message=Ping`, `GET /orders?<n>` and `GET /synchronize`.
#[test]
fn the_seeds_other_requests_answer_where_the_seed_sends_them() {
    let c = Cluster::start();
    c.wait_for("a leader", std::time::Duration::from_secs(30), || c.leader().is_some());

    // Client → frontend.
    let canonical = c.get("/products/Fox");
    for path in ["/lookup?Fox", "/lookup?name=Fox"] {
        let r = c.get(path);
        assert_eq!((r.status, &r.body), (200, &canonical.body), "{path}");
    }
    assert_eq!(c.get("/lookup").status, 400);
    let at = c.post("/orders/Fox/2", "");
    assert_eq!(at.status, 200, "{}", at.body);
    let with_body = c.post("/orders/Fox/1", r#"{"toy":"Fox","quantity":1}"#);
    assert_eq!(with_body.status, 200, "{}", with_body.body);
    assert_eq!(c.stock("Fox"), 97, "each took its quantity");
    let n = at.data()["order_number"].as_u64().expect("order_number");
    let back = c.get(&format!("/orders/{n}"));
    assert_eq!((&back.data()["Toy name"], &back.data()["Quantity"]), (&json!("Fox"), &json!(2)), "{}", back.body);
    let logs = c.settled_orders_files();
    for (path, body) in [("/orders/Fox/0", ""), ("/orders/Fox/x", ""), ("/orders/Fox/1", r#"{"name":"Tux","quantity":1}"#)] {
        let r = c.post(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], 400, "{path}: JSON envelope {}", r.body);
    }
    assert_eq!(c.stock("Fox"), 97);
    assert_eq!((1..=3).map(|id| c.orders_file(id)).collect::<Vec<_>>(), logs, "refused orders changed a log");

    // Frontend → catalog.
    let r = c.catalog("/product?Fox");
    assert_eq!((r.status, &r.body), (200, &c.catalog("/products/Fox").body));

    // Frontend → order replicas, and between replicas.
    let leader = c.leader().expect("a leader") as usize;
    let last = with_body.data()["order_number"].as_i64().expect("order_number");
    for id in 1..=3 {
        let url = c.replica_url(id);
        let ping = c.request("GET", &format!("{url}/ping?message=Ping"), None).expect("ping");
        assert_eq!((ping.status, &ping.data()["message"]), (200, &json!("Order service is responsive")), "{}", ping.body);
        let bad = c.request("GET", &format!("{url}/ping?message=Pong"), None).expect("ping");
        assert_eq!((bad.status, &bad.body["error"]["code"]), (400, &json!(400)), "{}", bad.body);
        let sync = c.request("GET", &format!("{url}/synchronize"), None).expect("synchronize");
        assert_eq!((sync.status, sync.data()["last_order"].as_i64()), (200, Some(last)), "replica {id}: {}", sync.body);
    }
    let leader_url = c.replica_url(leader);
    for path in [format!("/orders?{n}"), format!("/orders?order_number={n}")] {
        let r = c.request("GET", &format!("{leader_url}{path}"), None).expect("order query");
        assert_eq!((r.status, &r.body), (200, &back.body), "{path}");
    }

    // What the store refuses of the seed's, with a JSON 4xx and no change: the catalog does not
    // sell on its own, and a replica takes no leader or record without an epoch.
    let logs = c.settled_orders_files();
    let refused = [
        ("POST", format!("{}/orders?Fox?1", c.catalog_url()), "", 404),
        ("POST", format!("{leader_url}/inform_replica"), "leader_id=1", 400),
        ("POST", format!("{}/replicate_order", c.replica_url(if leader == 1 { 2 } else { 1 })), r#"{"order_number":9,"name":"Fox","quantity":1}"#, 400),
    ];
    for (method, url, body, status) in refused {
        let r = c.request(method, &url, Some(body)).expect("an answer");
        assert_eq!((r.status, &r.body["error"]["code"]), (status, &json!(status)), "{method} {url}: {}", r.body);
    }
    assert_eq!(c.stock("Fox"), 97);
    assert_eq!(c.leader(), Some(leader as u64));
    assert_eq!((1..=3).map(|id| c.orders_file(id)).collect::<Vec<_>>(), logs, "a refused request changed a log");
}
