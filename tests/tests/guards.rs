//! The host's guards, end to end: a guest call that spins forever is cut by the epoch guard,
//! and the rest of the store keeps serving meanwhile.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use toystore_e2e::Cluster;

#[test]
fn a_spinning_catalog_is_cut_with_503_and_restarted_while_the_rest_serves() {
    let c = Cluster::start();
    let placed = c.order("Lego", 2);
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    let number = placed.data()["order_number"].as_u64().expect("order number");
    let stock_before = c.stock("Lego");

    // While the catalog spins, the frontend (cached product and order reads) and every order
    // replica keep answering.
    let spinning = AtomicBool::new(true);
    let served = AtomicUsize::new(0);
    let reply = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while spinning.load(Ordering::SeqCst) {
                for id in 1..=3 {
                    let r = c.request("GET", &format!("{}/ping", c.replica_url(id)), None).expect("replica answers");
                    assert_eq!(r.status, 200, "order-{id} while the catalog spins: {:?}", r.body);
                }
                let r = c.get(&format!("/orders/{number}"));
                assert_eq!(r.status, 200, "frontend while the catalog spins: {:?}", r.body);
                served.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let started = Instant::now();
        let reply = c.request("POST", &format!("{}/debug/spin", c.catalog_url()), Some(""));
        let took = started.elapsed();
        spinning.store(false, Ordering::SeqCst);
        watcher.join().expect("the watcher's checks held");
        (reply, took)
    });
    let (reply, took) = reply;
    let reply = reply.expect("the spinning request gets an answer, not a dropped connection");
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(reply.body["error"]["code"], 503, "JSON envelope: {:?}", reply.body);
    assert!(reply.error_message().contains("spinning"), "{:?}", reply.body);
    assert!(took < Duration::from_secs(15), "cut within a bounded time, took {took:?}");
    assert!(served.load(Ordering::SeqCst) > 0, "the other services answered meanwhile");

    // The catalog comes back from its files, with the same stock.
    c.wait_for("the catalog to serve again", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/products/Lego", c.catalog_url()), None).map(|r| r.status == 200).unwrap_or(false)
    });
    assert_eq!(c.stock("Lego"), stock_before);
    let services = c.admin("GET", "/services");
    let catalog = services.data().as_array().and_then(|all| all.iter().find(|s| s["name"] == "catalog").cloned())
        .unwrap_or_else(|| panic!("catalog in {}", services.body));
    assert_eq!(catalog["crashes"], 1, "{catalog}");
    assert_eq!(catalog["last_crash_cause"], "spin", "{catalog}");
    assert_eq!(catalog["state"], "running", "{catalog}");
    assert_eq!(c.order("Lego", 1).status, 200, "orders go through the restarted catalog");
}

/// The `/debug/spin` of one service: a 503 envelope saying it spun, within a bounded time.
fn spin(c: &Cluster, base: &str) {
    let started = Instant::now();
    let reply = c.request("POST", &format!("{base}/debug/spin"), Some("")).expect("an answer, not a dropped connection");
    assert_eq!(reply.status, 503, "{base}: {:?}", reply.body);
    assert!(reply.error_message().contains("spinning"), "{base}: {:?}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(15), "{base}: cut within a bounded time");
}

fn last_crash_cause(c: &Cluster, service: &str) -> serde_json::Value {
    let services = c.admin("GET", "/services");
    let found = services.data().as_array().and_then(|all| all.iter().find(|s| s["name"] == service).cloned());
    found.unwrap_or_else(|| panic!("{service} in {}", services.body))["last_crash_cause"].clone()
}

#[test]
fn a_spinning_follower_and_a_spinning_frontend_are_cut_and_come_back() {
    let c = Cluster::start();
    c.wait_for("a leader", Duration::from_secs(30), || c.leader().is_some());
    let leader = c.leader().expect("a leader") as usize;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");

    // A follower spins: the leader and the other follower still make orders durable.
    std::thread::scope(|scope| {
        scope.spawn(|| spin(&c, &c.replica_url(follower)));
        std::thread::sleep(Duration::from_millis(300));
        let placed = c.order("Marbles", 1);
        assert_eq!(placed.status, 200, "an order while order-{follower} spins: {:?}", placed.body);
    });
    assert_eq!(last_crash_cause(&c, &format!("order-{follower}")), "spin");

    // The frontend's spin route is internal: not on the public port, cut on the internal one.
    let public = c.request("POST", &format!("{}/debug/spin", c.frontend_url()), Some("")).expect("an answer");
    assert_eq!(public.status, 404, "{:?}", public.body);
    spin(&c, &c.internal_url());
    assert_eq!(last_crash_cause(&c, "frontend"), "spin");
    c.wait_for("the frontend to serve again", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/products/Tux", c.frontend_url()), None).map(|r| r.status == 200).unwrap_or(false)
    });
    c.wait_for("a leader again", Duration::from_secs(20), || c.leader().is_some());
    assert_eq!(c.order("Marbles", 1).status, 200, "orders go through the restarted frontend");
}

/// A replica that loads a long order log (parsing it is a stretch of guest code with few host
/// calls) is not mistaken for a spinning one: with 100 000 orders in every replica's log, as
/// in the bench, the store starts, every replica answers, and none was cut. Then a follower
/// that missed the last 10 000 orders restarts and catches up from its peers, uncut too.
#[test]
fn replicas_loading_a_long_log_are_not_cut_by_the_spin_guard() {
    const ORDERS: u64 = 100_000;
    let mut c = Cluster::start();
    c.stop();
    for id in 1..=3 {
        toystore_client::hostproc::write_order_log(&c.data_dir(&format!("order-{id}")), ORDERS, 1).expect("write a log");
    }
    toystore_client::hostproc::write_applied_catalog(&c.data_dir("catalog"), ORDERS, 1_000_000).expect("write the catalog");
    c.start_again();
    c.wait_for("a leader", Duration::from_secs(60), || c.leader().is_some());
    let placed = c.order("Lego", 1);
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    assert_eq!(placed.data()["order_number"], ORDERS, "the pre-written log was used: {:?}", placed.body);

    let leader = c.leader().expect("a leader") as usize;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    c.kill_replica(follower);
    toystore_client::hostproc::truncate_order_log(&c.data_dir(&format!("order-{follower}")), ORDERS - 10_000)
        .expect("cut the follower's log");
    c.restart_replica(follower);
    c.wait_for("the restarted follower to serve", Duration::from_secs(60), || {
        c.request("GET", &format!("{}/ping", c.replica_url(follower)), None).map(|r| r.status == 200).unwrap_or(false)
    });
    let services = c.admin("GET", "/services");
    for s in services.data().as_array().expect("a service list") {
        assert_ne!(s["last_crash_cause"], "spin", "{s}\nlog:\n{}", c.log_tail());
    }
    assert!(!c.log().contains("spinning"), "log:\n{}", c.log_tail());
}
