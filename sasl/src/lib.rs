//! SASL for ZooKeeper clients, server side, as Apache ZooKeeper's server does it: the
//! DIGEST-MD5 mechanism (RFC 2831) and the JAAS login-configuration file its users come from.
//! Between servers (quorum.auth.enableSasl) both sides: the connecting server runs
//! [`DigestMd5Client`] against the accepting server's [`DigestMd5Server::for_service`].
//!
//! In: the JAAS file text (section "Server" by default, `user_NAME="password"` options) and the
//! client's SASL tokens. Out: the server's tokens and, on success, the authorization id that
//! becomes the connection's `sasl` ACL identity.
//!
//! Not here: sockets, sessions, packet framing, ACL checks, super-user decisions
//! (`zookeeper.superUser`), Kerberos/GSSAPI. Those belong to the server.
//!
//! Must never: put a password in an error, a `Debug` string or a log line (this crate does not
//! log at all); accept a response the JDK's DigestMD5Server would refuse.
//!
//! ```
//! use std::sync::Arc;
//! use rzk_sasl::{Credentials, DigestMd5Server, Jaas, Step};
//!
//! let jaas = Jaas::parse(r#"Server { a.DigestLoginModule required user_bob="bobsecret"; };"#)?;
//! // Section: zookeeper.sasl.serverconfig; override: ...SASLAuthenticationProvider.superPassword.
//! let credentials = Arc::new(Credentials::from_jaas(&jaas, "Server", None)?);
//! // One server per connection; the client's first DIGEST-MD5 token is empty.
//! let mut server = DigestMd5Server::new(credentials);
//! let Step::Challenge(challenge) = server.evaluate(b"")? else { unreachable!() };
//! assert!(challenge.starts_with(b"realm=\"zk-sasl-md5\",nonce=\""));
//! // A wrong response ends the exchange; ZooKeeper then answers AUTHFAILED and closes.
//! assert!(server.evaluate(b"username=\"bob\"").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod credentials;
mod digest;
mod jaas;

pub use credentials::{Credentials, MalformedPrincipal, PrincipalRules};
pub use digest::{
    DigestMd5Client, DigestMd5Server, SaslError, Step, PROTOCOL, QUORUM_PROTOCOL,
    QUORUM_SERVER_NAME, SERVER_NAME, TOKEN_BYTES_MAX,
};
pub use jaas::{Jaas, JaasError, LoginModule};
