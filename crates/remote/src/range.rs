//! The byte-range headers registries answer with, read leniently (registries differ in
//! the details) but never into a wrong offset: anything unexpected is `None`, and the
//! caller asks again or starts over.

/// The last byte the registry holds of an upload, from its `Range: 0-<end>` answer (some
/// registries write `bytes=0-<end>`). `None` unless it starts at 0 and `end` is a number.
/// `0-0` is ambiguous (0 bytes to some registries, 1 byte to others): the caller decides.
pub fn upload_range_end(value: &str) -> Option<u64> {
    let v = value.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (a, b) = v.split_once('-')?;
    let (a, b) = (number(a)?, number(b)?);
    (a == 0).then_some(b)
}

/// The first byte of a `206` answer's `Content-Range: bytes <start>-<end>/<size|*>` (the
/// caller checks the bytes that follow against what it expects, not `<end>`).
pub fn content_range_start(value: &str) -> Option<u64> {
    let v = value.trim().strip_prefix("bytes ")?;
    let (start, _rest) = v.split_once('-')?;
    number(start)
}

/// Decimal digits only (no sign, no `+`), surrounding spaces allowed.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ranges() {
        for (h, want) in [
            ("0-0", Some(0)),
            ("0-1023", Some(1023)),
            ("bytes=0-99", Some(99)),
            (" 0-5 ", Some(5)),
            ("5-9", None),
            ("0-", None),
            ("0-+5", None),
            ("-0-5", None),
            ("0--5", None),
            ("x", None),
            ("", None),
            ("0-99999999999999999999999", None),
        ] {
            assert_eq!(upload_range_end(h), want, "{h:?}");
        }
    }

    #[test]
    fn content_ranges() {
        for (h, want) in [
            ("bytes 100-199/200", Some(100)),
            ("bytes 0-0/1", Some(0)),
            ("bytes 5-9/*", Some(5)),
            ("bytes 5-9", Some(5)),
            ("bytes 8-7/8", Some(8)),
            ("bytes -5/10", None),
            ("bytes +5-9/10", None),
            ("items 5-9/10", None),
            ("bytes */10", None),
        ] {
            assert_eq!(content_range_start(h), want, "{h:?}");
        }
    }
}
