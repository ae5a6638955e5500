//! One client connection: its I/O watched for progress, its requests counted, and a
//! watchdog that closes it when the client stalls.
//!
//! What counts as a stall (each with its own timeout, see [`crate::Timeouts`]):
//! - *idle*: no request in flight and no byte received for `idle` (a keep-alive connection
//!   nobody uses, or one that never sent anything);
//! - *header*: no request in flight, the first byte of the next one arrived, and its head is
//!   still not complete `header` later (a client trickling its headers);
//! - *write*: the server has bytes to send and the client takes none of them for `body` (a
//!   client that asked for a blob and reads nothing).
//!
//! A request body that sends nothing for `body` is failed by its handler (408), which ends
//! the request; the server's own work (hashing, disk) is never a stall. Timestamps are
//! atomics written by the I/O wrapper and read by the watchdog, which ticks a few times per
//! shortest timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::Timeouts;

/// "Not set", for the timestamps below.
const NONE: u64 = u64::MAX;

/// What the I/O wrapper and the request counter tell the watchdog. Times are milliseconds
/// since the connection was accepted.
#[derive(Debug)]
pub(crate) struct Watch {
    base: Instant,
    in_flight: AtomicUsize,
    /// When the last request in flight ended (or the connection started).
    idle_since: AtomicU64,
    /// The first byte received since then.
    head_since: AtomicU64,
    /// Since when a write has been waiting on the client.
    write_blocked_since: AtomicU64,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    Idle,
    Header,
    Write,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stall::Idle => "idle",
            Stall::Header => "request head not complete in time",
            Stall::Write => "client reads nothing",
        })
    }
}

impl Watch {
    pub(crate) fn new() -> Arc<Watch> {
        Arc::new(Watch {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            write_blocked_since: AtomicU64::new(NONE),
        })
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// A request began; it is in flight until the guard (kept by its response body) drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn read_progress(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn write_progress(&self) {
        if self.write_blocked_since.load(Ordering::Relaxed) != NONE {
            self.write_blocked_since.store(NONE, Ordering::Relaxed);
        }
    }

    fn write_blocked(&self) {
        if self.write_blocked_since.load(Ordering::Relaxed) == NONE {
            self.write_blocked_since
                .store(self.now(), Ordering::Relaxed);
        }
    }

    /// The stall the connection is in at this moment, if any.
    fn check(&self, t: &Timeouts) -> Option<Stall> {
        let now = self.now();
        let past = |since: u64, d: Duration| {
            since != NONE && now.saturating_sub(since) >= d.as_millis() as u64
        };
        if past(self.write_blocked_since.load(Ordering::SeqCst), t.body) {
            return Some(Stall::Write);
        }
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::SeqCst);
        if head != NONE {
            return past(head, t.header).then_some(Stall::Header);
        }
        past(self.idle_since.load(Ordering::SeqCst), t.idle).then_some(Stall::Idle)
    }

    /// Resolves with the stall that ends the connection.
    pub(crate) async fn stalled(&self, t: &Timeouts) -> Stall {
        let shortest = t.header.min(t.idle).min(t.body);
        let tick = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if let Some(s) = self.check(t) {
                return s;
            }
        }
    }
}

/// A request in flight (see [`Watch::begin`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let w = &self.0;
        // The idle clock restarts before the count says idle.
        w.idle_since.store(w.now(), Ordering::SeqCst);
        w.head_since.store(NONE, Ordering::SeqCst);
        w.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight until it is sent (or dropped).
pub(crate) struct Guarded<B> {
    pub(crate) inner: B,
    pub(crate) _in_flight: InFlight,
}

impl<B> HttpBody for Guarded<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's I/O, reporting progress to its [`Watch`].
pub(crate) struct Watched<T> {
    pub(crate) io: T,
    pub(crate) watch: Arc<Watch>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read_progress();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn note<R>(&self, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => self.watch.write_blocked(),
            Poll::Ready(_) => self.watch.write_progress(),
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.note(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_millis(300),
            idle: Duration::from_millis(500),
            body: Duration::from_millis(400),
        }
    }

    /// Each stall is reported after its own timeout, and only while it lasts.
    #[tokio::test(start_paused = true)]
    async fn stalls_by_their_timeouts() {
        let t = timeouts();
        let w = Watch::new();
        assert_eq!(w.check(&t), None);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(w.check(&t), None);
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(w.check(&t), Some(Stall::Idle));
        // A head starts arriving: the header clock runs, from its first byte.
        w.read_progress();
        assert_eq!(w.check(&t), None);
        tokio::time::advance(Duration::from_millis(301)).await;
        w.read_progress();
        assert_eq!(w.check(&t), Some(Stall::Header));
        // A request in flight (the server working, the client waiting) is never idle.
        let req = w.begin();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(w.check(&t), None);
        // But a response the client does not read is a stall.
        w.write_blocked();
        tokio::time::advance(Duration::from_millis(399)).await;
        assert_eq!(w.check(&t), None);
        w.write_progress();
        w.write_blocked();
        tokio::time::advance(Duration::from_millis(399)).await;
        assert_eq!(w.check(&t), None, "progress restarted the clock");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(w.check(&t), Some(Stall::Write));
        w.write_progress();
        // The request ends: idle from then on.
        drop(req);
        assert_eq!(w.check(&t), None);
        tokio::time::advance(Duration::from_millis(501)).await;
        assert_eq!(w.check(&t), Some(Stall::Idle));
    }
}
