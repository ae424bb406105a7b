//! Stock is conserved through every crash (issue 9): keyed clients order concurrently while
//! replicas are killed — the leader, a follower, two at once — and the whole `toystore serve`
//! is SIGKILLed and started again, with restocks running all along. Afterwards:
//!
//! - every acknowledged order reads back with its toy and quantity, under the number its key
//!   was given (a key is answered with one number however often it is retried);
//! - no number was given to two keys, and the log holds exactly the acknowledged orders
//!   (clients retry with the same key until they get an answer, so nothing committed is
//!   left unacknowledged, and nothing acknowledged is missing);
//! - the three `orders.csv` files are byte-identical;
//! - per toy, `seeded + restocked − quantity == Σ quantity of the committed orders` and no
//!   quantity is negative — read from `catalog.csv` by this test, and checked again by
//!   `toystore check --strict`, the store's own fsck.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use toystore_e2e::{host_binary, test_settings, Cluster, TOYS};

/// What one client was told for one key.
#[derive(Debug, Clone, PartialEq)]
struct Acked {
    number: u64,
    toy: String,
    quantity: i64,
}

/// The run's seed, printed, so a failing run can be replayed with `CONSERVATION_SEED=<n>`.
fn seed() -> u64 {
    std::env::var("CONSERVATION_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
    })
}

/// How an order attempt ended.
enum Attempt {
    Acked(u64),
    /// A definite refusal (not enough stock, unknown toy): nothing was ordered.
    Refused,
    /// No answer, 5xx, or the host is down: retry with the same key.
    Retry(String),
}

fn attempt(c: &Cluster, toy: &str, quantity: i64, key: &str) -> Attempt {
    let body = format!(r#"{{"name":"{toy}","quantity":{quantity}}}"#);
    match c.request_with("POST", &format!("{}/orders", c.frontend_url()), Some(&body), &[("Idempotency-Key", key)]) {
        Err(e) => Attempt::Retry(e),
        Ok(r) if r.status == 200 => {
            assert_eq!(r.header("idempotency-key"), Some(key), "the answer names its key");
            Attempt::Acked(r.data()["order_number"].as_u64().expect("order_number"))
        }
        Ok(r) if r.status == 400 || r.status == 404 => Attempt::Refused,
        Ok(r) if r.status == 422 => panic!("key {key} was answered as reused: {}", r.body),
        Ok(r) => Attempt::Retry(format!("{} {}", r.status, r.body)),
    }
}

/// One client: order random toys, each under a fresh key, retrying a key until it gets a
/// definite answer. The cluster may be swapped out under it (the host restarts).
fn client(id: usize, cluster: Arc<RwLock<Cluster>>, stop: Arc<AtomicBool>, seed: u64) -> BTreeMap<String, Acked> {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(id as u64 + 7));
    let mut acked = BTreeMap::new();
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("c{id}-{k}");
        let toy = TOYS[rng.usize(..TOYS.len())];
        let quantity = rng.i64(1..=3);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let outcome = { attempt(&cluster.read().unwrap(), toy, quantity, &key) };
            match outcome {
                Attempt::Acked(number) => {
                    acked.insert(key.clone(), Acked { number, toy: toy.to_string(), quantity });
                    break;
                }
                Attempt::Refused => break,
                Attempt::Retry(why) => {
                    assert!(Instant::now() < deadline, "client {id}: key {key} got no answer for 90 s: {why}");
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        k += 1;
    }
    acked
}

/// `catalog.csv` as a map toy → its columns by header name.
fn catalog_rows(c: &Cluster) -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(c.data_dir("catalog").join("catalog.csv")).expect("catalog.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: HashMap<String, String> =
                header.iter().zip(l.split(',')).map(|(h, v)| (h.to_string(), v.to_string())).collect();
            (row["name"].clone(), row)
        })
        .collect()
}

fn toystore_check(c: &Cluster) -> (bool, String) {
    let out = Command::new(host_binary())
        .args(["check", "--strict", "--manifest"])
        .arg(c.manifest_path())
        .output()
        .expect("run toystore check");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn stock_is_conserved_through_replica_kills_and_a_host_sigkill() {
    let seed = seed();
    eprintln!("conservation: CONSERVATION_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    // Restocks run all along (every 2 s, any toy at or under 60), so they race the orders.
    let settings =
        toystore_e2e::Settings { restock_interval_secs: 2, restock_threshold: 60, restock_amount: 100, ..test_settings() };
    let cluster = Arc::new(RwLock::new(Cluster::start_with(settings)));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (cluster, stop) = (Arc::clone(&cluster), Arc::clone(&stop));
            thread::spawn(move || client(i, cluster, stop, seed))
        })
        .collect();

    // Faults, one every ~1.5 s: kill the leader, a follower, or two replicas at once; restart
    // the dead ones; halfway through, SIGKILL the whole host and start it again.
    let faults = Mutex::new(Vec::<String>::new());
    let log = |what: String| {
        eprintln!("conservation: {what}");
        faults.lock().unwrap().push(what);
    };
    for round in 0..12 {
        thread::sleep(Duration::from_millis(1000 + rng.u64(..1000)));
        if round == 6 {
            log("SIGKILL the host, start it again".into());
            let mut c = cluster.write().unwrap();
            c.crash();
            c.start_again();
            continue;
        }
        let c = cluster.read().unwrap();
        let leader = c.leader_now().unwrap_or(3) as usize;
        let victims: Vec<usize> = match rng.u8(..3) {
            0 => vec![leader],
            1 => vec![1 + (leader % 3)],
            _ => vec![leader, 1 + (leader % 3)],
        };
        log(format!("round {round}: kill {victims:?} (leader {leader})"));
        for &v in &victims {
            c.kill_replica(v);
        }
        thread::sleep(Duration::from_millis(300 + rng.u64(..700)));
        for &v in &victims {
            c.restart_replica(v);
        }
    }
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    for h in clients {
        acked.extend(h.join().expect("a client failed"));
    }
    let c = cluster.read().unwrap();
    assert!(acked.len() > 50, "the load was real: {} orders acknowledged", acked.len());

    // No number given to two keys.
    let mut by_number: BTreeMap<u64, &str> = BTreeMap::new();
    for (key, a) in &acked {
        if let Some(other) = by_number.insert(a.number, key) {
            panic!("order number {} was given to keys {other} and {key}", a.number);
        }
    }
    // Every acknowledged order reads back under its number, with its toy and quantity.
    for (key, a) in &acked {
        let r = c.get(&format!("/orders/{}", a.number));
        assert_eq!(r.status, 200, "acknowledged order {} ({key}) missing: {}", a.number, r.body);
        assert_eq!(r.data()["name"], a.toy.as_str(), "order {} ({key})", a.number);
        assert_eq!(r.data()["quantity"], a.quantity, "order {} ({key})", a.number);
    }
    // The numbers are exactly 0..n: nothing committed that a client was not told about.
    let numbers: Vec<u64> = by_number.keys().copied().collect();
    assert_eq!(numbers, (0..acked.len() as u64).collect::<Vec<_>>(), "the log holds exactly the acknowledged orders");

    // Quiet point: the replicas agree byte for byte and the catalog has applied every order.
    c.wait_for("identical replica files and a fully applied catalog", Duration::from_secs(60), || {
        let files: Vec<Vec<u8>> = (1..=3).map(|id| c.orders_file(id)).collect();
        files[0] == files[1] && files[1] == files[2] && toystore_check(&c).0
    });
    let (ok, report) = toystore_check(&c);
    assert!(ok, "toystore check --strict failed:\n{report}");

    // The invariant, read from catalog.csv by this test itself.
    let rows = catalog_rows(&c);
    let mut ordered: HashMap<&str, i64> = HashMap::new();
    for a in acked.values() {
        *ordered.entry(a.toy.as_str()).or_default() += a.quantity;
    }
    let mut restocked_total = 0;
    for toy in TOYS {
        let row = &rows[toy];
        let num = |col: &str| -> i64 { row[col].parse().unwrap_or_else(|_| panic!("{toy}: {col} = {:?}", row[col])) };
        let (quantity, seeded, restocked) = (num("quantity"), num("seeded"), num("restocked"));
        restocked_total += restocked;
        assert!(quantity >= 0, "{toy}: negative stock {quantity}");
        assert_eq!(
            seeded + restocked - quantity,
            ordered.get(toy).copied().unwrap_or(0),
            "{toy}: seeded {seeded} + restocked {restocked} - quantity {quantity} != ordered"
        );
        assert_eq!(num("applied_orders"), acked.len() as i64, "{toy}: the catalog applied every order");
    }
    assert!(restocked_total > 0, "restocks ran during the load");
    eprintln!(
        "conservation: {} orders, {} units, {} restocked, faults: {:?}",
        acked.len(),
        ordered.values().sum::<i64>(),
        restocked_total,
        faults.lock().unwrap()
    );
}
