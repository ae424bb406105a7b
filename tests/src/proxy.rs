//! A small TCP proxy that can delay what passes through it: the "long, jittery link" of the
//! multi-host tests, since the kernels here have no `tc netem`.
//!
//! Each accepted connection gets a connection to the target; bytes in each direction are read
//! as they come and written on after `delay ± jitter` ([`Knobs`], changeable while running).
//! Chunks never overtake each other (a chunk is due no earlier than the one before it), as on
//! a real link. Plain threads: a handful of connections, and no runtime to share.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The delay of one link, in milliseconds (0 = pass straight through).
#[derive(Debug, Default)]
pub struct Knobs {
    delay_ms: AtomicU64,
    jitter_ms: AtomicU64,
    /// Chunks that were held back by a delay (proof that traffic took the slow path).
    delayed: AtomicU64,
}

impl Knobs {
    pub fn set(&self, delay_ms: u64, jitter_ms: u64) {
        self.jitter_ms.store(jitter_ms.min(delay_ms), Ordering::SeqCst);
        self.delay_ms.store(delay_ms, Ordering::SeqCst);
    }

    /// How many chunks have been delayed so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::SeqCst)
    }

    /// The delay of the next chunk: `delay ± jitter`, uniformly.
    fn next(&self, seed: &mut u64) -> Duration {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        let jitter = self.jitter_ms.load(Ordering::SeqCst);
        if delay == 0 {
            return Duration::ZERO;
        }
        self.delayed.fetch_add(1, Ordering::SeqCst);
        // xorshift64: enough randomness for jitter.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let offset = (*seed % (2 * jitter * 1000 + 1)) as i64 - (jitter * 1000) as i64;
        Duration::from_micros((delay as i64 * 1000 + offset).max(0) as u64)
    }
}

/// A running proxy; it stops accepting when dropped (open connections end with their peers).
pub struct Proxy {
    stop: Arc<AtomicBool>,
    pub listen: SocketAddr,
}

impl Proxy {
    /// Listen on `listen` in the calling thread's network namespace and forward to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr, knobs: Arc<Knobs>) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new().name(format!("proxy-{listen}")).spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let knobs = knobs.clone();
                        let _ = std::thread::Builder::new().name("proxy-conn".into()).spawn(move || connect(client, target, knobs));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(Proxy { stop, listen })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn connect(client: TcpStream, target: SocketAddr, knobs: Arc<Knobs>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
    let knobs2 = knobs.clone();
    let _ = std::thread::Builder::new().name("proxy-up".into()).spawn(move || pump(client, server, knobs));
    pump(server2, client2, knobs2);
}

/// Copy `from` to `to`, each chunk after the link's delay. Ends (shutting `to` for writing)
/// at end of stream or on any error.
fn pump(mut from: TcpStream, to: TcpStream, knobs: Arc<Knobs>) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::Builder::new().name("proxy-write".into()).spawn(move || {
        let mut to = to;
        for (at, bytes) in due {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    // xorshift needs a non-zero seed.
    let mut seed = (now ^ 0x9e37_79b9_7f4a_7c15) | 1;
    let mut last = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = (Instant::now() + knobs.next(&mut seed)).max(last);
                last = at;
                if chunks.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(chunks);
    if let Ok(writer) = writer {
        let _ = writer.join();
    }
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let knobs = Knobs::default();
        let mut seed = 42;
        assert_eq!(knobs.next(&mut seed), Duration::ZERO);
        knobs.set(50, 20);
        for _ in 0..1000 {
            let d = knobs.next(&mut seed).as_millis();
            assert!((30..=70).contains(&d), "{d}");
        }
    }

    #[test]
    fn forwards_both_ways_with_the_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let knobs = Arc::new(Knobs::default());
        knobs.set(40, 0);
        let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let _proxy = Proxy::start(free, target, knobs).unwrap();
        let started = Instant::now();
        let mut c = TcpStream::connect(free).unwrap();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        assert!(started.elapsed() >= Duration::from_millis(80), "{:?}", started.elapsed());
    }
}
