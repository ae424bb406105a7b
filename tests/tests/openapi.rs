//! The public API against its OpenAPI document (`openapi.yaml`): the frontend serves the same
//! document at `GET /openapi.json`, and Schemathesis (installed by `just setup-schemathesis`
//! into `.venv-schemathesis`) finds no 5xx, no undocumented status and no response off the
//! schema, including stateful runs (place an order, then read it back through the link), while
//! the requests it gets rejected change nothing.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use toystore_e2e::{workspace_root, Cluster, TOYS};

fn venv_bin(name: &str) -> PathBuf {
    let path = workspace_root().join(".venv-schemathesis/bin").join(name);
    assert!(path.exists(), "{} missing: run `just setup-schemathesis` (or `just test`)", path.display());
    path
}

/// Σ stock + Σ ordered quantity over every order in the log: only a placed order moves stock,
/// and it moves exactly its quantity, so this never changes while restock is off.
fn stock_plus_ordered(c: &Cluster) -> i64 {
    let stock: i64 = TOYS.iter().map(|toy| c.stock(toy)).sum();
    let last = c.request("GET", &format!("{}/get_last_order_number", c.replica_url(1)), None).expect("replica 1").body["data"]
        ["last_order"]
        .as_i64();
    let ordered: i64 = match last {
        None => 0,
        Some(last) => (0..=last)
            .map(|n| {
                let r = c.get(&format!("/orders/{n}"));
                assert_eq!(r.status, 200, "order {n}: {}", r.body);
                r.data()["quantity"].as_i64().expect("quantity")
            })
            .sum(),
    };
    stock + ordered
}

fn replicas_in_sync(c: &Cluster) -> bool {
    let lasts: Vec<Value> = (1..=3)
        .map(|id| {
            c.request("GET", &format!("{}/get_last_order_number", c.replica_url(id)), None)
                .map(|r| r.body["data"]["last"].clone())
                .unwrap_or(Value::Null)
        })
        .collect();
    lasts.iter().all(|l| *l == lasts[0]) && c.orders_file(1) == c.orders_file(2) && c.orders_file(2) == c.orders_file(3)
}

#[test]
fn the_public_api_matches_its_openapi_document_under_schemathesis() {
    let python = venv_bin("python");
    let schemathesis = venv_bin("schemathesis");
    let c = Cluster::start();

    // The served document is openapi.yaml.
    let yaml = workspace_root().join("openapi.yaml");
    let out = Command::new(&python)
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&yaml)
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_yaml: Value = serde_json::from_slice(&out.stdout).expect("openapi.yaml as JSON");
    let served = c.get("/openapi.json");
    assert_eq!(served.status, 200);
    assert_eq!(served.body, from_yaml, "GET /openapi.json serves openapi.yaml (regenerate openapi.json)");

    assert_eq!(c.order("Tux", 1).status, 200);
    let before = stock_plus_ordered(&c);

    let report = c.dir.path().join("schemathesis.txt");
    let status = Command::new(&schemathesis)
        .args(["run", "--no-color"])
        .arg(&yaml)
        .args(["--url", &c.frontend_url()])
        .args(["--checks", "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "25", "--seed", "7", "--request-timeout", "20"])
        .stdout(std::fs::File::create(&report).expect("report file"))
        .stderr(std::process::Stdio::inherit())
        .status()
        .expect("run schemathesis");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(status.success(), "schemathesis found problems:\n{text}\nhost log:\n{}", c.log_tail());
    eprintln!("{}", text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));

    c.wait_for("the replicas to agree", Duration::from_secs(30), || replicas_in_sync(&c));
    assert_eq!(stock_plus_ordered(&c), before, "stock + ordered quantities are conserved");
}
