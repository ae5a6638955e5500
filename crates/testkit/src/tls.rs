//! A test certificate authority (openssl, a peer on PATH): a CA certificate and a server
//! certificate it signed for `127.0.0.1`, `::1` and `localhost`, as `hoist serve
//! --tls-cert/--tls-key` takes them and a client trusts them (`--ca-file ca.pem`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a test CA, in a directory of the caller's.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA's certificate (PEM): what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate chain (PEM), signed by the CA.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

fn openssl(bin: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// Make one in `dir`; `None` (the test is skipped) when openssl is not on PATH and
    /// peers are not required ([`crate::peers::require`]).
    pub fn new(dir: &Path) -> Option<TestCa> {
        let bin = crate::peers::require("openssl")?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hoist test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&bin, &ca, dir);
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend([
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&bin, &req, dir);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            &bin,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "cert.pem",
            ],
            dir,
        );
        Some(TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        })
    }

    /// A self-signed certificate made the way distribution's docs and most tutorials make
    /// one (`openssl req -x509`, so CA:TRUE), for `subject_alt_name` (an openssl
    /// subjectAltName value such as `IP:127.0.0.1`), in `dir`: the server's certificate is
    /// its own CA (`ca` and `cert` are the same file). `None` as [`TestCa::new`].
    pub fn self_signed(dir: &Path, subject_alt_name: &str) -> Option<TestCa> {
        let bin = crate::peers::require("openssl")?;
        let san = format!("subjectAltName={subject_alt_name}");
        openssl(
            &bin,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "self-key.pem",
                "-out",
                "self.pem",
                "-days",
                "2",
                "-subj",
                "/CN=hoist self-signed",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                &san,
            ],
            dir,
        );
        Some(TestCa {
            ca: dir.join("self.pem"),
            cert: dir.join("self.pem"),
            key: dir.join("self-key.pem"),
        })
    }
}
