//! An in-process fake of the frontend (lookups, idempotent orders, order queries) so the whole
//! client — sessions, retries, read-back, verdict — is tested natively without the real host.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct State {
    pub stock: HashMap<String, i64>,
    /// (name, quantity, key) by number.
    pub orders: Vec<(String, u64, String)>,
    pub keys: HashMap<String, u64>,
}

/// Knobs a test turns.
#[derive(Default)]
pub struct Faults {
    /// Answer this many `POST /orders` with 503 *after* committing the order (the worst case for
    /// a retry: only the idempotency key prevents a double order).
    pub fail_after_commit: AtomicU64,
    /// Answer this many lookups with 503 before committing anything.
    pub fail_lookups: AtomicU64,
}

pub struct Fake {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    pub faults: Arc<Faults>,
    pub order_posts: Arc<AtomicU64>,
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

fn err(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    reply(status, toystore_api::error_value(status.as_u16(), msg))
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    faults: Arc<Faults>,
    posts: Arc<AtomicU64>,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let take = |c: &AtomicU64| c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let mut st = state.lock().unwrap();
    match (method.as_str(), path.split('/').collect::<Vec<_>>().as_slice()) {
        ("GET", ["", "products", name]) => {
            if take(&faults.fail_lookups) {
                return err(StatusCode::SERVICE_UNAVAILABLE, "try later");
            }
            match st.stock.get(*name) {
                Some(q) => reply(StatusCode::OK, json!({"data":{"name":name,"price":1.5,"quantity":q}})),
                None => err(StatusCode::NOT_FOUND, "no such toy"),
            }
        }
        ("POST", ["", "orders"]) => {
            posts.fetch_add(1, Ordering::SeqCst);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (Some(name), Some(q)) = (v["name"].as_str(), v["quantity"].as_u64()) else {
                return err(StatusCode::BAD_REQUEST, "bad order");
            };
            let key = key.unwrap_or_default();
            let number = match st.keys.get(&key) {
                Some(n) if !key.is_empty() => *n,
                _ => {
                    let left = st.stock.get(name).copied().unwrap_or(-1);
                    if left < q as i64 {
                        return err(StatusCode::BAD_REQUEST, "not enough stock");
                    }
                    st.stock.insert(name.to_string(), left - q as i64);
                    let n = st.orders.len() as u64;
                    st.orders.push((name.to_string(), q, key.clone()));
                    st.keys.insert(key, n);
                    n
                }
            };
            if take(&faults.fail_after_commit) {
                return err(StatusCode::SERVICE_UNAVAILABLE, "lost the answer");
            }
            reply(StatusCode::OK, json!({"data":{"order_number":number}}))
        }
        ("GET", ["", "orders", n]) => match n.parse::<usize>().ok().and_then(|n| st.orders.get(n).map(|o| (n, o))) {
            Some((n, (name, q, _))) => reply(StatusCode::OK, json!({"data":{"number":n,"name":name,"quantity":q}})),
            None => err(StatusCode::NOT_FOUND, "no such order"),
        },
        _ => err(StatusCode::NOT_FOUND, "no route"),
    }
}

impl Fake {
    /// Start a fake store with `stock` of each seed toy.
    pub async fn start(stock: i64) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut st = State::default();
        for t in crate::SEED_TOYS {
            st.stock.insert(t.to_string(), stock);
        }
        let state = Arc::new(Mutex::new(st));
        let faults = Arc::new(Faults::default());
        let posts = Arc::new(AtomicU64::new(0));
        let (s, f, p) = (state.clone(), faults.clone(), posts.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (s, f, p) = (s.clone(), f.clone(), p.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (s, f, p) = (s.clone(), f.clone(), p.clone());
                        async move { Ok::<_, Infallible>(handle(req, s, f, p).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Fake { url, state, faults, order_posts: posts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Kind;
    use crate::{run, ClientArgs, Problem};

    fn args(url: &str, prob: f64) -> ClientArgs {
        ClientArgs {
            url: url.into(),
            clients: 3,
            requests: 40,
            prob,
            seed: Some(42),
            backoff_ms: 1,
            timeout_ms: 5000,
            ..ClientArgs::default()
        }
    }

    #[tokio::test]
    async fn p_zero_orders_nothing_p_one_orders_every_in_stock_toy() {
        let fake = Fake::start(1_000_000).await;
        let r = run(&args(&fake.url, 0.0), false).await.unwrap();
        assert_eq!(r.summary(Kind::Lookup).unwrap().ok, 120);
        assert!(r.summary(Kind::Order).is_none());
        assert_eq!(r.orders_placed, 0);
        assert!(r.verified());
        let r = run(&args(&fake.url, 1.0), false).await.unwrap();
        assert_eq!(r.summary(Kind::Order).unwrap().ok, 120);
        assert_eq!(r.orders_placed, 120);
        assert_eq!(r.verification.checked, 120);
        assert_eq!(r.verification.verified, 120);
        assert_eq!(r.summary(Kind::OrderQuery).unwrap().ok, 120);
        assert_eq!(r.connects, 3, "one keep-alive connection per session");
        assert_eq!(r.exit_status(), 0);
    }

    #[tokio::test]
    async fn prob_is_honoured() {
        let fake = Fake::start(1_000_000).await;
        let mut a = args(&fake.url, 0.3);
        a.requests = 1000;
        let r = run(&a, false).await.unwrap();
        let orders = r.summary(Kind::Order).unwrap().count as f64;
        // 3000 Bernoulli(0.3) draws: mean 900, sd ~25.
        assert!((orders - 900.0).abs() < 120.0, "{orders} orders");
    }

    #[tokio::test]
    async fn out_of_stock_toys_are_not_ordered() {
        let fake = Fake::start(0).await;
        let r = run(&args(&fake.url, 1.0), false).await.unwrap();
        assert!(r.summary(Kind::Order).is_none());
        assert_eq!(fake.order_posts.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn retries_with_the_same_key_place_each_order_once() {
        let fake = Fake::start(1_000_000).await;
        fake.faults.fail_after_commit.store(10, Ordering::SeqCst);
        fake.faults.fail_lookups.store(7, Ordering::SeqCst);
        let r = run(&args(&fake.url, 1.0), false).await.unwrap();
        let o = r.summary(Kind::Order).unwrap();
        assert_eq!((o.ok, o.errors, o.retries), (120, 0, 10));
        assert_eq!(r.summary(Kind::Lookup).unwrap().retries, 7);
        assert_eq!(fake.state.lock().unwrap().orders.len(), 120, "no order placed twice");
        assert!(r.verified(), "{}", r.to_text());
    }

    #[tokio::test]
    async fn a_tampered_order_fails_verification() {
        let fake = Fake::start(1_000_000).await;
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("orders.json");
        let mut a = args(&fake.url, 1.0);
        a.no_verify = true;
        a.orders_out = Some(saved.clone());
        let r = run(&a, false).await.unwrap();
        assert!(!r.verification.ran && r.orders_placed == 120);
        {
            // Tamper with what the store holds: one quantity changed, one order gone.
            let mut st = fake.state.lock().unwrap();
            st.orders[5].1 += 1;
            st.orders.truncate(100);
        }
        let v = ClientArgs { verify_only: Some(saved), no_verify: false, ..a };
        let r = run(&v, false).await.unwrap();
        assert_eq!(r.exit_status(), 1);
        assert_eq!(r.verification.checked, 120);
        assert_eq!(r.verification.verified, 99);
        let mismatches: Vec<_> = r.verification.problems.iter().filter(|p| matches!(p, Problem::Mismatch { .. })).collect();
        let missing = r.verification.problems.iter().filter(|p| matches!(p, Problem::Missing { .. })).count();
        assert_eq!((mismatches.len(), missing), (1, 20));
        assert!(r.to_text().contains("MISMATCH #5"), "{}", r.to_text());
    }

    #[tokio::test]
    async fn unreachable_store_exits_2() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut a = args(&format!("http://127.0.0.1:{port}"), 1.0);
        a.retries = 1;
        a.requests = 2;
        let r = run(&a, false).await.unwrap();
        assert_eq!(r.summary(Kind::Lookup).unwrap().errors, 6);
        assert_eq!(r.exit_status(), 2);
    }
}
