//! Issue 10: a fault you can drive. `POST /replicas/<id>/pause` freezes a replica like SIGSTOP
//! (its port stays bound, it answers nothing), `.../resume` lets it continue where it stopped.
//! Orders go on with a paused follower or a paused leader, and the paused replica catches up
//! once resumed. A leader paused for less than `leader_miss_limit` health checks stays leader
//! (a busy leader is not a dead one); paused longer, the health checks replace it. Also the
//! 409s and 404 of the admin routes, the metric, and the CLI.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use toystore_e2e::{host_binary, test_settings, Cluster, LocalCalls};

/// How calls between the components travel in these tests. `tests/local_calls.rs` includes this
/// file as a module and runs every test again with its own crate-level `LOCAL_CALLS` (`direct`).
#[allow(dead_code)]
const LOCAL_CALLS: LocalCalls = LocalCalls::Http;

fn admin_ok(c: &Cluster, action: &str, id: usize) -> serde_json::Value {
    let r = c.admin("POST", &format!("/replicas/{id}/{action}"));
    assert_eq!(r.status, 200, "{action} replica {id}: {}", r.body);
    r.data().clone()
}

fn state_of(c: &Cluster, id: usize) -> String {
    let r = c.admin("GET", "/replicas");
    let replica = r.data().as_array().expect("replicas").iter().find(|r| r["id"] == id as u64).cloned().expect("replica");
    replica["state"].as_str().unwrap_or("?").to_string()
}

fn current_leader(c: &Cluster) -> usize {
    c.wait_for("a leader", Duration::from_secs(20), || c.leader().is_some());
    c.leader().unwrap() as usize
}

fn order_ok(c: &Cluster, toy: &str) -> u64 {
    let r = c.order(toy, 1);
    assert_eq!(r.status, 200, "order {toy}: {}\n{}", r.body, c.log_tail());
    r.data()["order_number"].as_u64().expect("order_number")
}

/// Wait until the three replicas' `orders.csv` are byte-identical and not empty.
fn wait_identical(c: &Cluster) {
    c.wait_for("the three replicas' orders.csv to be identical", Duration::from_secs(30), || {
        let files: Vec<Vec<u8>> = (1..=3).map(|id| c.orders_file(id)).collect();
        !files[0].is_empty() && files[0] == files[1] && files[1] == files[2]
    });
}

/// Open a connection to a replica and send `GET /ping` on it. The kernel accepts the
/// connection even while the replica is paused (its listener socket stays bound).
fn send_ping(c: &Cluster, id: usize) -> TcpStream {
    let addr = format!("127.0.0.1:{}", c.ports.replicas[id - 1]);
    let mut stream = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to paused replica {id}: {e}"));
    stream.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send /ping");
    stream
}

/// What arrives on `stream` within `timeout` (`None` if nothing does).
fn read_some(stream: &mut TcpStream, timeout: Duration) -> Option<String> {
    stream.set_read_timeout(Some(timeout)).expect("read timeout");
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => Some(String::new()),
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => None,
        Err(e) => panic!("reading from the replica: {e}"),
    }
}

#[test]
fn a_paused_follower_answers_nothing_orders_go_on_and_it_catches_up_when_resumed() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    order_ok(&c, "Tux");
    let leader = current_leader(&c);
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    let data = admin_ok(&c, "pause", follower);
    assert_eq!(data["state"], "paused", "{data}");
    assert_eq!(state_of(&c, follower), "paused");
    let services = c.admin("GET", "/services");
    let service = services.data().as_array().unwrap().iter().find(|s| s["name"] == format!("order-{follower}")).cloned();
    assert_eq!(service.expect("the replica's service")["state"], "paused");

    // Connected, but no answer: like a stopped process.
    let mut pending = send_ping(&c, follower);
    assert_eq!(read_some(&mut pending, Duration::from_millis(1500)), None, "a paused replica answered /ping");

    // The leader and the other follower are a majority: orders still commit.
    let before = c.orders_file(leader).len();
    for toy in ["Fox", "Whale", "Lego"] {
        order_ok(&c, toy);
    }
    assert!(c.orders_file(leader).len() > before);
    assert_eq!(read_some(&mut pending, Duration::from_millis(200)), None, "still no answer while paused");

    // Pausing twice is a conflict, with the envelope; an unknown replica is 404.
    let again = c.admin("POST", &format!("/replicas/{follower}/pause"));
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.error_message().contains("already paused"), "{}", again.body);
    assert_eq!(c.admin("POST", "/replicas/9/pause").status, 404);

    // Resume: the request that waited on the open connection is answered now, and the replica
    // catches up with what it missed.
    let data = admin_ok(&c, "resume", follower);
    assert_eq!(data["state"], "running", "{data}");
    let answer = read_some(&mut pending, Duration::from_secs(10)).expect("the waiting /ping is answered after resume");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    wait_identical(&c);
    let again = c.admin("POST", &format!("/replicas/{follower}/resume"));
    assert_eq!(again.status, 409, "resuming a running replica: {}", again.body);
    assert!(toystore_api::error_of(&again.body).is_some(), "{}", again.body);

    // A killed replica cannot be paused (nor resumed); a restart brings it back running.
    c.kill_replica(follower);
    assert_eq!(c.admin("POST", &format!("/replicas/{follower}/pause")).status, 409);
    assert_eq!(c.admin("POST", &format!("/replicas/{follower}/resume")).status, 409);
    c.restart_replica(follower);
    c.wait_for("the restarted replica to run", Duration::from_secs(20), || state_of(&c, follower) == "running");
}

#[test]
fn the_paused_metric_and_the_cli_round_trip() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    let cli = |args: &[&str]| {
        let out = Command::new(host_binary())
            .args(["replica", "--admin", &format!("127.0.0.1:{}", c.ports.admin)])
            .args(args)
            .output()
            .expect("run toystore replica");
        assert!(out.status.success(), "toystore replica {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let gauge = |c: &Cluster| {
        let text = ureq::get(&format!("{}/metrics", c.admin_url())).call().expect("metrics").into_string().unwrap();
        text.lines().find(|l| l.starts_with("toystore_paused{service=\"order-2\"}")).map(str::to_string)
    };
    assert_eq!(gauge(&c).as_deref(), Some("toystore_paused{service=\"order-2\"} 0"));

    let out = cli(&["pause", "2"]);
    assert!(out.contains("paused"), "{out}");
    let list = cli(&["list"]);
    let row = list.lines().find(|l| l.starts_with("2 ")).unwrap_or_else(|| panic!("no row for replica 2:\n{list}"));
    assert!(row.contains("paused") && row.contains("not answering"), "{list}");
    assert_eq!(gauge(&c).as_deref(), Some("toystore_paused{service=\"order-2\"} 1"));

    let out = cli(&["resume", "2"]);
    assert!(out.contains("resumed") && out.contains("running"), "{out}");
    assert_eq!(gauge(&c).as_deref(), Some("toystore_paused{service=\"order-2\"} 0"));
    c.wait_for("replica 2 to answer /ping again", Duration::from_secs(10), || {
        c.request("GET", &format!("{}/ping", c.replica_url(2)), None).is_ok_and(|r| r.status == 200)
    });

    // Resuming a running replica fails with the admin endpoint's message and exit status 1.
    let out = Command::new(host_binary())
        .args(["replica", "--admin", &format!("127.0.0.1:{}", c.ports.admin), "resume", "2"])
        .output()
        .expect("run toystore replica");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pausing_the_leader_fails_over_and_the_old_leader_rejoins_as_follower_when_resumed() {
    let c = Cluster::start_calls(crate::LOCAL_CALLS);
    order_ok(&c, "Tux");
    let old = current_leader(&c);
    admin_ok(&c, "pause", old);

    // The frontend's call to the paused leader times out; it fails over to another replica.
    for toy in ["Fox", "Whale", "Lego"] {
        order_ok(&c, toy);
    }
    let new = current_leader(&c);
    assert_ne!(new, old, "another replica leads while {old} is paused");
    assert_eq!(read_some(&mut send_ping(&c, old), Duration::from_millis(1000)), None, "the paused leader answered");

    admin_ok(&c, "resume", old);
    // Its own view catches up: it no longer claims to lead, and its file matches the others.
    c.wait_for("the old leader to step down", Duration::from_secs(30), || {
        c.request("GET", &format!("{}/ping", c.replica_url(old)), None)
            .is_ok_and(|r| r.status == 200 && r.data()["role"] != "leader")
    });
    order_ok(&c, "Barbie");
    assert_eq!(c.leader(), Some(new as u64), "the new leader keeps leading");
    wait_identical(&c);
}

/// The frontend's `GET /leader`: (leader, epoch).
fn leader_and_epoch(c: &Cluster) -> (Option<u64>, Option<u64>) {
    let d = c.internal_get("/leader").data().clone();
    (d["leader"].as_u64(), d["epoch"].as_u64())
}

#[test]
fn a_leader_paused_for_less_than_the_miss_limit_stays_leader_and_longer_is_replaced() {
    // Checks every 200 ms, each ping given 1 s: a paused leader misses one check per ~1.2 s.
    let settings = test_settings();
    let settings = toystore_e2e::Settings {
        tick_interval_ms: 200,
        health_check_interval_ms: 200,
        call_timeout_ms: 1000,
        leader_miss_limit: 4,
        ..settings
    };
    let c = Cluster::start_with(settings);
    order_ok(&c, "Tux");
    let leader = current_leader(&c);
    let (_, epoch) = leader_and_epoch(&c);

    // Paused 2 s: at least one ping times out (a miss), at most two, fewer than four.
    admin_ok(&c, "pause", leader);
    std::thread::sleep(Duration::from_millis(2000));
    admin_ok(&c, "resume", leader);
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(c.dir.path().join("host.log")).unwrap_or_default();
    assert!(log.contains(&format!("order leader {leader} missed a health check")), "no check was missed:\n{}", c.log_tail());
    assert_eq!(leader_and_epoch(&c), (Some(leader as u64), epoch), "the slow leader was kept, no new epoch");
    let n = order_ok(&c, "Fox");
    assert!(n >= 1);
    assert_eq!(leader_and_epoch(&c), (Some(leader as u64), epoch));

    // Paused for good: after four misses in a row the health check (no order is sent) selects
    // another leader.
    admin_ok(&c, "pause", leader);
    c.wait_for("another leader while the old one is paused", Duration::from_secs(20), || {
        c.leader().is_some_and(|l| l != leader as u64)
    });
    admin_ok(&c, "resume", leader);
    order_ok(&c, "Whale");
    wait_identical(&c);
}
