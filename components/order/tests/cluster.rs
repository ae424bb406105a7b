//! The replication protocol, end to end, on a simulated three-replica cluster (see `sim`).
//! Each scenario checks the promises: every acknowledged order survives with its number, no
//! number is ever given to two orders, the replicas' `orders.csv` end byte-identical, and at a
//! quiet point the catalog's stock is exactly the log's (`taken == logged`, never below zero).

mod sim;

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::future::join_all;
use http::Method;
use serde_json::json;
use sim::{Fault, Sim, TOYS};
use toystore_guest::Reply;
use toystore_guest::durable::crash::Point;

/// Acknowledged orders: number → (key, toy, quantity).
type Acked = BTreeMap<u64, (String, String, i64)>;

fn place(sim: &Sim, acked: &mut Acked, key: &str, toy: &str, qty: i64) -> u64 {
    let n = sim.place(key, toy, qty).unwrap_or_else(|e| panic!("order {key} failed: {e}"));
    if let Some((k, _, _)) = acked.get(&n) {
        assert_eq!(k, key, "order number {n} given to {k} and to {key}");
    }
    acked.insert(n, (key.to_string(), toy.to_string(), qty));
    n
}

fn round(sim: &Sim, acked: &mut Acked, tag: &str, count: usize) {
    for k in 0..count {
        place(sim, acked, &format!("{tag}-{k}"), TOYS[k % TOYS.len()], 1 + (k % 2) as i64);
    }
}

/// Every acknowledged order is in every live replica's log (after catching up), and reads
/// back through the leader.
fn assert_all_present(sim: &Sim, acked: &Acked) {
    sim.tick_all();
    for id in 1..=3 {
        if !sim.is_up(id) {
            continue;
        }
        for (n, (key, toy, qty)) in acked {
            let got = sim.local(id, *n);
            assert_eq!(got, Some((toy.clone(), *qty)), "replica {id} lost order {n} ({key})");
        }
    }
    for (n, (key, toy, qty)) in acked {
        let r = sim.read_via_leader(*n).unwrap_or_else(|e| panic!("reading order {n} ({key}): {e}"));
        assert_eq!((r.status, &r.body["data"]["name"], r.body["data"]["quantity"].as_i64()), (200, &json!(toy), Some(*qty)), "order {n} ({key})");
    }
}

/// Let everyone catch up, then the files must be byte-identical and hold each key once.
fn assert_identical(sim: &Sim) {
    for _ in 0..3 {
        sim.tick_all();
    }
    let files: Vec<String> = (1..=3).map(|id| String::from_utf8(sim.orders_file(id)).unwrap()).collect();
    assert!(files[0] == files[1], "orders.csv of replicas 1 and 2 differ:\n{}\n---\n{}", files[0], files[1]);
    assert!(files[1] == files[2], "orders.csv of replicas 2 and 3 differ:\n{}\n---\n{}", files[1], files[2]);
    // Parsing checks indexes and numbers are contiguous; keys must be unique.
    let mut keys = std::collections::HashSet::new();
    for (_, _, key) in sim.orders(1) {
        assert!(keys.insert(key.clone()), "key {key} recorded twice");
    }
}

fn start() -> Rc<Sim> {
    let sim = Sim::new();
    sim.tick_all();
    assert_eq!(sim.elect(), Some(3), "the highest id leads when all are up");
    sim
}

#[test]
fn three_replicas_starting_together_all_become_healthy() {
    let sim = Sim::new();
    // Each ping runs that replica's start-up resync, which asks the others (served from their
    // local logs even though they are not synced yet): no one waits for anyone.
    for id in 1..=3 {
        assert_eq!(sim.get(id, "/ping").unwrap().status, 200, "replica {id}");
    }
    let ping = sim.get(2, "/ping").unwrap();
    assert_eq!(ping.body["data"]["last"], -1);
    assert_eq!(ping.body["data"]["synced"], true);
}

#[test]
fn orders_are_numbered_replicated_and_read_back() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 10);
    assert_eq!(acked.keys().copied().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("after 10 orders");
    assert_eq!(sim.taken(), acked.values().map(|(_, _, q)| q).sum::<i64>());
    // The price the order was admitted at reads back as a number.
    assert_eq!(sim.get(3, "/orders/1").unwrap().body, json!({"data": {"number": 1, "name": "Lego", "quantity": 2, "price": 9.5,
        "Order number": 1, "Toy name": "Lego", "Quantity": 2}}));
    // Lookups at the leader: unknown 404, non-integer 400. A follower holds the orders but
    // answers 409 naming the leader (only a leader knows what is committed).
    assert_eq!(sim.get(3, "/orders/99").unwrap().status, 404);
    assert_eq!(sim.get(3, "/orders/x").unwrap().status, 400);
    assert_eq!(sim.get(3, "/orders/-1").unwrap().status, 404);
    assert_eq!(sim.get(1, "/orders/x").unwrap().status, 400);
    let follower = sim.get(1, "/orders/0").unwrap();
    assert_eq!((follower.status, &follower.body["error"]["leader"]), (409, &json!(3)), "{follower:?}");
    // A follower refuses orders and names the leader.
    let r = sim.post(1, "/orders", json!({"name": "Tux", "quantity": 1, "key": "f"})).unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["leader"], 3);
    let file = String::from_utf8(sim.orders_file(1)).unwrap();
    assert!(file.starts_with("index,epoch,kind,number,name,quantity,price,key\n0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,a-0\n2,1,order,1,Lego,2,9.50,a-1\n"), "{file}");
}

#[test]
fn invalid_orders_and_catalog_refusals_change_nothing() {
    let sim = start();
    for bad in [
        json!({"quantity": 1}),
        json!({"name": "Tux"}),
        json!({"name": "Tux", "quantity": 0}),
        json!({"name": "Tux", "quantity": -1}),
        json!({"name": "Tux", "quantity": 1.5}),
        json!({"name": "Tux", "quantity": "1"}),
        json!("Tux"),
    ] {
        assert_eq!(sim.post(3, "/orders", bad.clone()).unwrap().status, 400, "{bad}");
    }
    let raw = sim.run(sim.request(3, Method::POST, "/orders", None)).unwrap();
    assert_eq!(raw.status, 400);
    // The stock view's verdicts, in the catalog's words.
    let unknown = sim.post(3, "/orders", json!({"name": "Unicorn", "quantity": 1, "key": "u"})).unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body, json!({"error": {"code": 404, "message": "product not found"}}));
    let too_many = sim.post(3, "/orders", json!({"name": "Tux", "quantity": sim::INITIAL_STOCK + 1, "key": "t"})).unwrap();
    assert_eq!(too_many.status, 400);
    assert_eq!(too_many.body["error"]["message"], format!("not enough stock: only {} left", sim::INITIAL_STOCK));
    assert_eq!(sim.last(3), Some(0), "only the leader's epoch record");
    assert!(sim.orders(3).is_empty());
    assert_eq!(sim.taken(), 0);
    assert_eq!(sim.get(3, "/nope").unwrap().status, 404);
    // `GET /orders` is the seed's order query, `?<n>`: without a number it is a 400.
    let bare = sim.get(3, "/orders").unwrap();
    assert_eq!((bare.status, bare.body["error"]["message"].as_str().unwrap_or("").starts_with("name the order")), (400, true), "{:?}", bare.body);
    assert_eq!(sim.call(3, Method::DELETE, "/orders", None).unwrap().status, 405);
    assert_eq!(sim.post(3, "/debug/trap", json!({})).unwrap().status, 404, "debug routes are off");
}

#[test]
fn the_same_key_gets_the_same_number_and_takes_stock_once() {
    let sim = start();
    let body = json!({"name": "Lego", "quantity": 2, "key": "same"});
    let first = sim.post(3, "/orders", body.clone()).unwrap();
    let again = sim.post(3, "/orders", body.clone()).unwrap();
    assert_eq!(first.body["data"]["order_number"], 0);
    assert_eq!(again.body["data"]["order_number"], 0);
    assert_eq!(sim.orders(3).len(), 1, "the retry was answered without a new order");
    // Two concurrent requests with one key: one number, one order.
    let body = json!({"name": "Fox", "quantity": 1, "key": "race"});
    let replies = sim.run(join_all((0..2).map(|_| sim.request(3, Method::POST, "/orders", Some(body.clone())))));
    let numbers: Vec<_> = replies.iter().map(|r| r.as_ref().unwrap().body["data"]["order_number"].clone()).collect();
    assert_eq!(numbers, vec![json!(1), json!(1)]);
    assert_eq!(sim.orders(3).len(), 2);
    sim.assert_conserved("same keys");
    assert_eq!(sim.taken(), 3, "2 Lego + 1 Fox, whatever the interleaving");
}

#[test]
fn concurrent_orders_get_contiguous_distinct_numbers() {
    let sim = start();
    let replies = sim.run(join_all((0..25).map(|i| {
        let body = json!({"name": TOYS[i % 4], "quantity": 1, "key": format!("c{i}")});
        let sim = &sim;
        async move { sim.request(3, Method::POST, "/orders", Some(body)).await }
    })));
    let mut numbers: Vec<u64> = replies.iter().map(|r| r.as_ref().unwrap().body["data"]["order_number"].as_u64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (0..25).collect::<Vec<_>>());
    assert_identical(&sim);
}

#[test]
fn leader_killed_mid_stream_new_leader_has_every_acked_order_and_reuses_no_number() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "before", 10);

    // The leader appends order 10, replica 2 applies it, and the leader dies before answering
    // (replica 1 is cut off, so 2's answer is the one the order waits for).
    sim.set_fault(|c| match (c.from, c.to, c.path.as_str()) {
        (3, 2, "/replicate_order") => Fault::KillCallerAfter,
        (3, 1, "/replicate_order") => Fault::DropRequest,
        _ => Fault::None,
    });
    let r = sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "mid"}));
    assert!(r.is_err(), "the client saw the leader die: {r:?}");
    sim.clear_fault();

    // The client retries with the same key: the new leader found it on replica 2 and answers
    // its number; nothing is numbered twice.
    let n = place(&sim, &mut acked, "mid", "Tux", 1);
    assert_eq!(n, 10, "the order replica 2 held kept its number");
    assert_eq!(sim.leader(), Some(2));
    round(&sim, &mut acked, "after", 10);

    // Now the new leader dies after appending locally, before anyone got the entry.
    sim.set_fault(|c| if c.from == 2 && c.path == "/replicate_order" { Fault::KillCallerBefore } else { Fault::None });
    assert!(sim.post(2, "/orders", json!({"name": "Fox", "quantity": 1, "key": "lost"})).is_err());
    sim.clear_fault();
    sim.restart(3);
    sim.tick_all();
    place(&sim, &mut acked, "lost", "Fox", 1);
    round(&sim, &mut acked, "later", 5);
    sim.restart(2);
    sim.tick_all();
    round(&sim, &mut acked, "end", 3);
    assert_eq!(acked.len(), 30);
    assert_eq!(acked.keys().copied().collect::<Vec<_>>(), (0..30).collect::<Vec<_>>());
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
}

#[test]
fn two_failovers_in_a_row_lose_nothing_and_reuse_no_number() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "r1", 5);
    sim.kill(3);
    round(&sim, &mut acked, "r2", 5);
    sim.restart(3);
    sim.tick_all();
    round(&sim, &mut acked, "r3", 5);
    sim.kill(2);
    round(&sim, &mut acked, "r4", 5);
    sim.restart(2);
    sim.tick_all();
    round(&sim, &mut acked, "r5", 5);
    assert_eq!(acked.keys().copied().collect::<Vec<_>>(), (0..25).collect::<Vec<_>>());
    assert_all_present(&sim, &acked);
    assert_identical(&sim);

    // And again with whoever leads now gone, then back.
    let leader = sim.leader().unwrap();
    sim.kill(leader);
    round(&sim, &mut acked, "r6", 5);
    sim.restart(leader);
    sim.tick_all();
    assert_eq!(acked.len(), 30);
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
}

#[test]
fn an_old_uncommitted_tail_never_overwrites_an_acknowledged_order() {
    // Raft's figure 8 in three replicas: old leaders leave different uncommitted entries at one
    // number; whatever happens next, the order acknowledged at that number must survive.
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "base", 3); // 0..2 everywhere, epoch 1

    // Leader 3 (epoch 1) appends "x3" at 3 and dies before sending it.
    sim.set_fault(|c| if c.from == 3 && c.path == "/replicate_order" { Fault::KillCallerBefore } else { Fault::None });
    assert!(sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "x3"})).is_err());
    // Replica 2 leads epoch 2, appends "x2" at 3 and dies before sending it.
    sim.set_fault(|c| if c.from == 2 && c.path == "/replicate_order" && c.body["records"].as_str().is_some_and(|lines| lines.contains(",x2\n")) { Fault::KillCallerBefore } else { Fault::None });
    assert_eq!(sim.elect(), Some(2));
    assert!(sim.post(2, "/orders", json!({"name": "Tux", "quantity": 1, "key": "x2"})).is_err());
    sim.clear_fault();

    // Replica 3 comes back and leads epoch 3 with replica 1; an order is acknowledged at 3.
    sim.restart(3);
    sim.tick_all();
    assert_eq!(sim.elect(), Some(3));
    let n = place(&sim, &mut acked, "y", "Lego", 1);
    assert_eq!(n, 3);
    // Replica 3 dies; replica 2 (holding "x2" at 3 from epoch 2) returns and leads with 1.
    sim.kill(3);
    sim.restart(2);
    sim.tick_all();
    assert_eq!(sim.elect(), Some(2));
    place(&sim, &mut acked, "z", "Fox", 1);
    sim.restart(3);
    sim.tick_all();
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    let file = String::from_utf8(sim.orders_file(1)).unwrap();
    assert!(!file.contains(",x2\n") && !file.contains(",x3\n"), "unacknowledged entries were cut:\n{file}");
    sim.assert_conserved("figure 8");
}

#[test]
fn a_follower_that_applied_but_whose_reply_was_lost_keeps_the_order_and_the_retry_gets_its_number() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 2);
    sim.kill(1);
    // Replica 2 applies order 2 but the leader never hears back: in doubt, so the leader keeps
    // the record, answers 503, and renews before numbering anything else.
    sim.set_fault(|c| if c.to == 2 && c.path == "/replicate_order" { Fault::LoseReply } else { Fault::None });
    let r = sim.post(3, "/orders", json!({"name": "Barbie", "quantity": 4, "key": "doubt"})).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(sim.catalog.borrow().applied_orders, 2, "an uncommitted order is never applied");
    sim.clear_fault();
    let n = place(&sim, &mut acked, "doubt", "Barbie", 4);
    assert_eq!(n, 2, "same key, same number");
    sim.restart(1);
    sim.tick_all();
    round(&sim, &mut acked, "b", 2);
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("lost reply");
    assert_eq!(sim.taken(), acked.values().map(|(_, _, q)| q).sum::<i64>());
}

#[test]
fn with_two_replicas_down_orders_fail_cleanly_and_reads_still_work() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 3);
    sim.kill(1);
    sim.kill(2);
    let r = sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "alone"})).unwrap();
    assert_eq!(r.status, 503);
    // The record stays (nothing to give back: stock follows the log); never applied.
    assert_eq!(sim.last(3), Some(4));
    assert_eq!(sim.catalog.borrow().applied_orders, 3);
    // Still refused while alone (the renewal cannot fence a majority), writing nothing.
    assert_eq!(sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "other"})).unwrap().status, 503);
    assert_eq!(sim.last(3), Some(4));
    assert_eq!(sim.read(3, 1).map(|(t, _)| t), Some("Lego".to_string()));
    sim.restart(2);
    sim.tick_all();
    let n = place(&sim, &mut acked, "alone", "Tux", 1);
    assert_eq!(n, 3, "the renewal committed the record the failed attempt left");
    sim.restart(1);
    sim.tick_all();
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("two down");
}

#[test]
fn a_fenced_leader_is_refused_and_steps_down_and_its_record_is_cut() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 2);
    // Replica 2 becomes leader of epoch 2 while replica 3 does not hear of it.
    sim.set_fault(|c| if c.to == 3 && (c.from == 2 || c.path == "/inform_replica") { Fault::DropRequest } else { Fault::None });
    let r = sim.post(2, "/leaderselection", json!({})).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["epoch"], 2);
    sim.clear_fault();
    // The old leader still tries: both followers refuse its epoch.
    let r = sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "old"})).unwrap();
    assert!(r.status == 503 || r.status == 409, "{}", r.body);
    assert_eq!(sim.get(3, "/health").unwrap().body["data"]["role"], "follower");
    // A stale replicate is refused with 409 `stale` and the follower's status.
    let stale = sim.post(1, "/replicate_order", json!({"leader": 3, "epoch": 1, "prev": null, "records": ""})).unwrap();
    assert_eq!(stale.status, 409);
    assert_eq!(stale.body["error"]["reason"], "stale");
    assert_eq!(stale.body["error"]["epoch"], 2);
    // So is a fence for an epoch already promised.
    assert_eq!(sim.post(1, "/fence", json!({"leader": 3, "epoch": 2})).unwrap().status, 409);
    place(&sim, &mut acked, "new", "Fox", 1);
    assert_eq!(sim.leader(), Some(2));
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    assert!(!String::from_utf8(sim.orders_file(3)).unwrap().contains(",old\n"), "the deposed leader's record was cut");
    sim.assert_conserved("fenced");
}

#[test]
fn a_follower_that_was_down_is_caught_up_by_gap_fill_in_batches() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 3);
    sim.settle(); // both followers hold round a before the test writes their files
    sim.kill(1);
    // 4 500 more orders that replica 1 missed (written straight into 2's and 3's logs).
    let mut more = String::new();
    for n in 3..4_503 {
        more.push_str(&format!("{},1,order,{n},Tux,1,25.99,bulk{n}\n", n + 1));
    }
    for id in [2, 3] {
        let mut f = std::fs::OpenOptions::new().append(true).open(sim.dir(id).join("orders.csv")).unwrap();
        std::io::Write::write_all(&mut f, more.as_bytes()).unwrap();
    }
    // Back without its start-up resync: the next order's gap handling fills 4 500 entries.
    sim.restart(1);
    let before = sim.count(1, "replicate_order");
    let r = sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "next"})).unwrap();
    assert_eq!(r.status, 200);
    // The order needed only replica 2; replica 1's replicator goes on after the reply.
    sim.settle();
    assert_eq!(sim.last(1), Some(4_504));
    let rounds = sim.count(1, "replicate_order") - before;
    assert!((3..=5).contains(&rounds), "gap, then batches of at most 2 000: {rounds} calls");
    assert_identical(&sim);
    sim.assert_conserved("bulk");
}

#[test]
fn a_follower_with_a_stale_tail_is_corrected_by_the_leader() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 3);
    // With 3 down, replica 1 leads epoch 2 (with 2), appends "z" at index 5 and dies before
    // sending it: 1 holds an uncommitted record nobody else has.
    sim.kill(3);
    let r = sim.post(1, "/leaderselection", json!({})).unwrap();
    assert_eq!((r.status, &r.body["data"]["epoch"]), (200, &json!(2)), "{r:?}");
    sim.set_fault(|c| if c.from == 1 && c.path == "/replicate_order" { Fault::KillCallerBefore } else { Fault::None });
    assert!(sim.post(1, "/orders", json!({"name": "Fox", "quantity": 1, "key": "z"})).is_err());
    sim.clear_fault();
    assert!(String::from_utf8(sim.orders_file(1)).unwrap().ends_with(",z\n"));
    // 3 returns and leads epoch 3 with 2: its epoch record lands at index 5.
    sim.restart(3);
    sim.tick_all();
    assert_eq!(sim.elect(), Some(3));
    // Replica 1 returns without its start-up resync: the next order's replication finds the
    // mismatch at 5, replica 1 cuts its tail and takes the leader's records.
    sim.restart(1);
    let n = place(&sim, &mut acked, "y", "Tux", 1);
    assert_eq!(n, 3);
    assert_eq!(sim.last(1), sim.last(3));
    let file = String::from_utf8(sim.orders_file(1)).unwrap();
    assert!(!file.contains(",z\n") && file.contains("5,3,epoch,,,,,\n"), "{file}");
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("stale tail");
}

#[test]
fn a_hung_follower_is_suspected_instead_of_costing_a_timeout_per_order() {
    let sim = start();
    let mut acked = Acked::new();
    let before = sim.count(1, "replicate_order"); // the election's epoch record
    sim.set_fault(|c| if c.to == 1 && c.path == "/replicate_order" { Fault::DropRequest } else { Fault::None });
    round(&sim, &mut acked, "a", 10);
    assert_eq!(sim.count(1, "replicate_order") - before, 1, "one timeout, then skipped while replica 2 acks");
    sim.clear_fault();
    // Replica 1 is behind (it has only the epoch record); its tick catches up from the leader.
    assert_eq!(sim.last(1), Some(0));
    sim.tick_all();
    assert_eq!(sim.last(1), Some(10));
    assert_identical(&sim);
}

#[test]
fn a_restart_with_ten_thousand_missed_orders_takes_whole_pages() {
    let sim = start();
    sim.kill(1);
    // Fill replicas 2 and 3 directly: 10 000 orders of epoch 1.
    let mut file = String::from("index,epoch,kind,number,name,quantity,price,key\n0,1,epoch,,,,,\n");
    for n in 0..10_000 {
        file.push_str(&format!("{},1,order,{n},Tux,1,25.99,k{n}\n", n + 1));
    }
    for id in [2, 3] {
        std::fs::write(sim.dir(id).join("orders.csv"), &file).unwrap();
        sim.restart(id);
    }
    sim.tick_all();
    sim.restart(1);
    let t = std::time::Instant::now();
    let ping = sim.get(1, "/ping").unwrap();
    let took = t.elapsed();
    assert_eq!(ping.status, 200);
    assert_eq!(ping.body["data"]["last"], 10_000);
    // Whole pages, no round trip per record (pages are kept small for the replicas' memory).
    let pages = 10_000usize.div_ceil(toystore_order::protocol::PAGE);
    assert_eq!(sim.count(3, "get_missed_orders") + sim.count(2, "get_missed_orders"), pages, "{pages} pages");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert_eq!(sim.orders_file(1), file.as_bytes());
}

#[test]
fn a_torn_last_line_is_cut_on_restart_and_refilled_from_peers() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 4);
    sim.settle(); // replica 1 holds all four before it crashes
    sim.kill(1);
    let path = sim.dir(1).join("orders.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3); // the crash tore the last line
    std::fs::write(&path, &bytes).unwrap();
    sim.restart(1);
    assert_eq!(sim.last(1), Some(3), "the torn line does not count");
    assert_eq!(sim.get(1, "/ping").unwrap().status, 200);
    assert_eq!(sim.last(1), Some(4), "refilled from a peer");
    assert_identical(&sim);
}

#[test]
fn the_state_survives_a_restart_of_every_replica() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 5);
    for id in 1..=3 {
        sim.restart(id);
    }
    sim.tick_all();
    assert_eq!(sim.elect(), Some(3));
    let n = place(&sim, &mut acked, "b", "Tux", 1);
    assert_eq!(n, 5, "numbering continues after the files");
    let epoch = std::fs::read_to_string(sim.dir(1).join("epoch")).unwrap();
    assert_eq!(epoch.trim(), "2", "a new epoch after the restart");
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
}

/// A tiny deterministic random source (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_crashes_restarts_and_lost_messages_never_lose_or_reuse_an_acknowledged_order() {
    let only: Option<u64> = std::env::var("SEED").ok().and_then(|s| s.parse().ok());
    let verbose = only.is_some();
    // SEEDS=200 runs more seeds; SEED=n replays one, printing each order's outcome.
    let seeds: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for seed in (1..=seeds).filter(|s| only.is_none_or(|o| o == *s)) {
        // Little stock, so admission decides often; restocks race the orders.
        let sim = Sim::with_stock(40);
        sim.tick_all();
        assert_eq!(sim.elect(), Some(3));
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut acked = Acked::new();
        for step in 0..150 {
            match rng.below(15) {
                // Crash someone (at most two down at a time).
                0 => {
                    let id = 1 + rng.below(3) as u32;
                    if (1..=3).filter(|&i| sim.is_up(i)).count() > 1 {
                        sim.kill(id);
                    }
                }
                // Bring someone back (start-up resync on its first tick).
                1 => {
                    let down: Vec<u32> = (1..=3).filter(|&i| !sim.is_up(i)).collect();
                    if !down.is_empty() {
                        sim.restart(down[rng.below(down.len() as u64) as usize]);
                        sim.tick_all();
                    }
                }
                // Break one upcoming replication, fencing or catalog message.
                2 => {
                    let fault = [Fault::DropRequest, Fault::LoseReply, Fault::KillCallerBefore, Fault::KillCallerAfter]
                        [rng.below(4) as usize];
                    let to = rng.below(4) as u32; // 0: the catalog
                    let mut armed = true;
                    sim.set_fault(move |c| {
                        let hit = armed
                            && c.to == to
                            && matches!(c.path.as_str(), "/replicate_order" | "/fence" | "/apply" | "/stock");
                        if hit {
                            armed = false;
                            fault
                        } else {
                            Fault::None
                        }
                    });
                }
                3 => sim.tick_all(),
                // A replica dies inside its next file operation.
                4 => {
                    let id = 1 + rng.below(3) as u32;
                    let point = match rng.below(4) {
                        0 => Point::AppendTorn { keep: rng.below(40) as usize },
                        1 => Point::AppendBeforeSync,
                        2 => Point::ReplaceBeforeRename,
                        _ => Point::AppendTorn { keep: 0 },
                    };
                    let file = if point == Point::ReplaceBeforeRename { "epoch" } else { "orders.csv" };
                    sim.crash_in_file_op(id, file, point);
                }
                // A restock (one atomic catalog write), racing whatever the leader admits.
                5 => sim.restock(TOYS[rng.below(4) as usize], 1 + rng.below(6) as i64),
                // Another frontend elects a leader the current one does not hear of (its fence
                // and inform are lost): the old leader keeps taking orders from the first
                // frontend until a follower's `stale` tells it.
                6 => {
                    if let Some(old) = sim.leader() {
                        let others: Vec<u32> = (1..=3).filter(|&i| i != old && sim.is_up(i)).collect();
                        if let Some(&new) = others.first() {
                            sim.set_fault(move |c| {
                                if c.to == old && matches!(c.path.as_str(), "/fence" | "/inform_replica" | "/replicate_order") {
                                    Fault::DropRequest
                                } else {
                                    Fault::None
                                }
                            });
                            if let Ok(r) = sim.post(new, "/leaderselection", json!({})) {
                                if let Some(epoch) = r.body["data"]["epoch"].as_u64() {
                                    for i in others {
                                        let _ = sim.post(i, "/inform_replica", json!({"leader": new, "epoch": epoch}));
                                    }
                                }
                            }
                            sim.clear_fault();
                            // The second frontend orders at the new leader; the first still
                            // sends to the old one (whose epoch every follower must refuse).
                            for (at, tag) in [(new, "new"), (old, "old")] {
                                let key = format!("s{seed}-{step}-{tag}");
                                let Ok(r) = sim.post(at, "/orders", json!({"name": "Lego", "quantity": 1, "key": key})) else { continue };
                                if r.status == 200 {
                                    let n = r.body["data"]["order_number"].as_u64().unwrap();
                                    if let Some((k, _, _)) = acked.get(&n) {
                                        panic!("seed {seed}: number {n} acknowledged for {k} and {key}");
                                    }
                                    acked.insert(n, (key, "Lego".into(), 1));
                                }
                            }
                        }
                    }
                }
                _ => {
                    // Keep a majority up most of the time (faults also kill callers).
                    let down: Vec<u32> = (1..=3).filter(|&i| !sim.is_up(i)).collect();
                    if down.len() > 1 {
                        sim.restart(down[rng.below(down.len() as u64) as usize]);
                        sim.tick_all();
                    }
                    let key = format!("s{seed}-{step}");
                    let (toy, qty) = (TOYS[step % 4], 1 + (step % 3) as i64);
                    let placed = sim.place(&key, toy, qty);
                    if verbose {
                        let up: Vec<u32> = (1..=3).filter(|&i| sim.is_up(i)).collect();
                        eprintln!("step {step}: {key} -> {placed:?} (up {up:?})");
                    }
                    if let Ok(n) = placed {
                        if let Some((k, _, _)) = acked.get(&n) {
                            panic!("seed {seed}: number {n} acknowledged for {k} and {key}");
                        }
                        acked.insert(n, (key, toy.to_string(), qty));
                    }
                }
            }
            let lowest = sim.catalog.borrow().lowest;
            assert!(lowest >= 0, "seed {seed} step {step}: a quantity went to {lowest}");
        }
        sim.quiesce();
        assert!(acked.len() > 30, "seed {seed}: the run placed orders ({})", acked.len());
        assert_all_present(&sim, &acked);
        assert_identical(&sim);
        sim.assert_conserved(&format!("seed {seed}"));
    }
}

#[test]
fn a_deposed_leader_and_a_follower_never_answer_404_for_an_order_a_newer_leader_committed() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 3);
    // Cut the leader (3) off from its peers; 2 becomes leader and 3 hears nothing of it.
    sim.set_fault(|c| if c.from == 3 || (c.to == 3 && c.from != 0) { Fault::DropRequest } else { Fault::None });
    let r = sim.post(2, "/leaderselection", json!({})).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    sim.post(1, "/inform_replica", json!({"leader": 2, "epoch": r.body["data"]["epoch"]})).unwrap();
    let r = sim.post(2, "/orders", json!({"name": "Fox", "quantity": 1, "key": "new"})).unwrap();
    assert_eq!(r.body["data"]["order_number"], 3, "{r:?}");
    assert_eq!(sim.get(3, "/health").unwrap().body["data"]["role"], "leader", "3 still believes it leads");
    // What 3 committed before is immutable: 200 is right even now.
    assert_eq!(sim.read(3, 1), Some(("Lego".to_string(), 2)));
    // Past its commit index and cut off, it cannot confirm its leadership: no 404.
    let cut_off = sim.get(3, "/orders/3").unwrap();
    assert_eq!(cut_off.status, 503, "{cut_off:?}");
    // Reconnected, its confirmation round meets the newer promise: 409, and it steps down.
    sim.clear_fault();
    let deposed = sim.get(3, "/orders/3").unwrap();
    assert_eq!(deposed.status, 409, "{deposed:?}");
    assert_eq!(sim.get(3, "/health").unwrap().body["data"]["role"], "follower");
    assert_eq!(sim.get(3, "/orders/1").unwrap().status, 409, "a follower answers nothing itself");
    // The follower names the new leader, which answers.
    let f = sim.get(1, "/orders/3").unwrap();
    assert_eq!((f.status, &f.body["error"]["leader"]), (409, &json!(2)), "{f:?}");
    assert_eq!(sim.read(2, 3), Some(("Fox".to_string(), 1)));
    let asked = sim.count(1, "get_last_order_number") + sim.count(3, "get_last_order_number");
    assert_eq!(sim.get(2, "/orders/4").unwrap().status, 404, "a leader a majority confirms may say 404");
    assert!(sim.count(1, "get_last_order_number") + sim.count(3, "get_last_order_number") > asked, "after asking");
    acked.insert(3, ("new".into(), "Fox".into(), 1));
    assert_all_present(&sim, &acked);
}

#[test]
fn an_entry_the_leader_could_not_confirm_is_not_read_until_it_is_committed() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 2);
    // Both followers apply the entry but their answers are lost: the leader keeps it unconfirmed.
    sim.set_fault(|c| if c.path == "/replicate_order" { Fault::LoseReply } else { Fault::None });
    let r = sim.post(3, "/orders", json!({"name": "Fox", "quantity": 1, "key": "unsure"})).unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(sim.last(3), Some(3), "the record stays in the leader's log");
    let r = sim.get(3, "/orders/2").unwrap();
    assert_eq!(r.status, 409, "neither 200 (uncommitted) nor 404 (it may commit): {r:?}");
    assert_eq!(sim.read(3, 1), Some(("Lego".to_string(), 2)), "committed entries still read");
    sim.clear_fault();
    // The retry with the same key renews the leadership, which commits the entry.
    assert_eq!(place(&sim, &mut acked, "unsure", "Fox", 1), 2);
    assert_eq!(sim.read(3, 2), Some(("Fox".to_string(), 1)));
    assert_all_present(&sim, &acked);
}

#[test]
fn the_same_key_for_a_different_order_is_422_and_changes_nothing() {
    let sim = start();
    let mut acked = Acked::new();
    let n = place(&sim, &mut acked, "k", "Lego", 2);
    let (file, taken) = (sim.orders_file(1), sim.taken());
    for (toy, qty) in [("Lego", 1), ("Tux", 2)] {
        let r = sim.post(3, "/orders", json!({"name": toy, "quantity": qty, "key": "k"})).unwrap();
        assert_eq!(r.status, 422, "{r:?}");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(r#"idempotency key "k" was used for a different order"#), "{message}");
    }
    assert_eq!((sim.orders_file(3), sim.taken()), (file.clone(), taken), "nothing changed");
    // The same order under the key is still its number.
    assert_eq!(sim.post(3, "/orders", json!({"name": "Lego", "quantity": 2, "key": "k"})).unwrap().body["data"]["order_number"], n);
    assert_identical(&sim);
}

#[test]
fn an_election_started_while_an_order_is_in_flight_loses_nothing() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 3);
    // Replica 2 runs an election while leader 3 is replicating an order: whichever wins, the
    // order is either acknowledged (and survives) or not (and is never applied).
    for (i, first) in [(0, true), (1, false)] {
        let key = format!("flight-{i}");
        let order = sim.request(3, Method::POST, "/orders", Some(json!({"name": "Fox", "quantity": 2, "key": key})));
        let election = sim.request(2, Method::POST, "/leaderselection", Some(json!({})));
        let (placed, elected) = if first {
            sim.run(futures::future::join(order, election))
        } else {
            let (e, o) = sim.run(futures::future::join(election, order));
            (o, e)
        };
        if let Ok(r) = &placed {
            if r.status == 200 {
                acked.insert(r.body["data"]["order_number"].as_u64().unwrap(), (key.clone(), "Fox".into(), 2));
            }
        }
        assert!(elected.is_ok(), "{elected:?}");
        // The client retries with the same key, through whoever leads now.
        place(&sim, &mut acked, &key, "Fox", 2);
        round(&sim, &mut acked, &format!("after-{i}"), 2);
    }
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("election in flight");
}

/// A frontend of its own: it keeps the leader it believes in and, when that fails, elects
/// the first healthy replica in its own order (two such frontends fight over the leadership).
struct Frontend<'a> {
    sim: &'a Sim,
    order: [u32; 3],
    believed: std::cell::Cell<Option<u32>>,
}

impl Frontend<'_> {
    async fn place(&self, key: &str, toy: &str, qty: i64) -> Result<u64, String> {
        let body = json!({"name": toy, "quantity": qty, "key": key});
        let mut last = String::new();
        for _ in 0..8 {
            let leader = match self.believed.get() {
                Some(l) => l,
                None => match self.sim.elect_from(&self.order).await {
                    Some(l) => l,
                    None => return Err(format!("no leader ({last})")),
                },
            };
            self.believed.set(Some(leader));
            match self.sim.request(leader, Method::POST, "/orders", Some(body.clone())).await {
                Ok(r) if r.status == 200 => return Ok(r.body["data"]["order_number"].as_u64().unwrap()),
                Ok(r) if r.status == 400 || r.status == 404 || r.status == 422 => return Err(format!("{} {}", r.status, r.body)),
                Ok(r) => last = format!("{} {}", r.status, r.body),
                Err(e) => last = e,
            }
            self.believed.set(None);
        }
        Err(last)
    }
}

/// Two frontends that choose leaders independently, ordering concurrently (with a few
/// replicas killed and restarted underneath), over little stock with restocks in between.
fn two_frontends(sim: &Rc<Sim>, rounds: usize) -> Acked {
    let a = Frontend { sim, order: [3, 2, 1], believed: None.into() };
    let b = Frontend { sim, order: [1, 2, 3], believed: None.into() };
    let mut acked = Acked::new();
    for r in 0..rounds {
        let runs = [&a, &b].map(|f| {
            let tag = if f.order[0] == 3 { "A" } else { "B" };
            async move {
                let mut out = Vec::new();
                for k in 0..4 {
                    let (key, toy, qty) = (format!("{tag}{r}-{k}"), TOYS[(k + r) % 4], 1 + (k % 2) as i64);
                    if let Ok(n) = f.place(&key, toy, qty).await {
                        out.push((n, (key, toy.to_string(), qty)));
                    }
                }
                out
            }
        });
        let [ra, rb] = runs;
        let (ra, rb) = sim.run(futures::future::join(ra, rb));
        for (n, order) in ra.into_iter().chain(rb) {
            if let Some(prev) = acked.insert(n, order.clone()) {
                panic!("number {n} acknowledged for {prev:?} and {order:?}");
            }
        }
        match r % 4 {
            1 => sim.kill(3),
            2 => sim.restart(3),
            3 => sim.restock(TOYS[r % 4], 3),
            _ => sim.tick_all(),
        }
    }
    acked
}

#[test]
fn two_frontends_electing_their_own_leaders_and_ordering_concurrently_lose_nothing() {
    let sim = Sim::with_stock(30);
    sim.tick_all();
    let acked = two_frontends(&sim, 12);
    assert!(acked.len() > 10, "orders went through: {}", acked.len());
    sim.quiesce();
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("two frontends");
}

#[test]
fn a_replica_dying_inside_a_file_operation_loses_nothing() {
    // (who dies, in which file, where) — the leader mid-append of an order or of its epoch
    // record, a follower mid-merge, a fenced replica before its promise is renamed in place.
    let cases: Vec<(&str, u32, &str, Point)> = vec![
        ("leader, torn order line", 3, "orders.csv", Point::AppendTorn { keep: 7 }),
        ("leader, nothing of the line written", 3, "orders.csv", Point::AppendTorn { keep: 0 }),
        ("leader, written but not synced", 3, "orders.csv", Point::AppendBeforeSync),
        ("follower, torn merge", 2, "orders.csv", Point::AppendTorn { keep: 20 }),
        ("follower, merged but not synced", 1, "orders.csv", Point::AppendBeforeSync),
        ("follower, promise not renamed", 2, "epoch", Point::ReplaceBeforeRename),
    ];
    for (name, id, file, point) in cases {
        let sim = start();
        let mut acked = Acked::new();
        round(&sim, &mut acked, "a", 3);
        sim.crash_in_file_op(id, file, point);
        if file == "epoch" {
            // The next promise replica 2 makes is to a candidate (1), which then lacks 2 and
            // must get 3's promise instead.
            sim.kill(3);
            let r = sim.post(1, "/leaderselection", json!({})).unwrap();
            assert_ne!(r.status, 200, "{name}: with 2 dead mid-promise and 3 down there is no majority: {r:?}");
            assert!(!sim.is_up(2), "{name}: replica 2 died in the rename");
            assert_eq!(std::fs::read_to_string(sim.dir(2).join("epoch")).unwrap().trim(), "1", "{name}: old promise kept");
            sim.restart(2);
            sim.restart(3);
            sim.tick_all();
        } else {
            let r = sim.post(3, "/orders", json!({"name": "Fox", "quantity": 1, "key": "crash"}));
            // A follower may get the order only after it was answered (with the other one).
            sim.settle();
            assert!(!sim.is_up(id), "{name}: replica {id} died ({r:?})");
            if let Ok(r) = &r {
                if r.status == 200 {
                    acked.insert(r.body["data"]["order_number"].as_u64().unwrap(), ("crash".into(), "Fox".into(), 1));
                }
            }
            sim.restart(id);
            sim.tick_all();
            place(&sim, &mut acked, "crash", "Fox", 1);
        }
        round(&sim, &mut acked, "b", 3);
        sim.quiesce();
        assert_all_present(&sim, &acked);
        assert_identical(&sim);
        sim.assert_conserved(name);
    }
}

#[test]
fn catalog_timeouts_and_lost_replies_never_change_an_order_or_the_count() {
    let sim = start();
    let mut acked = Acked::new();
    // No base yet and /stock unanswered: 503, nothing written.
    sim.set_fault(|c| if c.path == "/stock" { Fault::DropRequest } else { Fault::None });
    let r = sim.post(3, "/orders", json!({"name": "Tux", "quantity": 1, "key": "nobase"})).unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(sim.orders(3).is_empty());
    sim.clear_fault();
    // The catalog applies but its answer is lost: the order is acknowledged all the same, and
    // the next push resends from the stale base, which the catalog skips.
    sim.set_fault(|c| if c.path == "/apply" { Fault::LoseReply } else { Fault::None });
    round(&sim, &mut acked, "lost", 3);
    assert_eq!(sim.catalog.borrow().applied_orders, 3);
    sim.clear_fault();
    round(&sim, &mut acked, "next", 1);
    // The catalog is down: orders go on from the base the leader has; /tick pushes them later.
    sim.catalog.borrow_mut().down = true;
    round(&sim, &mut acked, "down", 3);
    assert_eq!(sim.catalog.borrow().applied_orders, 4);
    sim.catalog.borrow_mut().down = false;
    sim.post(3, "/tick", json!({})).unwrap();
    assert_eq!(sim.catalog.borrow().applied_orders, 7, "the tick drained the pushes");
    // /apply requests that never arrive, then a catalog that forgot what it applied (a gap):
    // the leader re-reads /stock and resends from there.
    sim.set_fault(|c| if c.path == "/apply" { Fault::DropRequest } else { Fault::None });
    round(&sim, &mut acked, "dropped", 2);
    sim.clear_fault();
    sim.post(3, "/tick", json!({})).unwrap();
    assert_eq!(sim.catalog.borrow().gaps, 0);
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("catalog faults");
    assert!(sim.catalog.borrow().applies >= 4);
}

#[test]
fn the_last_units_go_once_and_restocks_are_seen_when_short() {
    let sim = Sim::with_stock(5);
    sim.tick_all();
    assert_eq!(sim.elect(), Some(3));
    let mut acked = Acked::new();
    // Ten concurrent orders of 1 for 5 units: exactly five are admitted.
    let replies = sim.run(join_all((0..10).map(|i| {
        let body = json!({"name": "Tux", "quantity": 1, "key": format!("last-{i}")});
        sim.request(3, Method::POST, "/orders", Some(body))
    })));
    let statuses: Vec<u16> = replies.iter().map(|r| r.as_ref().unwrap().status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 5, "{statuses:?}");
    let short = replies.iter().flatten().find(|r| r.status == 400).unwrap();
    assert_eq!(short.body["error"]["message"], "not enough stock: only 0 left");
    // A restock the leader has not seen: the short order re-reads the base and goes through.
    sim.restock("Tux", 3);
    assert_eq!(place(&sim, &mut acked, "after-restock", "Tux", 2), 5);
    assert_eq!(sim.post(3, "/orders", json!({"name": "Tux", "quantity": 2, "key": "too-many"})).unwrap().body["error"]["message"], "not enough stock: only 1 left");
    // Restocks racing orders: whatever the interleaving, the counts add up.
    let orders = (0..6).map(|i| sim.request(3, Method::POST, "/orders", Some(json!({"name": "Tux", "quantity": 1, "key": format!("race-{i}")}))));
    let restock = async {
        sim.restock("Tux", 2);
        Ok(Reply::raw(200, json!({})))
    };
    let all: Vec<_> = orders.map(futures::future::Either::Left).chain([futures::future::Either::Right(restock)]).collect();
    sim.run(join_all(all));
    sim.assert_conserved("restocks racing orders");
    let c = sim.catalog.borrow();
    assert!(c.toys["Tux"].quantity >= 0);
    assert_eq!(c.toys["Tux"].restocked, 5);
}

#[test]
fn an_order_that_never_committed_is_never_applied_even_when_its_leader_ticks() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "a", 2);
    // Neither follower gets the record: 503, the record stays in 3's log, uncommitted.
    sim.set_fault(|c| if c.from == 3 && c.path == "/replicate_order" { Fault::DropRequest } else { Fault::None });
    let r = sim.post(3, "/orders", json!({"name": "Barbie", "quantity": 7, "key": "never"})).unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    // Its leader ticks (and pushes what the catalog lacks) while still cut off.
    sim.post(3, "/tick", json!({})).unwrap();
    assert_eq!(sim.catalog.borrow().applied_orders, 2, "only committed orders are pushed");
    sim.clear_fault();
    // 3 dies; 2 and 1 elect a leader that never saw the record, which is cut when 3 returns.
    sim.kill(3);
    assert_eq!(sim.elect(), Some(2));
    round(&sim, &mut acked, "b", 2);
    sim.restart(3);
    sim.quiesce();
    assert!(!String::from_utf8(sim.orders_file(3)).unwrap().contains(",never\n"));
    assert_all_present(&sim, &acked);
    assert_identical(&sim);
    sim.assert_conserved("never committed");
}

// ---- group commit and per-follower replication (issue 10) ----------------------------------

/// Ten orders sent together: one batch — one append on the leader and a few
/// `/replicate_order` calls per follower, not one per order — every order acknowledged once,
/// numbered contiguously, and the stock taken equals what was logged.
#[test]
fn orders_that_arrive_together_are_committed_as_one_batch() {
    let sim = start();
    let before = sim.count(1, "replicate_order") + sim.count(2, "replicate_order");
    let replies = sim.run(join_all((0..10).map(|i| {
        let body = json!({"name": TOYS[i % 4], "quantity": 1, "key": format!("batch-{i}")});
        sim.request(3, Method::POST, "/orders", Some(body))
    })));
    let mut numbers: Vec<u64> = replies.iter().map(|r| r.as_ref().unwrap().body["data"]["order_number"].as_u64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>());
    let pushes = sim.count(1, "replicate_order") + sim.count(2, "replicate_order") - before;
    assert!(pushes <= 4, "ten orders in one batch took {pushes} pushes to the followers");
    assert_identical(&sim);
    sim.assert_conserved("one batch");
}

/// A follower that never answers (a paused process) holds no order: each is acknowledged
/// with the leader and the other follower, while the hung follower's replicator waits. The
/// orders run until nothing can move; one still pending would be waiting for replica 1.
#[test]
fn a_follower_that_never_answers_holds_no_order() {
    let sim = start();
    let mut acked = Acked::new();
    round(&sim, &mut acked, "warm", 2);
    sim.set_fault(|c| if c.to == 1 && c.path == "/replicate_order" { Fault::Hang } else { Fault::None });
    let mut pool = futures::executor::LocalPool::new();
    let done: Rc<std::cell::RefCell<Vec<Reply>>> = Rc::default();
    for i in 0..6 {
        let (sim, done) = (Rc::clone(&sim), Rc::clone(&done));
        let body = json!({"name": TOYS[i % 4], "quantity": 1, "key": format!("hung-{i}")});
        futures::task::LocalSpawnExt::spawn_local(&pool.spawner(), async move {
            let reply = sim.run_here(sim.request(3, Method::POST, "/orders", Some(body))).await;
            done.borrow_mut().push(reply.unwrap());
        })
        .unwrap();
    }
    pool.run_until_stalled();
    let statuses: Vec<u16> = done.borrow().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200; 6], "every order answered while replica 1 hangs");
    for (i, r) in done.borrow().iter().enumerate() {
        acked.insert(r.body["data"]["order_number"].as_u64().unwrap(), (format!("hung-{i}"), String::new(), 0));
    }
    assert_eq!(sim.orders(2).len(), 8, "replica 2 holds every acknowledged order");
    assert!(sim.orders(1).len() < 8, "replica 1 really never got them");
    // The hung follower comes back (restarted): it catches up, and nothing was lost.
    drop(pool);
    sim.clear_fault();
    sim.kill(1);
    sim.restart(1);
    assert_identical(&sim);
    sim.assert_conserved("a hung follower");
}

/// Crashes in the middle of a batch write: the leader's append of a batch is torn, or written
/// and not yet fsync'd while only one follower answers (no order may be acknowledged: the
/// leader's own copy does not count before its fsync, and one follower is not a majority), and
/// a follower's merge of a batch is torn (the orders commit with the other follower; the
/// crashed one catches up). Then every client retries with its key: each order gets one
/// number, the acknowledged ones their own.
#[test]
fn a_crash_in_the_middle_of_a_batch_write_loses_no_acknowledged_order() {
    for (name, id, point) in [
        ("leader, torn batch", 3, Point::AppendTorn { keep: 90 }),
        ("leader, batch written but not synced", 3, Point::AppendBeforeSync),
        ("follower, torn batch", 2, Point::AppendTorn { keep: 90 }),
    ] {
        let sim = start();
        let mut acked = Acked::new();
        round(&sim, &mut acked, "before", 3);
        sim.crash_in_file_op(id, "orders.csv", point);
        if id == 3 {
            // Only follower 2 answers: an order the leader acknowledged on its own unsynced
            // copy and one follower would be on one disk only.
            sim.set_fault(|c| if c.to == 1 && c.path == "/replicate_order" { Fault::Hang } else { Fault::None });
        }
        let keys: Vec<String> = (0..6).map(|i| format!("torn-{i}")).collect();
        let replies = sim.run(join_all(keys.iter().enumerate().map(|(i, key)| {
            let body = json!({"name": TOYS[i % 4], "quantity": 1, "key": key});
            sim.request(3, Method::POST, "/orders", Some(body))
        })));
        assert!(!sim.is_up(id), "{name}: replica {id} died in the batch write");
        for (key, r) in keys.iter().zip(&replies) {
            match r {
                Ok(r) if r.status == 200 => {
                    if id == 3 {
                        // The leader's own copy was never synced (a power cut would lose it):
                        // an acknowledged order must be on the other two disks, a majority.
                        let holders = [1, 2].into_iter().filter(|f| sim.orders(*f).iter().any(|(_, _, k)| k == key)).count();
                        panic!("{name}: {key} acknowledged on the leader's unsynced copy and {holders} follower(s)");
                    }
                    let n = r.body["data"]["order_number"].as_u64().unwrap();
                    assert!(acked.insert(n, (key.clone(), String::new(), 0)).is_none(), "{name}: number {n} twice");
                }
                _ => assert_eq!(id, 3, "{name}: a follower's crash failed an order: {r:?}"),
            }
        }
        sim.clear_fault();
        sim.restart(id);
        sim.restart(1); // ends its hung calls, if any
        sim.quiesce();
        // Every client retries with its key: each order gets one number, the acknowledged
        // ones their old one.
        for (i, key) in keys.iter().enumerate() {
            let n = sim.place(key, TOYS[i % 4], 1).unwrap_or_else(|e| panic!("{name}: retry {key}: {e}"));
            if let Some((k, _, _)) = acked.get(&n) {
                assert_eq!(k, key, "{name}: number {n} given to {k} and {key}");
            }
        }
        assert_identical(&sim);
        sim.assert_conserved(name);
    }
}

/// The seed document's requests to a replica: `GET /synchronize` makes a follower that missed
/// orders catch up at once (no tick) and names the latest order number; `GET /ping?message=Ping`
/// adds the seed's answer; `GET /orders?<n>` is `GET /orders/<n>`.
#[test]
fn the_seeds_synchronize_ping_and_order_query() {
    let sim = start();
    let mut acked = Acked::new();
    sim.set_fault(|c| if c.to == 1 && c.path == "/replicate_order" { Fault::DropRequest } else { Fault::None });
    round(&sim, &mut acked, "s", 6);
    sim.clear_fault();
    assert_eq!(sim.last(1), Some(0), "replica 1 missed the orders (only the epoch record)");
    assert_eq!(sim.local(1, 0), None);

    let r = sim.get(1, "/synchronize").unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!((r.body["data"]["last_order"].as_i64(), r.body["data"]["last"].as_i64()), (Some(5), Some(6)), "{:?}", r.body);
    assert_eq!(sim.last(1), Some(6), "caught up by /synchronize alone");
    assert_eq!(sim.orders_file(1), sim.orders_file(3));
    // At the leader, whose log the others copy, it only answers.
    let r = sim.get(3, "/synchronize").unwrap();
    assert_eq!((r.status, r.body["data"]["last_order"].as_i64(), r.body["data"]["role"].as_str()), (200, Some(5), Some("leader")));

    let ping = sim.get(2, "/ping?message=Ping").unwrap();
    assert_eq!((ping.status, ping.body["data"]["message"].as_str()), (200, Some("Order service is responsive")), "{:?}", ping.body);
    assert_eq!(ping.body["data"]["leader"], 3, "with the store's own fields");
    assert!(sim.get(2, "/ping").unwrap().body["data"].get("message").is_none(), "the store's own ping is unchanged");
    let bad = sim.get(2, "/ping?message=Pong").unwrap();
    assert_eq!(bad.status, 400, "{:?}", bad.body);

    let canonical = sim.get(3, "/orders/2").unwrap();
    assert_eq!(canonical.status, 200);
    for path in ["/orders?2", "/orders?order_number=2", "/orders?number=2"] {
        assert_eq!(sim.get(3, path).unwrap().body, canonical.body, "{path}");
    }
    assert_eq!(sim.get(3, "/orders").unwrap().status, 400);
    assert_eq!(sim.get(3, "/orders?x").unwrap().status, 400);
    assert_identical(&sim);
}
