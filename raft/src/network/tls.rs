//! Mutual TLS on the cluster bus (rustls on ring): both sides present a certificate
//! chaining to the cluster's CA, and both check the other's.
//!
//! Owns loading the PEM files and the two rustls configurations; it must not read or write
//! bus frames.
//!
//! Nodes are addressed by IP and port (the bus address in the membership), so a node's
//! certificate is checked as Redis's `tls-cluster` checks it: its chain up to the CA, its
//! validity period and its key usage, but not the host name or IP in it. Another node's
//! certificate from the same CA is accepted; a certificate from another CA, an expired one
//! or none at all is refused. The bus address is still sent as the server name (SNI is not
//! sent for IP addresses).

use std::{fmt, io, path::PathBuf, sync::Arc};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, ServerConfig,
    SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    server::WebPkiClientVerifier,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// The PEM files of a node's bus TLS: its certificate (chain), its private key, and the CA
/// certificate(s) peers' certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// This node's certificate, then any intermediates (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) peers must chain to (PEM).
    pub ca: PathBuf,
}

/// Both sides' rustls configurations, built once at start-up.
pub(crate) struct BusTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl BusTls {
    /// Reads the PEM files and builds both configurations.
    pub(crate) fn load(files: &TlsFiles) -> Result<BusTls, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .and_then(|i| i.collect())
            .map_err(|e| format!("cannot read certificates {}: {e}", files.cert.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate in {}", files.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| format!("cannot read private key {}: {e}", files.key.display()))?;
        let mut roots = RootCertStore::empty();
        let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.ca)
            .and_then(|i| i.collect())
            .map_err(|e| format!("cannot read CA certificates {}: {e}", files.ca.display()))?;
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| format!("bad CA certificate in {}: {e}", files.ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("no CA certificate in {}", files.ca.display()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_err = |e: Error| format!("cluster bus TLS: {e}");

        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("cluster bus TLS: {e}"))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_client_cert_verifier(clients)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| {
                format!(
                    "cluster bus TLS: {} and {} do not make a certificate and its key: {e}",
                    files.cert.display(),
                    files.key.display()
                )
            })?;
        // Bus connections are long-lived and pooled: no resumption tickets.
        server.send_tls13_tickets = 0;

        let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("cluster bus TLS: {e}"))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(servers)))
            .with_client_auth_cert(certs, key)
            .map_err(tls_err)?;
        Ok(BusTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// The server side of the TLS handshake on an accepted connection.
    pub(crate) async fn accept(&self, sock: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        Ok(self.acceptor.accept(sock).await?.into())
    }

    /// The client side of the TLS handshake with the node at bus address `addr`.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        sock: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::other(format!("bus address {addr}: {e}")))?;
        Ok(self.connector.connect(name, sock).await?.into())
    }
}

/// webpki's server check without the name check: the chain, validity and key usage as
/// webpki checks them (it checks those first, and the name only once they hold), then a
/// name mismatch, and only that, is let through.
struct AnyName(Arc<WebPkiServerVerifier>);

impl fmt::Debug for AnyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyName")
    }
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: "/nonexistent/node.crt".into(),
            key: "/nonexistent/node.key".into(),
            ca: "/nonexistent/ca.crt".into(),
        };
        let err = BusTls::load(&files).err().expect("refused");
        assert!(err.contains("/nonexistent/node.crt"), "{err}");
    }
}
