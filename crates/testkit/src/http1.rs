//! The accept loop the testkit's small HTTP/1.1 servers (the fault proxy, the token
//! service) share.

use std::error::Error;
use std::future::Future;

use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Accepts connections on `listener` (bound and set non-blocking by the caller) and
/// serves each one as HTTP/1.1 with `handle` on its own task, until `stopped` fires.
/// A failed accept is skipped; a connection's error ends only that connection.
/// Must run inside a tokio runtime.
pub(crate) async fn serve_until<F, Fut, B, E>(
    listener: std::net::TcpListener,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            acc = listener.accept() => {
                let Ok((sock, _)) = acc else { continue };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), service_fn(handle))
                        .await;
                });
            }
        }
    }
}
