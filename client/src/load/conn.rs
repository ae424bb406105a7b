//! One keep-alive HTTP/1.1 connection to one address, reopened when it breaks.
//!
//! The client deliberately does not use a pool: the seed's client is "one session, one
//! connection", so every session owns exactly one [`Conn`] and every request of that session goes
//! over it in order. A request that fails at the transport level drops the connection, and the
//! next request opens a fresh one (counted in [`Conn::connects`]).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where to connect: the host and port of an `http://host:port` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `host:port`, sent as the `Host` header.
    pub authority: String,
}

impl Target {
    /// Parse a base URL such as `http://127.0.0.1:8080` (a trailing `/` is allowed; a path is not,
    /// because every request path is absolute). Only plain `http` is supported: the store is
    /// loopback-only.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse().with_context(|| format!("not a URL: {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("unsupported scheme {other:?} in {url:?} (only http)"),
            None => bail!("URL {url:?} needs a scheme, e.g. http://127.0.0.1:8080"),
        }
        if !matches!(uri.path(), "" | "/") {
            bail!("URL {url:?} must not have a path (requests add their own)");
        }
        let host = uri.host().ok_or_else(|| anyhow!("URL {url:?} has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(80);
        let authority = match uri.authority() {
            Some(a) => a.as_str().to_string(),
            None => format!("{host}:{port}"),
        };
        Ok(Self { host, port, authority })
    }
}

/// A complete response: status and body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Response {
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 keep-alive connection (lazily opened, reopened after an error).
pub struct Conn {
    target: Target,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// How many TCP connections this `Conn` has opened (1 when nothing ever broke).
    pub connects: u64,
}

impl Conn {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self { target, timeout, sender: None, connects: 0 }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Send one request and read the whole response, within the timeout. Any transport error or
    /// timeout closes the connection so that the next call starts clean (a half-read response
    /// must never be mistaken for the next one).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let result = tokio::time::timeout(self.timeout, self.send_inner(method, path, body, headers)).await;
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(anyhow!("timed out after {} ms", self.timeout.as_millis()))
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(self.connect().await?);
        }
        let Some(sender) = self.sender.as_mut() else { bail!("no connection") };
        sender.ready().await.context("connection not ready")?;
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.target.authority.as_str());
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body.unwrap_or_default())).context("build request")?;
        let response = sender.send_request(request).await.context("send request")?;
        let status = response.status();
        let body = response.into_body().collect().await.context("read response body")?.to_bytes();
        Ok(Response { status, body })
    }

    async fn connect(&mut self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .with_context(|| format!("connect to {}", self.target.authority))?;
        // Small request/response pairs: do not let Nagle hold them back.
        stream.set_nodelay(true).ok();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP/1 handshake")?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.connects += 1;
        Ok(sender)
    }
}

/// One request on a fresh connection (admin calls, readiness probes).
pub async fn once(
    url: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    timeout: Duration,
) -> anyhow::Result<Response> {
    let mut conn = Conn::new(Target::parse(url)?, timeout);
    conn.send(method, path, body, &[]).await
}

/// What [`encode_segment`] escapes: everything but the RFC 3986 unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encode a path segment (toy names are plain words, but a name from `--toys` may not be).
pub fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("127.0.0.1", 8080, "127.0.0.1:8080"));
        let t = Target::parse("http://localhost/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 80));
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert!(Target::parse("https://127.0.0.1:8080").is_err());
        assert!(Target::parse("127.0.0.1:8080").is_err());
        assert!(Target::parse("http://127.0.0.1:8080/products").is_err());
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("Tux"), "Tux");
        assert_eq!(encode_segment("Teddy Bear/2"), "Teddy%20Bear%2F2");
    }

    #[tokio::test]
    async fn connection_refused_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = Conn::new(Target::parse(&format!("http://127.0.0.1:{port}")).unwrap(), Duration::from_secs(2));
        assert!(c.send(Method::GET, "/", None, &[]).await.is_err());
    }
}
