//! One store run by two `toystore serve` processes, as on two machines (here both on
//! loopback; `netns.rs` does it across network namespaces): `--host a` runs the frontend, the
//! catalog and replica 1, `--host b` replicas 2 and 3. Each process supervises only its own
//! services; `toystore replica` finds the process that runs a replica from the manifest's
//! `[[host]]` tables. A wrong `--only` is a usage error (exit status 2).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use toystore_e2e::{free_ports, host_binary, manifest_for, test_settings, Ports};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The usual test manifest plus two `[[host]]` tables with admin ports of their own.
fn split_manifest(dir: &Path, ports: &Ports, admin_a: u16, admin_b: u16) -> String {
    manifest_for(dir, ports, &test_settings())
        + &format!(
            r#"
[[host]]
name = "a"
admin = "127.0.0.1:{admin_a}"
services = ["frontend", "catalog", "order-1"]

[[host]]
name = "b"
admin = "127.0.0.1:{admin_b}"
services = ["order-2", "order-3"]
"#
        )
}

fn serve(manifest: &Path, args: &[&str], log: &Path) -> Process {
    let file = fs::File::create(log).expect("log");
    let child = Command::new(host_binary())
        .args(["serve", "--manifest"])
        .arg(manifest)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log fd"))
        .stderr(file)
        .spawn()
        .expect("start toystore serve");
    Process(child)
}

fn get(agent: &ureq::Agent, url: &str) -> Option<(u16, Value)> {
    match agent.get(url).call() {
        Ok(r) => Some((r.status(), json(r))),
        Err(ureq::Error::Status(s, r)) => Some((s, json(r))),
        Err(_) => None,
    }
}

fn order(agent: &ureq::Agent, frontend: &str, toy: &str) -> (u16, Value) {
    match agent.post(&format!("{frontend}/orders")).send_string(&format!(r#"{{"name":"{toy}","quantity":1}}"#)) {
        Ok(r) => (r.status(), json(r)),
        Err(ureq::Error::Status(s, r)) => (s, json(r)),
        Err(e) => panic!("POST /orders: {e}"),
    }
}

fn logs(dir: &Path) -> String {
    ["a", "b"]
        .iter()
        .map(|h| format!("--- host {h} ---\n{}", fs::read_to_string(dir.join(format!("host-{h}.log"))).unwrap_or_default()))
        .collect()
}

fn wait_for(dir: &Path, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", logs(dir));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn replica_cli(manifest: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(host_binary()).arg("replica").args(args).arg("--manifest").arg(manifest).output().expect("toystore replica");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn two_processes_run_one_store_and_each_supervises_its_own_replicas() {
    let dir = tempfile::Builder::new().prefix("toystore-split-").tempdir().expect("temp dir");
    let ports = Ports::pick().expect("ports");
    let admins = free_ports(2).expect("ports");
    let manifest: PathBuf = dir.path().join("toystore.toml");
    fs::write(&manifest, split_manifest(dir.path(), &ports, admins[0], admins[1])).expect("manifest");
    // a first, alone for a moment: its start must not wait for replicas another process runs;
    // its frontend keeps pinging until a majority is up.
    let _a = serve(&manifest, &["--host", "a"], &dir.path().join("host-a.log"));
    std::thread::sleep(Duration::from_secs(2));
    let _b = serve(&manifest, &["--host", "b"], &dir.path().join("host-b.log"));
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(15)).build();
    let frontend = format!("http://127.0.0.1:{}", ports.frontend);
    // `/leader` is an internal route: asked on the frontend's internal listener.
    let internal = format!("http://127.0.0.1:{}", ports.frontend_internal);
    wait_for(dir.path(), "a leader", || {
        get(&agent, &format!("{internal}/leader")).is_some_and(|(_, b)| b["data"]["leader"].as_u64().is_some())
    });
    let (status, body) = order(&agent, &frontend, "Tux");
    assert_eq!(status, 200, "{body}\n{}", logs(dir.path()));

    // Each admin reports its own replicas only.
    let ids = |admin: u16| -> Vec<u64> {
        let (_, body) = get(&agent, &format!("http://127.0.0.1:{admin}/replicas")).expect("admin answers");
        body["data"].as_array().expect("a list").iter().filter_map(|r| r["id"].as_u64()).collect()
    };
    assert_eq!(ids(admins[0]), [1]);
    assert_eq!(ids(admins[1]), [2, 3]);

    // `replica list` asks both; one table with the host of each replica.
    let (ok, table) = replica_cli(&manifest, &["list"]);
    assert!(ok, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("HOST"), "{table}");
    for (host, id) in [("a", 1), ("b", 2), ("b", 3)] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("{host}     {id} "))), "{host}/{id}: {table}");
    }
    assert_eq!(table.matches(" yes ").count(), 1, "exactly one leader: {table}");

    // `replica kill 3` goes to host b; orders go on with replicas 1 and 2.
    let (ok, out) = replica_cli(&manifest, &["kill", "3"]);
    assert!(ok && out.contains("replica 3 killed on host b"), "{out}");
    for toy in ["Fox", "Lego", "Whale"] {
        let (status, body) = order(&agent, &frontend, toy);
        assert_eq!(status, 200, "{body}\n{}", logs(dir.path()));
    }
    let (ok, out) = replica_cli(&manifest, &["restart", "3"]);
    assert!(ok && out.contains("on host b"), "{out}");
    let file = |id: usize| fs::read(dir.path().join(format!("data/order-{id}/orders.csv"))).unwrap_or_default();
    wait_for(dir.path(), "identical replica files", || !file(1).is_empty() && file(1) == file(2) && file(2) == file(3));
    let orders = String::from_utf8_lossy(&file(1)).lines().filter(|l| l.split(',').nth(2) == Some("order")).count();
    assert_eq!(orders, 4, "four order records (besides the header and each leader's epoch record)");
}

#[test]
fn only_with_an_unknown_service_exits_2_naming_the_known_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("toystore.toml");
    fs::write(&manifest, manifest_for(dir.path(), &Ports::pick().expect("ports"), &test_settings())).expect("manifest");
    let out = Command::new(host_binary())
        .args(["serve", "--only", "catalog,order-9", "--manifest"])
        .arg(&manifest)
        .output()
        .expect("toystore serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("order-9") && stderr.contains("frontend, catalog, order-1, order-2, order-3"), "{stderr}");
    let out = Command::new(host_binary()).args(["serve", "--host", "x", "--manifest"]).arg(&manifest).output().expect("serve");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A response body as JSON (`Null` when it is not).
fn json(response: ureq::Response) -> Value {
    response.into_string().ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(Value::Null)
}
