//! TLS on the client port, with Redis's settings: `--tls-port`, `--tls-cert-file`,
//! `--tls-key-file`, `--tls-ca-cert-file` and `--tls-auth-clients yes|no|optional`. Builds the
//! rustls server configuration once at start; a connection's handshake runs in its own task.

use std::{path::Path, sync::Arc};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio_rustls::TlsAcceptor;

/// Whether clients must present a certificate (Redis's tls-auth-clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client presents a certificate signed by the CA.
    Required,
    /// A client may present one; if it does, it must be signed by the CA.
    Optional,
    /// Certificates are not asked for.
    No,
}

/// Parses `yes`, `no` or `optional`.
pub fn parse_client_auth(s: &str) -> Result<ClientAuth, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(ClientAuth::Required),
        "optional" => Ok(ClientAuth::Optional),
        "no" | "false" | "off" | "0" => Ok(ClientAuth::No),
        _ => Err(format!("expected yes, no or optional, got '{s}'")),
    }
}

/// The provider every TLS configuration uses (ring), installed once.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificates of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", path.display()));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

/// Trust anchors from a CA bundle.
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots
            .add(c)
            .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The acceptor for the client port's TLS connections.
pub fn acceptor(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    auth: ClientAuth,
) -> Result<TlsAcceptor, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (auth, ca) {
        (ClientAuth::No, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(
                "--tls-auth-clients yes or optional needs --tls-ca-cert-file (the CA client \
                 certificates are checked against)"
                    .into(),
            );
        }
        (auth, Some(ca)) => {
            let roots = Arc::new(read_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config = builder
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    config.alpn_protocols.clear();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_words() {
        assert_eq!(parse_client_auth("yes"), Ok(ClientAuth::Required));
        assert_eq!(parse_client_auth("OPTIONAL"), Ok(ClientAuth::Optional));
        assert_eq!(parse_client_auth("no"), Ok(ClientAuth::No));
        assert!(parse_client_auth("maybe").is_err());
    }

    #[test]
    fn missing_files_are_reported_by_name() {
        let e = acceptor(
            Path::new("/no/such/cert.pem"),
            Path::new("/no/such/key.pem"),
            None,
            ClientAuth::No,
        )
        .err()
        .unwrap();
        assert!(e.contains("/no/such/cert.pem"), "{e}");
        let e = acceptor(
            Path::new("/no/such/cert.pem"),
            Path::new("/no/such/key.pem"),
            None,
            ClientAuth::Required,
        )
        .err()
        .unwrap();
        assert!(e.contains("--tls-ca-cert-file"), "{e}");
    }
}
