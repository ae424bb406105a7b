//! The load client against the real host — it verifies what it ordered, and its
//! verification catches an order that was tampered with on disk.

use std::process::Command;

use serde_json::Value;
use toystore_e2e::{host_binary, Cluster};

fn client(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(host_binary());
    command.arg("client").args(["--url", &c.frontend_url(), "--no-progress"]).args(args);
    run(command)
}

/// Run a `toystore client` command: exit code, stdout, stderr.
fn run(mut command: Command) -> (i32, String, String) {
    let out = command.output().expect("run toystore client");
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

/// `toystore client` in `dir` with `args`, no `--url`.
fn client_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(host_binary());
    command.current_dir(dir).args(["client", "--no-progress"]).args(args);
    run(command)
}

#[test]
fn client_without_url_takes_the_frontend_from_the_seeds_env() {
    let c = Cluster::start();
    let url = c.frontend_url();
    let port = c.ports.frontend;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = dir.path().join(".env");
    // As the seed writes it: every service's settings, the client's two among them.
    std::fs::write(&env, format!("catalog_port=1\nhost=127.0.0.1\nfrontend_port={port}\ncache=1\n")).unwrap();
    let run = ["--clients", "1", "--requests", "10", "--prob", "1", "--retries", "0", "--json"];
    let (code, stdout, stderr) = client_in(dir.path(), &run);
    assert_eq!(code, 0, "the store the .env names answered and verified: {stdout}\n{stderr}");
    assert!(stderr.contains(&format!("frontend {url} from {}", env.display())), "says where the address came from: {stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json output ({e}): {stdout}"));
    assert!(report.to_string().contains("lookup"), "{report}");

    // A malformed .env is an error naming the file and line, and nothing is sent.
    std::fs::write(&env, format!("host=127.0.0.1\nfrontend_port {port}\n")).unwrap();
    // Lookups the frontend answered (late invalidations from the orders above move other counters).
    let lookups = |c: &Cluster| {
        let stats = c.internal_get("/cache/stats");
        (stats.data()["hits"].clone(), stats.data()["misses"].clone())
    };
    let before = lookups(&c);
    let (code, stdout, stderr) = client_in(dir.path(), &run);
    assert_ne!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("{}:2: expected KEY=value", env.display())), "{stderr}");
    assert_eq!(lookups(&c), before, "a refused start sends nothing");

    // --url wins over the file (which is then not read at all).
    let (code, stdout, stderr) = client_in(dir.path(), &[&["--url", url.as_str()][..], &run].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}
