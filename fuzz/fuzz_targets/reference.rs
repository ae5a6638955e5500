//! References, digests, tags, repository names and platforms: never a panic; what parses
//! prints back to text that parses to the same value; errors are one line.
#![no_main]

use hoist_image::{Digest, Platform, Reference, validate_repository, validate_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Reference::parse(s) {
        Ok(r) => {
            let shown = r.to_string();
            let again = Reference::parse(&shown)
                .unwrap_or_else(|e| panic!("{s:?} parsed, its text {shown:?} does not: {e}"));
            assert_eq!(again, r, "{s:?} -> {shown:?}");
            let _ = (r.name(), r.identifier(), r.api_host(), r.host(), r.scheme());
            let _ = r.is_loopback();
            if let Some(t) = r.tag() {
                validate_tag(t).expect("a parsed reference's tag is valid");
            }
            validate_repository(r.repository()).expect("a parsed repository is valid");
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(Digest::parse(&d.to_string()).expect("digest text"), d);
    }
    let _ = validate_tag(s);
    let _ = validate_repository(s);
    if let Ok(p) = Platform::parse(s) {
        let shown = p.to_string();
        assert_eq!(Platform::parse(&shown).expect("platform text"), p, "{s:?}");
    }
});
