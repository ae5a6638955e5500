//! Byte ranges both ways. The client's readers of a registry's `Range` (upload progress)
//! and `Content-Range` (a resumed download) answers never panic. The registry, through its
//! router, answers any `Range` on a blob with the exact bytes and a `Content-Range` that
//! says which (206), the whole blob (200) or 416 with `bytes */size`; and takes a PATCH
//! whose `Content-Range` starts anywhere but at its current size never (416 or 400),
//! reporting in `Range` exactly the bytes it holds.
#![no_main]

use std::sync::OnceLock;

use hoist_fuzz::{Answer, send};
use hoist_image::Digest;
use libfuzzer_sys::fuzz_target;

const REPO: &str = "fuzz/range";

struct Fixture {
    router: axum::Router,
    blob: Vec<u8>,
    digest: Digest,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = hoist_fuzz::scratch();
        let router = hoist_registry::Registry::open(dir.path())
            .expect("registry")
            .router();
        let blob: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let digest = Digest::sha256(&blob);
        let uri = format!("/v2/{REPO}/blobs/uploads/?digest={digest}");
        let a = send(&router, b"POST", uri.as_bytes(), &[], blob.clone()).expect("request");
        assert_eq!(a.status, 201, "{a:?}");
        Fixture {
            router,
            blob,
            digest,
            _dir: dir,
        }
    })
}

/// The `<end>` of an upload answer's `Range: 0-<end>` (the registry writes `0-0` for 0
/// bytes and for 1).
fn range_end(a: &Answer) -> u64 {
    let r = a.header("range").expect("an upload answer has Range");
    hoist_remote::range::upload_range_end(r).expect("Range 0-<end>")
}

fuzz_target!(|data: &[u8]| {
    let (range, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(s) = std::str::from_utf8(range) {
        if let Some(e) = hoist_remote::range::upload_range_end(s) {
            assert_eq!(
                hoist_remote::range::upload_range_end(&format!("0-{e}")),
                Some(e)
            );
        }
        let _ = hoist_remote::range::content_range_start(s);
    }

    let f = fixture();
    let size = f.blob.len() as u64;
    let uri = format!("/v2/{REPO}/blobs/{}", f.digest);
    if let Some(a) = send(
        &f.router,
        b"GET",
        uri.as_bytes(),
        &[(b"range".to_vec(), range.to_vec())],
        Vec::new(),
    ) {
        match a.status {
            200 => assert_eq!(a.body, f.blob),
            206 => {
                let cr = a.header("content-range").expect("206 has Content-Range");
                let spec = cr.strip_prefix("bytes ").expect("bytes unit");
                let (se, total) = spec.split_once('/').expect("a total");
                let (s, e) = se.split_once('-').expect("start-end");
                let (s, e): (u64, u64) = (s.parse().unwrap(), e.parse().unwrap());
                assert_eq!(total, size.to_string(), "{cr}");
                assert!(s <= e && e < size, "{cr}");
                assert_eq!(a.body, &f.blob[s as usize..=e as usize], "{cr}");
            }
            416 => assert_eq!(a.header("content-range"), Some(&*format!("bytes */{size}"))),
            other => panic!("GET with Range {range:?}: status {other}"),
        }
    }

    // A PATCH with this Content-Range (the rest of the input) on a new session.
    let Some(open) = send(
        &f.router,
        b"POST",
        format!("/v2/{REPO}/blobs/uploads/").as_bytes(),
        &[],
        Vec::new(),
    ) else {
        return;
    };
    assert_eq!(open.status, 202, "{open:?}");
    let location = open.header("location").expect("Location").to_string();
    let (cr, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], rest[i + 1..].to_vec()),
        None => (rest, b"0123456789".to_vec()),
    };
    let headers = [
        (b"content-range".to_vec(), cr.to_vec()),
        (
            b"content-length".to_vec(),
            body.len().to_string().into_bytes(),
        ),
        (
            b"content-type".to_vec(),
            b"application/octet-stream".to_vec(),
        ),
    ];
    if let Some(a) = send(
        &f.router,
        b"PATCH",
        location.as_bytes(),
        &headers,
        body.clone(),
    ) {
        let starts_at_zero = std::str::from_utf8(cr).ok().and_then(|s| {
            let s = s.strip_prefix("bytes ").unwrap_or(s);
            let (a, _) = s.split_once('-')?;
            a.parse::<u64>().ok()
        }) == Some(0);
        match a.status {
            202 => {
                assert!(
                    starts_at_zero,
                    "a chunk at {cr:?} taken by an empty session"
                );
                assert_eq!(range_end(&a), (body.len() as u64).saturating_sub(1));
            }
            400 | 416 => {}
            other => panic!("PATCH with Content-Range {cr:?}: status {other}"),
        }
        let status = send(&f.router, b"GET", location.as_bytes(), &[], Vec::new()).unwrap();
        assert_eq!(status.status, 204, "{status:?}");
        let want = if a.status == 202 {
            body.len() as u64
        } else {
            0
        };
        assert_eq!(
            range_end(&status),
            want.saturating_sub(1),
            "after {cr:?}: {a:?}"
        );
    }
    let gone = send(&f.router, b"DELETE", location.as_bytes(), &[], Vec::new()).unwrap();
    assert_eq!(gone.status, 204, "{gone:?}");
});
