//! The timeouts a guest puts on its outgoing calls (`wasi:http` request options), applied the
//! same way on both paths a call can take: through the pooled client ([`super::outgoing`]) and
//! handed over in process ([`super::directory`]). Kept apart from both so neither imports the
//! other for them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What a sent request resolves to: the response, and a future that drives its I/O (if any).
pub type SendResult = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;
/// The limit on the wait for a response head: the guest's connect and first-byte timeouts
/// together (connecting happens inside the pool, so the two cannot be told apart).
pub fn head_timeout(options: &RequestOptions) -> Option<Duration> {
    match (options.connect_timeout, options.first_byte_timeout) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
    }
}

/// `body`, failing when its next frame takes longer than `limit` (the guest's between-bytes
/// timeout), if there is one.
pub fn with_frame_timeout(body: WasiBody, limit: Option<Duration>) -> WasiBody {
    match limit {
        Some(limit) => FrameTimeout::new(body, limit).boxed_unsync(),
        None => body,
    }
}

/// A response body that fails when the next frame takes longer than `limit`.
///
/// The timer is armed only when a frame is not ready, from the moment the wait begins: a body
/// whose frames are all at hand (every small reply read whole, see
/// `wasm::instance::BUFFERED_BODY_LIMIT`) never touches it. Arming a tokio timer takes the timer
/// wheel's lock and, whenever the new deadline is the earliest, writes the runtime's eventfd
/// to wake its driver — even from the runtime's own thread. Re-armed on every frame, as it
/// was, that was 1.5 of the 3.9 eventfd writes per cache miss on the frontend's thread
/// (`strace -c`, `local_calls = "direct"`; req/s did not change measurably).
struct FrameTimeout {
    inner: WasiBody,
    limit: Duration,
    /// The running wait's deadline; `None` while no wait is running.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `deadline` bounds the wait now running (a frame since ends it).
    waiting: bool,
}

impl FrameTimeout {
    fn new(inner: WasiBody, limit: Duration) -> Self {
        Self { inner, limit, deadline: None, waiting: false }
    }
}

impl Body for FrameTimeout {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame);
        }
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.limit;
            match &mut this.deadline {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => this.deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match this.deadline.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::SinkExt;

    type Frames = futures::channel::mpsc::Sender<Result<Frame<Bytes>, Error>>;

    /// A body fed frame by frame through a channel.
    fn fed_body() -> (Frames, WasiBody) {
        let (frames, rx) = futures::channel::mpsc::channel(8);
        (frames, http_body_util::StreamBody::new(rx).boxed_unsync())
    }

    #[tokio::test(start_paused = true)]
    async fn each_wait_for_a_frame_is_bounded_not_the_whole_body() {
        let limit = Duration::from_millis(100);
        let (mut frames, body) = fed_body();
        let mut body = with_frame_timeout(body, Some(limit));
        let feeder = tokio::spawn(async move {
            // Five frames 60 ms apart: 300 ms in all, each wait well within the limit.
            for i in 0..5u8 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                frames.send(Ok(Frame::data(Bytes::from(vec![i])))).await.expect("body alive");
            }
            // Then nothing, with the body still open.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        for i in 0..5u8 {
            let frame = body.frame().await.expect("a frame").expect("not timed out");
            assert_eq!(frame.into_data().ok(), Some(Bytes::from(vec![i])));
        }
        let stalled = tokio::time::Instant::now();
        let timed_out = body.frame().await.expect("an end");
        assert!(matches!(timed_out, Err(Error::ConnectionReadTimeout)), "{timed_out:?}");
        assert_eq!(stalled.elapsed(), limit, "the wait after the last frame is what timed out");
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn frames_at_hand_arm_no_timer() {
        let mut body = FrameTimeout::new(crate::net::body::full_body(Bytes::from_static(b"{}")), Duration::from_millis(100));
        let frame = body.frame().await.expect("a frame").expect("not timed out");
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"{}")));
        assert!(body.frame().await.is_none(), "the end");
        assert!(body.deadline.is_none(), "a body with its frames at hand armed a timer");
    }
}
