//! The load client against the real host — it verifies what it ordered, and its
//! verification catches an order that was tampered with on disk.

use std::process::Command;

use serde_json::Value;
use toystore_e2e::{host_binary, Cluster};

fn client(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(host_binary())
        .arg("client")
        .args(["--url", &c.frontend_url(), "--no-progress"])
        .args(args)
        .output()
        .expect("run toystore client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn client_verifies_its_orders_and_catches_a_tampered_one() {
    let mut c = Cluster::start();
    let orders = c.dir.path().join("orders.json");
    let orders_arg = orders.display().to_string();
    let (code, stdout, stderr) = client(
        &c,
        &["--clients", "3", "--requests", "20", "--prob", "1", "--seed", "7", "--json", "--orders-out", &orders_arg],
    );
    assert_eq!(code, 0, "a clean run verifies: {stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json output ({e}): {stdout}"));
    let text = report.to_string();
    assert!(text.contains("lookup") && text.contains("order"), "per-type stats: {text}");
    let placed: Value = serde_json::from_str(&std::fs::read_to_string(&orders).unwrap()).unwrap();
    let placed_count = placed.as_array().map(Vec::len).or_else(|| placed["orders"].as_array().map(Vec::len)).unwrap_or(0);
    assert!(placed_count > 0, "with p = 1 and fresh stock, orders were placed: {placed}");

    // Change order 0 on every replica's disk (same change everywhere, so no resync undoes it).
    c.stop();
    for id in 1..=3 {
        let path = c.data_dir(&format!("order-{id}")).join("orders.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // `index,epoch,kind,number,name,...`: the order record numbered 0.
        let row = lines.iter().position(|l| l.split(',').nth(2) == Some("order") && l.split(',').nth(3) == Some("0")).expect("order 0 on disk");
        let mut cols: Vec<String> = lines[row].split(',').map(str::to_string).collect();
        cols[4] = if cols[4] == "Whale" { "Dolphin".into() } else { "Whale".into() };
        lines[row] = cols.join(",");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    c.restart();

    let (code, stdout, stderr) = client(&c, &["--verify-only", &orders_arg]);
    assert_eq!(code, 1, "verification must fail on the tampered order: {stdout}\n{stderr}");
    let all = stdout + &stderr;
    assert!(all.contains("MISMATCH #0 "), "the tampered order is named: {all}");
    assert_eq!(all.matches("MISMATCH").count(), 1, "only order 0 was changed: {all}");
}
