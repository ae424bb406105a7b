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

/// A frontend that records the invalidations it receives, is down, or never answers.
#[derive(Clone)]
struct FakeFrontend {
    up: Rc<Cell<bool>>,
    hang: Rc<Cell<bool>>,
    seen: Rc<RefCell<Vec<String>>>,
}

impl FakeFrontend {
    fn new() -> Self {
        Self { up: Rc::new(Cell::new(true)), hang: Rc::default(), seen: Rc::default() }
    }
    fn take_seen(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.borrow_mut())
    }
}

impl Net for FakeFrontend {
    async fn call(&self, method: Method, url: &str, body: Option<Value>, _t: Duration) -> Result<NetResponse, CallError> {
        if self.hang.get() {
            futures::future::pending::<()>().await;
        }
        if !self.up.get() {
            return Err(CallError::Refused { url: url.into() });
        }
        assert_eq!((method, url), (Method::POST, "http://fe/invalidate"), "only invalidations are sent");
        let names: Vec<String> = serde_json::from_value(body.expect("a body")["names"].clone()).expect("a list of names");
        self.seen.borrow_mut().extend(names);
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

type Cat = Rc<Catalog<FakeFrontend>>;

fn setup() -> (tempfile::TempDir, Cat, FakeFrontend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let fe = FakeFrontend::new();
    let cat = Catalog::new(Config::new(dir.path(), Some("http://fe".into())), fe.clone()).with_clock(now);
    (dir, Rc::new(cat), fe)
}

/// The reply alone (what the caller sees), without the work that runs after it.
fn reply_only(cat: &Cat, method: Method, path: &str, body: &str) -> Reply {
    block_on(cat.handle(&Request::new(method, path, body)))
}

/// A request as the WASI entry runs it: the reply, then the after-reply work.
fn call(cat: &Cat, method: Method, path: &str, body: &str) -> Reply {
    let reply = reply_only(cat, method, path, body);
    if let Some(work) = Rc::clone(cat).after_reply() {
        block_on(work);
    }
    reply
}

fn apply_body(from: u64, orders: &[(&str, u64)]) -> String {
    let orders: Vec<Value> = orders
        .iter()
        .enumerate()
        .map(|(i, (name, q))| json!({"number": from + i as u64, "name": name, "quantity": q}))
        .collect();
    json!({"from": from, "orders": orders}).to_string()
}

fn apply(cat: &Cat, from: u64, orders: &[(&str, u64)]) -> Reply {
    call(cat, Method::POST, "/apply", &apply_body(from, orders))
}

fn file(dir: &tempfile::TempDir) -> Inventory {
    Inventory::parse(&std::fs::read(dir.path().join(CATALOG_FILE)).unwrap()).unwrap()
}

fn qty(dir: &tempfile::TempDir, name: &str) -> i64 {
    file(dir).get(name).unwrap().quantity
}

fn toy<'a>(stock: &'a Value, name: &str) -> &'a Value {
    stock["toys"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()
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
fn the_seeds_lookup_spelling() {
    let (_dir, cat, _fe) = setup();
    let canonical = call(&cat, Method::GET, "/products/Tux", "").body;
    for path in ["/product?Tux", "/product?name=Tux", "/product?toy=Tux"] {
        assert_eq!(call(&cat, Method::GET, path, "").body, canonical, "{path}");
    }
    assert_eq!(call(&cat, Method::GET, "/product?tux", "").status, 404);
    for bare in ["/product", "/product?", "/product?name="] {
        let r = call(&cat, Method::GET, bare, "");
        assert_eq!(r.status, 400, "{bare}: {:?}", r.body);
    }
}

#[test]
fn stock_answers_quantities_and_applied_orders_together() {
    let (_dir, cat, _fe) = setup();
    let r = call(&cat, Method::GET, "/stock", "");
    let stock = r.data().unwrap();
    assert_eq!(stock["applied_orders"], 0);
    assert_eq!(stock["toys"].as_array().unwrap().len(), 10);
    assert_eq!(toy(stock, "Whale"), &json!({"name": "Whale", "price": 34.5, "price_text": "34.50", "quantity": 100}));
}

#[test]
fn apply_is_durable_answers_the_new_base_and_invalidates_after_the_reply() {
    let (dir, cat, fe) = setup();
    let r = reply_only(&cat, Method::POST, "/apply", &apply_body(0, &[("Tux", 2), ("Fox", 1), ("Tux", 1)]));
    assert_eq!(r.status, 200, "{}", r.body);
    let base = r.data().unwrap();
    assert_eq!(base["applied_orders"], 3);
    assert_eq!(toy(base, "Tux")["quantity"], 97);
    assert_eq!(toy(base, "Fox")["quantity"], 99);
    // On disk before the reply, in the full form, with the rows in their order.
    let inv = file(&dir);
    assert_eq!((inv.applied_orders(), qty(&dir, "Tux"), qty(&dir, "Fox")), (3, 97, 99));
    let on_disk = std::fs::read_to_string(dir.path().join(CATALOG_FILE)).unwrap();
    assert!(on_disk.starts_with("name,price,quantity,seeded,restocked,applied_orders\nTux,25.99,97,100,0,3\n"), "{on_disk}");
    assert!(!dir.path().join("LOCK").exists(), "lock released");
    // The frontend has heard nothing yet: the reply did not wait for it.
    assert!(fe.take_seen().is_empty());
    assert_eq!(cat.pending_invalidations(), ["Fox", "Tux"]);
    block_on(Rc::clone(&cat).after_reply().expect("queued invalidations"));
    assert_eq!(fe.take_seen(), ["Fox", "Tux"]);
    assert!(Rc::clone(&cat).after_reply().is_none(), "nothing left to send");
}

#[test]
fn a_hung_frontend_never_holds_up_a_reply() {
    let (dir, cat, fe) = setup();
    fe.hang.set(true);
    // `block_on` would never return if either reply awaited the frontend.
    assert_eq!(reply_only(&cat, Method::POST, "/apply", &apply_body(0, &[("Tux", 95)])).status, 200);
    assert_eq!(reply_only(&cat, Method::POST, "/restock", "").body, json!({"data": {"restocked": ["Tux"]}}));
    assert_eq!(qty(&dir, "Tux"), 100);
    assert_eq!(cat.pending_invalidations(), ["Tux"]);
}

#[test]
fn apply_is_idempotent_across_resends_and_overlaps() {
    let (dir, cat, fe) = setup();
    assert_eq!(apply(&cat, 0, &[("Lego", 5), ("Lego", 5)]).status, 200);
    let before = std::fs::read(dir.path().join(CATALOG_FILE)).unwrap();
    fe.take_seen();
    // The same batch again (a lost reply retried): nothing changes, not even the file.
    let r = apply(&cat, 0, &[("Lego", 5), ("Lego", 5)]);
    assert_eq!(r.data().unwrap()["applied_orders"], 2);
    assert_eq!(std::fs::read(dir.path().join(CATALOG_FILE)).unwrap(), before);
    assert!(fe.take_seen().is_empty(), "nothing changed, nothing to invalidate");
    // Overlapping: only order 2 is new.
    let r = apply(&cat, 1, &[("Lego", 5), ("Marbles", 7)]);
    assert_eq!(r.data().unwrap()["applied_orders"], 3);
    assert_eq!((qty(&dir, "Lego"), qty(&dir, "Marbles")), (90, 93));
    assert_eq!(fe.take_seen(), ["Marbles"]);
}

#[test]
fn a_gap_is_a_409_naming_where_to_resend_from() {
    let (dir, cat, _fe) = setup();
    apply(&cat, 0, &[("Tux", 1)]);
    let before = std::fs::read(dir.path().join(CATALOG_FILE)).unwrap();
    let r = apply(&cat, 3, &[("Tux", 1)]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["error"]["code"], 409);
    assert_eq!(r.body["error"]["applied_orders"], 1);
    assert!(r.error_message().unwrap().contains("gap"), "{}", r.body);
    assert_eq!(std::fs::read(dir.path().join(CATALOG_FILE)).unwrap(), before);
}

#[test]
fn an_unknown_toy_refuses_the_whole_batch() {
    let (dir, cat, fe) = setup();
    let r = apply(&cat, 0, &[("Tux", 1), ("Nope", 1)]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(std::fs::read_to_string(dir.path().join(CATALOG_FILE)).unwrap(), SEED, "nothing applied");
    assert!(fe.take_seen().is_empty());
}

#[test]
fn bad_bodies_are_400_and_change_nothing() {
    let (dir, cat, fe) = setup();
    for body in [
        "",
        "{bad",
        r#"{"name":"Tux","quantity":1}"#,
        r#"{"from":0,"orders":[{"number":1,"name":"Tux","quantity":1}]}"#,
        r#"{"from":0,"orders":[{"number":0,"name":"Tux","quantity":0}]}"#,
        r#"{"from":0,"orders":[{"number":0,"name":"Tux","quantity":-1}]}"#,
        r#"{"from":0,"orders":[{"number":0,"quantity":1}]}"#,
    ] {
        let r = call(&cat, Method::POST, "/apply", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], 400);
    }
    assert_eq!(std::fs::read_to_string(dir.path().join(CATALOG_FILE)).unwrap(), SEED);
    assert!(fe.take_seen().is_empty());
}

#[test]
fn an_oversell_is_applied_and_written_negative() {
    let (dir, cat, _fe) = setup();
    let r = apply(&cat, 0, &[("Barbie", 60), ("Barbie", 41)]);
    assert_eq!(r.status, 200, "the log is the authority: {}", r.body);
    assert_eq!(qty(&dir, "Barbie"), -1);
    assert_eq!(toy(r.data().unwrap(), "Barbie")["quantity"], -1);
}

#[test]
fn buy_and_release_are_gone() {
    let (_dir, cat, _fe) = setup();
    for path in ["/buy", "/release"] {
        let r = call(&cat, Method::POST, path, r#"{"name":"Tux","quantity":1,"key":"k"}"#);
        assert_eq!(r.status, 404, "{path}");
    }
}

#[test]
fn concurrent_overlapping_applies_in_one_instance_apply_each_order_once() {
    let (dir, cat, _fe) = setup();
    // 100 orders of 1 Tux, pushed as 40 overlapping batches of 10 in random-ish starts.
    let futures: Vec<_> = (0..40u64)
        .map(|i| {
            let from = (i * 7) % 91;
            let batch: Vec<(&str, u64)> = vec![("Tux", 1); 10];
            let req = Request::new(Method::POST, "/apply", apply_body(from, &batch));
            let cat = &cat;
            async move { cat.handle(&req).await }
        })
        .collect();
    let replies = block_on(futures::future::join_all(futures));
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 409), "only applied or gap");
    // Whatever the interleaving, each number applied at most once; then a full resend finishes.
    let applied = file(&dir).applied_orders() as i64;
    assert_eq!(qty(&dir, "Tux"), 100 - applied);
    apply(&cat, 0, &vec![("Tux", 1); 100]);
    assert_eq!((file(&dir).applied_orders(), qty(&dir, "Tux")), (100, 0));
}

#[test]
fn concurrent_applies_across_instances_sharing_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                // Its own instance: its own DirLock, so only the lock file excludes the others.
                let cat = Rc::new(Catalog::new(Config::new(path, None), FakeFrontend::new()));
                // Every instance pushes every order, one at a time, from 0: duplicates galore.
                for n in 0..30u64 {
                    let r = apply(&cat, n, &[("Whale", 1)]);
                    assert!(r.status == 200 || r.status == 409, "{}", r.body);
                    if r.status == 409 {
                        // Behind another instance's gap answer: resend from its count.
                        let from = r.body["error"]["applied_orders"].as_u64().unwrap();
                        assert!(from <= n);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!((file(&dir).applied_orders(), qty(&dir, "Whale")), (30, 70));
}

#[test]
fn unreachable_frontend_does_not_undo_the_change_and_is_retried() {
    let (dir, cat, fe) = setup();
    fe.up.set(false);
    assert_eq!(apply(&cat, 0, &[("Tux", 1)]).status, 200);
    assert_eq!(apply(&cat, 1, &[("Fox", 1)]).status, 200);
    assert_eq!((qty(&dir, "Tux"), qty(&dir, "Fox")), (99, 99));
    assert_eq!(cat.pending_invalidations(), ["Fox", "Tux"]);
    fe.up.set(true);
    let r = call(&cat, Method::POST, "/tick", "");
    assert_eq!(r.body["data"]["pending_invalidations"], json!([]));
    let mut seen = fe.take_seen();
    seen.sort();
    assert_eq!(seen, ["Fox", "Tux"]);
    // A later change also carries what is still pending.
    fe.up.set(false);
    apply(&cat, 2, &[("Tux", 1)]);
    fe.up.set(true);
    apply(&cat, 3, &[("Lego", 1)]);
    let mut seen = fe.take_seen();
    seen.sort();
    assert_eq!(seen, ["Lego", "Tux"]);
    assert!(cat.pending_invalidations().is_empty());
}

#[test]
fn restock_now_sets_low_toys_records_the_delta_and_invalidates_them() {
    let (dir, cat, fe) = setup();
    apply(&cat, 0, &[("Tux", 95), ("Fox", 90), ("Lego", 89)]);
    fe.take_seen();
    let r = call(&cat, Method::POST, "/restock", "");
    assert_eq!(r.body, json!({"data": {"restocked": ["Tux", "Fox"]}}));
    assert_eq!((qty(&dir, "Tux"), qty(&dir, "Fox"), qty(&dir, "Lego")), (100, 100, 11));
    let inv = file(&dir);
    assert_eq!((inv.get("Tux").unwrap().restocked, inv.get("Fox").unwrap().restocked), (95, 90));
    assert_eq!(inv.applied_orders(), 3, "a restock keeps the applied count");
    assert_eq!(fe.take_seen(), ["Fox", "Tux"]);
}

#[test]
fn tick_restocks_only_when_the_interval_elapsed() {
    let (dir, cat, _fe) = setup();
    // The first check after a fresh start writes the stamp.
    assert_eq!(call(&cat, Method::POST, "/tick", "").status, 200);
    assert_eq!(restock::read_stamp(dir.path()), Some(now()));
    apply(&cat, 0, &[("Tux", 100)]);
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
    apply(&cat, 0, &[("Barbie", 95)]);
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
    let b = Rc::new(Catalog::new(Config::new(dir.path(), None), FakeFrontend::new()).with_clock(now));
    apply(&b, 0, &[("Tux", 95)]);
    assert_eq!(call(&b, Method::POST, "/tick", "").body["data"]["restocked"], json!([]));
    assert_eq!(qty(&dir, "Tux"), 5);
    advance(5_000);
    assert_eq!(call(&b, Method::POST, "/tick", "").body["data"]["restocked"], json!(["Tux"]));
    // `a` sees the new stamp and does not restock again.
    apply(&a, 1, &[("Tux", 95)]);
    assert_eq!(call(&a, Method::POST, "/tick", "").body["data"]["restocked"], json!([]));
    assert_eq!(qty(&dir, "Tux"), 5);
}

#[test]
fn routes_methods_and_debug_trap() {
    let (_dir, cat, _fe) = setup();
    assert_eq!(call(&cat, Method::GET, "/nope", "").status, 404);
    assert_eq!(call(&cat, Method::GET, "/apply", "").status, 405);
    assert_eq!(call(&cat, Method::POST, "/stock", "").status, 405);
    assert_eq!(call(&cat, Method::POST, "/products/Tux", "").status, 405);
    assert_eq!(call(&cat, Method::POST, "/debug/trap", "").status, 404, "off by default");
    assert_eq!(call(&cat, Method::POST, "/debug/spin", "").status, 404, "off by default");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let mut cfg = Config::new(dir.path(), None);
    cfg.debug_routes = true;
    let cat = Rc::new(Catalog::new(cfg, FakeFrontend::new()));
    let trapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&cat, Method::POST, "/debug/trap", "")));
    assert!(trapped.is_err());
}

#[test]
fn missing_or_corrupt_file_is_a_500_not_a_guess() {
    let (dir, cat, _fe) = setup();
    std::fs::write(dir.path().join(CATALOG_FILE), "name,price,quantity\nTux,x,1\n").unwrap();
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").status, 500);
    assert_eq!(call(&cat, Method::GET, "/stock", "").status, 500);
    assert_eq!(apply(&cat, 0, &[("Tux", 1)]).status, 500);
    std::fs::remove_file(dir.path().join(CATALOG_FILE)).unwrap();
    assert_eq!(call(&cat, Method::GET, "/products", "").status, 500);
}

/// [`setup`] as the toystore host runs it: this instance is the directory's only writer.
fn setup_exclusive() -> (tempfile::TempDir, Cat, FakeFrontend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();
    let fe = FakeFrontend::new();
    let mut cfg = Config::new(dir.path(), Some("http://fe".into()));
    cfg.dir_access = DirAccess::Exclusive;
    (dir, Rc::new(Catalog::new(cfg, fe.clone()).with_clock(now)), fe)
}

#[test]
fn an_exclusive_catalog_serves_from_memory_what_it_wrote_to_the_file() {
    let (dir, cat, _fe) = setup_exclusive();
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").data().unwrap()["quantity"], 100);
    // Nobody else writes the directory under the toystore host, so the file is not read
    // again: a change behind the instance's back is not seen (it would be under `Shared`).
    let seed_changed = SEED.replace("Tux,25.99,100", "Tux,25.99,7");
    assert_ne!(seed_changed, SEED);
    std::fs::write(dir.path().join(CATALOG_FILE), &seed_changed).unwrap();
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").data().unwrap()["quantity"], 100);
    std::fs::write(dir.path().join(CATALOG_FILE), SEED).unwrap();

    // Every change is on disk before the reply, and memory follows it.
    let r = apply(&cat, 0, &[("Tux", 3), ("Lego", 2)]);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(qty(&dir, "Tux"), 97);
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").data().unwrap()["quantity"], 97);
    let stock = call(&cat, Method::GET, "/stock", "");
    assert_eq!(stock.data().unwrap()["applied_orders"], 2);
    assert_eq!(file(&dir).applied_orders(), 2);
    assert_eq!(apply(&cat, 2, &[("Lego", 95)]).status, 200);
    assert_eq!(call(&cat, Method::GET, "/products/Lego", "").data().unwrap()["quantity"], 3);
    let r = call(&cat, Method::POST, "/restock", "");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(qty(&dir, "Lego"), 100);
    assert_eq!(call(&cat, Method::GET, "/products/Lego", "").data().unwrap()["quantity"], 100);
    // The same file a shared instance reads.
    let (_other_dir, shared, _) = setup();
    std::fs::copy(dir.path().join(CATALOG_FILE), _other_dir.path().join(CATALOG_FILE)).unwrap();
    assert_eq!(call(&shared, Method::GET, "/stock", "").body, call(&cat, Method::GET, "/stock", "").body);
}

#[test]
fn a_failed_write_leaves_an_exclusive_catalogs_memory_as_the_file() {
    let (dir, cat, _fe) = setup_exclusive();
    assert_eq!(apply(&cat, 0, &[("Tux", 1)]).status, 200);
    // The temporary file of the atomic replace cannot be created: the write fails.
    let tmp = dir.path().join(CATALOG_FILE).with_extension("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let r = apply(&cat, 1, &[("Tux", 5)]);
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert_eq!(qty(&dir, "Tux"), 99, "the file is unchanged");
    // After a failed write memory is read again from the file, whatever it holds now (a
    // replace whose directory fsync failed has changed it; here the test changes it).
    std::fs::remove_dir(&tmp).unwrap();
    let mut inv = file(&dir);
    inv.apply(1, &[crate::inventory::OrderLine { number: 1, name: "Tux".into(), quantity: 4 }]).unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), inv.to_csv()).unwrap();
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").data().unwrap()["quantity"], 95);
    assert_eq!(call(&cat, Method::GET, "/stock", "").data().unwrap()["applied_orders"], 2);
    // And writes work again, from there.
    assert_eq!(apply(&cat, 2, &[("Tux", 5)]).status, 200);
    assert_eq!(qty(&dir, "Tux"), 90);
    assert_eq!(call(&cat, Method::GET, "/products/Tux", "").data().unwrap()["quantity"], 90);
}
