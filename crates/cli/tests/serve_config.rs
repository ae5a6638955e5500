//! `hoist serve --config FILE`: flags over HOIST_* variables over the file over defaults,
//! `--print-config`, unknown keys refused by name, and the default storage root.

mod serve_common;

use std::process::{Command, Output};

use serve_common::Server;

fn serve(args: &[&str], env: &[(&str, &str)], cwd: &std::path::Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.arg("serve").args(args).current_dir(cwd);
    for k in [
        "HOIST_ADDR",
        "HOIST_ROOT",
        "HOIST_READ_ONLY",
        "HOIST_LOG",
        "HOIST_LOG_FORMAT",
        "HOIST_METRICS_ADDR",
        "HOIST_CONFIG",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env(
            "HOIST_CACHE_DIR",
            std::env::temp_dir().join("hoist-serve-config-cache"),
        )
        .output()
        .unwrap()
}

fn toml_of(out: &Output) -> toml::Table {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

#[test]
fn flags_win_over_environment_over_file_over_defaults() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("hoist.toml");
    std::fs::write(
        &file,
        "addr = \"127.0.0.1:5101\"\nroot = \"/srv/file\"\nread-only = true\nlog-format = \"json\"\nmetrics-addr = \"127.0.0.1:9101\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // The file over the defaults.
    let c = toml_of(&serve(
        &["--config", f, "--print-config"],
        &[("XDG_DATA_HOME", "/xdg")],
        t.path(),
    ));
    assert_eq!(c["addr"].as_str(), Some("127.0.0.1:5101"));
    assert_eq!(c["root"].as_str(), Some("/srv/file"));
    assert_eq!(c["read-only"].as_bool(), Some(true));
    assert_eq!(c["log-format"].as_str(), Some("json"));
    assert_eq!(
        c["log"].as_str(),
        Some("info"),
        "the default fills what the file leaves out"
    );
    // The environment over the file (HOIST_CONFIG names the file too).
    let env = [
        ("HOIST_CONFIG", f),
        ("HOIST_ADDR", "127.0.0.1:5102"),
        ("HOIST_READ_ONLY", "false"),
        ("HOIST_LOG", "debug"),
    ];
    let c = toml_of(&serve(&["--print-config"], &env, t.path()));
    assert_eq!(c["addr"].as_str(), Some("127.0.0.1:5102"));
    assert_eq!(c["read-only"].as_bool(), Some(false));
    assert_eq!(c["log"].as_str(), Some("debug"));
    assert_eq!(c["root"].as_str(), Some("/srv/file"));
    // Flags over both.
    let c = toml_of(&serve(
        &[
            "--print-config",
            "--addr",
            "127.0.0.1:5103",
            "--read-only",
            "--root",
            "/srv/flag",
        ],
        &env,
        t.path(),
    ));
    assert_eq!(c["addr"].as_str(), Some("127.0.0.1:5103"));
    assert_eq!(c["read-only"].as_bool(), Some(true));
    assert_eq!(c["root"].as_str(), Some("/srv/flag"));
    assert_eq!(c["metrics-addr"].as_str(), Some("127.0.0.1:9101"));
    // Without any: the documented defaults, and the root under XDG_DATA_HOME.
    let c = toml_of(&serve(
        &["--print-config"],
        &[("XDG_DATA_HOME", "/xdg")],
        t.path(),
    ));
    assert_eq!(c["addr"].as_str(), Some("127.0.0.1:5000"));
    assert_eq!(c["root"].as_str(), Some("/xdg/hoist/registry"));
    let c = toml_of(&serve(
        &["--print-config"],
        &[("XDG_DATA_HOME", ""), ("HOME", "/home/u")],
        t.path(),
    ));
    assert_eq!(
        c["root"].as_str(),
        Some("/home/u/.local/share/hoist/registry")
    );
}

#[test]
fn bad_config_files_are_one_line_errors_naming_the_key() {
    let t = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "addr = \"127.0.0.1:0\"\nadress = \"x\"\n",
            &["line 2", "unknown key `adress`", "expected one of"],
        ),
        ("[tls]\ncert = \"x\"\n", &["line 1", "unknown key `tls`"]),
        ("addr = 5\n", &["line 1", "socket address"]),
        ("addr = \n", &["line 1"]),
        (
            "tls-cert = \"/c.pem\"\n",
            &["tls-cert and tls-key go together"],
        ),
    ];
    for (i, (text, wants)) in cases.iter().enumerate() {
        let file = t.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = serve(
            &["--config", file.to_str().unwrap(), "--print-config"],
            &[],
            t.path(),
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for w in *wants {
            assert!(err.contains(w), "{w:?} missing for {text:?}: {err}");
        }
    }
    let out = serve(&["--config", "/nonexistent/hoist.toml"], &[], t.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hoist.toml"));
}

/// Every key of a file takes effect in a running server: address, root, read-only, log
/// format, metrics address. And without --root the data goes under XDG_DATA_HOME, never
/// into the working directory.
#[test]
fn a_config_file_runs_the_server() {
    let t = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", t.path().join("layout").display());
    assert!(
        hoist(&[
            "random", &layout, "--layers", "1", "--size", "10k", "--seed", "9"
        ])
        .status
        .success()
    );
    let cwd = t.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let xdg = t.path().join("xdg");
    let file = t.path().join("hoist.toml");
    std::fs::write(
        &file,
        "addr = \"127.0.0.1:0\"\nlog-format = \"json\"\nmetrics-addr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let log = t.path().join("serve.log");
    let start = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
        c.args(["serve", "--config", file.to_str().unwrap()])
            .args(extra)
            .current_dir(&cwd)
            .env("XDG_DATA_HOME", &xdg)
            .env_remove("HOIST_ROOT")
            .env_remove("HOIST_ADDR");
        Server::start_command(c, true, &log)
    };
    {
        let server = start(&[]);
        let out = hoist(&[
            "push",
            "--quiet",
            &layout,
            &format!("{}/cfg/app:v1", server.addr()),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(server.metrics_url().is_some());
    }
    assert!(xdg.join("hoist/registry/blobs").is_dir());
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "nothing in the working directory"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{text}"
    );

    std::fs::write(&file, "addr = \"127.0.0.1:0\"\nread-only = true\n").unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.args(["serve", "--config", file.to_str().unwrap()])
        .current_dir(&cwd)
        .env("XDG_DATA_HOME", &xdg);
    let server = Server::start_command(c, false, &log);
    let out = hoist(&[
        "push",
        "--quiet",
        &layout,
        &format!("{}/cfg/app:v2", server.addr()),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
}
