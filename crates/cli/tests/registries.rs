//! Talking to registries, as a crane or skopeo user expects: `hoist serve` over TLS on
//! loopback (a test CA) is reached with `--ca-file`, `SSL_CERT_FILE`, `--skip-tls-verify`
//! or `--insecure HOST`, and refused without any of them with a one-line error that says
//! what to do; a plain-http loopback registry is reached (tried over plain http first:
//! one port speaks one protocol); a refused connection or an unknown host fails at once, without retries;
//! retries that happen are announced on stderr; a 401 says how to log in; `hoist login`
//! and `logout` are aliases; containers' auth.json (`REGISTRY_AUTH_FILE`) is read after
//! docker's config.json.

mod serve_common;

use std::path::Path;
use std::process::{Command, Output};

use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
use hoist_testkit::registry::{self, TestRegistry};
use hoist_testkit::tls::TestCa;
use serve_common::Server;

/// `hoist ARGS` with a private HOME (no credentials) and cache.
fn hoist(args: &[&str], home: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.args(args)
        .env("HOME", home)
        .env("HOIST_CACHE_DIR", home.join("cache"))
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SSL_CERT_FILE")
        .env_remove("HOIST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Failed with exit code 1 and one line on stderr; returns it.
fn fails(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    e
}

/// A random image in a layout under `home`: its location.
fn image(home: &Path) -> String {
    let l = format!("oci:{}:v1", home.join("img").display());
    ok(&hoist(
        &["random", &l, "--layers", "2", "--size", "32k"],
        home,
        &[],
    ));
    l
}

#[test]
fn tls_on_loopback_with_a_ca_file_ssl_cert_file_skip_verify_or_insecure_and_refused_without() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let certs = home.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let Some(ca) = TestCa::new(&certs) else {
        return;
    };
    let server = Server::start_logged(
        &home.join("root"),
        &[
            "--tls-cert",
            ca.cert.to_str().unwrap(),
            "--tls-key",
            ca.key.to_str().unwrap(),
        ],
        &home.join("serve.log"),
    );
    assert!(server.url().starts_with("https://"));
    let host = server.addr();
    let src = image(home);
    let dst = format!("{host}/tls/app:v1");

    // No way to trust it: refused, naming the cause and the remedies, and no fallback
    // to plain http (which would only hide the cause).
    let e = fails(&hoist(&["push", &src, &dst], home, &[]));
    assert!(e.contains(&format!("https://{host}/v2/")), "{e}");
    assert!(e.contains("certificate"), "{e}");
    assert!(
        e.contains("--ca-file") && e.contains("--skip-tls-verify"),
        "{e}"
    );
    assert!(!e.contains("http://"), "{e}");

    // --ca-file: verified against the test CA.
    let ca_file = ca.ca.to_str().unwrap();
    let out = ok(&hoist(
        &["push", "-q", "--ca-file", ca_file, &src, &dst],
        home,
        &[],
    ));
    let digest = out.trim().rsplit_once('@').unwrap().1.to_string();
    assert_eq!(out.trim(), format!("{dst}@{digest}"));
    // SSL_CERT_FILE replaces the system's roots.
    let d = ok(&hoist(
        &["digest", &dst],
        home,
        &[("SSL_CERT_FILE", ca_file)],
    ));
    assert_eq!(d.trim(), digest);
    // --skip-tls-verify and --insecure HOST: encrypted, not verified.
    let d = ok(&hoist(&["digest", "--skip-tls-verify", &dst], home, &[]));
    assert_eq!(d.trim(), digest);
    let d = ok(&hoist(&["digest", "--insecure", &host, &dst], home, &[]));
    assert_eq!(d.trim(), digest);
    // A CA file that is not one: named.
    let bogus = home.join("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let e = fails(&hoist(
        &["digest", "--ca-file", bogus.to_str().unwrap(), &dst],
        home,
        &[],
    ));
    assert!(e.contains("bogus.pem"), "{e}");

    // Every verb that talks to registries takes the TLS options: a copy registry to
    // layout, and a validate of what the registry serves.
    let tls = ["--ca-file", ca_file];
    let l = format!("oci:{}", home.join("pulled").display());
    ok(&hoist(
        &[&["copy", "-q"][..], &tls, &[&format!("docker://{dst}"), &l]].concat(),
        home,
        &[],
    ));
    ok(&hoist(
        &[&["validate"][..], &tls, &[&format!("docker://{dst}")]].concat(),
        home,
        &[],
    ));
}

/// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE), given as its own CA
/// with `--ca-file` or `SSL_CERT_FILE`, is trusted as crane and skopeo trust it; without it,
/// or for another name, it is refused.
#[test]
fn a_self_signed_ca_certificate_is_trusted_as_itself() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let certs = home.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let Some(own) = TestCa::self_signed(&certs, "IP:127.0.0.1,DNS:localhost") else {
        return;
    };
    let other_dir = home.join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = TestCa::self_signed(&other_dir, "DNS:registry.example").unwrap();
    let serve = |ca: &TestCa, root: &str| {
        Server::start_logged(
            &home.join(root),
            &[
                "--tls-cert",
                ca.cert.to_str().unwrap(),
                "--tls-key",
                ca.key.to_str().unwrap(),
            ],
            &home.join(format!("{root}.log")),
        )
    };
    let server = serve(&own, "root");
    let host = server.addr();
    let src = image(home);
    let dst = format!("{host}/self/app:v1");
    let pem = own.ca.to_str().unwrap();

    let e = fails(&hoist(&["push", &src, &dst], home, &[]));
    assert!(e.contains("certificate"), "{e}");
    let out = ok(&hoist(
        &["push", "-q", "--ca-file", pem, &src, &dst],
        home,
        &[],
    ));
    let digest = out.trim().rsplit_once('@').unwrap().1.to_string();
    let d = ok(&hoist(&["digest", &dst], home, &[("SSL_CERT_FILE", pem)]));
    assert_eq!(d.trim(), digest);
    // The same certificate for localhost: its name is checked, and it is one of its names.
    let port = host.rsplit_once(':').unwrap().1;
    let d = ok(&hoist(
        &[
            "digest",
            "--ca-file",
            pem,
            &format!("localhost:{port}/self/app:v1"),
        ],
        home,
        &[],
    ));
    assert_eq!(d.trim(), digest);

    // A self-signed certificate for another name, trusted as itself, still names the host
    // wrongly: refused.
    let wrong = serve(&other, "root-other");
    let e = fails(&hoist(
        &[
            "digest",
            "--ca-file",
            other.ca.to_str().unwrap(),
            &format!("{}/self/app:v1", wrong.addr()),
        ],
        home,
        &[],
    ));
    assert!(e.contains("not valid for name"), "{e}");
}

#[test]
fn a_plain_http_loopback_registry_is_reached() {
    // The in-process registry speaks plain http on its port, tried first for a loopback
    // registry with a port (the TLS tests above prove https is still found when the port
    // speaks it).
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let src = image(home);
    let dst = format!("{}/plain/app:v1", reg.host());
    let out = ok(&hoist(&["push", "-q", &src, &dst], home, &[]));
    assert!(out.starts_with(&dst), "{out}");
    assert_eq!(
        ok(&hoist(
            &["ls", &format!("{}/plain/app", reg.host())],
            home,
            &[]
        )),
        "v1\n"
    );
}

#[test]
fn refused_connections_and_unknown_hosts_fail_at_once() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Nothing listens: one line, and no retry (the default allows 5): -v counts them.
    let repo = format!("127.0.0.1:{port}/x");
    let e = fails(&hoist(&["ls", &repo], home, &[]));
    assert!(e.contains("Connection refused"), "{e}");
    let o = hoist(&["ls", "-v", &repo], home, &[]);
    let all = String::from_utf8_lossy(&o.stderr);
    assert!(
        all.contains("registry client: 2 requests, 0 retries"),
        "{all}"
    );
    assert!(
        all.trim().lines().last().unwrap().starts_with("hoist: "),
        "{all}"
    );
    // `.invalid` never resolves (RFC 2606).
    let e = fails(&hoist(&["digest", "registry.invalid/x:y"], home, &[]));
    assert!(e.contains("registry.invalid") && e.contains("dns"), "{e}");
}

#[test]
fn retries_are_announced_on_stderr_and_quiet_hides_them() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let src = image(home);
    ok(&hoist(
        &["push", "-q", &src, &format!("{}/retry/app:v1", reg.host())],
        home,
        &[],
    ));
    // The tag list answers 503 twice, then passes through.
    let rule = || {
        Rule::new(
            Match::method("GET").path("/tags/list"),
            Fault::Status(503),
            2,
        )
    };
    let proxy = Proxy::start(reg.addr(), vec![rule()]);
    let repo = format!("{}/retry/app", proxy.addr());
    let out = hoist(&["ls", &repo], home, &[]);
    assert_eq!(ok(&out), "v1\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let retries: Vec<&str> = err.lines().filter(|l| l.contains("retry")).collect();
    assert_eq!(retries.len(), 2, "{err}");
    assert!(
        retries[0].contains("status 503") && retries[0].contains("retry 1 of 5"),
        "{err}"
    );
    // -q: the same work, nothing on stderr.
    proxy.set_rules(vec![rule()]);
    let out = hoist(&["ls", "-q", &repo], home, &[]);
    assert_eq!(ok(&out), "v1\n");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_401_says_how_to_log_in_and_auth_files_are_read_in_order() {
    let Some(htpasswd) = hoist_testkit::peers::require("htpasswd") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let out = Command::new(htpasswd)
        .args(["-Bbn", "carol", "pw-for-carol"])
        .output()
        .unwrap();
    let file = home.join("htpasswd");
    std::fs::write(&file, &out.stdout).unwrap();
    let reg = TestRegistry::start_with(registry::Options {
        htpasswd: Some(file),
        ..Default::default()
    });
    let host = reg.host();
    let repo = format!("{host}/private/app");

    // No credentials: the error says how to log in.
    let e = fails(&hoist(&["ls", &repo], home, &[]));
    assert!(e.contains("401"), "{e}");
    assert!(e.contains(&format!("hoist auth login {host}")), "{e}");

    // containers' auth.json through REGISTRY_AUTH_FILE (podman and skopeo write it).
    let auth = home.join("auth.json");
    let b64 = |s: &str| {
        use std::io::Write;
        let mut out = Vec::new();
        let mut c = Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        std::io::Read::read_to_end(&mut c.stdout.take().unwrap(), &mut out).unwrap();
        c.wait().unwrap();
        String::from_utf8(out).unwrap()
    };
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
            b64("carol:pw-for-carol")
        ),
    )
    .unwrap();
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().unwrap())];
    let src = image(home);
    ok(&hoist(
        &["push", "-q", &src, &format!("{repo}:v1")],
        home,
        &env,
    ));
    assert_eq!(ok(&hoist(&["ls", &repo], home, &env)), "v1\n");
    // ...and from its default place under XDG_CONFIG_HOME.
    let xdg = home.join("xdg");
    std::fs::create_dir_all(xdg.join("containers")).unwrap();
    std::fs::copy(&auth, xdg.join("containers/auth.json")).unwrap();
    let env_xdg = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    assert_eq!(ok(&hoist(&["ls", &repo], home, &env_xdg)), "v1\n");

    // docker's config.json comes first: a wrong password there wins over auth.json.
    let docker = home.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
            b64("carol:wrong")
        ),
    )
    .unwrap();
    let both = [
        ("REGISTRY_AUTH_FILE", auth.to_str().unwrap()),
        ("DOCKER_CONFIG", docker.to_str().unwrap()),
    ];
    let e = fails(&hoist(&["ls", &repo], home, &both));
    assert!(e.contains("401"), "{e}");

    // `hoist login` and `hoist logout`, the aliases of `hoist auth login|logout`.
    std::fs::remove_file(docker.join("config.json")).unwrap();
    let only_docker = [("DOCKER_CONFIG", docker.to_str().unwrap())];
    let out = hoist(
        &["login", &host, "-u", "carol", "-p", "pw-for-carol"],
        home,
        &only_docker,
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("logged in"));
    assert_eq!(ok(&hoist(&["ls", &repo], home, &only_docker)), "v1\n");
    ok(&hoist(&["logout", &host], home, &only_docker));
    let e = fails(&hoist(&["ls", &repo], home, &only_docker));
    assert!(e.contains("hoist auth login"), "{e}");
}
