//! `WWW-Authenticate` challenges and `Retry-After` values as a registry (or anyone in the
//! middle) may send them: never a panic; parameter names come out lower-case; a Bearer
//! challenge written with any realm, service and scope (quoted-string escapes) parses back
//! to the same values.
#![no_main]

use hoist_remote::challenge::{self, Scheme};
use libfuzzer_sys::fuzz_target;

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let cs = challenge::parse(s);
    assert!(cs.len() <= s.len());
    for c in &cs {
        for name in c.params.keys() {
            assert_eq!(name, &name.to_ascii_lowercase());
        }
    }
    let _ = hoist_remote::retry::parse_retry_after(s, std::time::SystemTime::now());

    // Round trip: three values split out of the input, written as a challenge.
    let mut parts = s.splitn(3, '\u{0}');
    let (realm, service, scope) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    // Header values are visible ASCII, spaces and tabs (RFC 9110 field-value).
    let ok = |v: &str| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    if !(ok(realm) && ok(service) && ok(scope)) {
        return;
    }
    let header = format!(
        "Bearer realm={},service={},scope={}",
        quoted(realm),
        quoted(service),
        quoted(scope)
    );
    let cs = challenge::parse(&header);
    assert_eq!(cs.len(), 1, "{header:?} -> {cs:?}");
    assert_eq!(cs[0].scheme, Scheme::Bearer);
    assert_eq!(cs[0].realm(), Some(realm), "{header:?}");
    assert_eq!(cs[0].service(), Some(service), "{header:?}");
    assert_eq!(cs[0].scope(), Some(scope), "{header:?}");
});
