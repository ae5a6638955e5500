//! Prometheus metrics of one registry.
//!
//! Each [`Registry`](crate::Registry) records into its own recorder (not the process-wide
//! `metrics` recorder), so two registries in one process — a test, an embedding program —
//! keep separate counts, and a program that installs its own global recorder is left alone.
//! `/metrics` (or the router of [`Registry::metrics_router`](crate::Registry::metrics_router))
//! renders it in the Prometheus text format.
//!
//! Labels are bounded: `route` is the endpoint's template (`/v2/{name}/blobs/{digest}`),
//! never a repository name or digest; `method` is one of the HTTP methods the API knows or
//! `other`; `status` is the numeric status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Requests answered, by `method`, `route` and `status`.
pub const REQUESTS: &str = "hoist_http_requests_total";
/// Request duration from the first byte read to the last byte sent, by `method` and `route`.
pub const DURATION: &str = "hoist_http_request_duration_seconds";
/// Request body bytes received, by `route`.
pub const BYTES_IN: &str = "hoist_http_received_bytes_total";
/// Response body bytes sent, by `route`.
pub const BYTES_OUT: &str = "hoist_http_sent_bytes_total";
/// Requests streaming an upload body right now.
pub const UPLOADS_IN_PROGRESS: &str = "hoist_uploads_in_progress";
/// Blobs in storage (manifests included: they are stored as blobs), at the last inventory.
pub const BLOBS: &str = "hoist_storage_blobs";
/// Bytes of those blobs.
pub const BLOB_BYTES: &str = "hoist_storage_blob_bytes";
/// Manifests, counted once per repository that holds them, at the last inventory.
pub const MANIFESTS: &str = "hoist_storage_manifests";
/// Garbage collection runs, by `result` (`ok`, `error`).
pub const GC_RUNS: &str = "hoist_gc_runs_total";
/// Bytes of blobs removed by garbage collection.
pub const GC_FREED_BYTES: &str = "hoist_gc_freed_bytes_total";
/// Blobs removed by garbage collection.
pub const GC_BLOBS: &str = "hoist_gc_removed_blobs_total";
/// Manifests removed by garbage collection (`--delete-untagged`).
pub const GC_MANIFESTS: &str = "hoist_gc_removed_manifests_total";

/// Latency buckets (seconds): from a cached manifest HEAD (sub-millisecond) to a blob of
/// gigabytes on a slow link.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Histogram samples are folded into their buckets at least this often, scraped or not, so
/// an unscraped registry's memory stays flat.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A registry's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    born: Instant,
    /// Milliseconds after `born` of the last upkeep.
    last_upkeep: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), DURATION_BUCKETS)
            .expect("constant buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            inner: Arc::new(Inner {
                recorder,
                handle,
                born: Instant::now(),
                last_upkeep: AtomicU64::new(0),
            }),
        };
        m.record(|| {
            describe_counter!(REQUESTS, "HTTP requests answered");
            describe_histogram!(
                DURATION,
                Unit::Seconds,
                "HTTP request duration, to the last byte sent"
            );
            describe_counter!(BYTES_IN, Unit::Bytes, "Request body bytes received");
            describe_counter!(BYTES_OUT, Unit::Bytes, "Response body bytes sent");
            describe_gauge!(UPLOADS_IN_PROGRESS, "Requests streaming an upload body now");
            describe_gauge!(
                BLOBS,
                "Blobs stored (manifests included), at the last inventory"
            );
            describe_gauge!(
                BLOB_BYTES,
                Unit::Bytes,
                "Bytes of the blobs stored, at the last inventory"
            );
            describe_gauge!(
                MANIFESTS,
                "Manifests per repository, summed, at the last inventory"
            );
            describe_counter!(GC_RUNS, "Garbage collection runs");
            describe_counter!(
                GC_FREED_BYTES,
                Unit::Bytes,
                "Bytes freed by garbage collection"
            );
            describe_counter!(GC_BLOBS, "Blobs removed by garbage collection");
            describe_counter!(
                GC_MANIFESTS,
                "Untagged manifests removed by garbage collection"
            );
        });
        m
    }

    /// Run `f` with this registry's recorder as the current one: the `metrics` macros
    /// inside record here.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        self.upkeep_if_due();
        metrics::with_local_recorder(&self.inner.recorder, f)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    fn upkeep_if_due(&self) {
        let now = self.inner.born.elapsed().as_millis() as u64;
        let last = self.inner.last_upkeep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= UPKEEP_EVERY.as_millis() as u64
            && self
                .inner
                .last_upkeep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.inner.handle.run_upkeep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.record(|| metrics::counter!(REQUESTS, "route" => "/v2/").increment(3));
        b.record(|| metrics::counter!(REQUESTS, "route" => "/v2/").increment(1));
        assert!(
            a.render()
                .contains("hoist_http_requests_total{route=\"/v2/\"} 3")
        );
        assert!(
            b.render()
                .contains("hoist_http_requests_total{route=\"/v2/\"} 1")
        );
    }
}
