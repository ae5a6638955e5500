//! The registry's router, driven in-process (no socket) with arbitrary request sequences
//! on a fresh storage root: methods, paths (well-formed ones built from the input, so the
//! handlers are reached, and raw bytes), headers and bodies, with digests and upload
//! locations carried from one request to the next. Never a panic, never a 500 (bad input
//! is the client's error), error answers are the spec's JSON, and what is served is what
//! its digest says.
#![no_main]

use hoist_fuzz::send;
use hoist_image::Digest;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"PUT", b"POST", b"PATCH", b"DELETE", b"OPTIONS",
];
const NAMES: &[&str] = &["fuzz/app", "fuzz/other", "a", "x/y/z"];
const TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/octet-stream",
];

#[derive(Default)]
struct State {
    /// Bodies sent, with their digests (blobs and manifests to refer to).
    sent: Vec<(Digest, usize)>,
    /// The last upload location the registry gave.
    location: Option<String>,
}

fn text(u: &mut Unstructured, max: usize) -> Result<String> {
    let n = u.int_in_range(0..=max)?;
    let bytes = u.bytes(n)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn name(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 8)? {
        return text(u, 40);
    }
    Ok(u.choose(NAMES)?.to_string())
}

fn digest(u: &mut Unstructured, st: &State) -> Result<String> {
    if !st.sent.is_empty() && u.ratio(3, 4)? {
        return Ok(u.choose(&st.sent)?.0.to_string());
    }
    if u.ratio(1, 2)? {
        let n = u.int_in_range(0..=8)?;
        return Ok(Digest::sha256(u.bytes(n)?).to_string());
    }
    text(u, 80)
}

fn reference(u: &mut Unstructured, st: &State) -> Result<String> {
    match u.int_in_range(0..=2)? {
        0 => Ok(u.choose(&["v1", "latest", "v2"])?.to_string()),
        1 => digest(u, st),
        _ => text(u, 140),
    }
}

fn query(u: &mut Unstructured, st: &State) -> Result<String> {
    let mut q = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let (k, v) = match u.int_in_range(0..=6)? {
            0 => ("digest", digest(u, st)?),
            1 => ("mount", digest(u, st)?),
            2 => ("from", name(u)?),
            3 => ("n", text(u, 6)?),
            4 => ("last", text(u, 10)?),
            5 => ("tag", text(u, 12)?),
            _ => ("artifactType", text(u, 30)?),
        };
        q.push(format!("{k}={}", v.replace(['&', '#', ' '], "")));
    }
    Ok(if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    })
}

fn path(u: &mut Unstructured, st: &State) -> Result<Vec<u8>> {
    let p = match u.int_in_range(0..=9)? {
        0 => "/v2/".to_string(),
        1 => format!("/v2/_catalog{}", query(u, st)?),
        2 => format!("/v2/{}/tags/list{}", name(u)?, query(u, st)?),
        3 | 4 => format!(
            "/v2/{}/manifests/{}{}",
            name(u)?,
            reference(u, st)?,
            query(u, st)?
        ),
        5 => format!("/v2/{}/blobs/{}", name(u)?, digest(u, st)?),
        6 => format!("/v2/{}/blobs/uploads/{}", name(u)?, query(u, st)?),
        7 => match &st.location {
            Some(l) if u.ratio(3, 4)? => format!(
                "{l}{}{}",
                if l.contains('?') { "&" } else { "?" },
                query(u, st)?.trim_start_matches('?')
            ),
            _ => format!(
                "/v2/{}/blobs/uploads/{}{}",
                name(u)?,
                text(u, 40)?,
                query(u, st)?
            ),
        },
        8 => format!(
            "/v2/{}/referrers/{}{}",
            name(u)?,
            digest(u, st)?,
            query(u, st)?
        ),
        _ => {
            let n = u.int_in_range(0..=120)?;
            return Ok(u.bytes(n)?.to_vec());
        }
    };
    Ok(p.into_bytes())
}

/// A manifest made of digests sent before (so manifest PUTs get past "blob unknown").
fn manifest(u: &mut Unstructured, st: &State) -> Result<Vec<u8>> {
    let desc = |u: &mut Unstructured, mt: &str| -> Result<String> {
        let (d, size) = match st.sent.is_empty() {
            true => (Digest::sha256(b"").to_string(), 0),
            false => {
                let (d, s) = u.choose(&st.sent)?;
                (d.to_string(), *s)
            }
        };
        let size = if u.ratio(1, 8)? {
            u.arbitrary::<u32>()? as usize
        } else {
            size
        };
        Ok(format!(
            r#"{{"mediaType":"{mt}","digest":"{d}","size":{size}}}"#
        ))
    };
    let body = if u.ratio(1, 3)? {
        let mut ms = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            ms.push(desc(u, TYPES[0])?);
        }
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            TYPES[1],
            ms.join(",")
        )
    } else {
        let config = desc(u, "application/vnd.oci.image.config.v1+json")?;
        let mut ls = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            ls.push(desc(u, "application/vnd.oci.image.layer.v1.tar+gzip")?);
        }
        let subject = if u.ratio(1, 4)? {
            format!(r#","subject":{}"#, desc(u, TYPES[0])?)
        } else {
            String::new()
        };
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{config},"layers":[{}]{subject}}}"#,
            TYPES[0],
            ls.join(",")
        )
    };
    Ok(body.into_bytes())
}

fn run(u: &mut Unstructured) -> Result<()> {
    let dir = hoist_fuzz::scratch();
    let router = hoist_registry::Registry::open(dir.path())
        .expect("registry")
        .router();
    let mut st = State::default();
    for _ in 0..u.int_in_range(1..=8)? {
        let method: Vec<u8> = if u.ratio(1, 16)? {
            let n = u.int_in_range(1..=8)?;
            u.bytes(n)?.to_vec()
        } else {
            u.choose(METHODS)?.to_vec()
        };
        let uri = path(u, &st)?;
        let mut headers = Vec::new();
        if u.ratio(1, 2)? {
            headers.push((
                b"content-type".to_vec(),
                u.choose(TYPES)?.as_bytes().to_vec(),
            ));
        }
        for (h, p) in [
            ("content-range", 4),
            ("range", 4),
            ("authorization", 8),
            ("accept", 8),
        ] {
            if u.ratio(1, p)? {
                let n = u.int_in_range(0..=40)?;
                headers.push((h.as_bytes().to_vec(), u.bytes(n)?.to_vec()));
            }
        }
        let body = match u.int_in_range(0..=3)? {
            0 => Vec::new(),
            1 => manifest(u, &st)?,
            _ => {
                let n = u.int_in_range(0..=2048)?;
                u.bytes(n)?.to_vec()
            }
        };
        if u.ratio(1, 2)? {
            headers.push((
                b"content-length".to_vec(),
                body.len().to_string().into_bytes(),
            ));
        }
        if !body.is_empty() {
            st.sent.push((Digest::sha256(&body), body.len()));
        }
        let Some(a) = send(&router, &method, &uri, &headers, body) else {
            continue;
        };
        let shown = String::from_utf8_lossy(&uri);
        assert!((100..600).contains(&a.status));
        assert_ne!(a.status, 500, "{shown}: {a:?}");
        if let Some(l) = a.header("location")
            && l.starts_with("/v2/")
            && l.contains("/blobs/uploads/")
        {
            st.location = Some(l.to_string());
        }
        let head = method == b"HEAD";
        if a.status >= 400 && !head && !a.body.is_empty() {
            let v: serde_json::Value = serde_json::from_slice(&a.body)
                .unwrap_or_else(|e| panic!("{shown}: error body is not JSON ({e}): {a:?}"));
            let errors = v["errors"].as_array();
            assert!(
                errors.is_some_and(|es| es.iter().all(|e| e["code"].is_string())),
                "{shown}: not the spec's error envelope: {a:?}"
            );
        }
        if a.status == 200 && !head {
            // What is served under a digest hashes to it.
            let requested = shown
                .split(['/', '?'])
                .find(|p| p.starts_with("sha256:"))
                .and_then(|p| Digest::parse(p).ok());
            if (shown.contains("/blobs/") || shown.contains("/manifests/sha256:"))
                && let Some(d) = requested
            {
                assert_eq!(Digest::sha256(&a.body), d, "{shown}");
            }
            if shown.contains("/manifests/") {
                let dcd = a
                    .header("docker-content-digest")
                    .expect("Docker-Content-Digest");
                assert_eq!(dcd, Digest::sha256(&a.body).to_string(), "{shown}");
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
