//! Request bodies on their way to the storage: a stream of byte chunks that fails when the
//! client sends nothing for too long, and, for a chunk with a `Content-Range`, when the body
//! is longer or shorter than the range it announced. What the storage did not read can be
//! drained afterwards, so that a client still sending reads the error answer instead of a
//! reset connection.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::storage::ByteStream;

/// `body` as a [`ByteStream`] whose next chunk must arrive within `idle` (a
/// [`io::ErrorKind::TimedOut`] error otherwise), holding `len` bytes when given (an
/// [`io::ErrorKind::InvalidData`] error otherwise: after the first `len` bytes when it is
/// longer, at its end when it is shorter).
/// The [`Rest`] is what the stream leaves unread, for [`Rest::drain`].
pub(crate) fn stream(body: Body, idle: Duration, len: Option<u64>) -> (ByteStream, Rest) {
    let checked = Arc::new(Mutex::new(Checked {
        inner: body.into_data_stream(),
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
        armed: false,
        len,
        seen: 0,
        error_next: None,
        done: false,
    }));
    (Box::pin(Shared(checked.clone())), Rest(checked))
}

type Inner = Checked<axum::body::BodyDataStream>;

/// The stream handed to the storage (the lock is only ever taken for one poll).
struct Shared(Arc<Mutex<Inner>>);

impl Stream for Shared {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner.poll_next_unpin(cx)
    }
}

/// What is left of a request body once the storage is done with it.
pub(crate) struct Rest(Arc<Mutex<Inner>>);

impl Rest {
    /// Read and drop what the client still sends, up to `cap` bytes (and as long as it keeps
    /// sending), so it gets to read the answer.
    pub(crate) async fn drain(self, cap: u64) {
        let mut n = 0u64;
        while n <= cap {
            let next = std::future::poll_fn(|cx| {
                let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
                inner.poll_next_unpin(cx)
            })
            .await;
            match next {
                Some(Ok(b)) => n += b.len() as u64,
                _ => return,
            }
        }
    }
}

struct Checked<S> {
    inner: S,
    idle: Duration,
    /// Armed when a poll finds no chunk, from then until one arrives.
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
    len: Option<u64>,
    seen: u64,
    /// The error after a chunk cut to the announced length.
    error_next: Option<io::Error>,
    done: bool,
}

impl<S> Stream for Checked<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(e) = this.error_next.take() {
            this.done = true;
            return Poll::Ready(Some(Err(e)));
        }
        let next = match this.inner.poll_next_unpin(cx) {
            Poll::Ready(next) => {
                this.armed = false;
                next
            }
            Poll::Pending => {
                if !this.armed {
                    this.armed = true;
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.timer.as_mut().reset(deadline);
                }
                ready!(this.timer.as_mut().poll(cx));
                this.done = true;
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client sent nothing for {} s (after {} bytes)",
                        this.idle.as_secs_f64(),
                        this.seen
                    ),
                ))));
            }
        };
        match next {
            Some(Ok(mut b)) => {
                this.seen += b.len() as u64;
                if let Some(len) = this.len.filter(|&len| this.seen > len) {
                    // Keep what the range announced, refuse the rest.
                    let keep = b.len() as u64 - (this.seen - len);
                    if keep > 0 {
                        b.truncate(keep as usize);
                        this.error_next = Some(longer(len));
                        return Poll::Ready(Some(Ok(b)));
                    }
                    this.done = true;
                    return Poll::Ready(Some(Err(longer(len))));
                }
                Poll::Ready(Some(Ok(b)))
            }
            Some(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            None => {
                this.done = true;
                match this.len {
                    Some(len) if this.seen < len => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the body ended after {} bytes, but its Content-Range announced {len}",
                            this.seen
                        ),
                    )))),
                    _ => Poll::Ready(None),
                }
            }
        }
    }
}

fn longer(len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the body is longer than the {len} bytes its Content-Range announced"),
    )
}
