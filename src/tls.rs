//! TLS for postdesk's client connections (IMAP now, others may reuse it).
//!
//! rustls with the ring provider; certificates are checked by
//! rustls-platform-verifier against the system's roots plus, optionally,
//! the CAs of one extra PEM file (`ca_file`), for a company CA or a test
//! server. Names are always verified: there is no switch to turn checking
//! off. Building a config reads files (the system roots, `ca_file`), so
//! call [`client_config`] from a blocking context.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a TLS client configuration cannot be built. Each is a setup
/// problem an operator fixes; retrying does not help.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {path}: {source}; check ca_file")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the CA file {path} holds no PEM certificate; ca_file needs `-----BEGIN CERTIFICATE-----` blocks"
    )]
    NoCertificate { path: PathBuf },
    #[error("the CA file {path} holds a certificate rustls cannot use: {source}")]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "cannot set up certificate verification: {0}; install the system CA certificates (package ca-certificates) or set ca_file"
    )]
    Verifier(#[source] rustls::Error),
}

/// The client configs built so far, one per distinct `ca_file`, shared by
/// every connection that uses the same one.
///
/// Why: building a config reads and parses every system root (on Debian
/// the bundle and then each file of `/etc/ssl/certs`, some 280 parses) and
/// keeps the parsed roots in memory. Built per folder, five mailboxes read
/// them five times at start and kept five copies resident. The daemon keeps
/// one `TlsConfigs` per configuration generation, so a reload (SIGHUP)
/// still reads the CA files and the system roots again.
#[derive(Clone, Default)]
pub struct TlsConfigs {
    built: Arc<std::sync::Mutex<HashMap<Option<PathBuf>, Arc<ClientConfig>>>>,
}

impl std::fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfigs").finish_non_exhaustive()
    }
}

impl TlsConfigs {
    /// The config for `ca_file`, built on first use ([`client_config`]).
    /// Blocking (reads files the first time). A failure is not kept: the
    /// next call tries again, so a CA file fixed on disk is picked up.
    pub fn get(&self, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
        let key = ca_file.map(Path::to_path_buf);
        // Held while building, so that folders starting together build a
        // config once instead of each racing to build its own.
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(config) = built.get(&key) {
            return Ok(config.clone());
        }
        let config = client_config(ca_file)?;
        built.insert(key, config.clone());
        Ok(config)
    }
}

/// A client config that verifies servers with the platform verifier plus
/// the certificates of `ca_file`. Blocking (reads files).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = match ca_file {
        Some(path) => read_certificates(path)?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()).map_err(
            |e| match (ca_file, e) {
                // An extra root that does not parse is the file's fault.
                (Some(path), e @ rustls::Error::InvalidCertificate(_)) => TlsError::BadCa {
                    path: path.to_owned(),
                    source: e,
                },
                (_, e) => TlsError::Verifier(e),
            },
        )?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Verifier)?
        // Not a way around verification: this is how rustls takes the
        // platform verifier when extra roots are needed.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Says in words why a TLS handshake with `host` failed, for the one log
/// line an operator reads: a certificate for another name, an unknown CA
/// and an expired certificate each get their own advice.
pub fn describe_handshake_error(host: &str, error: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("TLS handshake with {host} failed: {error}");
    };
    match tls {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!(
                "the server's certificate is not valid for the name {host:?}; use the host name the certificate names (check host), or fix the server's certificate"
            )
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "the certificate of {host} is signed by an unknown authority; set ca_file to the PEM of the CA that signed it"
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!(
                "the certificate of {host} has expired; the server's certificate must be renewed"
            )
        }
        rustls::Error::InvalidCertificate(other) => {
            format!("the certificate of {host} was refused: {other:?}")
        }
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = client_config(Some(&p)).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    }

    #[test]
    fn one_config_per_ca_file_and_failures_are_not_kept() {
        let configs = TlsConfigs::default();
        let a = configs
            .get(None)
            .expect("the system roots (package ca-certificates)");
        let b = configs.get(None).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second folder reuses the first one's config"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        assert!(configs.get(Some(&p)).is_err());
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = configs.get(Some(&p)).unwrap_err();
        assert!(
            matches!(e, TlsError::NoCertificate { .. }),
            "read again, not the first failure: {e}"
        );
    }

    #[test]
    fn name_mismatch_is_explained() {
        let err = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        );
        let text = describe_handshake_error("127.0.0.2", &err);
        assert!(
            text.contains("not valid for the name \"127.0.0.2\""),
            "{text}"
        );
        let err = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(describe_handshake_error("h", &err).contains("ca_file"));
    }
}
