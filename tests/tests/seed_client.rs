//! A client written the seed's way (`tests/seed/client.py`: Python `requests`, one session, the
//! seed's `.env`, lookup then an order with probability p, then its final check on the seed's
//! field names `"Toy name"` and `"Quantity"`) runs against the real store and finds every order
//! consistent. What it reports is checked again here against the store itself.
//!
//! Its Python is `.venv-schemathesis/bin/python` (`just setup-schemathesis`, which `just test`
//! runs, installs `requests` there) or, without that venv, a `python3` that has `requests`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use toystore_e2e::{workspace_root, Cluster, TOYS};

/// A Python that can `import requests`, or a panic that says how to get one.
fn python_with_requests() -> PathBuf {
    let venv = workspace_root().join(".venv-schemathesis/bin/python");
    let candidates = [venv.clone(), PathBuf::from("python3")];
    for python in candidates {
        let ok = Command::new(&python).args(["-c", "import requests"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!("no Python with `requests`: run `just setup-schemathesis` (or `just test`), which puts it in {}", venv.display());
}

#[test]
fn the_seeds_client_finds_every_order_consistent() {
    let python = python_with_requests();
    let c = Cluster::start();
    let port = c.ports.frontend;
    // The client runs where the seed's `.env` is, written as the seed writes it: every
    // service's settings, the client's two among them.
    let cwd = tempfile::tempdir().expect("temp dir");
    let env = format!("catalog_host=127.0.0.1\ncatalog_port={}\nhost=127.0.0.1\nfrontend_port={port}\ncache=1\n", c.ports.catalog);
    std::fs::write(cwd.path().join(".env"), env).expect("write .env");

    let iterations = 200;
    let out = Command::new(&python)
        .current_dir(cwd.path())
        .arg(workspace_root().join("tests/seed/client.py"))
        .args(["--prob", "0.8", "--requests", &iterations.to_string(), "--seed", "28"])
        .output()
        .expect("run the seed's client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The seed's own message for an order the store answered differently.
    assert!(!stdout.contains("Local database is inconsistent"), "the seed's client found inconsistent orders:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "the seed's client failed ({}):\n{stdout}\n{stderr}", out.status);

    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON summary on the last line:\n{stdout}\n{stderr}"));
    assert_eq!(summary["lookups"], iterations, "{summary}");
    assert_eq!(summary["lookups_ok"], iterations, "every lookup of a seed toy answers 200: {summary}");
    assert_eq!(summary["inconsistent"], serde_json::json!([]), "{summary}");
    let orders = summary["orders"].as_array().expect("orders");
    assert_eq!(Some(orders.len() as u64), summary["order_requests"].as_u64(), "every order succeeded: {summary}");
    assert!(orders.len() > iterations / 2, "p = 0.8 places most of {iterations} iterations' orders: {summary}");

    // What it saw is what the store holds: each order under its number, and the stock fell by
    // exactly what was ordered (restock is off in the tests).
    let mut ordered = 0;
    for o in orders {
        let n = o["number"].as_u64().expect("number");
        let back = c.get(&format!("/orders/{n}"));
        assert_eq!((back.status, &back.data()["name"], &back.data()["quantity"]), (200, &o["name"], &o["quantity"]), "order {n}");
        ordered += o["quantity"].as_i64().expect("quantity");
    }
    let left: i64 = TOYS.iter().map(|toy| c.stock(toy)).sum();
    assert_eq!(100 * TOYS.len() as i64 - left, ordered, "stock taken = quantity ordered");
}
