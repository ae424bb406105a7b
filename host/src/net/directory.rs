//! Calls between services of one host, handed over in process (`local_calls = "direct"`).
//!
//! With the default (`http`) a component's call to another service of the same host goes out
//! through the pooled client, over a loopback connection, into the callee's listener and hyper,
//! and back the same way: an HTTP encode and parse on each side and two socket round trips per
//! call. In `direct` mode the outgoing hook ([`crate::net::outgoing`]) looks the request's address
//! up in the host's [`Directory`] first; for one of its own services it sends the request, as
//! it is, over a channel to that service's thread, where `service::inbox` hands it to the
//! service's entry (`service::entry`): the same path the listener takes after hyper. So the callee's in-flight
//! limit (503), body limit (413), pause, metrics and crash answers are the ones it gives over
//! HTTP, and the size limits of the head check apply (`head::check_parts`). This module is the caller's side
//! and the directory; it imports nothing of the serving side, which imports it.
//!
//! What the caller sees, mapped to the `wasi:http` error codes the HTTP path gives:
//! - the service is killed (or stopped): its slot is empty, **connection refused** at once, as
//!   a closed port refuses, so the guest's `CallError::Refused` and `never_delivered` stay right;
//! - the service is paused: the receiving task is gated like the accept loop, so the call waits
//!   in the channel (as a connection waits in the kernel's backlog) and the caller's own
//!   timeout ends it;
//! - the service is killed while the call is in it: the task serving the call is dropped with
//!   the service's thread, **connection terminated** (the request may have been acted on);
//! - the guest's `connect` + `first-byte` timeouts bound the wait for the response head, its
//!   `between-bytes` timeout each body frame, exactly as on the pooled path.
//!
//! The callee's work stays on the callee's thread (its instance, job queue and reply channel
//! are there); only the request and the response cross threads, once each.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::RwLock;

use futures::channel::oneshot;
use http::uri::Scheme;
use tokio::sync::mpsc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::net::body::Response;
use crate::net::call_timeouts::{head_timeout, with_frame_timeout, SendResult};

/// Calls that may wait for a paused or busy service before senders wait too (the analogue of
/// the listener's accept backlog).
pub const BACKLOG: usize = 1024;

/// One request handed to a service, with the channel its response goes back on.
pub struct Call {
    pub request: http::Request<WasiBody>,
    pub reply: oneshot::Sender<Response>,
}

/// Where a call is sent: the channel to one running service's thread.
pub type Inbox = mpsc::Sender<Call>;

/// The services this host runs, by listen address: each slot holds the inbox of the running
/// service, or nothing while it is killed or stopped. The addresses are fixed at start-up; only
/// the slots change.
#[derive(Default)]
pub struct Directory {
    slots: HashMap<SocketAddr, RwLock<Option<Inbox>>>,
}

impl Directory {
    pub fn new(addresses: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self { slots: addresses.into_iter().map(|addr| (addr, RwLock::new(None))).collect() }
    }

    /// The service on `addr` now takes calls on `inbox` (it started or restarted).
    pub fn open(&self, addr: SocketAddr, inbox: Inbox) {
        if let Some(slot) = self.slots.get(&addr) {
            *slot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(inbox);
        }
    }

    /// The service on `addr` takes no calls (killed or stopping): they are refused.
    pub fn close(&self, addr: SocketAddr) {
        if let Some(slot) = self.slots.get(&addr) {
            slot.write().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        }
    }

    /// Where a request to `uri` goes: `None` if it is not addressed to a service of this host
    /// (it goes out over HTTP), `Some(None)` if that service is down, else its inbox.
    pub fn route(&self, uri: &http::Uri) -> Option<Option<Inbox>> {
        let addr = target_addr(uri)?;
        // A service listening on every address is reached on the loopback one too.
        let slot = self.slots.get(&addr).or_else(|| {
            let any = if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
            addr.ip().is_loopback().then(|| self.slots.get(&SocketAddr::new(any, addr.port()))).flatten()
        })?;
        Some(slot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// The socket address of an `http://IP:port/...` URI; `None` for names (a component addresses
/// this host's services by the IP literal of their `listen`) and other schemes.
fn target_addr(uri: &http::Uri) -> Option<SocketAddr> {
    if uri.scheme() != Some(&Scheme::HTTP) {
        return None;
    }
    let host = uri.host()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port_u16().unwrap_or(80)))
}

/// The caller's side: send `request` to the service behind `inbox` (`None`: it is down) and
/// wait for its response head within the guest's timeouts.
pub fn send(inbox: Option<Inbox>, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> impl Future<Output = SendResult> {
    async move {
        let options = options.unwrap_or_default();
        let inbox = inbox.ok_or(Error::ConnectionRefused)?;
        let (reply, answer) = oneshot::channel();
        let exchange = async move {
            // A closed inbox is a service killed a moment ago: its port would refuse too.
            inbox.send(Call { request, reply }).await.map_err(|_| Error::ConnectionRefused)?;
            // The serving task was dropped with the service (killed mid-call).
            answer.await.map_err(|_| Error::ConnectionTerminated)
        };
        let response = match head_timeout(&options) {
            Some(limit) => tokio::time::timeout(limit, exchange).await.map_err(|_| Error::ConnectionReadTimeout)??,
            None => exchange.await?,
        };
        let response = response.map(|body| with_frame_timeout(body, options.between_bytes_timeout));
        // Nothing drives a connection here: there is none.
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        Ok((response, io))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_this_hosts_addresses_are_routed_and_a_closed_slot_is_down() {
        let d = Directory::new([addr("127.0.0.1:8081"), addr("0.0.0.0:8080"), addr("[::1]:8091")]);
        let route = |u: &str| d.route(&u.parse().unwrap()).map(|inbox| inbox.is_some());
        // Known addresses, but nothing running yet: down.
        assert_eq!(route("http://127.0.0.1:8081/products/Tux"), Some(false));
        assert_eq!(route("http://[::1]:8091/ping"), Some(false));
        // A service on every address is reached on loopback; other hosts and schemes are not ours.
        assert_eq!(route("http://127.0.0.1:8080/"), Some(false));
        assert_eq!(route("http://10.0.0.5:8080/"), None);
        assert_eq!(route("http://127.0.0.1:9999/"), None);
        assert_eq!(route("https://127.0.0.1:8081/"), None);
        assert_eq!(route("http://localhost:8081/"), None);

        let (inbox, _calls) = mpsc::channel(1);
        d.open(addr("127.0.0.1:8081"), inbox);
        assert_eq!(route("http://127.0.0.1:8081/products/Tux"), Some(true));
        d.close(addr("127.0.0.1:8081"));
        assert_eq!(route("http://127.0.0.1:8081/products/Tux"), Some(false));
    }

    #[tokio::test]
    async fn a_down_service_refuses_and_a_dropped_call_is_terminated() {
        let request = || http::Request::new(crate::net::body::full_body(bytes::Bytes::new()));
        let refused = send(None, request(), None).await.err();
        assert!(matches!(refused, Some(Error::ConnectionRefused)), "{refused:?}");

        let (inbox, calls) = mpsc::channel(1);
        drop(calls);
        let closed = send(Some(inbox), request(), None).await.err();
        assert!(matches!(closed, Some(Error::ConnectionRefused)), "{closed:?}");

        let (inbox, mut calls) = mpsc::channel::<Call>(1);
        let taker = tokio::spawn(async move { drop(calls.recv().await) });
        let cut = send(Some(inbox), request(), None).await.err();
        taker.await.unwrap();
        assert!(matches!(cut, Some(Error::ConnectionTerminated)), "{cut:?}");
    }
}
