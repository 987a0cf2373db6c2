//! The one error type of this crate. Every message starts with `key=value: ` so an operator
//! can find the zoo.cfg line at fault, and says what to do when there is something to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A config value that cannot be used, e.g. `ssl.clientAuth=maybe`.
    #[error("{key}={value}: {reason}")]
    Config {
        key: String,
        value: String,
        reason: String,
    },
    /// A required key is missing, e.g. a trust store when client certificates are needed.
    #[error("{key} is not set: {reason}")]
    Missing { key: String, reason: String },
    /// The file could not be read (missing, permissions, ...).
    #[error("{key}={}: cannot read the file: {source}", path.display())]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The store format rustls cannot read, with the command that converts it.
    #[error(
        "{key}={}: {format} key stores cannot be read by rzk; convert it: {command}",
        path.display()
    )]
    UnsupportedStore {
        key: String,
        path: PathBuf,
        format: &'static str,
        command: String,
    },
    /// The password (`.password` / `.passwordPath`) does not open the store or key.
    #[error("{key}={}: wrong password (check the matching .password or .passwordPath key)", path.display())]
    WrongPassword { key: String, path: PathBuf },
    /// An encrypted private key without a password to decrypt it.
    #[error("{key}={}: the private key is encrypted and no password is set; set the matching \
             .password key, or decrypt the key: openssl pkcs8 -topk8 -nocrypt -in <key> -out <key>",
            path.display())]
    EncryptedKey { key: String, path: PathBuf },
    #[error("{key}={}: no private key found in the key store", path.display())]
    NoPrivateKey { key: String, path: PathBuf },
    #[error("{key}={}: no certificate found in the store", path.display())]
    NoCertificate { key: String, path: PathBuf },
    /// The bytes are not a store of the configured kind.
    #[error("{key}={}: {reason}", path.display())]
    Malformed {
        key: String,
        path: PathBuf,
        reason: String,
    },
    /// rustls refused the material, e.g. a key that does not match its certificate.
    #[error("{key}={}: {source}", path.display())]
    Rustls {
        key: String,
        path: PathBuf,
        source: rustls::Error,
    },
    /// A certificate given to `x509_subject` could not be parsed.
    #[error("cannot parse the client certificate: {reason}")]
    Certificate { reason: String },
}

impl TlsError {
    pub(crate) fn config(key: &str, value: &str, reason: &str) -> TlsError {
        TlsError::Config {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}
