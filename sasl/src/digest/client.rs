//! The client side of DIGEST-MD5, as the JDK's `DigestMD5Client` answers ZooKeeper's server
//! (the learner's side of quorum SASL, `SaslQuorumAuthLearner`): qop=auth, md5-sess, utf-8,
//! no authzid, and the server's rspauth verified at the end, so the client knows the server
//! holds its password too.
//!
//! Exchange: the server's challenge in, the digest-response out; then the server's
//! `rspauth=...` in, nothing out, and the exchange is complete. DIGEST-MD5 has no initial
//! response: a client opens with an empty token (the caller sends it; no call is needed).

use std::fmt;

use super::{
    base64, constant_time_eq, parse_directives, response_value, write_quoted, DigestInput,
    SaslError, NONCE_COUNT_HEX, TOKEN_BYTES_MAX,
};

/// The JDK client's cnonce: 30 random bytes in base64, like the server's nonce.
const CNONCE_RAW_BYTES: usize = 30;
/// What the JDK client announces; without a security layer nothing is ever sized by it.
const MAXBUF: &str = "65536";

const CHALLENGE_KEYS: [&str; 8] = [
    "realm",
    "nonce",
    "qop",
    "stale",
    "maxbuf",
    "charset",
    "algorithm",
    "cipher",
];
const C_REALM: usize = 0;
const C_NONCE: usize = 1;
const C_QOP: usize = 2;
const C_CHARSET: usize = 5;
const C_ALGORITHM: usize = 6;

enum Phase {
    Initial,
    /// The response went out; the server's rspauth must be this.
    Responded {
        rspauth: [u8; 32],
    },
    Complete,
    Failed,
}

/// One connection's DIGEST-MD5 exchange, client side. Single-use, like the server.
pub struct DigestMd5Client {
    protocol: String,
    server_name: String,
    username: String,
    password: String,
    fixed_cnonce: Option<Vec<u8>>,
    phase: Phase,
}

// The password must not reach logs through {:?}.
impl fmt::Debug for DigestMd5Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestMd5Client")
            .field("protocol", &self.protocol)
            .field("server_name", &self.server_name)
            .field("username", &self.username)
            .field("complete", &self.is_complete())
            .finish()
    }
}

impl DigestMd5Client {
    /// `protocol` and `server_name` make the digest-uri (`protocol/server_name`) and must be
    /// the server's: [`super::QUORUM_PROTOCOL`] and [`super::QUORUM_SERVER_NAME`] between
    /// ZooKeeper servers.
    pub fn new(protocol: &str, server_name: &str, username: &str, password: &str) -> Self {
        DigestMd5Client {
            protocol: protocol.to_string(),
            server_name: server_name.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            fixed_cnonce: None,
            phase: Phase::Initial,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_cnonce(mut self, cnonce: &[u8]) -> Self {
        self.fixed_cnonce = Some(cnonce.to_vec());
        self
    }

    /// One server token in, the client's next token out: the challenge gives the
    /// digest-response; the rspauth gives an empty token and completes the exchange, or
    /// [`SaslError::RspauthMismatch`]. Any error ends the exchange.
    pub fn evaluate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        if challenge.len() > TOKEN_BYTES_MAX {
            self.phase = Phase::Failed;
            return Err(SaslError::TooLong {
                len_bytes: challenge.len(),
            });
        }
        match std::mem::replace(&mut self.phase, Phase::Failed) {
            Phase::Initial => {
                let (response, rspauth) = self.respond(challenge)?;
                self.phase = Phase::Responded { rspauth };
                Ok(response)
            }
            Phase::Responded { rspauth } => {
                let d = parse_directives(challenge, &["rspauth"])?;
                let got = d[0]
                    .as_deref()
                    .ok_or(SaslError::MissingDirective("rspauth"))?;
                if !constant_time_eq(got, &rspauth) {
                    return Err(SaslError::RspauthMismatch);
                }
                self.phase = Phase::Complete;
                Ok(Vec::new())
            }
            Phase::Complete => {
                self.phase = Phase::Complete;
                Err(SaslError::AfterCompletion)
            }
            Phase::Failed => Err(SaslError::AfterFailure),
        }
    }

    /// True once the server's rspauth was verified.
    pub fn is_complete(&self) -> bool {
        matches!(self.phase, Phase::Complete)
    }

    fn respond(&self, challenge: &[u8]) -> Result<(Vec<u8>, [u8; 32]), SaslError> {
        let bad = |what: String| SaslError::BadChallenge(what);
        let d = parse_directives(challenge, &CHALLENGE_KEYS)?;
        let text = |i: usize| {
            d[i].as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let nonce = d[C_NONCE]
            .as_deref()
            .ok_or_else(|| bad("no nonce".to_string()))?;
        if nonce.is_empty() {
            return Err(bad("empty nonce".to_string()));
        }
        match text(C_ALGORITHM) {
            Some(a) if a == "md5-sess" => {}
            other => return Err(bad(format!("algorithm {other:?} is not md5-sess"))),
        }
        if let Some(charset) = text(C_CHARSET) {
            if charset != "utf-8" {
                return Err(bad(format!("charset {charset:?} is not utf-8")));
            }
        }
        // Absent means "auth" (RFC 2831); otherwise a list that must offer it.
        if let Some(qop) = text(C_QOP) {
            if !qop.split(',').any(|q| q.trim() == "auth") {
                return Err(bad(format!("qop {qop:?} does not offer auth")));
            }
        }
        // The server names its realm; without one the client's is its server name, as the
        // JDK's callback handlers default it.
        let realm = text(C_REALM).unwrap_or_else(|| self.server_name.clone());
        let cnonce = match &self.fixed_cnonce {
            Some(cnonce) => cnonce.clone(),
            None => {
                let mut raw = [0u8; CNONCE_RAW_BYTES];
                getrandom::fill(&mut raw).map_err(|e| SaslError::Random(e.to_string()))?;
                base64(&raw)
            }
        };
        let digest_uri = format!("{}/{}", self.protocol, self.server_name);
        let input = DigestInput {
            username: &self.username,
            realm: &realm,
            password: &self.password,
            nonce,
            cnonce: &cnonce,
            digest_uri: digest_uri.as_bytes(),
            qop: "auth",
            authzid: None,
        };
        let response = response_value(&input, b"AUTHENTICATE");
        let rspauth = response_value(&input, b"");

        // The JDK client's order.
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"charset=utf-8,username=\"");
        write_quoted(&mut out, self.username.as_bytes());
        out.extend_from_slice(b"\",realm=\"");
        write_quoted(&mut out, realm.as_bytes());
        out.extend_from_slice(b"\",nonce=\"");
        write_quoted(&mut out, nonce);
        out.extend_from_slice(b"\",nc=");
        out.extend_from_slice(NONCE_COUNT_HEX.as_bytes());
        out.extend_from_slice(b",cnonce=\"");
        write_quoted(&mut out, &cnonce);
        out.extend_from_slice(b"\",digest-uri=\"");
        write_quoted(&mut out, digest_uri.as_bytes());
        out.extend_from_slice(b"\",maxbuf=");
        out.extend_from_slice(MAXBUF.as_bytes());
        out.extend_from_slice(b",response=");
        out.extend_from_slice(&response);
        out.extend_from_slice(b",qop=auth");
        if out.len() > TOKEN_BYTES_MAX {
            return Err(SaslError::TooLong {
                len_bytes: out.len(),
            });
        }
        Ok((out, rspauth))
    }
}

#[cfg(test)]
mod tests;
