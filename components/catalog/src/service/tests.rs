//! The catalog's routes end to end against a temporary data directory and a fake frontend.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures::executor::block_on;
use http::Method;
use serde_json::{json, Value};
use toystore_guest::{CallError, NetResponse};

use super::*;

const SEED: &str = include_str!("../../../../data/catalog.csv");

/// A frontend that records the invalidations it receives, or is down.
#[derive(Clone)]
struct FakeFrontend {
    up: Rc<Cell<bool>>,
    seen: Rc<RefCell<Vec<String>>>,
}

impl FakeFrontend {
    fn new() -> Self {
        Self { up: Rc::new(Cell::new(true)), seen: Rc::default() }
    }
    fn take_seen(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.borrow_mut())
    }
}

impl Net for FakeFrontend {
    async fn call(&self, method: Method, url: &str, _b: Option<Value>, t: Duration) -> Result<NetResponse, CallError> {
        if !self.up.get() {
            return Err(CallError::Refused { url: url.into() });
        }
        assert_eq!(method, Method::POST);
        let _ = t;
        let name = url.strip_prefix("http://fe/invalidate/").expect("only invalidations are sent");
        self.seen.borrow_mut().push(name.to_string());
        Ok(NetResponse { status: 200, body: json!({"data": {}}) })
    }
}

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(1_000_000) };
}

fn now() -> u64 {
    NOW.with(Cell::get)
}

fn advance(ms: u64) {
    NOW.with(|n| n.set(n.get() + ms));
}

fn setup() -> (tempfile::TempDir, Catalog<FakeFrontend>, FakeFrontend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let fe = FakeFrontend::new();
    let cat = Catalog::new(Config::new(dir.path(), Some("http://fe".into())), fe.clone()).with_clock(now);
    (dir, cat, fe)
}

fn call(cat: &Catalog<FakeFrontend>, method: Method, path: &str, body: &str) -> Reply {
    block_on(cat.handle(&Request::new(method, path, body)))
}

fn buy(cat: &Catalog<FakeFrontend>, name: &str, quantity: u64) -> Reply {
    call(cat, Method::POST, "/buy", &json!({"name": name, "quantity": quantity, "key": "k"}).to_string())
}

fn file(dir: &tempfile::TempDir) -> Inventory {
    Inventory::parse(&std::fs::read(dir.path().join(CATALOG_FILE)).unwrap()).unwrap()
}

fn qty(dir: &tempfile::TempDir, name: &str) -> u64 {
    file(dir).get(name).unwrap().quantity
}

#[test]
fn lookups() {
    let (_dir, cat, _fe) = setup();
    let r = call(&cat, Method::GET, "/products/Tux", "");
    assert_eq!(r.body, json!({"data": {"name": "Tux", "price": 25.99, "quantity": 100}}));
    let r = call(&cat, Method::GET, "/products/tux", "");
    assert_eq!(r.body, json!({"error": {"code": 404, "message": "product not found"}}));
    let r = call(&cat, Method::GET, "/products", "");
    let all = r.data().unwrap().as_array().unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[0]["name"], "Tux");
    assert_eq!(all[9]["name"], "Barbie");
    assert_eq!(call(&cat, Method::GET, "/health", "").status, 200);
}

#[test]
fn buy_takes_stock_durably_and_invalidates() {
    let (dir, cat, fe) = setup();
    let r = buy(&cat, "Tux", 3);
    assert_eq!(r.body, json!({"data": {"name": "Tux", "price": 25.99, "quantity": 97}}));
    assert_eq!(qty(&dir, "Tux"), 97, "on disk before the reply");
    assert_eq!(fe.take_seen(), ["Tux"]);
    assert!(!dir.path().join("LOCK").exists(), "lock released");
    // Row order and the other rows are untouched.
    let names: Vec<_> = file(&dir).products().iter().map(|p| p.name.clone()).collect();
    let seed: Vec<_> = Inventory::parse(SEED.as_bytes()).unwrap().products().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, seed);
}

#[test]
fn buy_refusals_change_nothing() {
    let (dir, cat, fe) = setup();
    let r = buy(&cat, "Tux", 101);
    assert_eq!(r.body, json!({"error": {"code": 400, "message": "not enough stock: only 100 left"}}));
    let r = buy(&cat, "Nope", 1);
    assert_eq!(r.body, json!({"error": {"code": 404, "message": "product not found"}}));
    for body in ["", "{bad", r#"{"name":"Tux"}"#, r#"{"quantity":1}"#, r#"{"name":"Tux","quantity":0}"#,
        r#"{"name":"Tux","quantity":-1}"#, r#"{"name":"Tux","quantity":1.5}"#, r#"{"name":"Tux","quantity":"1"}"#] {
        assert_eq!(call(&cat, Method::POST, "/buy", body).status, 400, "{body}");
        assert_eq!(call(&cat, Method::POST, "/release", body).status, 400, "{body}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join(CATALOG_FILE)).unwrap(), SEED);
    assert!(fe.take_seen().is_empty());
}

#[test]
fn never_oversells() {
    let (dir, cat, _fe) = setup();
    assert_eq!(buy(&cat, "Lego", 60).status, 200);
    assert_eq!(buy(&cat, "Lego", 41).error_message(), Some("not enough stock: only 40 left"));
    assert_eq!(buy(&cat, "Lego", 40).body["data"]["quantity"], 0);
    assert_eq!(buy(&cat, "Lego", 1).status, 400);
    assert_eq!(qty(&dir, "Lego"), 0);
}

#[test]
fn release_gives_stock_back() {
    let (dir, cat, fe) = setup();
    buy(&cat, "Fox", 10);
    let r = call(&cat, Method::POST, "/release", r#"{"name":"Fox","quantity":10,"key":"k"}"#);
    assert_eq!(r.body["data"]["quantity"], 100);
    assert_eq!(qty(&dir, "Fox"), 100);
    assert_eq!(fe.take_seen(), ["Fox", "Fox"]);
    assert_eq!(call(&cat, Method::POST, "/release", r#"{"name":"Nope","quantity":1}"#).status, 404);
}

#[test]
fn concurrent_buys_in_one_instance_neither_oversell_nor_lose() {
    let (dir, cat, _fe) = setup();
    let futures: Vec<_> = (0..130)
        .map(|_| {
            let req = Request::new(Method::POST, "/buy", r#"{"name":"Tux","quantity":1,"key":"k"}"#);
            let cat = &cat;
            async move { cat.handle(&req).await }
        })
        .collect();
    let replies = block_on(futures::future::join_all(futures));
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 100);
    assert!(replies.iter().filter(|r| r.status != 200).all(|r| r.status == 400));
    assert_eq!(qty(&dir, "Tux"), 0);
}

#[test]
fn concurrent_buys_across_instances_sharing_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                // Its own instance: its own DirLock, so only the lock file excludes the others.
                let cat = Catalog::new(Config::new(path, None), FakeFrontend::new());
                (0..30).filter(|_| buy(&cat, "Whale", 1).status == 200).count()
            })
        })
        .collect();
    let sold: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sold, 100);
    assert_eq!(qty(&dir, "Whale"), 0);
}

#[test]
fn unreachable_frontend_does_not_undo_the_change_and_is_retried() {
    let (dir, cat, fe) = setup();
    fe.up.set(false);
    assert_eq!(buy(&cat, "Tux", 1).status, 200);
    assert_eq!(buy(&cat, "Fox", 1).status, 200);
    assert_eq!((qty(&dir, "Tux"), qty(&dir, "Fox")), (99, 99));
    assert_eq!(cat.pending_invalidations(), ["Fox", "Tux"]);
    fe.up.set(true);
    let r = call(&cat, Method::POST, "/tick", "");
    assert_eq!(r.body["data"]["pending_invalidations"], json!([]));
    let mut seen = fe.take_seen();
    seen.sort();
    assert_eq!(seen, ["Fox", "Tux"]);
    // A later write also carries what is still pending.
    fe.up.set(false);
    buy(&cat, "Tux", 1);
    fe.up.set(true);
    buy(&cat, "Lego", 1);
    let mut seen = fe.take_seen();
    seen.sort();
    assert_eq!(seen, ["Lego", "Tux"]);
    assert!(cat.pending_invalidations().is_empty());
}

#[test]
fn restock_now_sets_low_toys_and_invalidates_them() {
    let (dir, cat, fe) = setup();
    buy(&cat, "Tux", 95);
    buy(&cat, "Fox", 90);
    buy(&cat, "Lego", 89);
    fe.take_seen();
    let r = call(&cat, Method::POST, "/restock", "");
    assert_eq!(r.body, json!({"data": {"restocked": ["Tux", "Fox"]}}));
    assert_eq!((qty(&dir, "Tux"), qty(&dir, "Fox"), qty(&dir, "Lego")), (100, 100, 11));
    assert_eq!(fe.take_seen(), ["Tux", "Fox"]);
}

#[test]
fn tick_restocks_only_when_the_interval_elapsed() {
    let (dir, cat, _fe) = setup();
    // The first check after a fresh start writes the stamp.
    assert_eq!(call(&cat, Method::POST, "/tick", "").status, 200);
    assert_eq!(restock::read_stamp(dir.path()), Some(now()));
    buy(&cat, "Tux", 100);
    advance(9_999);
    assert_eq!(call(&cat, Method::POST, "/tick", "").body["data"]["restocked"], json!([]));
    assert_eq!(qty(&dir, "Tux"), 0);
    advance(1);
    assert_eq!(call(&cat, Method::POST, "/tick", "").body["data"]["restocked"], json!(["Tux"]));
    assert_eq!(qty(&dir, "Tux"), 100);
}

#[test]
fn any_request_catches_up_on_a_due_restock() {
    let (dir, cat, _fe) = setup();
    call(&cat, Method::GET, "/health", "");
    buy(&cat, "Barbie", 95);
    advance(10_000);
    // No tick: the lookup itself restocks first.
    let r = call(&cat, Method::GET, "/products/Barbie", "");
    assert_eq!(r.body["data"]["quantity"], 100);
    assert_eq!(qty(&dir, "Barbie"), 100);
}

#[test]
fn instances_share_the_restock_schedule() {
    let (dir, a, _fe) = setup();
    call(&a, Method::POST, "/tick", "");
    advance(5_000);
    // A second instance (fresh memory) reads the stamp and does not restock early.
    let b = Catalog::new(Config::new(dir.path(), None), FakeFrontend::new()).with_clock(now);
    buy(&b, "Tux", 95);
    assert_eq!(call(&b, Method::POST, "/tick", "").body["data"]["restocked"], json!([]));
    assert_eq!(qty(&dir, "Tux"), 5);
    advance(5_000);
    assert_eq!(call(&b, Method::POST, "/tick", "").body["data"]["restocked"], json!(["Tux"]));
    // `a` sees the new stamp and does not restock again.
    buy(&a, "Tux", 95);
    assert_eq!(call(&a, Method::POST, "/tick", "").body["data"]["restocked"], json!([]));
    assert_eq!(qty(&dir, "Tux"), 5);
}

#[test]
fn routes_methods_and_debug_trap() {
    let (_dir, cat, _fe) = setup();
    assert_eq!(call(&cat, Method::GET, "/nope", "").status, 404);
    assert_eq!(call(&cat, Method::GET, "/buy", "").status, 405);
    assert_eq!(call(&cat, Method::POST, "/products/Tux", "").status, 405);
    assert_eq!(call(&cat, Method::POST, "/debug/trap", "").status, 404, "off by default");
    assert_eq!(call(&cat, Method::POST, "/debug/spin", "").status, 404, "off by default");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let mut cfg = Config::new(dir.path(), None);
    cfg.debug_routes = true;
    let cat = Catalog::new(cfg, FakeFrontend::new());
    let trapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&cat, Method::POST, "/debug/trap", "")));
    assert!(trapped.is_err());
}

#[test]
fn missing_or_corrupt_file_is_a_500_not_a_guess() {
    let (dir, cat, _fe) = setup();
    std::fs::write(dir.path().join(CATALOG_FILE), "name,price,quantity\nTux,x,1\n").unwrap();
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").status, 500);
    assert_eq!(buy(&cat, "Tux", 1).status, 500);
    std::fs::remove_file(dir.path().join(CATALOG_FILE)).unwrap();
    assert_eq!(call(&cat, Method::GET, "/products", "").status, 500);
}
