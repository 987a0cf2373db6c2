//! Test support: a throwaway PKI generated at test time (no key material is committed),
//! store files written to a private temp dir, and an in-memory handshake between a rustls
//! ServerConnection and ClientConnection (no sockets).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, ServerConnection};

use crate::{ClientAuth, Store, StoreKind, TlsSettings};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A directory removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rzk-tls-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, file: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Replaces a file and moves its mtime a second on. File times come from a coarse
    /// kernel clock, so a rewrite within the same few milliseconds with the same length
    /// could otherwise look unchanged, and reload tests would be flaky.
    pub fn replace(&self, file: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(file);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, contents).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(before + Duration::from_secs(1)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its private key, both PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_pkcs8_der: Vec<u8>,
}

/// A CA that issues leaves.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf with CN `cn` and the given subject alternative names (DNS names or IPs).
    pub fn leaf(&self, cn: &str, sans: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        self.leaf_from(params)
    }

    pub fn leaf_from(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_pkcs8_der: key.serialize_der(),
        }
    }
}

pub fn store(path: &Path, kind: StoreKind, password: Option<&str>, key: &str) -> Store {
    Store {
        location: path.to_path_buf(),
        password: password.map(str::to_string),
        kind,
        key: key.to_string(),
    }
}

/// A PEM key store: the key after the chain, to show order does not matter.
pub fn pem_key_store(dir: &TempDir, file: &str, leaf: &Leaf, ca: &Ca) -> Store {
    let path = dir.write(
        file,
        format!("{}{}{}", leaf.cert_pem, ca.cert_pem(), leaf.key_pem),
    );
    store(&path, StoreKind::Pem, None, "ssl.keyStore.location")
}

pub fn pem_trust_store(dir: &TempDir, file: &str, cas: &[&Ca]) -> Store {
    let pem: String = cas.iter().map(|ca| ca.cert_pem()).collect();
    let path = dir.write(file, pem);
    store(&path, StoreKind::Pem, None, "ssl.trustStore.location")
}

/// PKCS12 bytes holding `leaf`'s key and chain, written by p12-keystore.
pub fn pkcs12_key_store_bytes(leaf: &Leaf, ca: &Ca, password: &str) -> Vec<u8> {
    let mut keystore = KeyStore::new();
    let chain = PrivateKeyChain::new(
        vec![7u8; 20],
        PrivateKey::from_der(&leaf.key_pkcs8_der).unwrap(),
        [
            Certificate::from_der(&leaf.cert_der).unwrap(),
            Certificate::from_der(&ca.cert_der()).unwrap(),
        ],
    );
    keystore.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
    keystore.writer(password).write().unwrap()
}

pub fn pkcs12_trust_store_bytes(cas: &[&Ca], password: &str) -> Vec<u8> {
    let mut keystore = KeyStore::new();
    for (i, ca) in cas.iter().enumerate() {
        keystore.add_entry(
            &format!("ca{i}"),
            KeyStoreEntry::Certificate(Certificate::from_der(&ca.cert_der()).unwrap()),
        );
    }
    keystore.writer(password).write().unwrap()
}

pub fn settings(
    key_store: Option<Store>,
    trust_store: Option<Store>,
    client_auth: ClientAuth,
) -> TlsSettings {
    TlsSettings {
        key_store,
        trust_store,
        client_auth,
        versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
        cipher_suites: None,
        hostname_verification: true,
        handshake_timeout_ms: 5000,
    }
}

/// Runs a full handshake plus one application byte each way, in memory. The byte matters:
/// in TLS 1.3 the server checks the client certificate after the client thinks it is done.
/// Err says which side failed and why.
pub fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<(ServerConnection, ClientConnection), String> {
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut server = ServerConnection::new(server).unwrap();
    let mut client = ClientConnection::new(client, name).unwrap();
    use std::io::{Read, Write};
    client.writer().write_all(b"c").unwrap();
    let mut server_got = Vec::new();
    let mut client_got = Vec::new();
    for _round in 0..20 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut &buf[..]).unwrap();
        server
            .process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        if !server.is_handshaking() && server_got.is_empty() {
            let mut byte = [0u8; 1];
            if server.reader().read(&mut byte).is_ok() {
                server_got.push(byte[0]);
                server.writer().write_all(b"s").unwrap();
            }
        }
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut &buf[..]).unwrap();
        client
            .process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !client.is_handshaking() && client_got.is_empty() {
            let mut byte = [0u8; 1];
            if client.reader().read(&mut byte).is_ok() {
                client_got.push(byte[0]);
            }
        }
        if server_got == b"c" && client_got == b"s" {
            return Ok((server, client));
        }
    }
    Err("no progress after 20 rounds".to_string())
}

/// Runs an external tool the test depends on. A missing tool fails the test with an install
/// hint: skipping would let CI pass without checking what the test is for.
pub fn run_tool(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("{program} is needed by this test but cannot be run ({e}); install it (openssl: apt-get install openssl; keytool: apt-get install openjdk-17-jre-headless)")
    });
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
