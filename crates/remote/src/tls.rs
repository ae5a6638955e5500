//! The client's certificate verification: the system's roots (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` replace them) plus the CA files given, through rustls-platform-verifier as
//! reqwest would use it, and one addition for self-signed registries.
//!
//! A self-signed certificate made the usual way (`openssl req -x509`, as distribution's docs
//! show) says CA:TRUE. Given as its own CA (`--ca-file`, or in `SSL_CERT_FILE`), webpki still
//! refuses it as a server's certificate (`CaUsedAsEndEntity`), where Go, and so crane and
//! skopeo, accept it. [`Verifier`] accepts exactly that case: the error is
//! `CaUsedAsEndEntity` (webpki checks the validity period before it, so the certificate is
//! not expired), the server's certificate is byte for byte one of those files' certificates,
//! and it names the host. The handshake's signatures are verified as always.
//!
//! The roots are read when the first certificate is verified, not before: reading the
//! system's (some 150 files) costs a process that only talks plain http to local
//! registries several milliseconds for nothing.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

/// Verifies a registry's certificate (see the module's docs).
#[derive(Debug)]
pub(crate) struct Verifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The CA files' certificates.
    extra: Vec<CertificateDer<'static>>,
    /// Built from the roots at the first certificate (or the reason it could not be).
    roots: OnceLock<std::result::Result<Roots, String>>,
}

#[derive(Debug)]
struct Roots {
    platform: rustls_platform_verifier::Verifier,
    /// Certificates the user named as trusted, each trusted as itself too.
    pinned: Vec<CertificateDer<'static>>,
}

impl Verifier {
    /// The system's roots plus `extra` (the CA files' certificates). The certificates of
    /// `SSL_CERT_FILE` (when set and readable) and `extra` are trusted as themselves.
    pub(crate) fn new(extra: Vec<CertificateDer<'static>>) -> Verifier {
        Verifier {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            extra,
            roots: OnceLock::new(),
        }
    }

    fn roots(&self) -> std::result::Result<&Roots, rustls::Error> {
        self.roots
            .get_or_init(|| {
                let extra = self.extra.clone();
                let platform = if extra.is_empty() {
                    rustls_platform_verifier::Verifier::new(self.provider.clone())
                } else {
                    rustls_platform_verifier::Verifier::new_with_extra_roots(
                        extra.clone(),
                        self.provider.clone(),
                    )
                }
                .map_err(|e| format!("TLS roots: {e}"))?;
                let mut pinned = extra;
                if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
                    pinned.extend(read_pem(Path::new(&f)).unwrap_or_default());
                }
                Ok(Roots { platform, pinned })
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }

    /// A rustls client configuration verifying with this, offering HTTP/2 unless
    /// `http1_only`.
    pub(crate) fn client_config(self, http1_only: bool) -> Result<rustls::ClientConfig> {
        let mut c = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_input("TLS settings", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth();
        c.alpn_protocols = if http1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        Ok(c)
    }
}

/// Whether `e` is webpki's refusal of a CA certificate as a server's.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
            o.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
        }
        _ => false,
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let roots = self.roots()?;
        match roots.platform.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && roots
                        .pinned
                        .iter()
                        .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&cert, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        // As the platform verifier does (webpki with the provider's algorithms), without
        // reading the roots.
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificates of a PEM file.
fn read_pem(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// The certificates of a CA file, or an error naming it.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let what = || format!("CA file {}", path.display());
    let pem = std::fs::read(path).map_err(|e| Error::io(what(), e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid_input(what(), "expected PEM certificates"))?;
    if certs.is_empty() {
        return Err(Error::invalid_input(
            what(),
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}
