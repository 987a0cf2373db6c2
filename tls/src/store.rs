//! Store: reads a key store or trust store file into DER certificates and a private key.
//! In: a `Store` (path, kind, password). Out: a chain + key, or a list of trust anchors.
//! Holds: each failure is its own `TlsError` naming the config key and the file.
//! Not here: deciding what the material is used for (config.rs).

use std::sync::Arc;

use p12_keystore::{KeyStore, Pkcs12Archive, Pkcs12ImportPolicy};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::{Store, StoreKind, TlsError};

/// A private key and its certificate chain, leaf first.
pub(crate) struct KeyMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

pub(crate) fn load_key_store(
    store: &Store,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<KeyMaterial, TlsError> {
    let bytes = read(store)?;
    let mut material = match store.kind {
        StoreKind::Pem => pem_key_store(store, &bytes)?,
        StoreKind::Pkcs12 => pkcs12_key_store(store, &bytes)?,
        StoreKind::Jks | StoreKind::Bcfks => return Err(unsupported(store)),
    };
    put_leaf_first(store, &mut material, provider)?;
    Ok(material)
}

pub(crate) fn load_trust_store(store: &Store) -> Result<rustls::RootCertStore, TlsError> {
    let bytes = read(store)?;
    let anchors = match store.kind {
        StoreKind::Pem => pem_items(store, &bytes)?.certs,
        StoreKind::Pkcs12 => {
            let archive = Pkcs12Archive::from_pkcs12(&bytes, password(store))
                .map_err(|e| pkcs12_error(store, e))?;
            archive
                .certs
                .iter()
                .map(|bag| CertificateDer::from(bag.cert.as_der().to_vec()))
                .collect()
        }
        StoreKind::Jks | StoreKind::Bcfks => return Err(unsupported(store)),
    };
    if anchors.is_empty() {
        return Err(TlsError::NoCertificate {
            key: store.key.clone(),
            path: store.location.clone(),
        });
    }
    let mut roots = rustls::RootCertStore::empty();
    for anchor in anchors {
        roots
            .add(anchor)
            .map_err(|source| rustls_error(store, source))?;
    }
    Ok(roots)
}

fn read(store: &Store) -> Result<Vec<u8>, TlsError> {
    std::fs::read(&store.location).map_err(|source| TlsError::Read {
        key: store.key.clone(),
        path: store.location.clone(),
        source,
    })
}

// PKCS12 without a password is how ZooKeeper opens a store whose .password is unset;
// the empty string is the same thing to the PKCS12 key derivation.
fn password(store: &Store) -> &str {
    store.password.as_deref().unwrap_or("")
}

pub(crate) fn rustls_error(store: &Store, source: rustls::Error) -> TlsError {
    TlsError::Rustls {
        key: store.key.clone(),
        path: store.location.clone(),
        source,
    }
}

fn malformed(store: &Store, reason: String) -> TlsError {
    TlsError::Malformed {
        key: store.key.clone(),
        path: store.location.clone(),
        reason,
    }
}

fn unsupported(store: &Store) -> TlsError {
    let file = store
        .location
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| store.location.display().to_string());
    let stem = store
        .location
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".to_string());
    let (format, source_type) = match store.kind {
        StoreKind::Jks => ("JKS", ""),
        _ => (
            "BCFKS",
            " -srcstoretype BCFKS -providerpath bc-fips.jar \
             -provider org.bouncycastle.jcajce.provider.BouncyCastleFipsProvider",
        ),
    };
    TlsError::UnsupportedStore {
        key: store.key.clone(),
        path: store.location.clone(),
        format,
        command: format!(
            "keytool -importkeystore -srckeystore {file}{source_type} \
             -destkeystore {stem}.p12 -deststoretype PKCS12"
        ),
    }
}

fn pkcs12_error(store: &Store, error: p12_keystore::error::Error) -> TlsError {
    use p12_keystore::error::Error;
    match error {
        // The MAC is keyed by the password, so a mismatch is almost always a wrong password;
        // without a MAC, a wrong password shows up as bad padding when decrypting.
        Error::MacError(_) | Error::UnpadError => TlsError::WrongPassword {
            key: store.key.clone(),
            path: store.location.clone(),
        },
        other => malformed(
            store,
            format!("not a PKCS12 file, or a kind of PKCS12 rzk cannot read: {other}"),
        ),
    }
}

fn pkcs12_key_store(store: &Store, bytes: &[u8]) -> Result<KeyMaterial, TlsError> {
    // Relaxed keeps a key whose certificate is missing, so that case gets its own error.
    let keystore = KeyStore::from_pkcs12(bytes, password(store), Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| pkcs12_error(store, e))?;
    let Some((_alias, chain)) = keystore.private_key_chain() else {
        return Err(TlsError::NoPrivateKey {
            key: store.key.clone(),
            path: store.location.clone(),
        });
    };
    if chain.certs().is_empty() {
        return Err(TlsError::NoCertificate {
            key: store.key.clone(),
            path: store.location.clone(),
        });
    }
    Ok(KeyMaterial {
        chain: chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
    })
}

struct PemItems {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
}

fn pem_items(store: &Store, bytes: &[u8]) -> Result<PemItems, TlsError> {
    let mut items = PemItems {
        certs: Vec::new(),
        keys: Vec::new(),
    };
    for item in rustls_pemfile::read_all(&mut &bytes[..]) {
        match item.map_err(|e| malformed(store, format!("not a valid PEM file: {e}")))? {
            rustls_pemfile::Item::X509Certificate(cert) => items.certs.push(cert),
            rustls_pemfile::Item::Pkcs1Key(key) => items.keys.push(key.into()),
            rustls_pemfile::Item::Pkcs8Key(key) => items.keys.push(key.into()),
            rustls_pemfile::Item::Sec1Key(key) => items.keys.push(key.into()),
            // CRLs, CSRs and the like are not key store material; ZooKeeper skips them too.
            _ => {}
        }
    }
    Ok(items)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

fn pem_key_store(store: &Store, bytes: &[u8]) -> Result<KeyMaterial, TlsError> {
    let mut items = pem_items(store, bytes)?;
    let text = String::from_utf8_lossy(bytes);
    // OpenSSL's old "traditional" encryption puts headers inside an RSA/EC block; rustls-pemfile
    // would hand back the still-encrypted bytes as if they were a key.
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(malformed(
            store,
            "the private key uses OpenSSL's legacy PEM encryption, which rzk cannot read; \
             convert it: openssl pkcs8 -topk8 -in <key> -out <key> (then set the matching \
             .password key), or -nocrypt to store it unencrypted"
                .to_string(),
        ));
    }
    if items.keys.is_empty() {
        if let Some(key) = encrypted_pkcs8(store, &text)? {
            items.keys.push(key);
        }
    }
    // ZooKeeper's PEM reader takes the first key too.
    let Some(key) = items.keys.into_iter().next() else {
        return Err(TlsError::NoPrivateKey {
            key: store.key.clone(),
            path: store.location.clone(),
        });
    };
    if items.certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key: store.key.clone(),
            path: store.location.clone(),
        });
    }
    Ok(KeyMaterial {
        chain: items.certs,
        key,
    })
}

fn encrypted_pkcs8(store: &Store, text: &str) -> Result<Option<PrivateKeyDer<'static>>, TlsError> {
    let Some(start) = text.find(ENCRYPTED_BEGIN) else {
        return Ok(None);
    };
    let Some(end) = text[start..].find(ENCRYPTED_END) else {
        return Err(malformed(
            store,
            format!("{ENCRYPTED_BEGIN} without its {ENCRYPTED_END} line"),
        ));
    };
    let Some(password) = store.password.as_deref() else {
        return Err(TlsError::EncryptedKey {
            key: store.key.clone(),
            path: store.location.clone(),
        });
    };
    let block = &text[start..start + end + ENCRYPTED_END.len()];
    let (_label, document) = pkcs8::der::Document::from_pem(block)
        .map_err(|e| malformed(store, format!("bad encrypted private key PEM: {e}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(document.as_bytes())
        .map_err(|e| malformed(store, format!("bad encrypted private key: {e}")))?;
    match info.decrypt(password) {
        Ok(secret) => Ok(Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            secret.as_bytes().to_vec(),
        )))),
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed)) => {
            Err(TlsError::WrongPassword {
                key: store.key.clone(),
                path: store.location.clone(),
            })
        }
        Err(e) => Err(malformed(
            store,
            format!(
                "cannot decrypt the private key ({e}); decrypt it instead: \
                 openssl pkcs8 -topk8 -nocrypt -in <key> -out <key>"
            ),
        )),
    }
}

/// PEM files list certificates in any order and some PKCS12 writers do too, while TLS wants
/// the certificate of the private key first. Find it by comparing public keys.
fn put_leaf_first(
    store: &Store,
    material: &mut KeyMaterial,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(), TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(material.key.clone_key())
        .map_err(|e| rustls_error(store, e))?;
    let matches = |cert: &CertificateDer<'static>| {
        let candidate = CertifiedKey::new(vec![cert.clone()], Arc::clone(&signing_key));
        match candidate.keys_match() {
            Ok(()) => true,
            // A key type whose public half rustls cannot compute: nothing to compare.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => true,
            Err(_) => false,
        }
    };
    match material.chain.iter().position(matches) {
        Some(0) => Ok(()),
        Some(leaf) => {
            let cert = material.chain.remove(leaf);
            material.chain.insert(0, cert);
            Ok(())
        }
        None => Err(malformed(
            store,
            "no certificate in the store matches its private key".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    //! Goal: every supported store layout loads, and every way a store can be wrong gives its
    //! own error naming key and file. Method: stores written at test time by rcgen and
    //! p12-keystore, and by the openssl and keytool CLIs for the formats real operators
    //! bring (those tests fail, not skip, when the tool is missing).
    use super::*;
    use crate::config::ring_provider;
    use crate::testutil::*;

    fn load(s: &Store) -> Result<KeyMaterial, TlsError> {
        load_key_store(s, &ring_provider())
    }

    fn key_store(path: &std::path::Path, kind: StoreKind, password: Option<&str>) -> Store {
        store(path, kind, password, "ssl.keyStore.location")
    }

    fn expect_err(result: Result<KeyMaterial, TlsError>) -> TlsError {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn pem_key_store_in_any_order_puts_the_leaf_first() {
        let dir = TempDir::new("pem-order");
        let ca = Ca::new("ca");
        let leaf = ca.leaf("zk1", &["localhost"]);
        // CA first, then the key, then the leaf.
        let path = dir.write(
            "s.pem",
            format!("{}{}{}", ca.cert_pem(), leaf.key_pem, leaf.cert_pem),
        );
        let material = load(&key_store(&path, StoreKind::Pem, None)).unwrap();
        assert_eq!(material.chain.len(), 2);
        assert_eq!(material.chain[0], leaf.cert_der);
    }

    #[test]
    fn pem_trust_store_keeps_every_certificate() {
        let dir = TempDir::new("pem-trust");
        let (a, b) = (Ca::new("a"), Ca::new("b"));
        let s = pem_trust_store(&dir, "t.pem", &[&a, &b]);
        assert_eq!(load_trust_store(&s).unwrap().len(), 2);
    }

    #[test]
    fn each_broken_store_has_its_own_error() {
        let dir = TempDir::new("broken");
        let ca = Ca::new("ca");
        let leaf = ca.leaf("zk1", &[]);

        let missing = dir.0.join("missing.pem");
        let err = expect_err(load(&key_store(&missing, StoreKind::Pem, None)));
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("ssl.keyStore.location={}: ", missing.display())),
            "{err}"
        );

        let certs_only = dir.write("certs.pem", &leaf.cert_pem);
        let err = expect_err(load(&key_store(&certs_only, StoreKind::Pem, None)));
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");

        let key_only = dir.write("key.pem", &leaf.key_pem);
        let err = expect_err(load(&key_store(&key_only, StoreKind::Pem, None)));
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

        let err = load_trust_store(&key_store(&key_only, StoreKind::Pem, None)).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

        let p12 = dir.write("s.p12", pkcs12_key_store_bytes(&leaf, &ca, "right"));
        let err = expect_err(load(&key_store(&p12, StoreKind::Pkcs12, Some("wrong"))));
        assert!(matches!(err, TlsError::WrongPassword { .. }), "{err}");
        let err = expect_err(load(&key_store(&p12, StoreKind::Pkcs12, None)));
        assert!(matches!(err, TlsError::WrongPassword { .. }), "{err}");

        let trust_only = dir.write("t.p12", pkcs12_trust_store_bytes(&[&ca], "pw"));
        let err = expect_err(load(&key_store(&trust_only, StoreKind::Pkcs12, Some("pw"))));
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");

        let not_p12 = dir.write("pem-named.p12", &leaf.cert_pem);
        let err = expect_err(load(&key_store(&not_p12, StoreKind::Pkcs12, Some("pw"))));
        assert!(matches!(err, TlsError::Malformed { .. }), "{err}");
    }

    #[test]
    fn pkcs12_key_without_certificate_is_reported() {
        let dir = TempDir::new("p12-nocert");
        let ca = Ca::new("ca");
        let leaf = ca.leaf("zk1", &[]);
        let mut keystore = p12_keystore::KeyStore::new();
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8; 20],
            p12_keystore::PrivateKey::from_der(&leaf.key_pkcs8_der).unwrap(),
            [],
        );
        keystore.add_entry("k", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        let path = dir.write("k.p12", keystore.writer("pw").write().unwrap());
        let err = expect_err(load(&key_store(&path, StoreKind::Pkcs12, Some("pw"))));
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }

    #[test]
    fn jks_and_bcfks_say_how_to_convert() {
        let dir = TempDir::new("jks");
        let path = dir.write("y.jks", b"\xfe\xed\xfe\xed");
        let err = expect_err(load(&key_store(&path, StoreKind::Jks, Some("pw")))).to_string();
        assert_eq!(
            err,
            format!(
                "ssl.keyStore.location={}: JKS key stores cannot be read by rzk; convert it: \
                 keytool -importkeystore -srckeystore y.jks -destkeystore y.p12 \
                 -deststoretype PKCS12",
                path.display()
            )
        );
        let path = dir.write("t.bcfks", b"x");
        let s = store(&path, StoreKind::Bcfks, None, "ssl.trustStore.location");
        let err = load_trust_store(&s).unwrap_err().to_string();
        assert!(err.contains("BCFKS key stores cannot be read"), "{err}");
        assert!(err.contains("-srcstoretype BCFKS"), "{err}");
    }

    #[test]
    fn pkcs12_from_p12_keystore_loads_key_chain_and_anchors() {
        let dir = TempDir::new("p12");
        let ca = Ca::new("ca");
        let leaf = ca.leaf("zk1", &[]);
        let path = dir.write("s.p12", pkcs12_key_store_bytes(&leaf, &ca, "pw"));
        let material = load(&key_store(&path, StoreKind::Pkcs12, Some("pw"))).unwrap();
        assert_eq!(material.chain, vec![leaf.cert_der.clone(), ca.cert_der()]);
        let path = dir.write("t.p12", pkcs12_trust_store_bytes(&[&ca, &Ca::new("b")], ""));
        let s = store(&path, StoreKind::Pkcs12, None, "ssl.trustStore.location");
        assert_eq!(load_trust_store(&s).unwrap().len(), 2);
    }

    /// Writes leaf cert, key and CA as separate PEM files for the CLI tools.
    fn cli_inputs(dir: &TempDir) -> (Ca, Leaf, [String; 3]) {
        let ca = Ca::new("ca");
        let leaf = ca.leaf("zk1", &["localhost"]);
        let files = [
            dir.write("leaf.pem", &leaf.cert_pem),
            dir.write("leaf.key", &leaf.key_pem),
            dir.write("ca.pem", ca.cert_pem()),
        ]
        .map(|p| p.to_str().unwrap().to_string());
        (ca, leaf, files)
    }

    #[test]
    fn openssl_pkcs12_default_and_legacy() {
        let dir = TempDir::new("openssl-p12");
        let (ca, leaf, [cert, key, ca_pem]) = cli_inputs(&dir);
        for (file, extra) in [("modern.p12", None), ("legacy.p12", Some("-legacy"))] {
            let out = dir.0.join(file);
            let out = out.to_str().unwrap();
            let mut args = vec![
                "pkcs12",
                "-export",
                "-in",
                &cert,
                "-inkey",
                &key,
                "-certfile",
                &ca_pem,
                "-out",
                out,
                "-passout",
                "pass:secret",
            ];
            args.extend(extra);
            run_tool("openssl", &args);
            let material =
                load(&key_store(out.as_ref(), StoreKind::Pkcs12, Some("secret"))).unwrap();
            assert_eq!(material.chain[0], leaf.cert_der, "{file}");
            assert!(material.chain.contains(&ca.cert_der()), "{file}");
            let err = expect_err(load(&key_store(
                out.as_ref(),
                StoreKind::Pkcs12,
                Some("nope"),
            )));
            assert!(
                matches!(err, TlsError::WrongPassword { .. }),
                "{file}: {err}"
            );
        }
        // A trust store openssl writes has no Java "trusted" attribute; every cert counts.
        let out = dir.0.join("trust.p12");
        let out = out.to_str().unwrap();
        run_tool(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-nokeys",
                "-in",
                &ca_pem,
                "-out",
                out,
                "-passout",
                "pass:secret",
            ],
        );
        let s = store(
            out.as_ref(),
            StoreKind::Pkcs12,
            Some("secret"),
            "ssl.trustStore.location",
        );
        assert_eq!(load_trust_store(&s).unwrap().len(), 1);
    }

    #[test]
    fn keytool_pkcs12_key_store_and_trust_store() {
        let dir = TempDir::new("keytool");
        let (ca, leaf, [cert, key, ca_pem]) = cli_inputs(&dir);
        let src = dir.0.join("src.p12");
        let src = src.to_str().unwrap();
        run_tool(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                &cert,
                "-inkey",
                &key,
                "-certfile",
                &ca_pem,
                "-out",
                src,
                "-passout",
                "pass:srcpass",
                "-name",
                "zk1",
            ],
        );
        let java = dir.0.join("java.p12");
        let java = java.to_str().unwrap();
        run_tool(
            "keytool",
            &[
                "-importkeystore",
                "-noprompt",
                "-srckeystore",
                src,
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                "srcpass",
                "-destkeystore",
                java,
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                "javapass",
            ],
        );
        let material = load(&key_store(
            java.as_ref(),
            StoreKind::Pkcs12,
            Some("javapass"),
        ))
        .unwrap();
        assert_eq!(material.chain[0], leaf.cert_der);

        let trust = dir.0.join("trust.p12");
        let trust = trust.to_str().unwrap();
        run_tool(
            "keytool",
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                &ca_pem,
                "-keystore",
                trust,
                "-storetype",
                "PKCS12",
                "-storepass",
                "changeit",
            ],
        );
        let s = store(
            trust.as_ref(),
            StoreKind::Pkcs12,
            Some("changeit"),
            "ssl.trustStore.location",
        );
        let roots = load_trust_store(&s).unwrap();
        assert_eq!(roots.len(), 1);
        let _ = ca;
    }

    #[test]
    fn encrypted_pkcs8_pem_key() {
        let dir = TempDir::new("enc-pkcs8");
        let (ca, leaf, [cert, key, _]) = cli_inputs(&dir);
        let enc = dir.0.join("enc.key");
        let enc = enc.to_str().unwrap();
        run_tool(
            "openssl",
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-in",
                &key,
                "-out",
                enc,
                "-passout",
                "pass:keypass",
            ],
        );
        let combined = format!(
            "{}{}{}",
            std::fs::read_to_string(enc).unwrap(),
            std::fs::read_to_string(&cert).unwrap(),
            ca.cert_pem()
        );
        let path = dir.write("enc.pem", combined);
        let material = load(&key_store(&path, StoreKind::Pem, Some("keypass"))).unwrap();
        assert_eq!(material.chain[0], leaf.cert_der);

        let err = expect_err(load(&key_store(&path, StoreKind::Pem, Some("wrong"))));
        assert!(matches!(err, TlsError::WrongPassword { .. }), "{err}");
        let err = expect_err(load(&key_store(&path, StoreKind::Pem, None)));
        assert!(matches!(err, TlsError::EncryptedKey { .. }), "{err}");
        assert!(
            err.to_string().contains("openssl pkcs8 -topk8 -nocrypt"),
            "{err}"
        );
    }
}
