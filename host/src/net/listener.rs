//! The HTTP listener: a hyper (HTTP/1.1, keep-alive) accept loop per listener of a service,
//! and for the admin endpoint. What it does with a request is a [`Handler`] it is given (for a
//! service: its entry, `service::entry`), so it knows nothing of instances.
//!
//! Every error a client can get is a JSON envelope: request heads are checked by
//! [`head::Guarded`] before hyper sees them (malformed → 400, target over `head::URI_LIMIT` →
//! 414, head over `head::HEAD_LIMIT` → 431, head not finished within `head::HEAD_READ_TIMEOUT`
//! → 408).
//!
//! The accept loop owns its connections (a `JoinSet`), so aborting the loop's task cuts every
//! open connection too, which is what killing a replica means. A shutdown signal instead stops
//! accepting and lets each connection finish its current request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use futures::FutureExt;

use crate::net::body::Response;
use crate::net::head;

/// How long an idle keep-alive connection (no request head started) stays open.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bind `addr` with SO_REUSEADDR, so a restarted replica can take its port back at once even
/// while connections of the killed one linger in TIME_WAIT.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// [`bind`], as a std listener not yet tied to any runtime: a service's listener must be
/// registered with the runtime on the service's own thread, where it is polled, so that its
/// wake-ups stay on that thread.
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind(addr)?.into_std()
}

/// What a listener does with a request.
pub type Handler = Arc<dyn Fn(hyper::Request<Incoming>) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Where a public listener's connections beyond its first [`Spill::in_thread`] are served: a
/// helper thread next to the instance's (internal listeners keep every connection on the
/// instance's thread; `service::IN_THREAD_CONNECTIONS` says why).
///
/// A connection served on the instance's own thread costs no hand-over between threads: its
/// request goes into the job queue and its answer comes back within the thread. But then that
/// one thread also does all the socket and HTTP work, which caps the service at one core. A
/// few connections (a client or two) stay on the instance's thread, where each request is
/// cheapest; more than that means load, and the socket and HTTP work of the others runs on
/// the helper, in parallel with the guest code, so a loaded service can use a second core.
#[derive(Clone)]
pub struct Spill {
    pub in_thread: usize,
    pub helper: tokio::runtime::Handle,
}

/// Counts a connection served on the accept loop's own thread while it lives.
struct InThread(Arc<AtomicUsize>);

impl InThread {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for InThread {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections on `listener` and serve them with `handler` until `shutdown` turns true;
/// then stop accepting and wait for the open connections to finish their current request.
/// With `spill`, connections beyond its first ones are served on its helper thread.
pub async fn accept_loop(
    name: Arc<str>,
    listener: TcpListener,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
    spill: Option<Spill>,
) {
    // Owns every connection, on whichever thread it runs: aborting the loop cuts them all.
    let mut connections = JoinSet::new();
    let in_thread = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = serve_connection(name.clone(), stream, peer, handler.clone(), shutdown.clone());
                    match &spill {
                        Some(spill) if in_thread.load(Ordering::Relaxed) >= spill.in_thread => {
                            connections.spawn_on(connection, &spill.helper);
                        }
                        _ => {
                            let counted = InThread::new(&in_thread);
                            connections.spawn(async move {
                                let _counted = counted;
                                connection.await
                            });
                        }
                    }
                }
                // E.g. out of file descriptors: log, breathe, keep going.
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stopped(&mut shutdown) => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serve one connection. Its request heads pass [`head::Guarded`] first; when that refuses
/// one, hyper is done with the connection once it has answered everything before it, and the
/// refusal is written here, as a JSON error, before closing.
async fn serve_connection(
    name: Arc<str>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| handler(request).map(Ok::<_, Infallible>));
    let mut connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // An idle keep-alive connection is closed after this (hyper's default, made explicit).
        .header_read_timeout(IDLE_TIMEOUT)
        // A refused head looks to hyper like the client closing its side: the responses owed
        // for the requests before it must still go out.
        .half_close(true)
        .serve_connection(TokioIo::new(head::Guarded::new(stream)), service);
    let result = tokio::select! {
        result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => result,
        _ = stopped(&mut shutdown) => {
            Pin::new(&mut connection).graceful_shutdown();
            std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await
        }
    };
    if let Err(e) = result {
        // Clients that hang up mid-request are routine; not worth more than debug.
        tracing::debug!(service = %name, %peer, error = %e, "connection ended with an error");
        return;
    }
    let (mut stream, rejection) = connection.into_parts().io.into_inner().into_parts();
    if let Some(rejection) = rejection {
        tracing::debug!(service = %name, %peer, status = %rejection.status, message = %rejection.message, "request head refused");
        if let Err(e) = rejection.write_to(&mut stream).await {
            tracing::debug!(service = %name, %peer, error = %e, "cannot write the refusal");
        }
    }
}
