//! The JSON documents of `--format json`: the report of a verb that writes images, and
//! the shapes the listing verbs share.

use hoist_ops::{DigestKind, Report};
use serde_json::{Value, json};

/// A verb's report: one object per destination (`location`, `reference` as the text
/// output prints it, `digest`, what the digest is of, and for registry destinations what
/// happened to the blobs of its repository), and the manifests the push engine put.
pub fn report(r: &Report) -> Value {
    let pushed = r.push.as_ref().map(|p| &p.pushed);
    let written: Vec<Value> = r
        .written
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut o = json!({
                "location": w.location.to_string(),
                "reference": w.reference(),
                "digest": w.digest.to_string(),
                "digestOf": match w.kind {
                    DigestKind::Manifest => "manifest",
                    DigestKind::ImageId => "config",
                },
            });
            if let Some(p) = pushed.and_then(|p| p.get(i)) {
                o["blobs"] = json!({
                    "present": p.blobs.present,
                    "mounted": p.blobs.mounted,
                    "uploaded": p.blobs.uploaded,
                    "bytesUploaded": p.blobs.bytes_uploaded,
                });
            }
            o
        })
        .collect();
    let mut doc = json!({ "written": written });
    if let Some(p) = &r.push {
        doc["manifests"] = json!({ "put": p.manifests_put, "unchanged": p.manifests_skipped });
    }
    if let Some(m) = &r.referrers {
        doc["referrers"] = json!({
            "copied": m.referrers,
            "manifestsPut": m.manifests_put,
            "blobsUploaded": m.blobs_uploaded,
            "bytesUploaded": m.bytes_uploaded,
        });
    }
    doc
}

/// A descriptor as the OCI spec writes it (`mediaType`, `digest`, `size`, `platform`,
/// `annotations`, `artifactType`).
pub fn descriptor(d: &hoist_image::Descriptor) -> Value {
    serde_json::to_value(d).unwrap_or(Value::Null)
}
