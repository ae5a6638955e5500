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

/// Every setting `hoist serve --help` lists is a key of the file and a HOIST_* variable,
/// and each of the three layers (file, environment, flag) takes effect for every one of
/// them in `--print-config`: a flag added without a key (or a key the merge forgets)
/// fails here.
#[test]
fn every_serve_flag_is_a_config_key_and_a_variable() {
    // key: (file value, environment value, flag value), each as TOML and as text.
    let table: &[(&str, &str, &str, &str)] = &[
        ("addr", "127.0.0.1:5201", "127.0.0.1:5202", "127.0.0.1:5203"),
        ("root", "/srv/file", "/srv/env", "/srv/flag"),
        ("storage", "fs:/srv/file", "fs:/srv/env", "fs:/srv/flag"),
        (
            "s3-endpoint",
            "http://127.0.0.1:8331",
            "http://127.0.0.1:8332",
            "http://127.0.0.1:8333",
        ),
        ("s3-region", "region-1", "region-2", "region-3"),
        ("s3-access-key-id", "id-1", "id-2", "id-3"),
        ("s3-secret-access-key", "key-1", "key-2", "key-3"),
        ("s3-allow-http", "true", "false", "true"),
        ("s3-timeout", "5s", "6s", "7s"),
        (
            "secret",
            "file-secret-0123456789",
            "env-secret-0123456789",
            "flag-secret-0123456789",
        ),
        ("htpasswd", "/etc/h1", "/etc/h2", "/etc/h3"),
        ("tls-cert", "/c1.pem", "/c2.pem", "/c3.pem"),
        ("tls-key", "/k1.pem", "/k2.pem", "/k3.pem"),
        ("read-only", "true", "false", "true"),
        (
            "metrics-addr",
            "127.0.0.1:9201",
            "127.0.0.1:9202",
            "127.0.0.1:9203",
        ),
        ("log-format", "json", "text", "json"),
        ("header-timeout", "5s", "6s", "7s"),
        ("idle-timeout", "2m", "3m", "4m"),
        ("body-timeout", "45s", "50s", "55s"),
        ("shutdown-grace", "3s", "4s", "5s"),
        ("upload-ttl", "2d", "3d", "4d"),
        ("gc-interval", "12h", "13h", "14h"),
        ("gc-grace", "2h", "3h", "4h"),
        ("delete-untagged", "true", "false", "true"),
        ("log", "debug", "warn", "trace"),
    ];
    // The settings the help lists, less what is not one (the file itself, the global
    // client options, clap's own).
    let help = hoist(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let not_settings = [
        "config",
        "print-config",
        "quiet",
        "verbose",
        "help",
        "version",
    ];
    let mut flags: Vec<String> = help
        .lines()
        .filter_map(|l| l.trim_start().split_once("--"))
        .filter(|(before, _)| before.is_empty() || before.ends_with(", "))
        .map(|(_, rest)| rest.split([' ', '=']).next().unwrap().to_string())
        .filter(|f| !not_settings.contains(&f.as_str()))
        .collect();
    flags.sort();
    let mut keys: Vec<String> = table.iter().map(|r| r.0.to_string()).collect();
    keys.sort();
    assert_eq!(flags, keys, "serve's flags and the keys this test sets");
    for k in &keys {
        let var = format!("HOIST_{}", k.to_uppercase().replace('-', "_"));
        assert!(
            help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]")),
            "{var} missing"
        );
    }

    let toml_value = |k: &str, v: &str| match k {
        "read-only" | "delete-untagged" | "s3-allow-http" => v.to_string(),
        _ => format!("{v:?}"),
    };
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("all.toml");
    let text: String = table
        .iter()
        .map(|(k, v, _, _)| format!("{k} = {}\n", toml_value(k, v)))
        .collect();
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    // Secrets are masked in what --print-config shows (their layering is the same code as
    // every other key's).
    let masked = |k: &str| k.contains("secret");
    let check = |c: &toml::Table, layer: usize| {
        for row in table {
            let want = if masked(row.0) {
                "***"
            } else {
                [row.1, row.2, row.3][layer]
            };
            let got = match &c[row.0] {
                toml::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            assert_eq!(got, want, "{} from layer {layer}", row.0);
        }
    };
    let mut clean = vec![];
    for (k, ..) in table {
        clean.push(format!("HOIST_{}", k.to_uppercase().replace('-', "_")));
    }
    let run = |args: &[String], env: &[(String, String)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
        c.arg("serve").args(args).arg("--print-config");
        for k in &clean {
            c.env_remove(k);
        }
        c.env_remove("HOIST_CONFIG");
        c.envs(env.iter().map(|(k, v)| (k, v)));
        toml_of(&c.output().unwrap())
    };
    let config = vec!["--config".to_string(), f.to_string()];
    check(&run(&config, &[]), 0);
    let env: Vec<(String, String)> = table
        .iter()
        .map(|(k, _, v, _)| {
            (
                format!("HOIST_{}", k.to_uppercase().replace('-', "_")),
                v.to_string(),
            )
        })
        .collect();
    check(&run(&config, &env), 1);
    let mut args = config.clone();
    for (k, _, _, v) in table {
        args.push(format!("--{k}={v}"));
    }
    check(&run(&args, &env), 2);
}

/// The timeouts of the file take effect in a running server: an idle connection is closed
/// after the file's `idle-timeout`, not the default 90 s.
#[test]
fn the_files_timeouts_run_the_server() {
    use std::io::Read as _;
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("hoist.toml");
    std::fs::write(
        &file,
        format!(
            "addr = \"127.0.0.1:0\"\nroot = {:?}\nidle-timeout = \"1s\"\nheader-timeout = \"1s\"\n",
            t.path().join("root")
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.args(["serve", "--config", file.to_str().unwrap()])
        .env_remove("HOIST_IDLE_TIMEOUT")
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_ADDR");
    let server = Server::start_command(c, false, &t.path().join("serve.log"));
    let mut idle = std::net::TcpStream::connect(server.addr()).unwrap();
    // Far beyond the file's 1 s, far below the default 90 s.
    idle.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    match idle.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the idle connection is still open: {other:?}"),
    }
}
