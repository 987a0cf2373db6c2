//! Settings: ZooKeeper's `ssl.*` / `ssl.quorum.*` keys parsed into one typed value.
//! In: the zoo.cfg properties. Out: `TlsSettings`, or an error naming the bad key.
//! Not here: reading the store files (store.rs) or building rustls configs (config.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustls::SupportedCipherSuite;
use rustls::SupportedProtocolVersion;

use crate::TlsError;

/// ZooKeeper's default for `ssl.handshakeDetectionTimeoutMillis`.
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 5000;

/// `<prefix>clientAuth`: whether the server asks a connecting peer for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A certificate chaining to the trust store is required (ZooKeeper's default).
    Need,
    /// A certificate is asked for; none is fine, a bad one is refused.
    Want,
    /// No certificate is asked for.
    None,
}

/// The file format of a key store or trust store, as ZooKeeper's `KeyStoreFileType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Pem,
    Pkcs12,
    Jks,
    Bcfks,
}

/// One key store or trust store file, with what is needed to open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Store {
    pub location: PathBuf,
    pub password: Option<String>,
    pub kind: StoreKind,
    /// The config key that named this file (`ssl.keyStore.location`, ...), quoted in errors.
    pub key: String,
}

// Passwords stay out of logs even when a whole TlsSettings is debug-printed.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("kind", &self.kind)
            .field("key", &self.key)
            .finish()
    }
}

/// Everything rzk reads from one ZooKeeper TLS key prefix.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub key_store: Option<Store>,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// `None` keeps rustls' defaults (all suites of the ring provider).
    pub cipher_suites: Option<Vec<SupportedCipherSuite>>,
    pub hostname_verification: bool,
    pub handshake_timeout_ms: u64,
}

impl TlsSettings {
    /// Parses the keys under `prefix` ("ssl." for the client port, "ssl.quorum." for
    /// server-to-server). `props` holds zoo.cfg keys already stripped of a leading
    /// "zookeeper.". Returns `Ok(None)` when `<prefix>keyStore.location` is unset or empty,
    /// which is how ZooKeeper decides TLS is not configured.
    pub fn from_properties(
        prefix: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Option<TlsSettings>, TlsError> {
        let get = |name: &str| -> Option<(String, &str)> {
            let key = format!("{prefix}{name}");
            let value = props.get(&key)?.trim();
            // ZooKeeper treats an empty value as unset for every one of these keys.
            if value.is_empty() {
                None
            } else {
                Some((key, value))
            }
        };

        let Some(key_store) = store(prefix, "keyStore", &get)? else {
            return Ok(None);
        };
        let trust_store = store(prefix, "trustStore", &get)?;

        let client_auth = match get("clientAuth") {
            None => ClientAuth::Need,
            Some((key, value)) => parse_client_auth(&key, value)?,
        };

        refuse_unsupported(&get)?;

        let versions = protocol_versions(get("protocol"), get("enabledProtocols"))?;

        let cipher_suites = match get("ciphersuites") {
            None => None,
            Some((key, value)) => Some(parse_cipher_suites(&key, value)?),
        };

        let hostname_verification = match get("hostnameVerification") {
            None => true,
            Some((key, value)) => parse_bool(&key, value)?,
        };

        let handshake_timeout_ms = match get("handshakeDetectionTimeoutMillis") {
            None => HANDSHAKE_TIMEOUT_MS_DEFAULT,
            Some((key, value)) => match value.parse::<u64>() {
                Ok(ms) if ms > 0 => ms,
                _ => {
                    return Err(TlsError::config(
                        &key,
                        value,
                        "expected a positive number of milliseconds",
                    ))
                }
            },
        };

        Ok(Some(TlsSettings {
            key_store: Some(key_store),
            trust_store,
            client_auth,
            versions,
            cipher_suites,
            hostname_verification,
            handshake_timeout_ms,
        }))
    }
}

/// Keys that ask for something rzk cannot do. Ignoring them would quietly weaken security
/// (revocation checks) or run with key material other than the operator's (a Java class).
fn refuse_unsupported<'a>(
    get: &impl Fn(&str) -> Option<(String, &'a str)>,
) -> Result<(), TlsError> {
    for name in ["crl", "ocsp"] {
        if let Some((key, value)) = get(name) {
            if parse_bool(&key, value)? {
                return Err(TlsError::config(
                    &key,
                    value,
                    "rzk does not check certificate revocation; remove the key or set it to false",
                ));
            }
        }
    }
    if let Some((key, value)) = get("context.supplier.class") {
        return Err(TlsError::config(
            &key,
            value,
            "rzk cannot load a Java SSLContext supplier; configure keyStore/trustStore instead",
        ));
    }
    Ok(())
}

/// Reads `<prefix><which>.location`, `.type`, `.password` and `.passwordPath`.
fn store<'a>(
    prefix: &str,
    which: &str,
    get: &impl Fn(&str) -> Option<(String, &'a str)>,
) -> Result<Option<Store>, TlsError> {
    let Some((key, location)) = get(&format!("{which}.location")) else {
        return Ok(None);
    };
    let location = PathBuf::from(location);
    let kind = match get(&format!("{which}.type")) {
        Some((type_key, value)) => parse_kind(&type_key, value)?,
        None => kind_from_file_name(&location).ok_or_else(|| {
            TlsError::config(
                &key,
                &location.display().to_string(),
                &format!(
                    "cannot tell the store type from the file name (expected .pem, .crt, \
                     .p12, .pfx, .jks or .bcfks); set {prefix}{which}.type"
                ),
            )
        })?,
    };
    // The inline password wins over the file, as in ZooKeeper's X509Util.
    let password = match get(&format!("{which}.password")) {
        Some((_, password)) => Some(password.to_string()),
        None => match get(&format!("{which}.passwordPath")) {
            Some((path_key, path)) => Some(read_password_file(&path_key, Path::new(path))?),
            None => None,
        },
    };
    Ok(Some(Store {
        location,
        password,
        kind,
        key,
    }))
}

fn read_password_file(key: &str, path: &Path) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    // Files written with `echo` end in a newline that is not part of the password.
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(text.to_string())
}

fn parse_kind(key: &str, value: &str) -> Result<StoreKind, TlsError> {
    match value.to_ascii_uppercase().as_str() {
        "PEM" => Ok(StoreKind::Pem),
        "PKCS12" => Ok(StoreKind::Pkcs12),
        "JKS" => Ok(StoreKind::Jks),
        "BCFKS" => Ok(StoreKind::Bcfks),
        _ => Err(TlsError::config(
            key,
            value,
            "expected PEM, PKCS12, JKS or BCFKS",
        )),
    }
}

/// ZooKeeper compares the extension exactly (case-sensitive); .crt and .pfx are
/// common spellings of the same formats, so rzk accepts them too.
fn kind_from_file_name(path: &Path) -> Option<StoreKind> {
    match path.extension()?.to_str()? {
        "pem" | "crt" => Some(StoreKind::Pem),
        "p12" | "pfx" => Some(StoreKind::Pkcs12),
        "jks" => Some(StoreKind::Jks),
        "bcfks" => Some(StoreKind::Bcfks),
        _ => None,
    }
}

fn parse_client_auth(key: &str, value: &str) -> Result<ClientAuth, TlsError> {
    match value.to_ascii_lowercase().as_str() {
        "need" => Ok(ClientAuth::Need),
        "want" => Ok(ClientAuth::Want),
        "none" => Ok(ClientAuth::None),
        _ => Err(TlsError::config(key, value, "expected need, want or none")),
    }
}

/// Java's Boolean.parseBoolean would read any typo as false and silently turn hostname
/// verification off; refusing the typo is safer.
fn parse_bool(key: &str, value: &str) -> Result<bool, TlsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(TlsError::config(key, value, "expected true or false")),
    }
}

/// ZooKeeper enables exactly `enabledProtocols` when set, else exactly `protocol`. Its
/// `protocol` default depends on the JVM (TLSv1.3 on Java 11+, else TLSv1.2); with neither
/// key set rzk enables both, so clients of either kind of JVM can connect.
fn protocol_versions(
    protocol: Option<(String, &str)>,
    enabled: Option<(String, &str)>,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let (key, names) = match (enabled, protocol) {
        (Some(enabled), _) => enabled,
        (None, Some(protocol)) => protocol,
        (None, None) => return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
    };
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let version = match name {
            "TLSv1.3" => &rustls::version::TLS13,
            "TLSv1.2" => &rustls::version::TLS12,
            // "TLS" is what Java's SSLContext.getInstance accepts as "any supported".
            "TLS" => {
                for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
                    if !versions.contains(&v) {
                        versions.push(v);
                    }
                }
                continue;
            }
            "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" | "SSL" => {
                return Err(TlsError::config(
                    &key,
                    names,
                    &format!("{name} is not supported by rustls; use TLSv1.2 and/or TLSv1.3"),
                ))
            }
            _ => {
                return Err(TlsError::config(
                    &key,
                    names,
                    &format!("unknown protocol {name}; expected TLSv1.2 and/or TLSv1.3"),
                ))
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Err(TlsError::config(&key, names, "no protocol named"));
    }
    Ok(versions)
}

/// The Java (IANA) name of a suite. rustls spells TLS 1.3 suites "TLS13_..." where Java
/// and IANA say "TLS_...".
fn java_name(suite: &SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("unknown");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

/// The Java names of every suite rzk can use, for error messages and docs.
pub fn supported_cipher_suite_names() -> Vec<String> {
    crate::config::ring_provider()
        .cipher_suites
        .iter()
        .map(java_name)
        .collect()
}

fn parse_cipher_suites(key: &str, value: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let provider = crate::config::ring_provider();
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let found = provider
            .cipher_suites
            .iter()
            .find(|s| java_name(s) == name || s.suite().as_str() == Some(name));
        match found {
            Some(suite) => {
                if !suites.iter().any(|s| s.suite() == suite.suite()) {
                    suites.push(*suite);
                }
            }
            None => {
                return Err(TlsError::config(
                    key,
                    value,
                    &format!(
                        "unknown or unsupported cipher suite {name}; rzk supports {}",
                        supported_cipher_suite_names().join(", ")
                    ),
                ))
            }
        }
    }
    if suites.is_empty() {
        return Err(TlsError::config(key, value, "no cipher suite named"));
    }
    Ok(suites)
}

#[cfg(test)]
mod tests {
    //! Goal: each key parses as ZooKeeper reads it, and each bad value is refused with the
    //! key named. Method: small property maps, no files.
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<TlsSettings>, TlsError> {
        TlsSettings::from_properties("ssl.", &props(pairs))
    }

    #[test]
    fn no_key_store_means_no_tls() {
        assert!(parse(&[]).unwrap().is_none());
        assert!(parse(&[("ssl.keyStore.location", " ")]).unwrap().is_none());
        // A quorum key store does not turn on client-port TLS.
        assert!(parse(&[("ssl.quorum.keyStore.location", "/k.p12")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn defaults() {
        let s = parse(&[("ssl.keyStore.location", "/k/server.p12")])
            .unwrap()
            .unwrap();
        let ks = s.key_store.unwrap();
        assert_eq!(ks.kind, StoreKind::Pkcs12);
        assert_eq!(ks.key, "ssl.keyStore.location");
        assert_eq!(ks.password, None);
        assert!(s.trust_store.is_none());
        assert_eq!(s.client_auth, ClientAuth::Need);
        assert_eq!(s.versions.len(), 2);
        assert!(s.cipher_suites.is_none());
        assert!(s.hostname_verification);
        assert_eq!(s.handshake_timeout_ms, 5000);
    }

    #[test]
    fn quorum_prefix_and_every_key() {
        let p = props(&[
            ("ssl.quorum.keyStore.location", "/k/server.bin"),
            ("ssl.quorum.keyStore.type", "pem"),
            ("ssl.quorum.keyStore.password", "pw"),
            ("ssl.quorum.trustStore.location", "/k/trust.pfx"),
            ("ssl.quorum.clientAuth", "WANT"),
            ("ssl.quorum.protocol", "TLSv1.3"),
            (
                "ssl.quorum.ciphersuites",
                "TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ),
            ("ssl.quorum.hostnameVerification", "false"),
            ("ssl.quorum.handshakeDetectionTimeoutMillis", "250"),
            ("ssl.clientAuth", "none"),
        ]);
        let s = TlsSettings::from_properties("ssl.quorum.", &p)
            .unwrap()
            .unwrap();
        let ks = s.key_store.unwrap();
        assert_eq!(ks.kind, StoreKind::Pem);
        assert_eq!(ks.password.as_deref(), Some("pw"));
        assert_eq!(s.trust_store.unwrap().kind, StoreKind::Pkcs12);
        assert_eq!(s.client_auth, ClientAuth::Want);
        assert_eq!(s.versions, vec![&rustls::version::TLS13]);
        let suites = s.cipher_suites.unwrap();
        assert_eq!(suites.len(), 2);
        assert_eq!(java_name(&suites[0]), "TLS_AES_128_GCM_SHA256");
        assert!(!s.hostname_verification);
        assert_eq!(s.handshake_timeout_ms, 250);
    }

    #[test]
    fn kinds_from_extension() {
        for (file, kind) in [
            ("a.pem", StoreKind::Pem),
            ("a.crt", StoreKind::Pem),
            ("a.p12", StoreKind::Pkcs12),
            ("a.pfx", StoreKind::Pkcs12),
            ("a.jks", StoreKind::Jks),
            ("a.bcfks", StoreKind::Bcfks),
        ] {
            let s = parse(&[("ssl.keyStore.location", file)]).unwrap().unwrap();
            assert_eq!(s.key_store.unwrap().kind, kind, "{file}");
        }
        let err = parse(&[("ssl.keyStore.location", "/k/store.bin")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl.keyStore.location=/k/store.bin"), "{err}");
        assert!(err.contains("ssl.keyStore.type"), "{err}");
    }

    #[test]
    fn protocols() {
        let versions = |pairs: &[(&str, &str)]| {
            let mut all = vec![("ssl.keyStore.location", "/k.pem")];
            all.extend_from_slice(pairs);
            parse(&all).map(|s| s.unwrap().versions)
        };
        assert_eq!(
            versions(&[("ssl.protocol", "TLSv1.2")]).unwrap(),
            vec![&rustls::version::TLS12]
        );
        // enabledProtocols overrides protocol, as in ZooKeeper.
        assert_eq!(
            versions(&[
                ("ssl.protocol", "TLSv1.2"),
                ("ssl.enabledProtocols", "TLSv1.3,TLSv1.2")
            ])
            .unwrap(),
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        );
        let err = versions(&[("ssl.enabledProtocols", "TLSv1.2,TLSv1.1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl.enabledProtocols"), "{err}");
        assert!(err.contains("TLSv1.1 is not supported by rustls"), "{err}");
        assert!(versions(&[("ssl.protocol", "TLSv9")]).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("ssl.clientAuth", "maybe"),
            ("ssl.keyStore.type", "XYZ"),
            ("ssl.hostnameVerification", "yes please"),
            ("ssl.handshakeDetectionTimeoutMillis", "soon"),
            ("ssl.ciphersuites", "TLS_RSA_WITH_RC4_128_MD5"),
        ] {
            let err = parse(&[("ssl.keyStore.location", "/k.pem"), (key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{key}={value}: ")), "{err}");
        }
        let err = parse(&[
            ("ssl.keyStore.location", "/k.pem"),
            ("ssl.ciphersuites", "TLS_NOPE"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("TLS_AES_256_GCM_SHA384"), "{err}");
    }

    #[test]
    fn features_rzk_lacks_are_refused_not_ignored() {
        for (key, value) in [
            ("ssl.crl", "true"),
            ("ssl.ocsp", "TRUE"),
            ("ssl.context.supplier.class", "com.example.Supplier"),
        ] {
            let err = parse(&[("ssl.keyStore.location", "/k.pem"), (key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{key}={value}: rzk ")), "{err}");
        }
        assert!(parse(&[("ssl.keyStore.location", "/k.pem"), ("ssl.crl", "false")]).is_ok());
    }

    #[test]
    fn password_file_loses_its_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("rzk-tls-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let s = parse(&[
            ("ssl.keyStore.location", "/k.p12"),
            ("ssl.keyStore.passwordPath", file.to_str().unwrap()),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.key_store.unwrap().password.as_deref(), Some("s3cret"));
        let err = parse(&[
            ("ssl.keyStore.location", "/k.p12"),
            ("ssl.keyStore.passwordPath", "/nonexistent/pw"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("ssl.keyStore.passwordPath=/nonexistent/pw: "),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
