//! rzk-tls: ZooKeeper's TLS configuration keys turned into rustls configurations.
//!
//! Owns: parsing the `ssl.*` / `ssl.quorum.*` keys (`TlsSettings::from_properties`), reading
//! key and trust stores (PEM, PKCS12; JKS and BCFKS are refused with the command that converts
//! them), building `rustls::ServerConfig` / `ClientConfig` with the ring provider, rebuilding
//! them when a store file changes (`ReloadingServerConfig`, `ReloadingClientConfig`), and the
//! x509 identity ZooKeeper derives from a client certificate (`x509_subject`).
//!
//! Never: touches sockets or drives a handshake (the net layer owns connections and feeds
//! bytes through rustls itself), installs a process-wide crypto provider, or logs a password.
//!
//! Every error names the config key and the file it concerns, so an operator can go straight
//! to the zoo.cfg line at fault.

mod config;
mod error;
mod reload;
mod settings;
mod store;
mod subject;
#[cfg(test)]
mod testutil;

pub use config::{client_config, server_config};
pub use error::TlsError;
pub use reload::{ReloadingClientConfig, ReloadingServerConfig, RELOAD_CHECK_INTERVAL_DEFAULT};
pub use settings::{
    supported_cipher_suite_names, ClientAuth, Store, StoreKind, TlsSettings,
    HANDSHAKE_TIMEOUT_MS_DEFAULT,
};
pub use subject::x509_subject;
