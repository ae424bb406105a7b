//! The catalog runs unchanged under the stock `wasmtime serve`, which may run
//! several instances of it at once. Correctness must then come from the files, not memory:
//! 100 committed orders pushed by 20 concurrent, duplicate and overlapping `/apply` streams must
//! lower the stock by exactly 100 (each order applied exactly once). The frontend keeps its
//! internal routes closed there, and takes a peer's reply cut short for the failed call it is.

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

/// Push orders `0..total` (one Tux each) like an order leader does: batches of `batch` from
/// where the catalog says it is, until it has applied them all. Returns the replies seen.
fn push_all(url: &str, total: u64, batch: u64, start: u64) -> (u32, u32) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let (mut applied_replies, mut gaps) = (0, 0);
    let mut from = start;
    loop {
        let end = (from + batch).min(total);
        let orders: Vec<serde_json::Value> =
            (from..end).map(|n| serde_json::json!({"number": n, "name": "Tux", "quantity": 1})).collect();
        let body = serde_json::json!({"from": from, "orders": orders}).to_string();
        let (status, text) = match agent.post(&format!("{url}/apply")).send_string(&body) {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
            Err(e) => panic!("apply from {from}: {e}"),
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let applied = match status {
            200 => {
                applied_replies += 1;
                v["data"]["applied_orders"].as_u64().unwrap()
            }
            // Started past what the catalog has applied: resend from its count.
            409 => {
                gaps += 1;
                v["error"]["applied_orders"].as_u64().unwrap()
            }
            other => panic!("apply from {from}: {other} {text}"),
        };
        assert!(applied <= total, "applied more orders than exist: {text}");
        if applied == total {
            return (applied_replies, gaps);
        }
        from = applied;
    }
}

#[test]
fn catalog_under_stock_wasmtime_serve_applies_each_order_exactly_once() {    let version = Command::new(wasmtime()).arg("--version").output().expect("wasmtime CLI on PATH (just test installs it)");
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
    // Twenty pushers of the same 100 orders, starting at different points (some past the
    // catalog's count: gaps, answered 409 with where to resend from) in batches of 7.
    let handles: Vec<_> = (0..20u64)
        .map(|i| {
            let url = Arc::clone(&url);
            thread::spawn(move || push_all(&url, 100, 7, (i * 13) % 100))
        })
        .collect();
    let (mut ok, mut gaps) = (0, 0);
    for h in handles {
        let (o, g) = h.join().unwrap();
        ok += o;
        gaps += g;
    }
    assert!(ok >= 20, "every pusher finished with a 200 ({ok} ok, {gaps} gaps)");
    assert_eq!(stock(&agent), 0, "100 orders of 1 applied by concurrent duplicate pushes must take exactly 100");
    let file = std::fs::read_to_string(dir.path().join("catalog.csv")).unwrap();
    assert!(file.lines().any(|l| l == "Tux,25.99,0,100,0,100"), "on disk too, with 100 applied: {file}");
    assert!(file.lines().skip(1).all(|l| l.ends_with(",100")), "one applied count in every row: {file}");
}

/// The frontend under the stock `wasmtime serve` on `port`, with `env` (`--env` pairs) added.
fn serve_frontend(dir: &std::path::Path, port: u16, env: &[&str]) -> Serve {
    let log = std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap();
    let mut command = Command::new(wasmtime());
    command
        .args(["serve", "-S", "cli", "-S", "p3", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--dir")
        .arg(format!("{}::/data", dir.display()))
        .args(["--env", "DATA_DIR=/data"]);
    for pair in env {
        command.args(["--env", pair]);
    }
    let child = command
        .arg(wasm_dir().join("toystore_frontend.wasm"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start wasmtime serve");
    Serve(child)
}

/// Status of `GET path` on `port` with `headers`, once the server answers at all.
fn status(port: u16, path: &str, headers: &[(&str, &str)]) -> u16 {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut request = agent.get(&format!("http://127.0.0.1:{port}{path}"));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        match request.call() {
            Ok(r) => return r.status(),
            Err(ureq::Error::Status(s, _)) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "wasmtime serve on {port} did not answer: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Without the host nobody vouches for the listener marker, so by default the frontend's
/// internal routes are off whatever a client sends; `INTERNAL_ROUTES=on` opens them, for a
/// `wasmtime serve` on a port only other services reach.
#[test]
fn frontend_under_stock_wasmtime_serve_keeps_internal_routes_off_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let (default_port, open_port) = (free_port(), free_port());
    let _default = serve_frontend(dir.path(), default_port, &[]);
    let _open = serve_frontend(dir.path(), open_port, &["INTERNAL_ROUTES=on"]);

    assert_eq!(status(default_port, "/health", &[]), 200, "the public routes answer");
    assert_eq!(status(default_port, "/cache/stats", &[]), 404);
    assert_eq!(status(default_port, "/cache/stats", &[("toystore-listener", "internal")]), 404, "a forged marker is ignored");
    assert_eq!(status(open_port, "/cache/stats", &[]), 200);
    assert_eq!(status(open_port, "/health", &[]), 200);
}

/// A catalog stand-in on `port`: every connection gets one answer to its first request, the
/// first of them a product body cut short after its head promised more (the peer went away
/// mid-reply), every later one whole.
fn cut_then_whole_catalog() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
    let port = listener.local_addr().expect("its address").port();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let whole = r#"{"data":{"name":"Tux","price":25.99,"quantity":100}}"#;
            let body = if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 { &whole[..30] } else { whole };
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                whole.len()
            );
            let _ = stream.write_all(reply.as_bytes());
            // Dropping the stream closes it: the cut reply ends 24 bytes short.
        }
    });
    (port, served)
}

/// A reply cut short mid-body is a failed call (503, the catalog unavailable), never a torn
/// product passed on or cached: the frontend does not wait for a reply's end (its trailers),
/// and relies on every reply being one JSON object, of which no strict prefix parses.
#[test]
fn a_catalog_reply_cut_short_is_a_failed_call_not_a_torn_product() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, served) = cut_then_whole_catalog();
    let port = free_port();
    let catalog_url = format!("CATALOG_URL=http://127.0.0.1:{catalog}");
    let _frontend = serve_frontend(dir.path(), port, &[&catalog_url]);
    assert_eq!(status(port, "/health", &[]), 200, "the frontend answers");

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let get = || match agent.get(&format!("http://127.0.0.1:{port}/products/Tux")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET /products/Tux: {e}"),
    };
    let (cut, body) = get();
    assert_eq!(cut, 503, "a cut reply is the catalog unavailable: {body}");
    assert!(body.contains("catalog unavailable"), "{body}");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1, "one call reached the stand-in");

    let (whole, body) = get();
    assert_eq!(whole, 200, "the next, whole reply is served: {body}");
    let product: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(product["data"]["quantity"], 100, "{body}");
}
