//! `toystore check` against a real store: running (the catalog may trail the commit), stopped
//! at a quiet point (`--strict`: every committed order applied, books balanced), and with its
//! catalog damaged behind its back (a leak, caught and named).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use toystore_e2e::{host_binary, test_settings, Cluster, Settings};

/// Run `toystore check --json` with `args`; the exit code and the parsed report.
fn check(args: &[&str]) -> (i32, Value) {
    let out = Command::new(host_binary()).arg("check").arg("--json").args(args).output().expect("run toystore check");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().expect("exit code"), report)
}

#[test]
fn check_passes_on_a_live_and_a_stopped_store_and_names_a_leak() {
    let mut c = Cluster::start_with(Settings { restock_interval_secs: 1, tick_interval_ms: 200, ..test_settings() });
    let manifest = c.manifest_path();
    let manifest = manifest.to_str().unwrap();
    let orders = [("Tux", 3), ("Fox", 1), ("Python", 95), ("Tux", 2), ("Lego", 4)];
    for (toy, q) in orders {
        let r = c.order(toy, q);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Running: whatever the catalog has applied so far balances.
    let (code, live) = check(&["--manifest", manifest]);
    assert_eq!(code, 0, "{live:#}");
    assert_eq!(live["committed"]["orders"], 5);
    // Python went to 5, below the threshold: the restock (every second) brings it back,
    // recorded in `restocked`.
    c.wait_for("every order applied and Python restocked", Duration::from_secs(10), || {
        let (_, r) = check(&["--manifest", manifest]);
        let python = r["catalog"]["toys"].as_array().unwrap().iter().find(|t| t["name"] == "Python").cloned().unwrap();
        r["catalog"]["unapplied"] == 0 && python["restocked"] == 95
    });
    c.stop();

    let (code, quiet) = check(&["--manifest", manifest, "--strict"]);
    assert_eq!(code, 0, "a quiet point: {quiet:#}");
    assert_eq!(quiet["catalog"]["applied_orders"], 5);
    assert!(quiet["replicas"].as_array().unwrap().iter().all(|r| r["trails_by"] == 0 && r["orders"] == 5), "{quiet:#}");

    // Take one Fox behind everyone's back: stock gone with no order behind it.
    let path = c.data_dir("catalog").join("catalog.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let fox = text.lines().find(|l| l.starts_with("Fox,")).unwrap().to_string();
    let fields: Vec<&str> = fox.split(',').collect();
    let fewer = (fields[2].parse::<i64>().unwrap() - 1).to_string();
    let leaked = [&fields[..2], &[fewer.as_str()], &fields[3..]].concat().join(",");
    std::fs::write(&path, text.replace(&fox, &leaked)).unwrap();
    let catalog = c.data_dir("catalog");
    let replicas: Vec<String> = (1..=3).map(|i| c.data_dir(&format!("order-{i}")).display().to_string()).collect();
    let mut args = vec!["--catalog", catalog.to_str().unwrap()];
    for r in &replicas {
        args.extend(["--replica", r.as_str()]);
    }
    let (code, bad) = check(&args);
    assert_eq!(code, 1, "{bad:#}");
    let v = &bad["violations"][0];
    assert_eq!(v["kind"], "not_conserved", "{bad:#}");
    assert_eq!(v["line"], 3, "Fox is the second row");
    assert!(v["what"].as_str().unwrap().contains("1 unit(s) taken with no committed order"), "{v}");

    // Usage errors are 2.
    let out = Command::new(host_binary()).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
