//! The bridge between synchronous callers and the async client: a [`Runtime`] drives the
//! client's futures for code that is not async itself (the [`hoist_image::Image`] trait
//! methods of registry sources, a synchronous program).
//!
//! It is either a runtime of its own, created on first use and shut down when the last
//! clone is dropped, or a handle to the caller's. [`Runtime::block_on`] works from any
//! thread: a plain thread, a `spawn_blocking` thread, or a task of a runtime (where
//! tokio's own `block_on` panics: there it steps out with `block_in_place` on a
//! multi-threaded runtime, or onto a helper thread on a current-thread one).

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{Error, Result};

/// Worker threads of a runtime of its own: the network I/O of a few parallel transfers.
/// CPU work (compression, hashing) runs on its blocking threads, not on these.
pub const DEFAULT_WORKERS: usize = 2;

/// A runtime to drive the client from synchronous code. Cheap to clone; clones share it.
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    /// Created on first use, shut down when the last clone goes.
    Own(OnceLock<tokio::runtime::Runtime>),
    /// The caller's.
    Borrowed(Handle),
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Runtime {
    /// A runtime of its own ([`DEFAULT_WORKERS`] workers), created when first needed.
    pub fn new() -> Runtime {
        Runtime {
            inner: Arc::new(Inner::Own(OnceLock::new())),
        }
    }

    /// The caller's runtime, through a handle.
    pub fn from_handle(handle: Handle) -> Runtime {
        Runtime {
            inner: Arc::new(Inner::Borrowed(handle)),
        }
    }

    /// The runtime the calling code runs on (an async function's), if any.
    pub fn current() -> Option<Runtime> {
        Handle::try_current().ok().map(Runtime::from_handle)
    }

    /// A handle to spawn on (starting the runtime of its own if needed).
    pub fn handle(&self) -> Result<Handle> {
        match &*self.inner {
            Inner::Borrowed(h) => Ok(h.clone()),
            Inner::Own(cell) => {
                if let Some(rt) = cell.get() {
                    return Ok(rt.handle().clone());
                }
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(DEFAULT_WORKERS)
                    .thread_name("hoist-io")
                    .enable_all()
                    .build()
                    .map_err(|e| Error::io("starting the async runtime", e))?;
                // Another thread may have won the race: its runtime is the one kept.
                let _ = cell.set(rt);
                Ok(cell.get().expect("set above").handle().clone())
            }
        }
    }

    /// Run `f` to completion and return its output, from any thread (see the module
    /// docs). Fails only when a runtime of its own cannot be started.
    pub fn block_on<F>(&self, f: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let handle = self.handle()?;
        Ok(match Handle::try_current().map(|c| c.runtime_flavor()) {
            // Not inside a runtime: drive it here.
            Err(_) => handle.block_on(f),
            // A task or blocking thread of a multi-threaded runtime: step out of it.
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| handle.block_on(f)),
            // A current-thread runtime cannot lend its only thread: use another.
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| handle.block_on(f))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Inner::Own(cell) = self
            && let Some(rt) = cell.take()
        {
            // Dropping a runtime waits for its blocking threads, which tokio forbids
            // inside async code (the last clone may go in a task): there, let it go.
            if Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                drop(rt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer() -> u32 {
        tokio::task::yield_now().await;
        42
    }

    #[test]
    fn from_a_plain_thread_it_starts_its_own() {
        let rt = Runtime::new();
        assert_eq!(rt.block_on(answer()).unwrap(), 42);
        // Clones share it.
        let again = rt.clone();
        assert_eq!(again.block_on(answer()).unwrap(), 42);
        drop(rt);
        drop(again);
    }

    #[test]
    fn from_inside_a_current_thread_runtime_it_does_not_panic() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async {
            let rt = Runtime::new();
            assert_eq!(rt.block_on(answer()).unwrap(), 42);
            // The caller's own runtime, borrowed.
            let borrowed = Runtime::current().unwrap();
            assert_eq!(borrowed.block_on(answer()).unwrap(), 42);
            // The last clone of a runtime of its own dropped inside async code.
            drop(rt);
        });
    }

    #[test]
    fn from_inside_a_multi_thread_runtime_it_does_not_panic() {
        let outer = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async {
            let rt = Runtime::new();
            let borrowed = Runtime::current().unwrap();
            let t = tokio::spawn(async move {
                let a = rt.block_on(answer()).unwrap();
                let b = borrowed.block_on(answer()).unwrap();
                drop(rt);
                a + b
            });
            assert_eq!(t.await.unwrap(), 84);
            // And from a blocking thread.
            let rt = Runtime::current().unwrap();
            let n = tokio::task::spawn_blocking(move || rt.block_on(answer()).unwrap())
                .await
                .unwrap();
            assert_eq!(n, 42);
        });
    }
}
