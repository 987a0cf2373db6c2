//! Reload: hands out the current rustls config and rebuilds it when a store file changes,
//! the way ZooKeeper's FileChangeWatcher lets certificates be rotated without a restart.
//! Holds: a connection always gets a working config; a bad new file never replaces a good
//! old config. Not here: parsing or loading (config.rs does the rebuild).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::{client_config, server_config, TlsError, TlsSettings};

/// How often `current()` looks at the store files' metadata.
pub const RELOAD_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// What identifies one version of a file cheaply: a rotation changes the mtime or the length.
/// `None` when the file cannot be stat'ed (e.g. mid-rename); that counts as a change.
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

fn fingerprint(settings: &TlsSettings) -> Fingerprint {
    [&settings.key_store, &settings.trust_store]
        .into_iter()
        .flatten()
        .map(|store| {
            let meta = std::fs::metadata(&store.location)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (store.location.clone(), meta)
        })
        .collect()
}

struct State<C> {
    config: Arc<C>,
    /// The files as last seen, whether or not the rebuild from them worked. Remembering a
    /// failed version means one warning per bad file, not one per second.
    seen: Fingerprint,
    checked_at: Instant,
}

struct Reloading<C> {
    settings: TlsSettings,
    build: fn(&TlsSettings) -> Result<Arc<C>, TlsError>,
    check_interval: Duration,
    state: Mutex<State<C>>,
}

impl<C> Reloading<C> {
    fn new(
        settings: TlsSettings,
        build: fn(&TlsSettings) -> Result<Arc<C>, TlsError>,
    ) -> Result<Self, TlsError> {
        // Stat before loading: a file replaced between the two is then seen as changed and
        // loaded again, never missed.
        let seen = fingerprint(&settings);
        let config = build(&settings)?;
        Ok(Reloading {
            settings,
            build,
            check_interval: RELOAD_CHECK_INTERVAL_DEFAULT,
            state: Mutex::new(State {
                config,
                seen,
                checked_at: Instant::now(),
            }),
        })
    }

    fn current(&self, side: &str) -> Arc<C> {
        // A panic while holding the lock cannot leave State half-updated (each field is
        // assigned whole), so a poisoned lock is still safe to use.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(state.checked_at) < self.check_interval {
            return Arc::clone(&state.config);
        }
        state.checked_at = now;
        let latest = fingerprint(&self.settings);
        if latest == state.seen {
            return Arc::clone(&state.config);
        }
        let changed: Vec<String> = latest
            .iter()
            .filter(|entry| !state.seen.contains(entry))
            .map(|(path, _)| path.display().to_string())
            .collect();
        state.seen = latest;
        match (self.build)(&self.settings) {
            Ok(config) => {
                tracing::info!(files = ?changed, "TLS {side} config reloaded");
                state.config = config;
            }
            Err(error) => {
                tracing::warn!(
                    files = ?changed,
                    %error,
                    "TLS {side} config not reloaded; keeping the previous one"
                );
            }
        }
        Arc::clone(&state.config)
    }
}

/// A server config that follows certificate rotation on disk. Share one per listener.
pub struct ReloadingServerConfig {
    inner: Reloading<rustls::ServerConfig>,
}

impl ReloadingServerConfig {
    /// Loads the stores once; an error here is a startup error.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        Ok(ReloadingServerConfig {
            inner: Reloading::new(settings, server_config)?,
        })
    }

    /// How often `current()` checks the files (default one second). Zero checks on every
    /// call, which tests use.
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.inner.check_interval = interval;
        self
    }

    /// The config for a new connection. At most once per check interval it stats the store
    /// files (mtime + length) and rebuilds when one changed; a failed rebuild logs a warning
    /// naming the file and keeps the old config.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.inner.current("server")
    }
}

/// The client-side twin of `ReloadingServerConfig`, for dialing quorum peers.
pub struct ReloadingClientConfig {
    inner: Reloading<rustls::ClientConfig>,
}

impl ReloadingClientConfig {
    /// Loads the stores once; an error here is a startup error.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        Ok(ReloadingClientConfig {
            inner: Reloading::new(settings, client_config)?,
        })
    }

    /// See `ReloadingServerConfig::with_check_interval`.
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.inner.check_interval = interval;
        self
    }

    /// See `ReloadingServerConfig::current`.
    pub fn current(&self) -> Arc<rustls::ClientConfig> {
        self.inner.current("client")
    }
}

// The integrator shares these across connection threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ReloadingServerConfig>();
    assert_send_sync::<ReloadingClientConfig>();
};

#[cfg(test)]
mod tests {
    //! Goal: a rotated store file reaches new connections; a broken one never does.
    //! Method: real store files in a temp dir, the check interval set to zero (or an hour,
    //! to show it is honoured), `Arc::ptr_eq` to see whether a rebuild happened, and an
    //! in-memory handshake to see which certificate is presented.
    use super::*;
    use crate::testutil::*;
    use crate::{ClientAuth, StoreKind};

    fn presented(config: Arc<rustls::ServerConfig>, trust: &crate::Store) -> Vec<u8> {
        let client =
            crate::client_config(&settings(None, Some(trust.clone()), ClientAuth::None)).unwrap();
        let (_, client_conn) = handshake(config, client, "localhost").unwrap();
        client_conn.peer_certificates().unwrap()[0].to_vec()
    }

    #[test]
    fn server_reload_picks_up_a_replaced_file_and_survives_a_broken_one() {
        let dir = TempDir::new("reload-server");
        let ca = Ca::new("ca");
        let first = ca.leaf("first", &["localhost"]);
        let key_store = pem_key_store(&dir, "server.pem", &first, &ca);
        let trust = pem_trust_store(&dir, "trust.pem", &[&ca]);
        let reloading =
            ReloadingServerConfig::new(settings(Some(key_store), None, ClientAuth::None))
                .unwrap()
                .with_check_interval(Duration::ZERO);

        let a = reloading.current();
        assert!(
            Arc::ptr_eq(&a, &reloading.current()),
            "unchanged files, same config"
        );
        assert_eq!(presented(Arc::clone(&a), &trust), first.cert_der.to_vec());

        let second = ca.leaf("second", &["localhost"]);
        dir.replace(
            "server.pem",
            format!("{}{}", second.key_pem, second.cert_pem),
        );
        let b = reloading.current();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(presented(Arc::clone(&b), &trust), second.cert_der.to_vec());

        // A half-written or wrong file: the old config stays, and keeps working.
        dir.replace("server.pem", &second.cert_pem);
        let c = reloading.current();
        assert!(Arc::ptr_eq(&b, &c));
        assert_eq!(presented(c, &trust), second.cert_der.to_vec());
        // Not retried while the bad file is unchanged...
        assert!(Arc::ptr_eq(&b, &reloading.current()));

        // ...but a fixed file is picked up.
        let third = ca.leaf("third", &["localhost"]);
        dir.replace("server.pem", format!("{}{}", third.cert_pem, third.key_pem));
        assert_eq!(
            presented(reloading.current(), &trust),
            third.cert_der.to_vec()
        );

        // A removed file is a failed reload too.
        std::fs::remove_file(dir.0.join("server.pem")).unwrap();
        let d = reloading.current();
        assert_eq!(presented(d, &trust), third.cert_der.to_vec());
    }

    #[test]
    fn the_check_interval_is_honoured() {
        let dir = TempDir::new("reload-interval");
        let ca = Ca::new("ca");
        let first = ca.leaf("first", &["localhost"]);
        let key_store = pem_key_store(&dir, "server.pem", &first, &ca);
        let reloading =
            ReloadingServerConfig::new(settings(Some(key_store), None, ClientAuth::None))
                .unwrap()
                .with_check_interval(Duration::from_secs(3600));
        let a = reloading.current();
        let second = ca.leaf("second", &["localhost"]);
        dir.replace(
            "server.pem",
            format!("{}{}", second.key_pem, second.cert_pem),
        );
        assert!(Arc::ptr_eq(&a, &reloading.current()));
    }

    #[test]
    fn a_bad_store_at_startup_is_an_error() {
        let dir = TempDir::new("reload-startup");
        let path = dir.write("server.pem", "not pem");
        let s = store(&path, StoreKind::Pem, None, "ssl.keyStore.location");
        let err = ReloadingServerConfig::new(settings(Some(s), None, ClientAuth::None))
            .err()
            .unwrap();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
    }

    #[test]
    fn client_reload_picks_up_a_replaced_trust_store() {
        let dir = TempDir::new("reload-client");
        let (old_ca, new_ca) = (Ca::new("old"), Ca::new("new"));
        let trust = pem_trust_store(&dir, "trust.pem", &[&old_ca]);
        let reloading = ReloadingClientConfig::new(settings(None, Some(trust), ClientAuth::None))
            .unwrap()
            .with_check_interval(Duration::ZERO);
        let leaf = new_ca.leaf("zk2", &["localhost"]);
        let peer = pem_key_store(&dir, "peer.pem", &leaf, &new_ca);
        let server = crate::server_config(&settings(Some(peer), None, ClientAuth::None)).unwrap();
        assert!(handshake(Arc::clone(&server), reloading.current(), "localhost").is_err());

        dir.replace(
            "trust.pem",
            format!("{}{}", old_ca.cert_pem(), new_ca.cert_pem()),
        );
        handshake(server, reloading.current(), "localhost").unwrap();
    }
}
