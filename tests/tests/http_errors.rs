//! Malformed and over-large requests, sent over raw TCP: each gets its status with the JSON
//! error envelope (never hyper's empty body), and nothing changes on disk.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use toystore_e2e::Cluster;

/// A response read off the wire: status and JSON body.
struct Raw {
    status: u16,
    body: Value,
}

/// Read one response from `stream`: its head, then `content-length` bytes of body.
fn read_response(stream: &mut TcpStream) -> Raw {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read response head");
        assert!(n > 0, "connection closed before a response; got {:?}", String::from_utf8_lossy(&bytes));
        bytes.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&bytes).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status in {head}"));
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("length")))
        .unwrap_or_else(|| panic!("content-length in {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read body");
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("JSON body for {head}: {:?}", String::from_utf8_lossy(&body)));
    Raw { status, body }
}

fn connect(c: &Cluster) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", c.ports.frontend)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream
}

/// Send `request` on a fresh connection and read the answer.
fn send(c: &Cluster, request: &[u8]) -> Raw {
    let mut stream = connect(c);
    stream.write_all(request).expect("send");
    read_response(&mut stream)
}

fn assert_envelope(what: &str, raw: &Raw, status: u16) {
    assert_eq!(raw.status, status, "{what}: {}", raw.body);
    assert_eq!(raw.body["error"]["code"], status, "{what}: envelope {}", raw.body);
    assert!(raw.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {}", raw.body);
}

/// The files the store's state lives in.
fn disk(c: &Cluster) -> Vec<Vec<u8>> {
    let mut files: Vec<Vec<u8>> = c.settled_orders_files();
    files.push(std::fs::read(c.data_dir("catalog").join("catalog.csv")).unwrap_or_default());
    files
}

#[test]
fn malformed_and_oversized_requests_get_json_errors_and_change_nothing() {
    let c = Cluster::start();
    assert_eq!(c.order("Fox", 1).status, 200);
    let before = disk(&c);

    let bad_header = send(&c, b"GET /products/Tux HTTP/1.1\r\nHost: x\r\nBad\x01Name: v\r\n\r\n");
    assert_envelope("bad header bytes", &bad_header, 400);

    let long_uri = format!("GET /products/{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert_envelope("over-long URI", &send(&c, long_uri.as_bytes()), 414);

    let body = r#"{"name":"Fox","quantity":1}"#;
    let twice = format!(
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        body.len() + 1
    );
    assert_envelope("duplicate differing Content-Length", &send(&c, twice.as_bytes()), 400);

    let big_header = format!("GET /products/Tux HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(20_000));
    assert_envelope("over-size headers", &send(&c, big_header.as_bytes()), 431);

    let huge = format!("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", 2 * 1024 * 1024);
    assert_envelope("over-size body", &send(&c, huge.as_bytes()), 413);

    // A bad head after a good request on the same keep-alive connection.
    let mut stream = connect(&c);
    stream.write_all(b"GET /products/Tux HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    assert_eq!(read_response(&mut stream).status, 200);
    stream.write_all(b"GET /products/Tux HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n").expect("send");
    assert_envelope("bad head on a kept-alive connection", &read_response(&mut stream), 400);

    // A client that never finishes its head gets 408 and is closed after the timeout.
    let mut slow = connect(&c);
    let started = Instant::now();
    slow.write_all(b"GET /products/Tux HTTP/1.1\r\nHo").expect("send");
    let answer = read_response(&mut slow);
    assert_envelope("unfinished head", &answer, 408);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(25), "cut after the head timeout: {waited:?}");
    let mut rest = [0u8; 16];
    assert_eq!(slow.read(&mut rest).expect("read after the refusal"), 0, "connection closed");

    // The store still serves, and nothing changed on disk.
    assert_eq!(c.get("/products/Fox").status, 200);
    assert_eq!(disk(&c), before, "rejected requests changed nothing");
}
