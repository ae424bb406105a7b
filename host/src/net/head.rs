//! The request-head guard: every request head is read and checked here before hyper sees it,
//! so that a malformed or over-large request gets toystore's JSON error envelope instead of
//! hyper's own empty 400/414/431, and a client that never finishes its head is cut.
//!
//! [`Guarded`] wraps a connection's socket. Its read side follows HTTP/1.1 framing: it collects
//! each request head whole, checks it ([`check`]), and only then hands it (and the body bytes
//! after it, counted by `Content-Length` or the chunked encoding) to hyper. A head that fails
//! the check is never handed over: hyper sees the end of the stream, finishes the responses it
//! owes and stops, and the server then writes the [`Rejection`] itself and closes
//! ([`Rejection::write_to`]). The write side passes through untouched.
//!
//! The limits are stricter than hyper's own, so hyper never has a reason to answer by itself.

use std::io;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::net::reply;

/// Longest request head (request line and headers): beyond it, 431.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Longest request target: beyond it, 414.
pub const URI_LIMIT: usize = 8 * 1024;
/// Most header fields in one head: beyond it, 431.
pub const MAX_HEADERS: usize = 100;
/// Time a client has to send a whole head once its first byte arrived: then 408 and close.
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a head was refused: the status and message of the JSON error written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// Write the rejection as a complete HTTP/1.1 response (the JSON envelope of
    /// [`reply::error`]) and close the connection.
    pub async fn write_to(&self, stream: &mut TcpStream) -> io::Result<()> {
        let response = reply::error(self.status, self.message.clone());
        let body = response.into_body().collect().await.map_err(io::Error::other)?.to_bytes();
        let head = format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.status,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    }
}

/// Check one complete head (`head` holds exactly its bytes) and say how its body is framed.
pub fn check(head: &[u8]) -> Result<Framing, Rejection> {
    let bad = |message: String| Rejection::new(StatusCode::BAD_REQUEST, message);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head".into())),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {MAX_HEADERS} header fields"),
            ))
        }
        Err(e) => return Err(bad(format!("malformed request head: {e}"))),
    }
    let target = request.path.unwrap_or("");
    if target.len() > URI_LIMIT {
        return Err(Rejection::new(StatusCode::URI_TOO_LONG, format!("request target longer than {URI_LIMIT} bytes")));
    }
    if head.len() > HEAD_LIMIT {
        return Err(too_large());
    }
    if let Err(e) = target.parse::<http::Uri>() {
        return Err(bad(format!("invalid request target: {e}")));
    }
    if request.method.is_some_and(|m| http::Method::from_bytes(m.as_bytes()).is_err()) {
        return Err(bad("invalid method".into()));
    }
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in request.headers.iter() {
        if http::HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            return Err(bad(format!("invalid header name {:?}", header.name)));
        }
        if http::HeaderValue::from_bytes(header.value).is_err() {
            return Err(bad(format!("invalid value of header {}", header.name)));
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok().map(str::trim);
            let parsed = value
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad("invalid Content-Length".into()))?;
            if length.is_some_and(|previous| previous != parsed) {
                return Err(bad("conflicting Content-Length headers".into()));
            }
            length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = std::str::from_utf8(header.value).map_err(|_| bad("invalid Transfer-Encoding".into()))?;
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        }
    }
    match (chunked, length) {
        (Some(_), Some(_)) => Err(bad("both Transfer-Encoding and Content-Length".into())),
        (Some(true), None) => Ok(Framing::Chunked(Chunk::Size)),
        (Some(false), None) => Err(bad("a Transfer-Encoding that does not end in chunked".into())),
        (None, Some(n)) if n > 0 => Ok(Framing::Length(n)),
        (None, _) => Ok(Framing::Head),
    }
}

/// The checks of [`check`] that still apply to a request that never was bytes: one a component
/// hands to a service of the same host in process (`local_calls = "direct"`, see
/// [`crate::net::directory`]). It was built through the `http` types, so its method, target and header
/// names and values are already well formed; what is left are the size limits, measured as
/// the head HTTP/1.1 would have sent (origin-form target).
pub fn check_parts(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap) -> Result<(), Rejection> {
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    if target > URI_LIMIT {
        return Err(Rejection::new(StatusCode::URI_TOO_LONG, format!("request target longer than {URI_LIMIT} bytes")));
    }
    if headers.len() > MAX_HEADERS {
        return Err(Rejection::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {MAX_HEADERS} header fields"),
        ));
    }
    // `METHOD target HTTP/1.1\r\n`, `name: value\r\n` each, and the blank line.
    let line = method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = headers.iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + 2).sum();
    if line + fields + 2 > HEAD_LIMIT {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> Rejection {
    Rejection::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, format!("request head longer than {HEAD_LIMIT} bytes"))
}

/// Where the read side is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Collecting the next head.
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// The chunked encoding was malformed: pass everything on and let hyper fail the request
    /// (it is already being answered, so hyper writes no error response of its own).
    Passthrough,
}

/// Position in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// At the start of a chunk-size line.
    Size,
    /// In a chunk-size line, after its first digit; `extension` once past the digits.
    SizeDigits { size: u64, extension: bool },
    /// This many data bytes of the current chunk are still to come.
    Data(u64),
    /// The line end after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk; `empty` while the current line has no bytes yet.
    Trailer { empty: bool },
}

impl Chunk {
    /// Advance over one byte outside chunk data; `None` when the encoding is malformed,
    /// `Some(None)` when the body ended with this byte.
    fn step(self, byte: u8) -> Option<Option<Chunk>> {
        use Chunk::*;
        let next = match (self, byte) {
            (Size, b) => Chunk::SizeDigits { size: hex(b)?, extension: false },
            (SizeDigits { size, extension: false }, b) if hex(b).is_some() => {
                SizeDigits { size: size.checked_mul(16)?.checked_add(hex(b)?)?, extension: false }
            }
            (SizeDigits { size, .. }, b'\n') => {
                if size == 0 {
                    Trailer { empty: true }
                } else {
                    Data(size)
                }
            }
            (SizeDigits { size, .. }, _) => SizeDigits { size, extension: true },
            (DataEnd, b'\n') => Size,
            (DataEnd, b'\r') => DataEnd,
            (DataEnd, _) => return None,
            (Trailer { empty: true }, b'\n') => return Some(None),
            (Trailer { .. }, b'\n') => Trailer { empty: true },
            (Trailer { empty }, b'\r') => Trailer { empty },
            (Trailer { .. }, _) => Trailer { empty: false },
            (Data(_), _) => return None,
        };
        Some(Some(next))
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// A connection's socket with the head guard on its read side.
pub struct Guarded {
    stream: TcpStream,
    framing: Framing,
    /// Bytes read from the socket, not yet checked.
    raw: BytesMut,
    /// Checked bytes for hyper.
    ready: BytesMut,
    /// Runs while a head is partly received.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set once a head is refused; hyper then only sees the end of the stream.
    rejection: Option<Rejection>,
    /// The socket reached its end.
    eof: bool,
}

impl Guarded {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            framing: Framing::Head,
            raw: BytesMut::with_capacity(8 * 1024),
            ready: BytesMut::new(),
            deadline: None,
            rejection: None,
            eof: false,
        }
    }

    /// The socket back, with the refused head's rejection if there was one.
    pub fn into_parts(self) -> (TcpStream, Option<Rejection>) {
        (self.stream, self.rejection)
    }

    /// Move what can be checked from `raw` to `ready` (or refuse a head).
    fn process(&mut self) {
        while !self.raw.is_empty() && self.rejection.is_none() {
            match self.framing {
                Framing::Head => {
                    let Some(end) = head_end(&self.raw) else {
                        if self.raw.len() > HEAD_LIMIT {
                            self.rejection = Some(if request_line_longer_than_uri_limit(&self.raw) {
                                Rejection::new(StatusCode::URI_TOO_LONG, format!("request target longer than {URI_LIMIT} bytes"))
                            } else {
                                too_large()
                            });
                        } else if self.deadline.is_none() && !self.eof {
                            self.deadline = Some(Box::pin(tokio::time::sleep(HEAD_READ_TIMEOUT)));
                        }
                        return;
                    };
                    self.deadline = None;
                    match check(&self.raw[..end]) {
                        Ok(framing) => {
                            self.framing = framing;
                            self.ready.extend_from_slice(&self.raw.split_to(end));
                        }
                        Err(rejection) => self.rejection = Some(rejection),
                    }
                }
                Framing::Length(remaining) => {
                    let take = remaining.min(self.raw.len() as u64);
                    self.ready.extend_from_slice(&self.raw.split_to(take as usize));
                    self.framing = if take == remaining { Framing::Head } else { Framing::Length(remaining - take) };
                }
                Framing::Chunked(Chunk::Data(remaining)) => {
                    let take = remaining.min(self.raw.len() as u64);
                    self.ready.extend_from_slice(&self.raw.split_to(take as usize));
                    self.framing =
                        Framing::Chunked(if take == remaining { Chunk::DataEnd } else { Chunk::Data(remaining - take) });
                }
                Framing::Chunked(chunk) => {
                    let byte = self.raw[0];
                    self.ready.extend_from_slice(&self.raw.split_to(1));
                    self.framing = match chunk.step(byte) {
                        Some(Some(next)) => Framing::Chunked(next),
                        Some(None) => Framing::Head,
                        None => Framing::Passthrough,
                    };
                }
                Framing::Passthrough => {
                    let all = self.raw.split();
                    self.ready.extend_from_slice(&all);
                }
            }
        }
    }
}

/// The length of the head at the start of `buf` (through its blank line), if complete.
/// Leading empty lines (allowed before a request line) are part of it.
fn head_end(buf: &[u8]) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    let mut i = 0;
    while let Some(nl) = rest[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        // A blank line: "\n\n" or "\n\r\n".
        if rest.get(at + 1) == Some(&b'\n') {
            return Some(start + at + 2);
        }
        if rest.get(at + 1) == Some(&b'\r') && rest.get(at + 2) == Some(&b'\n') {
            return Some(start + at + 3);
        }
        i = at + 1;
    }
    None
}

/// Whether the request line in `buf` (complete or not) already has a target over the limit.
fn request_line_longer_than_uri_limit(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    line.split(|&b| b == b' ').nth(1).is_some_and(|target| target.len() > URI_LIMIT)
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            // Checked bytes first: they may end a request that came before a refused head.
            if !this.ready.is_empty() {
                let n = this.ready.len().min(out.remaining());
                out.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.rejection.is_some() {
                // The end of the stream, as far as hyper is concerned.
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Whatever is left (an unfinished head) goes to hyper, which fails it silently:
                // the client is gone.
                let rest = this.raw.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready = rest;
                continue;
            }
            if let Some(deadline) = this.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    this.rejection = Some(Rejection::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("request head not received within {HEAD_READ_TIMEOUT:?}"),
                    ));
                    continue;
                }
            }
            let mut chunk = [0u8; 8 * 1024];
            let mut buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf))?;
            if buf.filled().is_empty() {
                this.eof = true;
            } else {
                this.raw.extend_from_slice(buf.filled());
            }
            this.process();
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_handed_over_in_process_meets_the_same_size_limits() {
        let ok = |uri: &str, headers: &http::HeaderMap| check_parts(&http::Method::GET, &uri.parse().unwrap(), headers);
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "127.0.0.1:8081".parse().unwrap());
        assert_eq!(ok("http://127.0.0.1:8081/products/Tux", &headers), Ok(()));
        let long = format!("http://127.0.0.1:8081/{}", "a".repeat(URI_LIMIT));
        assert_eq!(ok(&long, &headers).unwrap_err().status, StatusCode::URI_TOO_LONG);
        let mut many = headers.clone();
        for i in 0..MAX_HEADERS {
            many.insert(http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(), "1".parse().unwrap());
        }
        assert_eq!(ok("/x", &many).unwrap_err().status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let mut big = headers.clone();
        big.insert("x-big", "v".repeat(HEAD_LIMIT).parse().unwrap());
        assert_eq!(ok("/x", &big).unwrap_err().status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn framing_of_good_heads() {
        assert_eq!(check(b"GET /products/Tux HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(Framing::Head));
        assert_eq!(check(b"POST /orders HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"), Ok(Framing::Length(5)));
        assert_eq!(check(b"POST /orders HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(Framing::Chunked(Chunk::Size)));
    }

    #[test]
    fn bad_heads_get_their_status() {
        let status = |head: &[u8]| check(head).unwrap_err().status;
        assert_eq!(status(b"GET /x HTTP/1.1\r\nBad\x01Name: v\r\n\r\n"), 400);
        assert_eq!(status(b"POST /orders HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
        assert_eq!(status(b"POST /orders HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(status(b"POST /orders HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(URI_LIMIT + 1));
        assert_eq!(status(long.as_bytes()), 414);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()), 431);
    }

    #[test]
    fn chunked_bodies_are_followed_to_their_end() {
        let body = b"5;ext=1\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n";
        let mut state = Chunk::Size;
        let mut i = 0;
        let mut ended_at = None;
        while i < body.len() {
            if let Chunk::Data(n) = state {
                i += n as usize;
                state = Chunk::DataEnd;
                continue;
            }
            match state.step(body[i]).expect("well-formed") {
                Some(next) => state = next,
                None => {
                    ended_at = Some(i + 1);
                    break;
                }
            }
            i += 1;
        }
        assert_eq!(ended_at, Some(body.len()));
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"\r\nGET / HTTP/1.1\n\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
