//! Rate limits a registry announces: slow down before being refused.
//!
//! Registries that limit clients say how much is left in each answer: Docker Hub sends
//! `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600` (requests per
//! window of `w` seconds), others the IETF draft's `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window starts again).
//! When what is left falls to [`LOW_FRACTION`] of the limit, the client spreads the
//! remaining requests over the time left in the window (one every `left / remaining`,
//! at most [`MAX_SPACING`] apart), so a long sync slows down instead of being refused
//! with 429s. Only `GET`s are paced: a `HEAD` is what a client checks with, and Docker
//! Hub does not count it. A 429 itself is retried after its `Retry-After`, by the
//! transport's send loop.

use std::time::{Duration, Instant};

/// The share of the limit left below which requests are spread out (a tenth).
pub const LOW_FRACTION: f64 = 0.1;
/// The longest wait put between two paced requests: the retry policy's ceiling, so a
/// paced request never waits longer than a refused one would.
pub const MAX_SPACING: Duration = crate::retry::DEFAULT_MAX_DELAY;

/// What a registry said of its limit in one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests left in this window.
    pub remaining: u64,
    /// Time until the window starts again (`RateLimit-Reset`), else the window's length
    /// (`;w=`), when said.
    pub reset: Option<Duration>,
}

/// The leading number of a rate-limit header value: `76`, `76;w=21600`, `100, 100;w=60`.
fn number(v: &str) -> Option<u64> {
    v.split([',', ';']).next()?.trim().parse().ok()
}

/// The `w=` parameter of a Docker Hub header (`100;w=21600`).
fn window(v: &str) -> Option<Duration> {
    v.split(';').skip(1).find_map(|p| {
        let (k, n) = p.split_once('=')?;
        (k.trim() == "w")
            .then(|| n.trim().parse().ok().map(Duration::from_secs))
            .flatten()
    })
}

/// Read the rate-limit headers of an answer (`get` looks a header up by its lowercase
/// name). `None` when the registry said nothing usable.
pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Announced> {
    let limit_h = get("ratelimit-limit")?;
    let remaining_h = get("ratelimit-remaining")?;
    let limit = number(limit_h)?;
    let remaining = number(remaining_h)?;
    let reset = get("ratelimit-reset")
        .and_then(number)
        .map(Duration::from_secs)
        .or_else(|| window(remaining_h))
        .or_else(|| window(limit_h));
    (limit > 0).then_some(Announced {
        limit,
        remaining: remaining.min(limit),
        reset,
    })
}

/// The pacing state of one registry.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// The wait between two paced requests (zero: not paced).
    spacing: Duration,
    /// When the next paced request may go.
    next: Option<Instant>,
    /// The last announcement, to tell when pacing starts or the budget shrinks.
    last: Option<Announced>,
}

/// What the transport should tell the user after an answer: pacing started or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slowing {
    pub(crate) announced: Announced,
    pub(crate) spacing: Duration,
}

impl Throttle {
    /// Take an answer's announcement into account; returns what to tell the user when
    /// pacing starts (or the wait between requests grows).
    pub(crate) fn observe(&mut self, a: Announced, now: Instant) -> Option<Slowing> {
        let low = (a.remaining as f64) <= (a.limit as f64) * LOW_FRACTION;
        let spacing = if low {
            let left = a.reset.unwrap_or(MAX_SPACING);
            (left / (a.remaining as u32).saturating_add(1)).min(MAX_SPACING)
        } else {
            Duration::ZERO
        };
        let grew = spacing > self.spacing;
        self.spacing = spacing;
        self.last = Some(a);
        if spacing.is_zero() {
            self.next = None;
            return None;
        }
        // The first paced request waits one spacing too: `remaining` requests spread
        // over what is left of the window (with none left, the next goes after it).
        if self.next.is_none() {
            self.next = Some(now + spacing);
        }
        grew.then_some(Slowing {
            announced: a,
            spacing,
        })
    }

    /// How long a paced request has to wait before it goes, reserving its slot.
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        if self.spacing.is_zero() {
            return Duration::ZERO;
        }
        let at = self.next.map_or(now, |n| n.max(now));
        self.next = Some(at + self.spacing);
        at - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(h: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| h.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn header_table() {
        let hub = [
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
        ];
        assert_eq!(
            parse(headers(&hub)),
            Some(Announced {
                limit: 100,
                remaining: 76,
                reset: Some(Duration::from_secs(21600))
            })
        );
        let draft = [
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "1"),
            ("ratelimit-reset", "7"),
        ];
        assert_eq!(
            parse(headers(&draft)),
            Some(Announced {
                limit: 10,
                remaining: 1,
                reset: Some(Duration::from_secs(7))
            })
        );
        // A list of policies: the first number is the one in force.
        let list = [
            ("ratelimit-limit", "100, 100;w=60"),
            ("ratelimit-remaining", "5"),
        ];
        assert_eq!(parse(headers(&list)).unwrap().limit, 100);
        for bad in [
            &[("ratelimit-limit", "100")][..],
            &[("ratelimit-remaining", "5")][..],
            &[("ratelimit-limit", "lots"), ("ratelimit-remaining", "5")][..],
            &[("ratelimit-limit", "0"), ("ratelimit-remaining", "0")][..],
            &[][..],
        ] {
            assert_eq!(parse(headers(bad)), None, "{bad:?}");
        }
        // More left than the limit is read as the limit.
        let over = [("ratelimit-limit", "10"), ("ratelimit-remaining", "50")];
        assert_eq!(parse(headers(&over)).unwrap().remaining, 10);
    }

    #[test]
    fn requests_are_spread_once_the_budget_runs_low() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        let plenty = Announced {
            limit: 100,
            remaining: 50,
            reset: Some(Duration::from_secs(60)),
        };
        assert_eq!(t.observe(plenty, t0), None);
        assert_eq!(t.reserve(t0), Duration::ZERO);
        // 9 left of 100, 10 s to go: one request a second.
        let low = Announced {
            remaining: 9,
            reset: Some(Duration::from_secs(10)),
            ..plenty
        };
        let s = t.observe(low, t0).expect("pacing starts");
        assert_eq!(s.spacing, Duration::from_secs(1));
        assert_eq!(t.reserve(t0), Duration::from_secs(1));
        assert_eq!(t.reserve(t0), Duration::from_secs(2));
        assert_eq!(
            t.reserve(t0 + Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        // The same pace again is not announced again; a slower one is.
        assert_eq!(t.observe(low, t0), None);
        let lower = Announced {
            remaining: 1,
            ..low
        };
        assert!(t.observe(lower, t0).is_some());
        // A long window is capped: never more than MAX_SPACING between requests.
        let hub = Announced {
            limit: 100,
            remaining: 0,
            reset: Some(Duration::from_secs(21600)),
        };
        assert_eq!(t.observe(hub, t0).unwrap().spacing, MAX_SPACING);
        // None left: not even the next request goes before a spacing.
        let mut fresh = Throttle::default();
        let none = Announced {
            limit: 2,
            remaining: 0,
            reset: Some(Duration::from_secs(2)),
        };
        assert!(fresh.observe(none, t0).is_some());
        assert_eq!(fresh.reserve(t0), Duration::from_secs(2));
        // A new window: no more pacing.
        assert_eq!(t.observe(plenty, t0), None);
        assert_eq!(t.reserve(t0 + Duration::from_secs(100)), Duration::ZERO);
    }
}
