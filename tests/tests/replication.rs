//! Replicated orders that survive crashes — fail-over under load, repeated
//! kill/restart, byte-identical replica files, trap supervision, and the replica CLI.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use toystore_e2e::{LocalCalls, host_binary, Cluster, TOYS};

/// How calls between the components travel in these tests. `tests/local_calls.rs` includes this
/// file as a module and runs every test again with its own crate-level `LOCAL_CALLS` (`direct`).
#[allow(dead_code)]
const LOCAL_CALLS: LocalCalls = LocalCalls::Http;

/// What an acknowledged order must read back as.
type Acked = BTreeMap<u64, (String, i64)>;

fn place(c: &Cluster, toy: &str, qty: i64, acked: &Mutex<Acked>) {
    let r = c.order(toy, qty);
    assert_eq!(r.status, 200, "order {toy} x{qty} failed: {} (after {} acknowledged orders)", r.body, acked.lock().map(|a| a.len()).unwrap_or(0));
    let n = r.data()["order_number"].as_u64().expect("order_number");
    let previous = acked.lock().unwrap().insert(n, (toy.to_string(), qty));
    assert!(previous.is_none(), "order number {n} issued twice");
}

/// Every acknowledged order reads back with its original number, name and quantity.
fn assert_all_readable(c: &Cluster, acked: &Acked) {
    for (n, (toy, qty)) in acked {
        let r = c.get(&format!("/orders/{n}"));
        assert_eq!(r.status, 200, "acknowledged order {n} missing: {}", r.body);
        assert_eq!(r.data()["name"], toy.as_str(), "order {n}");
        assert_eq!(r.data()["quantity"], *qty, "order {n}");
    }
}

fn last_of(c: &Cluster, id: usize) -> Option<i64> {
    let r = c.request("GET", &format!("{}/get_last_order_number", c.replica_url(id)), None).ok()?;
    r.data()["last_order"].as_i64()
}

/// Wait until the three replicas agree, then check their files are byte-identical.
fn assert_replicas_identical(c: &Cluster) {
    c.wait_for("the three replicas to sync", Duration::from_secs(30), || {
        let lasts: Vec<_> = (1..=3).map(|id| last_of(c, id)).collect();
        lasts.iter().all(|l| l.is_some() && *l == lasts[0]) && c.orders_file(1) == c.orders_file(2) && c.orders_file(2) == c.orders_file(3)
    });
    let files: Vec<Vec<u8>> = (1..=3).map(|id| c.orders_file(id)).collect();
    assert!(!files[0].is_empty());
    assert_eq!(files[0], files[1], "orders.csv of replicas 1 and 2 differ");
    assert_eq!(files[1], files[2], "orders.csv of replicas 2 and 3 differ");
}

fn current_leader(c: &Cluster) -> usize {
    // The leader is chosen on the first order (or by the health check).
    c.wait_for("a leader", Duration::from_secs(20), || c.leader().is_some());
    c.leader().unwrap() as usize
}

#[test]
fn killing_the_leader_under_load_loses_nothing_and_clients_see_no_error() {
    // Ample stock: the load must not sell a toy out before the kill (it would, in ~3 s).
    let c = Arc::new(Cluster::start_stocked(crate::LOCAL_CALLS, 100_000));
    let acked = Arc::new(Mutex::new(Acked::new()));
    place(&c, "Tux", 1, &acked);
    let leader = current_leader(&c);
    assert_eq!(leader, 3, "the highest id leads when all are up");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (c, acked, stop) = (Arc::clone(&c), Arc::clone(&acked), Arc::clone(&stop));
            thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    place(&c, TOYS[(i + k) % TOYS.len()], 1, &acked);
                    k += 1;
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    c.kill_replica(leader);
    thread::sleep(Duration::from_millis(1500));
    let new_leader = current_leader(&c);
    assert_ne!(new_leader, leader, "a new leader took over");
    // With the old leader still down, every order acknowledged so far reads back (the reads
    // go to the new leader; a replica that is not the leader answers 409, never 404).
    let so_far = acked.lock().unwrap().clone();
    assert_all_readable(&c, &so_far);
    c.restart_replica(leader);
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.join().expect("a client saw an error");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "the load was real: {} orders", acked.len());
    assert_all_readable(&c, &acked);
    assert_replicas_identical(&c);
}

#[test]
fn two_failovers_in_a_row_reuse_no_number_and_lose_no_order() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let acked = Mutex::new(Acked::new());
    let round = |n: usize| {
        for k in 0..n {
            place(&c, TOYS[k % TOYS.len()], 1 + (k % 2) as i64, &acked);
        }
    };
    round(5);
    c.kill_replica(3);
    round(5);
    c.restart_replica(3);
    round(5);
    c.kill_replica(2);
    round(5);
    c.restart_replica(2);
    round(5);
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len(), 25, "25 orders, 25 distinct numbers");
    assert_eq!(acked.keys().copied().collect::<Vec<_>>(), (0..25).collect::<Vec<u64>>(), "no gaps, no reuse");
    assert_all_readable(&c, &acked);
    assert_replicas_identical(&c);

    // And again with the first leader gone for good: 1 and 2 carry on, 3's restart catches up.
    c.kill_replica(3);
    let more = Mutex::new(acked.clone());
    for k in 0..5 {
        place(&c, TOYS[k], 1, &more);
    }
    c.restart_replica(3);
    let more = more.into_inner().unwrap();
    assert_eq!(more.len(), 30);
    assert_all_readable(&c, &more);
    assert_replicas_identical(&c);
}

#[test]
fn a_restarted_replica_catches_up_on_what_it_missed() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let acked = Mutex::new(Acked::new());
    place(&c, "Fox", 1, &acked);
    c.kill_replica(1); // a follower
    for k in 0..20 {
        place(&c, TOYS[k % TOYS.len()], 1, &acked);
    }
    assert!(c.request("GET", &format!("{}/ping", c.replica_url(1)), None).is_err(), "killed means down");
    c.restart_replica(1);
    c.wait_for("replica 1 healthy", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/ping", c.replica_url(1)), None).map(|r| r.status == 200).unwrap_or(false)
    });
    assert_eq!(last_of(&c, 1), Some(20), "replica 1 holds every order once it reports healthy");
    assert_replicas_identical(&c);
}

#[test]
fn a_trapping_component_is_restarted_and_serves_again() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let acked = Mutex::new(Acked::new());
    place(&c, "Barbie", 2, &acked);

    // The catalog traps; the host restarts it from its files.
    let _ = c.request("POST", &format!("{}/debug/trap", c.catalog_url()), Some(""));
    c.wait_for("the catalog to serve again", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/products/Barbie", c.catalog_url()), None).map(|r| r.status == 200).unwrap_or(false)
    });
    assert_eq!(c.stock("Barbie"), 98, "state came back from catalog.csv");

    // The leader traps; the frontend fails over and the order still succeeds.
    let leader = current_leader(&c);
    let _ = c.request("POST", &format!("{}/debug/trap", c.replica_url(leader)), Some(""));
    place(&c, "Barbie", 1, &acked);
    c.wait_for("the trapped replica to serve again", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/ping", c.replica_url(leader)), None).map(|r| r.status == 200).unwrap_or(false)
    });
    let acked = acked.into_inner().unwrap();
    assert_all_readable(&c, &acked);
    assert_replicas_identical(&c);
    // The host saw and counted both crashes, and both services are running again.
    let services = c.admin("GET", "/services");
    let service = |name: &str| {
        services.data().as_array().and_then(|all| all.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} in {}", services.body))
    };
    for name in ["catalog".to_string(), format!("order-{leader}")] {
        let s = service(&name);
        assert_eq!(s["crashes"], 1, "{name}: {s}");
        assert_eq!(s["state"], "running", "{name}: {s}");
    }
    assert_eq!(service("frontend")["crashes"], 0);
}

#[test]
fn replica_cli_lists_kills_and_restarts() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    assert_eq!(c.order("Lego", 1).status, 200);
    let cli = |args: &[&str]| {
        let out = Command::new(host_binary())
            .arg("replica")
            .args(args)
            .arg("--admin")
            .arg(format!("127.0.0.1:{}", c.ports.admin))
            .output()
            .expect("run toystore replica");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, list) = cli(&["list"]);
    assert!(ok, "{list}");
    for id in ["1", "2", "3"] {
        assert!(list.contains(id), "replica {id} listed: {list}");
    }
    assert!(list.to_lowercase().contains("leader"), "the leader is shown: {list}");
    assert!(list.contains("running"), "{list}");

    let (ok, out) = cli(&["kill", "2"]);
    assert!(ok, "{out}");
    assert!(c.request("GET", &format!("{}/ping", c.replica_url(2)), None).is_err(), "replica 2 is down");
    let (_, list) = cli(&["list"]);
    assert!(list.contains("killed"), "{list}");
    assert_eq!(c.order("Lego", 1).status, 200, "two replicas still take orders");

    let (ok, out) = cli(&["restart", "2"]);
    assert!(ok, "{out}");
    c.wait_for("replica 2 back", Duration::from_secs(20), || {
        c.request("GET", &format!("{}/ping", c.replica_url(2)), None).map(|r| r.status == 200).unwrap_or(false)
    });
    let (ok, out) = cli(&["kill", "9"]);
    assert!(!ok, "unknown replica is an error: {out}");
    assert_replicas_identical(&c);
}
