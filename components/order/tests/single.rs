//! A replica on its own: several instances sharing one data directory (as under the stock
//! `wasmtime serve`), one that owns its directory (as under the toystore host), a damaged log,
//! and the debug trap route.

use std::rc::Rc;
use std::path::Path;
use std::time::Duration;

use futures::executor::block_on;
use http::Method;
use serde_json::{json, Value};
use toystore_guest::{CallError, Net, NetResponse, Reply, Request};
use toystore_guest::lock::DirAccess;
use toystore_order::{Config, Service};

/// A catalog with plenty of Tux that has applied nothing (its `/apply` fails, which never
/// changes an order's answer); there are no peers.
struct CatalogOnly;

impl Net for CatalogOnly {
    async fn call(&self, _: Method, url: &str, _: Option<Value>, _: Duration) -> Result<NetResponse, CallError> {
        match url {
            "http://catalog/stock" => Ok(NetResponse {
                status: 200,
                body: json!({"data": {"applied_orders": 0, "toys": [{"name": "Tux", "price": 2.5, "price_text": "2.50", "quantity": 1000}]}}),
            }),
            "http://catalog/apply" => Ok(NetResponse { status: 503, body: json!({"error": {"code": 503, "message": "busy"}}) }),
            _ => Err(CallError::Refused { url: url.into() }),
        }
    }
}

fn service(dir: &Path, debug_routes: bool) -> Rc<Service<CatalogOnly>> {
    // Not the host's guarantee: exercise the lock file and the re-reads.
    service_with(dir, debug_routes, DirAccess::Shared)
}

fn service_with(dir: &Path, debug_routes: bool, dir_access: DirAccess) -> Rc<Service<CatalogOnly>> {
    let cfg = Config {
        id: 1,
        replicas: vec![(1, "http://order-1".into())],
        catalog_url: "http://catalog".into(),
        data_dir: dir.to_path_buf(),
        timeout: Duration::from_millis(50),
        debug_routes,
        dir_access,
    };
    Rc::new(Service::new(cfg, CatalogOnly))
}

fn call(s: &Rc<Service<CatalogOnly>>, method: Method, path: &str, body: Value) -> Reply {
    block_on(s.handle(&Request::new(method, path, body.to_string())))
}

fn order(s: &Rc<Service<CatalogOnly>>, key: &str) -> Reply {
    call(s, Method::POST, "/orders", json!({"name": "Tux", "quantity": 1, "key": key}))
}

#[test]
fn instances_sharing_a_directory_never_reuse_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (service(dir.path(), false), service(dir.path(), false));
    assert_eq!(call(&a, Method::POST, "/leaderselection", json!({})).body["data"]["epoch"], 1);
    assert_eq!(order(&a, "k0").body["data"]["order_number"], 0);
    // b's memory knows nothing; the file length tells it to re-read before it answers.
    assert_eq!(call(&b, Method::GET, "/get_last_order_number", Value::Null).body["data"]["last"], 1, "the epoch record and order 0");
    assert_eq!(call(&b, Method::GET, "/orders/0", Value::Null).status, 409, "b is no leader yet");
    assert_eq!(call(&b, Method::POST, "/leaderselection", json!({})).body["data"]["epoch"], 2);
    assert_eq!(order(&b, "k1").body["data"]["order_number"], 1);
    assert_eq!(order(&b, "k0").body["data"]["order_number"], 0, "a's key is known to b");
    // a still believes it leads epoch 1, but the epoch file holds b's promise: a refuses.
    let stale = order(&a, "k2");
    assert!(stale.status == 409 || stale.status == 503, "{stale:?}");
    // Deposed, a answers no reads; b, the leader, does.
    assert_eq!(call(&a, Method::GET, "/orders/1", Value::Null).status, 409);
    assert_eq!(call(&b, Method::GET, "/orders/1", Value::Null).status, 200);
    let file = std::fs::read_to_string(dir.path().join("orders.csv")).unwrap();
    let want = "index,epoch,kind,number,name,quantity,price,key\n0,1,epoch,,,,,\n1,1,order,0,Tux,1,2.50,k0\n2,2,epoch,,,,,\n3,2,order,1,Tux,1,2.50,k1\n";
    assert_eq!(file, want, "epoch 2 appended its epoch record; nothing was rewritten");
}

#[test]
fn the_debug_routes_exist_only_when_debug_routes_are_on() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(call(&service(dir.path(), false), Method::POST, "/debug/trap", json!({})).status, 404);
    assert_eq!(call(&service(dir.path(), false), Method::POST, "/debug/spin", json!({})).status, 404);
    let on = service(dir.path(), true);
    let trapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&on, Method::POST, "/debug/trap", json!({}))));
    assert!(trapped.is_err());
}

#[test]
fn health_ping_and_peer_routes_answer_from_the_local_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), false);
    assert_eq!(call(&s, Method::GET, "/health", Value::Null).status, 200);
    assert_eq!(call(&s, Method::GET, "/get_last_order_number", Value::Null).body, json!({"data": {"last": -1, "last_epoch": 0, "epoch": 0, "last_order": -1}}));
    assert_eq!(call(&s, Method::GET, "/ping", Value::Null).status, 200, "no peers to wait for");
    call(&s, Method::POST, "/leaderselection", json!({}));
    for k in 0..3 {
        order(&s, &format!("k{k}"));
    }
    let page = call(&s, Method::GET, "/get_missed_orders/0", Value::Null);
    assert_eq!(page.body["data"]["records"], "1,1,order,0,Tux,1,2.50,k0\n2,1,order,1,Tux,1,2.50,k1\n3,1,order,2,Tux,1,2.50,k2\n");
    assert_eq!(page.body["data"]["prev"], json!({"index": 0, "epoch": 1}));
    assert_eq!(page.body["data"]["more"], false);
    assert_eq!(call(&s, Method::GET, "/get_missed_orders/x", Value::Null).status, 400);
    assert_eq!(call(&s, Method::POST, "/fence", json!({"leader": 2})).status, 400);
    assert_eq!(call(&s, Method::POST, "/replicate_order", json!({"leader": 2, "epoch": 9, "prev": null,
        "records": "5,9,epoch,,,,,\n"})).status, 400, "not contiguous after prev");
    // Records travel as their exact log lines; anything else is refused before it is looked at.
    for bad in [json!("4,1,epoch,,,,,"), json!("4,1,epoch,,,,\n"), json!("04,1,epoch,,,,,\n"), json!("4,1,order,3,Tux,1,2.50,\n"), json!([])] {
        let r = call(&s, Method::POST, "/replicate_order", json!({"leader": 1, "epoch": 1, "prev": {"index": 3, "epoch": 1}, "records": bad}));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("orders.csv")), "{bad}: {}", r.body);
    }
    assert_eq!(call(&s, Method::GET, "/get_last_order_number", Value::Null).body["data"]["last"], 3, "nothing was appended");
}

#[test]
fn a_corrupt_line_stops_the_replica_with_the_file_and_line_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    let damaged = "index,epoch,kind,number,name,quantity,price,key\n0,1,epoch,,,,,\n1,1,order,0,Tux,#,1,b\n2,1,order,1,Tux,1,1,c\n";
    std::fs::write(&path, damaged).unwrap();
    let s = service(dir.path(), false);
    for (method, route) in [(Method::GET, "/health"), (Method::GET, "/orders/0"), (Method::POST, "/orders"), (Method::POST, "/leaderselection")] {
        let r = call(&s, method.clone(), route, json!({"name": "Tux", "quantity": 1, "key": "k"}));
        assert_eq!(r.status, 500, "{method} {route}: {r:?}");
        let message = r.error_message().unwrap_or_default();
        assert!(message.contains(&format!("{}: line 3", path.display())), "{message}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), damaged, "nothing cut, nothing appended");
    // Repaired by hand, the replica serves again.
    std::fs::write(&path, "index,epoch,kind,number,name,quantity,price,key\n0,1,epoch,,,,,\n1,1,order,0,Tux,1,1,b\n2,1,order,1,Tux,1,1,c\n").unwrap();
    assert_eq!(call(&s, Method::GET, "/get_last_order_number", Value::Null).body["data"]["last"], 2);
}

/// Under the toystore host the replica owns its directory: no lock file, the promise read once
/// and kept in memory. Shown by damaging the `epoch` file behind its back: the owner does not
/// read it again, a sharer must (and fails loudly). `/ping` answers from memory in both modes.
#[test]
fn an_exclusive_replica_keeps_its_promise_in_memory_and_pings_touch_no_file() {
    for access in [DirAccess::Exclusive, DirAccess::Shared] {
        let dir = tempfile::tempdir().unwrap();
        let s = service_with(dir.path(), false, access);
        assert_eq!(call(&s, Method::POST, "/leaderselection", json!({})).body["data"]["epoch"], 1);
        assert_eq!(order(&s, "k0").body["data"]["order_number"], 0);
        assert!(!dir.path().join("LOCK").exists());
        std::fs::write(dir.path().join("epoch"), "junk").unwrap();
        let ping = call(&s, Method::GET, "/ping", Value::Null);
        assert_eq!(ping.status, 200, "{access:?}: {ping:?}");
        assert_eq!((ping.body["data"]["epoch"].clone(), ping.body["data"]["last_order"].clone()), (json!(1), json!(0)), "{access:?}");
        assert_eq!(call(&s, Method::GET, "/health", Value::Null).status, 200, "{access:?}");
        let next = order(&s, "k1");
        match access {
            DirAccess::Exclusive => assert_eq!(next.body["data"]["order_number"], 1, "{next:?}"),
            DirAccess::Shared => {
                assert_eq!(next.status, 500, "{next:?}");
                assert!(next.error_message().unwrap_or_default().contains("epoch file"), "{next:?}");
            }
        }
        // A new promise is still written through: the file is the truth after a restart.
        if access == DirAccess::Exclusive {
            let reply = call(&s, Method::POST, "/fence", json!({"leader": 2, "epoch": 5}));
            assert_eq!(reply.status, 200, "{reply:?}");
            assert_eq!(std::fs::read_to_string(dir.path().join("epoch")).unwrap().trim(), "5");
            let restarted = service_with(dir.path(), false, access);
            assert_eq!(call(&restarted, Method::GET, "/get_last_order_number", Value::Null).body["data"]["epoch"], 5);
        }
    }
}
