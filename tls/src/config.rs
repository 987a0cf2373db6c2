//! Config: turns `TlsSettings` into rustls server and client configurations.
//! Holds: always the ring provider, never a process-wide default; no ALPN.
//! Not here: parsing keys (settings.rs), reading files (store.rs), reloading (reload.rs).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::store::{load_key_store, load_trust_store};
use crate::{ClientAuth, Store, TlsError, TlsSettings};

/// The ring provider, named explicitly so no process-wide default can change what rzk uses.
/// rustls deprecates it for lacking post-quantum key exchange; ring is the provider this
/// workspace builds (aws-lc-rs needs cmake and a C toolchain), so the warning is accepted here
/// once instead of at every call.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn provider(settings: &TlsSettings) -> Arc<CryptoProvider> {
    let mut provider = ring_provider();
    if let Some(suites) = &settings.cipher_suites {
        provider.cipher_suites = suites.clone();
    }
    Arc::new(provider)
}

/// The config prefix ("ssl." or "ssl.quorum."), recovered from whichever store is set,
/// so errors about a missing key can name it exactly.
fn prefix(settings: &TlsSettings) -> String {
    [&settings.key_store, &settings.trust_store]
        .into_iter()
        .flatten()
        .find_map(|s| {
            s.key
                .strip_suffix("keyStore.location")
                .or_else(|| s.key.strip_suffix("trustStore.location"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "ssl.".to_string())
}

fn protocols_error(settings: &TlsSettings, source: rustls::Error) -> TlsError {
    let names: Vec<String> = settings
        .cipher_suites
        .iter()
        .flatten()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    TlsError::config(
        &format!("{}ciphersuites", prefix(settings)),
        &names.join(","),
        &format!("no cipher suite fits the enabled protocols: {source}"),
    )
}

fn required_trust_store<'a>(settings: &'a TlsSettings, why: &str) -> Result<&'a Store, TlsError> {
    settings
        .trust_store
        .as_ref()
        .ok_or_else(|| TlsError::Missing {
            key: format!("{}trustStore.location", prefix(settings)),
            reason: why.to_string(),
        })
}

fn verifier_error(store: &Store, error: rustls::server::VerifierBuilderError) -> TlsError {
    TlsError::Malformed {
        key: store.key.clone(),
        path: store.location.clone(),
        reason: format!("cannot verify peers with this trust store: {error}"),
    }
}

/// The config for accepting connections: presents the key store's chain and checks client
/// certificates against the trust store as `client_auth` says.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider(settings);
    let key_store = settings
        .key_store
        .as_ref()
        .ok_or_else(|| TlsError::Missing {
            key: format!("{}keyStore.location", prefix(settings)),
            reason: "a TLS server needs a certificate and private key".to_string(),
        })?;
    let material = load_key_store(key_store, &provider)?;

    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&settings.versions)
        .map_err(|e| protocols_error(settings, e))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Need | ClientAuth::Want => {
            let trust = required_trust_store(
                settings,
                "client certificates are checked against it (set clientAuth=none to not ask)",
            )?;
            let roots = Arc::new(load_trust_store(trust)?);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
            let verifier = if settings.client_auth == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| verifier_error(trust, e))?)
        }
    };
    let config = builder
        .with_single_cert(material.chain, material.key)
        .map_err(|e| crate::store::rustls_error(key_store, e))?;
    Ok(Arc::new(config))
}

/// The config for a server dialing a peer: verifies the peer against the trust store and
/// presents the key store's chain when one is set.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider(settings);
    let trust = required_trust_store(
        settings,
        "the peer's certificate is checked against it; rzk has no built-in roots",
    )?;
    let roots = Arc::new(load_trust_store(trust)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| verifier_error(trust, e))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.hostname_verification {
        webpki
    } else {
        Arc::new(ChainOnlyVerifier { inner: webpki })
    };

    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&settings.versions)
        .map_err(|e| protocols_error(settings, e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.key_store {
        None => builder.with_no_client_auth(),
        Some(key_store) => {
            let material = load_key_store(key_store, &provider)?;
            builder
                .with_client_auth_cert(material.chain, material.key)
                .map_err(|e| crate::store::rustls_error(key_store, e))?
        }
    };
    Ok(Arc::new(config))
}

/// `hostnameVerification=false`: the peer must still chain to the trust store, only the
/// name check is waived. ZooKeeper quorums often dial peers by IP with certificates that
/// name a host, which is why the key exists.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // WebPkiServerVerifier checks the chain (and validity dates) before the name, so a
        // name error means everything else already passed.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the rustls configs enforce what the ZooKeeper keys ask for. Method: real
    //! handshakes in memory between configs built from generated certificates.
    use super::*;
    use crate::testutil::*;
    use crate::StoreKind;

    struct Fixture {
        dir: TempDir,
        ca: Ca,
        server: Store,
        trust: Store,
    }

    fn fixture(name: &str) -> Fixture {
        let dir = TempDir::new(name);
        let ca = Ca::new("rzk test CA");
        let leaf = ca.leaf("zk1", &["localhost", "127.0.0.1"]);
        let server = pem_key_store(&dir, "server.pem", &leaf, &ca);
        let trust = pem_trust_store(&dir, "trust.pem", &[&ca]);
        Fixture {
            dir,
            ca,
            server,
            trust,
        }
    }

    /// Client settings: trusts `trust`, presents `key_store` if any.
    fn client(key_store: Option<Store>, trust: &Store) -> TlsSettings {
        settings(key_store, Some(trust.clone()), ClientAuth::None)
    }

    #[test]
    fn need_with_a_trusted_client_cert_succeeds() {
        let f = fixture("need-ok");
        let leaf = f.ca.leaf("alice", &[]);
        let client_store = pem_key_store(&f.dir, "client.pem", &leaf, &f.ca);
        let server = server_config(&settings(
            Some(f.server.clone()),
            Some(f.trust.clone()),
            ClientAuth::Need,
        ))
        .unwrap();
        let client = client_config(&client(Some(client_store), &f.trust)).unwrap();
        let (server_conn, _) = handshake(server, client, "localhost").unwrap();
        assert_eq!(server_conn.peer_certificates().unwrap()[0], leaf.cert_der);
        // The identity ZooKeeper's x509 auth provider would give this client.
        assert_eq!(
            crate::x509_subject(&server_conn.peer_certificates().unwrap()[0]).unwrap(),
            "CN=alice"
        );
    }

    #[test]
    fn need_without_a_client_cert_fails() {
        let f = fixture("need-none");
        let server = server_config(&settings(
            Some(f.server.clone()),
            Some(f.trust.clone()),
            ClientAuth::Need,
        ))
        .unwrap();
        let client = client_config(&client(None, &f.trust)).unwrap();
        let err = handshake(server, client, "localhost").unwrap_err();
        assert!(err.starts_with("server: "), "{err}");
    }

    #[test]
    fn want_without_a_client_cert_succeeds() {
        let f = fixture("want-none");
        let server = server_config(&settings(
            Some(f.server.clone()),
            Some(f.trust.clone()),
            ClientAuth::Want,
        ))
        .unwrap();
        let client = client_config(&client(None, &f.trust)).unwrap();
        let (server_conn, _) = handshake(server, client, "localhost").unwrap();
        assert!(server_conn.peer_certificates().is_none());
    }

    #[test]
    fn want_with_a_cert_from_another_ca_fails() {
        let f = fixture("want-other");
        let other = Ca::new("other CA");
        let leaf = other.leaf("mallory", &[]);
        let client_store = pem_key_store(&f.dir, "client.pem", &leaf, &other);
        let server = server_config(&settings(
            Some(f.server.clone()),
            Some(f.trust.clone()),
            ClientAuth::Want,
        ))
        .unwrap();
        let client = client_config(&client(Some(client_store), &f.trust)).unwrap();
        assert!(handshake(server, client, "localhost").is_err());
    }

    #[test]
    fn need_with_a_cert_from_another_ca_fails() {
        let f = fixture("need-other");
        let other = Ca::new("other CA");
        let leaf = other.leaf("mallory", &[]);
        let client_store = pem_key_store(&f.dir, "client.pem", &leaf, &other);
        let server = server_config(&settings(
            Some(f.server.clone()),
            Some(f.trust.clone()),
            ClientAuth::Need,
        ))
        .unwrap();
        let client = client_config(&client(Some(client_store), &f.trust)).unwrap();
        let err = handshake(server, client, "localhost").unwrap_err();
        assert!(err.starts_with("server: "), "{err}");
    }

    #[test]
    fn client_auth_none_needs_no_trust_store() {
        let f = fixture("auth-none");
        let server =
            server_config(&settings(Some(f.server.clone()), None, ClientAuth::None)).unwrap();
        let client = client_config(&client(None, &f.trust)).unwrap();
        handshake(server, client, "localhost").unwrap();
    }

    #[test]
    fn need_without_a_trust_store_is_a_config_error() {
        let f = fixture("need-no-trust");
        let mut s = settings(Some(f.server.clone()), None, ClientAuth::Need);
        s.key_store.as_mut().unwrap().key = "ssl.quorum.keyStore.location".to_string();
        let err = server_config(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("ssl.quorum.trustStore.location is not set"),
            "{err}"
        );
    }

    #[test]
    fn hostname_verification() {
        let f = fixture("hostname");
        let server =
            server_config(&settings(Some(f.server.clone()), None, ClientAuth::None)).unwrap();
        let on = client_config(&client(None, &f.trust)).unwrap();
        handshake(Arc::clone(&server), Arc::clone(&on), "localhost").unwrap();
        handshake(Arc::clone(&server), Arc::clone(&on), "127.0.0.1").unwrap();
        let err = handshake(Arc::clone(&server), on, "zk2.example").unwrap_err();
        assert!(err.starts_with("client: "), "{err}");
        assert!(err.contains("not valid for name"), "{err}");

        let mut off = client(None, &f.trust);
        off.hostname_verification = false;
        let off = client_config(&off).unwrap();
        handshake(Arc::clone(&server), off, "zk2.example").unwrap();
    }

    #[test]
    fn hostname_verification_off_still_checks_the_chain() {
        let f = fixture("hostname-chain");
        let other = Ca::new("other CA");
        let leaf = other.leaf("zk1", &["localhost"]);
        let rogue = pem_key_store(&f.dir, "rogue.pem", &leaf, &other);
        let server = server_config(&settings(Some(rogue), None, ClientAuth::None)).unwrap();
        let mut off = client(None, &f.trust);
        off.hostname_verification = false;
        let err = handshake(server, client_config(&off).unwrap(), "zk2.example").unwrap_err();
        assert!(err.starts_with("client: "), "{err}");
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn protocol_versions_must_overlap() {
        let f = fixture("versions");
        let mut server13 = settings(Some(f.server.clone()), None, ClientAuth::None);
        server13.versions = vec![&rustls::version::TLS13];
        let mut client12 = client(None, &f.trust);
        client12.versions = vec![&rustls::version::TLS12];
        let server13 = server_config(&server13).unwrap();
        let client12 = client_config(&client12).unwrap();
        assert!(handshake(Arc::clone(&server13), Arc::clone(&client12), "localhost").is_err());

        let mut server12 = settings(Some(f.server.clone()), None, ClientAuth::None);
        server12.versions = vec![&rustls::version::TLS12];
        let (conn, _) =
            handshake(server_config(&server12).unwrap(), client12, "localhost").unwrap();
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        let both = client_config(&client(None, &f.trust)).unwrap();
        let (conn, _) = handshake(server13, both, "localhost").unwrap();
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }

    #[test]
    fn cipher_suites_restrict_the_negotiation() {
        let f = fixture("suites");
        let props: std::collections::BTreeMap<String, String> = [
            ("ssl.keyStore.location", f.server.location.to_str().unwrap()),
            ("ssl.clientAuth", "none"),
            ("ssl.protocol", "TLSv1.2"),
            (
                "ssl.ciphersuites",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = TlsSettings::from_properties("ssl.", &props)
            .unwrap()
            .unwrap();
        let server = server_config(&s).unwrap();
        let client = client_config(&client(None, &f.trust)).unwrap();
        let (conn, _) = handshake(server, client, "localhost").unwrap();
        assert_eq!(
            conn.negotiated_cipher_suite().unwrap().suite(),
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        );
    }

    #[test]
    fn suites_that_fit_no_enabled_protocol_name_the_key() {
        let f = fixture("suites-misfit");
        let mut s = settings(Some(f.server.clone()), None, ClientAuth::None);
        s.versions = vec![&rustls::version::TLS12];
        s.cipher_suites = Some(vec![
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ]);
        let err = server_config(&s).unwrap_err().to_string();
        assert!(err.starts_with("ssl.ciphersuites="), "{err}");
    }

    #[test]
    fn a_key_that_matches_no_certificate_is_refused() {
        let f = fixture("mismatch");
        let a = f.ca.leaf("a", &["localhost"]);
        let b = f.ca.leaf("b", &["localhost"]);
        let path = f
            .dir
            .write("mixed.pem", format!("{}{}", a.cert_pem, b.key_pem));
        let s = store(&path, StoreKind::Pem, None, "ssl.keyStore.location");
        let err = server_config(&settings(Some(s), None, ClientAuth::None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mixed.pem"), "{err}");
        assert!(err.contains("matches its private key"), "{err}");
    }

    #[test]
    fn quorum_peers_authenticate_each_other_with_pkcs12_stores() {
        // Both ends of a quorum link use the same key store and trust store, as ZooKeeper's
        // ssl.quorum.* keys do.
        let f = fixture("quorum");
        let leaf = f.ca.leaf("zk1", &["localhost"]);
        let key_path = f
            .dir
            .write("quorum.p12", pkcs12_key_store_bytes(&leaf, &f.ca, "kpass"));
        let trust_path = f
            .dir
            .write("trust.p12", pkcs12_trust_store_bytes(&[&f.ca], "tpass"));
        let s = settings(
            Some(store(
                &key_path,
                StoreKind::Pkcs12,
                Some("kpass"),
                "ssl.quorum.keyStore.location",
            )),
            Some(store(
                &trust_path,
                StoreKind::Pkcs12,
                Some("tpass"),
                "ssl.quorum.trustStore.location",
            )),
            ClientAuth::Need,
        );
        let (server_conn, client_conn) = handshake(
            server_config(&s).unwrap(),
            client_config(&s).unwrap(),
            "localhost",
        )
        .unwrap();
        assert_eq!(server_conn.peer_certificates().unwrap()[0], leaf.cert_der);
        // The chain is sent leaf first, CA after.
        assert_eq!(client_conn.peer_certificates().unwrap().len(), 2);
    }
}
