//! HTTPS for the web endpoints (`serve --tls-cert CERT --tls-key KEY`):
//! the server's rustls configuration (ring provider, PEM files, ALPN h2
//! then http/1.1: HTTP/2 is served by `h2.rs`), and TLS on the shared port, told by its first byte (a
//! handshake record, 0x16) from the long link and plain HTTP. With
//! `SSLKEYLOGFILE` set, the session secrets are appended there (NSS key
//! log, what `analyze --keylog` reads).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The first byte of a TLS connection (a handshake record).
pub const TLS_HANDSHAKE: u8 = 0x16;

/// A client's TLS configuration that trusts the certificates of a PEM
/// file (a CA, or the server's own self-signed certificate); ALPN
/// http/1.1; session secrets to SSLKEYLOGFILE when it is set.
pub fn client_config(trust: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(trust)
        .map_err(|e| format!("cannot read the certificate {}: {e}", trust.display()))?
    {
        let c = c.map_err(|e| format!("{} is not a PEM certificate: {e}", trust.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", trust.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", trust.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(config))
}

/// The server's TLS configuration from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (a PEM file with BEGIN CERTIFICATE is wanted)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a PEM private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(config))
}
