//! `hoist serve` as an operator runs it: the access log (text without colour codes when
//! not on a terminal, or JSON), a separate metrics address, read-only mode, health probes.

mod serve_common;

use std::process::{Command, Output};

use serve_common::Server;

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env(
            "HOIST_CACHE_DIR",
            std::env::temp_dir().join("hoist-serve-ops-cache"),
        )
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn json_access_log_and_a_separate_metrics_address() {
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("serve.log");
    let layout = format!("oci:{}:v1", t.path().join("layout").display());
    ok(&hoist(&[
        "random", &layout, "--layers", "2", "--size", "20k", "--seed", "3",
    ]));
    let server = Server::start_logged(
        &t.path().join("root"),
        &["--log-format", "json", "--metrics-addr", "127.0.0.1:0"],
        &log,
    );
    let dst = format!("{}/ops/app:v1", server.addr());
    ok(&hoist(&["push", "--quiet", &layout, &dst]));
    assert_eq!(
        get(&format!("{}/healthz", server.url())),
        (200, "ok\n".into())
    );
    assert_eq!(
        get(&format!("{}/readyz", server.url())),
        (200, "ready\n".into())
    );
    // Metrics on their own address, not on the main one.
    let metrics = server.metrics_url().expect("metrics address printed");
    let (status, text) = get(&metrics);
    assert_eq!(status, 200);
    let puts = text
        .lines()
        .find(|l| {
            l.starts_with("hoist_http_requests_total{method=\"PUT\",route=\"/v2/{name}/manifests/{reference}\",status=\"201\"}")
        })
        .unwrap_or_else(|| panic!("no manifest PUT counted: {text}"));
    assert!(puts.ends_with(" 1"), "{puts}");
    assert_eq!(get(&format!("{}/metrics", server.url())).0, 404);

    let log = std::fs::read_to_string(&log).unwrap();
    let access: Vec<serde_json::Value> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|v| v["target"] == "hoist::access")
        .collect();
    let put = access
        .iter()
        .find(|v| {
            v["fields"]["method"] == "PUT"
                && v["fields"]["route"] == "/v2/{name}/manifests/{reference}"
        })
        .unwrap_or_else(|| panic!("no manifest PUT in the access log: {log}"));
    assert_eq!(put["fields"]["repo"], "ops/app");
    assert_eq!(put["fields"]["status"], 201);
    assert!(put["fields"]["bytes_in"].as_u64().unwrap() > 100);
    assert!(
        put["fields"]["client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{put}"
    );
    assert!(access.iter().any(|v| v["fields"]["route"] == "/readyz"));
}

#[test]
fn text_log_has_no_colour_codes_off_a_terminal_and_read_only_refuses_pushes() {
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("serve.log");
    let layout = format!("oci:{}:v1", t.path().join("layout").display());
    ok(&hoist(&[
        "random", &layout, "--layers", "1", "--size", "10k", "--seed", "4",
    ]));
    let root = t.path().join("root");
    {
        let server = Server::start_logged(&root, &[], &log);
        ok(&hoist(&[
            "push",
            "--quiet",
            &layout,
            &format!("{}/ro/app:v1", server.addr()),
        ]));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    assert!(
        text.lines().any(|l| l.contains("hoist::access")
            && l.contains("route=\"/v2/{name}/manifests/{reference}\"")
            && l.contains("status=201")),
        "{text}"
    );

    let server = Server::start_logged(&root, &["--read-only"], &log);
    let out = hoist(&[
        "push",
        "--quiet",
        &layout,
        &format!("{}/ro/app:v2", server.addr()),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read-only"), "{err}");
    // Reads go on: the image pushed before is there, and v2 is not.
    let tags = ok(&hoist(&["ls", &format!("{}/ro/app", server.addr())]));
    assert_eq!(tags.trim(), "v1");
}

/// The storage gauges (`hoist_storage_*`) without garbage collection: a server counts what
/// its storage holds when it starts (then periodically), so a restarted registry reports
/// the image pushed before.
#[test]
fn storage_gauges_count_what_is_stored_at_start() {
    let t = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", t.path().join("layout").display());
    ok(&hoist(&[
        "random", &layout, "--layers", "2", "--size", "20k", "--seed", "6",
    ]));
    let root = t.path().join("root");
    {
        let server = Server::start(&root, &[]);
        ok(&hoist(&[
            "push",
            "--quiet",
            &layout,
            &format!("{}/inv/app:v1", server.addr()),
        ]));
    }
    // Two layers, the config and the manifest, stored as blobs.
    let mut blob_files = 0u64;
    let mut blob_bytes = 0u64;
    for shard in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            blob_files += 1;
            blob_bytes += f.unwrap().metadata().unwrap().len();
        }
    }
    assert_eq!(blob_files, 4);

    let server = Server::start(&root, &[]);
    let metrics = format!("{}/metrics", server.url());
    let value = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.parse::<f64>().unwrap() as u64)
    };
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&metrics).1;
        if value(&text, "hoist_storage_manifests").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(value(&text, "hoist_storage_blobs"), Some(4), "{text}");
    assert_eq!(
        value(&text, "hoist_storage_blob_bytes"),
        Some(blob_bytes),
        "{text}"
    );
    assert_eq!(value(&text, "hoist_storage_manifests"), Some(1), "{text}");
}
