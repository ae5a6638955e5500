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
