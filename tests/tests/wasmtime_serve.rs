//! The catalog runs unchanged under the stock `wasmtime serve`, which may run
//! several instances of it at once. Correctness must then come from the files, not memory:
//! 100 concurrent decrements must lower the stock by exactly 100.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use toystore_e2e::{free_port, wasm_dir, workspace_root};

/// The pinned wasmtime CLI (installed by `just test`), or `WASMTIME` if set.
fn wasmtime() -> String {
    std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".to_string())
}

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn catalog_under_stock_wasmtime_serve_never_loses_a_decrement() {
    let version = Command::new(wasmtime()).arg("--version").output().expect("wasmtime CLI on PATH (just test installs it)");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(version.starts_with("wasmtime 48."), "pinned wasmtime 48.x expected, got {version}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(workspace_root().join("data/catalog.csv"), dir.path().join("catalog.csv")).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    // The exact command line README documents, with a free port and a temp data directory.
    // FRONTEND_URL points at a closed port: invalidations fail fast and the buys still commit.
    let child = Command::new(wasmtime())
        .args(["serve", "-S", "cli", "-S", "p3", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--dir")
        .arg(format!("{}::/data", dir.path().display()))
        .args(["--env", "DATA_DIR=/data", "--env", &format!("FRONTEND_URL=http://127.0.0.1:{}", free_port())])
        .arg(wasm_dir().join("toystore_catalog.wasm"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start wasmtime serve");
    let _serve = Serve(child);

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let url = format!("http://127.0.0.1:{port}");
    let stock = |agent: &ureq::Agent| -> i64 {
        let text = agent.get(&format!("{url}/products/Tux")).call().unwrap().into_string().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["data"]["quantity"].as_i64().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(&format!("{url}/products/Tux")).call().is_err() {
        assert!(Instant::now() < deadline, "wasmtime serve did not answer: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default());
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stock(&agent), 100);

    let url = Arc::new(url.clone());
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let url = Arc::clone(&url);
            thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
                let body = format!(r#"{{"name":"Tux","quantity":1,"key":"k{i}"}}"#);
                match agent.post(&format!("{url}/buy")).send_string(&body) {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, r)) => panic!("buy {i}: {s} {}", r.into_string().unwrap_or_default()),
                    Err(e) => panic!("buy {i}: {e}"),
                }
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(stock(&agent), 0, "100 concurrent decrements of 1 must take exactly 100");
    let file = std::fs::read_to_string(dir.path().join("catalog.csv")).unwrap();
    assert!(file.lines().any(|l| l.starts_with("Tux,") && l.ends_with(",0")), "on disk too: {file}");
}
