//! Retries: exponential backoff with jitter, bounded attempts, `Retry-After` honoured.

use std::time::{Duration, SystemTime};

/// Attempts after the first one, by default.
pub const DEFAULT_RETRIES: u32 = 5;
/// First backoff; doubles each attempt. Long enough for a registry restart to show.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(250);
/// Backoff ceiling (before jitter), and the most a `Retry-After` is obeyed for.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

/// How to retry temporary failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// The first backoff.
    pub base: Duration,
    /// The ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: DEFAULT_RETRIES,
            base: DEFAULT_BASE_DELAY,
            max: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first retry): `Retry-After`
    /// when the server gave one (capped at `max`), else `base * 2^attempt` capped at
    /// `max`, with "equal jitter" (half fixed, half random) so clients spread out.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max);
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Parse a `Retry-After` value: delta-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_table() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        for (v, want) in [
            ("0", Some(0)),
            ("  7 ", Some(7)),
            ("Sun, 06 Nov 1994 08:49:47 GMT", Some(10)),
            ("Sun, 06 Nov 1994 08:49:00 GMT", Some(0)), // in the past
            ("-1", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                want.map(Duration::from_secs),
                "{v:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_jittered_and_bounded() {
        let p = RetryPolicy {
            retries: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 0..40 {
            let d = p.delay(attempt, None);
            let exp = (Duration::from_millis(100) * 2u32.pow(attempt.min(20))).min(p.max);
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(99))), p.max);
    }
}
