//! The upload sessions a push opened and has not finished. When the push ends — failed,
//! or with sessions it abandoned to start over — each one left is cancelled with a
//! `DELETE` on its URL, so the registry frees what it holds (on a full disk, the space
//! the next try needs) instead of keeping it until its own expiry.
//!
//! A push stops its other uploads by aborting their tasks, which can happen at any await
//! — and not at once: a task another worker thread is polling runs on to its next await.
//! Three rules keep every session known despite that: the `POST` that opens one runs on a
//! task of its own ([`Sessions::open`]), so it is recorded even when its caller is gone;
//! [`Sessions::cancel_all`] first closes the record, so no upload starts and no session
//! opens after it began ([`Sessions::busy`] and [`Sessions::open`] fail); and it then waits
//! until no upload is busy (the aborted ones are dropped), so no request of theirs reaches
//! a session after its `DELETE`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::watch;
use url::Url;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::transport::{Body, Client, push_scope};

/// How long [`Sessions::cancel_all`] waits for aborted uploads to be dropped. They are
/// dropped at their next poll, well within this; it only bounds a stuck runtime.
const SETTLE: Duration = Duration::from_secs(10);

/// One session, as [`Sessions`] knows it.
pub(crate) type SessionId = u64;

/// See the [module docs](self). Cheap to clone; clones share the record.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    open: Arc<Mutex<Open>>,
    /// Uploads (and session-opening requests) in progress, and whether the record is
    /// closed; one lock, so a check and an increment are one step.
    busy: Arc<watch::Sender<Activity>>,
}

#[derive(Debug, Default)]
struct Activity {
    busy: usize,
    closed: bool,
}

#[derive(Debug, Default)]
struct Open {
    next: SessionId,
    by_id: HashMap<SessionId, (Repository, Url)>,
}

/// Held while an upload may talk to a session; dropped with it (also when aborted).
#[derive(Debug)]
pub(crate) struct Busy(Arc<watch::Sender<Activity>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|a| a.busy -= 1);
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            open: Arc::default(),
            busy: Arc::new(watch::channel(Activity::default()).0),
        }
    }
}

impl Sessions {
    /// Mark an upload in progress until the guard drops. Fails once [`Sessions::cancel_all`]
    /// began: the push is over, nothing may start.
    pub(crate) fn busy(&self) -> Result<Busy> {
        let started = self.busy.send_if_modified(|a| {
            if a.closed {
                return false;
            }
            a.busy += 1;
            true
        });
        if !started {
            return Err(Error::io(
                "upload session",
                std::io::Error::other("the push is over: its sessions are being cancelled"),
            ));
        }
        Ok(Busy(self.busy.clone()))
    }

    /// Run `post`, a request that may open a session in `repo` (answering its URL), to
    /// completion on a task of its own: the session is recorded even if the caller is
    /// aborted meanwhile. Returns `post`'s value and the session's id.
    pub(crate) async fn open<T, F>(
        &self,
        repo: &Repository,
        post: F,
    ) -> Result<(T, Option<SessionId>)>
    where
        T: Send + 'static,
        F: Future<Output = Result<(T, Option<Url>)>> + Send + 'static,
    {
        let busy = self.busy()?;
        let me = self.clone();
        let repo = repo.clone();
        tokio::spawn(async move {
            let _busy = busy;
            let (value, url) = post.await?;
            let id = url.map(|u| me.record(repo, u));
            Ok((value, id))
        })
        .await
        .map_err(|e| Error::io("upload session", std::io::Error::other(e.to_string())))?
    }

    /// Record a session opened elsewhere (by an earlier run) that an upload continues.
    pub(crate) fn adopt(&self, repo: &Repository, url: &Url) -> SessionId {
        self.record(repo.clone(), url.clone())
    }

    fn record(&self, repo: Repository, url: Url) -> SessionId {
        let mut o = self.open.lock().expect("sessions lock");
        o.next += 1;
        let id = o.next;
        o.by_id.insert(id, (repo, url));
        id
    }

    /// The session continues at `url` (the `Location` of its last answer).
    pub(crate) fn moved(&self, id: SessionId, url: &Url) {
        if let Some(e) = self.open.lock().expect("sessions lock").by_id.get_mut(&id) {
            e.1 = url.clone();
        }
    }

    /// The session is over (committed, or cancelled by the registry).
    pub(crate) fn closed(&self, id: SessionId) {
        self.open.lock().expect("sessions lock").by_id.remove(&id);
    }

    /// Cancel one session now (it was abandoned for a new one): best effort.
    pub(crate) async fn cancel(&self, client: &Client, id: SessionId) {
        let gone = self.open.lock().expect("sessions lock").by_id.remove(&id);
        if let Some((repo, url)) = gone {
            delete(client, &repo, url).await;
        }
    }

    /// Cancel every session still open: close the record (no upload starts after this),
    /// wait for the uploads in progress to end (aborted ones are dropped), then `DELETE`
    /// each session's URL. Best effort: a registry that
    /// already forgot a session answers 404, one that cannot be reached keeps it until
    /// its own expiry. Returns how many were left open.
    pub(crate) async fn cancel_all(&self, client: &Client) -> usize {
        self.busy.send_modify(|a| a.closed = true);
        let mut rx = self.busy.subscribe();
        if tokio::time::timeout(SETTLE, rx.wait_for(|a| a.busy == 0))
            .await
            .is_err()
        {
            tracing::warn!("uploads still running after {SETTLE:?}; cancelling their sessions");
        }
        let open: Vec<(Repository, Url)> = {
            let mut o = self.open.lock().expect("sessions lock");
            o.by_id.drain().map(|(_, v)| v).collect()
        };
        let n = open.len();
        for (repo, url) in open {
            delete(client, &repo, url).await;
        }
        n
    }
}

/// `DELETE` an upload session; a 404 (the registry forgot it already) is fine.
async fn delete(client: &Client, repo: &Repository, url: Url) {
    let r = client
        .send(
            repo,
            &push_scope(repo),
            Method::DELETE,
            url,
            &[],
            Body::Empty,
        )
        .await;
    let e = match r {
        Ok(r) if matches!(r.status(), 200 | 202 | 204 | 404) => return,
        Ok(r) => r.into_error().await,
        Err(e) => e,
    };
    tracing::debug!(error = %e, "upload session not cancelled");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once the record is closed nothing starts: an upload cannot mark itself busy and a
    /// session-opening request is never sent (a task aborted late cannot open a session
    /// that nobody will cancel).
    #[tokio::test]
    async fn nothing_opens_after_cancel_all_began() {
        let s = Sessions::default();
        let repo = Repository::new("127.0.0.1:9", "r").unwrap();
        let held = s.busy().expect("open record");
        let c = Client::new().unwrap();
        let cancel = {
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move { s.cancel_all(&c).await })
        };
        // cancel_all closes at once, then waits for the busy upload to end.
        tokio::time::timeout(Duration::from_secs(5), async {
            while s.busy().is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the record closes");
        let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = sent.clone();
        let r = s
            .open(&repo, async move {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(((), None))
            })
            .await;
        let e = r.expect_err("no session opens once cancelling began");
        assert!(e.to_string().contains("push is over"), "{e}");
        assert!(
            !cancel.is_finished(),
            "cancel_all waits for the busy upload"
        );
        drop(held);
        assert_eq!(cancel.await.unwrap(), 0);
        assert!(!sent.load(std::sync::atomic::Ordering::SeqCst));
    }
}
