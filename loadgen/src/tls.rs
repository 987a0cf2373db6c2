//! TLS for `rzk bench --tls`: the rustls client configuration (trust anchors from a PEM file,
//! optionally a client certificate) and the server name each host is checked against.
//!
//! The handshake itself runs blocking in [`crate::wire::connect`]; the measured sessions then
//! drive the finished `ClientConnection` over their non-blocking sockets (driver.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// The TLS flags, checked by [`crate::args::BenchArgs::plan`]; files are read by
/// [`TlsClient::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    pub ca: PathBuf,
    /// (certificate chain, private key), both PEM.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Checked against every host's certificate; None: the host part of each address.
    pub server_name: Option<String>,
}

/// A loaded client configuration, shared by every connection of a run.
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn certificates(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path, flag)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{flag} {}: no PEM certificate (\"BEGIN CERTIFICATE\") in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem(path, "--tls-key")?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("--tls-key {}: {e}", path.display()))?
        .ok_or_else(|| {
            format!(
                "--tls-key {}: no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
                path.display()
            )
        })
}

/// The ring provider, named explicitly (no process-wide default), as the server's rzk-tls
/// does. rustls deprecates it for lacking post-quantum key exchange; ring is what this
/// workspace builds (aws-lc-rs needs cmake and a C toolchain).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The host part of "host:port" ("[::1]:2181" gives "::1").
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn server_name(name: &str, origin: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|e| format!("{origin} {name:?}: not a DNS name or IP address: {e}"))
}

impl TlsClient {
    pub fn load(plan: &TlsPlan) -> Result<TlsClient, String> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(&plan.ca, "--tls-ca")? {
            roots
                .add(cert)
                .map_err(|e| format!("--tls-ca {}: {e}", plan.ca.display()))?;
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots);
        let mut config = match &plan.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(certificates(cert, "--tls-cert")?, private_key(key)?)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?,
        };
        // One handshake per session; resumption would only blur what is measured.
        config.resumption = rustls::client::Resumption::disabled();
        let server_name = plan
            .server_name
            .as_deref()
            .map(|n| server_name(n, "--tls-server-name"))
            .transpose()?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A client connection to `address` ("host:port"), before its handshake.
    pub fn connection(&self, address: &str) -> Result<ClientConnection, String> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => server_name(host_of(address), "--hosts")?,
        };
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| format!("{address}: TLS: {e}"))?;
        // The session's own output buffer bounds what is queued (inflight frames).
        conn.set_buffer_limit(None);
        Ok(conn)
    }
}

/// "TLSv1_3 TLS13_AES_256_GCM_SHA384": what a finished handshake agreed on.
pub fn describe(conn: &ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map_or("?".to_owned(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".to_owned(), |s| format!("{:?}", s.suite()));
    format!("{version} {suite}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port_and_ipv6_brackets() {
        assert_eq!(host_of("127.0.0.1:2181"), "127.0.0.1");
        assert_eq!(host_of("localhost:2281"), "localhost");
        assert_eq!(host_of("[::1]:2281"), "::1");
    }

    #[test]
    fn server_names_take_dns_names_and_ip_addresses() {
        assert!(matches!(
            server_name("127.0.0.1", "x").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("::1", "x").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("zk1.example", "x").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("not a name", "--tls-server-name")
            .unwrap_err()
            .contains("--tls-server-name"));
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let plan = TlsPlan {
            ca: PathBuf::from("/nonexistent/ca.crt"),
            client_cert: None,
            server_name: None,
        };
        let err = TlsClient::load(&plan).err().unwrap();
        assert!(err.contains("--tls-ca /nonexistent/ca.crt"), "{err}");
        let dir = std::env::temp_dir().join(format!("rzk-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = TlsClient::load(&TlsPlan { ca: empty, ..plan })
            .err()
            .unwrap();
        assert!(err.contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
