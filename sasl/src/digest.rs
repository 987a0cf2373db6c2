//! The server side of DIGEST-MD5 (RFC 2831), restricted to what Apache ZooKeeper's server
//! offers: qop=auth only, algorithm=md5-sess, charset=utf-8, no security layer, no
//! subsequent authentication. Every check mirrors the JDK's `DigestMD5Server` (the SaslServer
//! ZooKeeper creates with protocol "zookeeper" and server name "zk-sasl-md5"), so that a
//! client Apache accepts is accepted here and one it refuses is refused.
//!
//! Exchange (ZooKeeper's SASL packets carry these tokens verbatim):
//! 1) client: empty token (kazoo and the Java client both start with one);
//! 2) server: `realm="zk-sasl-md5",nonce="<40 base64 chars>",charset=utf-8,algorithm=md5-sess`,
//!    byte for byte the JDK's layout (no qop directive: RFC 2831 defaults it to "auth");
//! 3) client: the digest-response;
//! 4) server: `rspauth=<32 lowercase hex>`, and the exchange is complete. Neither kazoo
//!    (pure-sasl) nor the Java client sends anything after it; any further token is an error,
//!    as in the JDK ("Server at illegal state").

use std::sync::Arc;

use md5::{Digest, Md5};

use crate::credentials::{Credentials, MalformedPrincipal};

/// The protocol ZooKeeper passes to `Sasl.createSaslServer`; the digest-uri's service part.
pub const PROTOCOL: &str = "zookeeper";
/// The server name ZooKeeper hardcodes for DIGEST-MD5 (not the host name); also the realm.
pub const SERVER_NAME: &str = "zk-sasl-md5";
/// Quorum SASL (quorum.auth.enableSasl) between servers: ZooKeeper's
/// `QuorumAuth.QUORUM_SERVER_PROTOCOL_NAME` and `QUORUM_SERVER_SASL_DIGEST`.
pub const QUORUM_PROTOCOL: &str = "zookeeper-quorum";
pub const QUORUM_SERVER_NAME: &str = "zk-quorum-sasl-md5";

/// The JDK refuses longer tokens at every step (DigestMD5Base.MAX_RESPONSE_LENGTH).
pub const TOKEN_BYTES_MAX: usize = 4096;
/// The JDK's nonce is 30 random bytes in base64: 40 characters, no padding.
const NONCE_RAW_BYTES: usize = 30;
// Whole 3-byte groups, so the base64 needs no padding.
const _: () = assert!(NONCE_RAW_BYTES / 3 * 3 == NONCE_RAW_BYTES);

/// RFC 2831 nonce-count of the only response we accept (no subsequent authentication).
const NONCE_COUNT_HEX: &str = "00000001";

/// The reasons an exchange fails. Messages may name the user; they never contain a password,
/// and the response directive itself is never echoed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("token of {len_bytes} bytes exceeds {TOKEN_BYTES_MAX} bytes")]
    TooLong { len_bytes: usize },
    #[error("malformed digest-response: {0}")]
    Syntax(String),
    #[error("malformed digest-response: directive {0} sent more than once")]
    DuplicateDirective(&'static str),
    #[error("malformed digest-response: missing {0} directive")]
    MissingDirective(&'static str),
    #[error("malformed digest-response: invalid {directive} value {value:?}")]
    InvalidDirective {
        directive: &'static str,
        value: String,
    },
    #[error("realm {0:?} is not the server's realm")]
    UnknownRealm(String),
    #[error("nonce does not match the challenge")]
    NonceMismatch,
    #[error("nonce-count {0:?} is not 1")]
    NonceCount(String),
    #[error("qop {0:?} is not supported (only auth)")]
    UnsupportedQop(String),
    #[error("digest-uri {got:?} does not match {expected:?}")]
    DigestUriMismatch { got: String, expected: String },
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("response mismatch for user {0:?} (wrong password?)")]
    ResponseMismatch(String),
    #[error("authentication id {0:?} is not a valid principal name")]
    MalformedPrincipal(String),
    #[error("authorization id {authzid:?} is not the authentication id {username:?}")]
    AuthzidMismatch { username: String, authzid: String },
    #[error("malformed challenge: {0}")]
    BadChallenge(String),
    #[error("the server's rspauth does not match: it does not know this user's password")]
    RspauthMismatch,
    #[error("token after the exchange completed")]
    AfterCompletion,
    #[error("token after the exchange failed")]
    AfterFailure,
    #[error("no randomness for the nonce: {0}")]
    Random(String),
}

/// What the server sends back for one client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this and wait for the client's next token.
    Challenge(Vec<u8>),
    /// Send `token` (the rspauth); the client is authenticated as `authorization_id`, the `sasl`
    /// ACL identity.
    Complete {
        token: Vec<u8>,
        authorization_id: String,
    },
}

enum Phase {
    Initial,
    Challenged { nonce: Vec<u8> },
    Complete,
    Failed,
}

/// One connection's DIGEST-MD5 exchange. Create one per connection; it is single-use.
pub struct DigestMd5Server {
    credentials: Arc<Credentials>,
    protocol: String,
    /// Also the only realm, as in the JDK when no realm property is set.
    server_name: String,
    fixed_nonce: Option<Vec<u8>>,
    /// Quorum SASL: an authzid, if sent, must be the authentication id (ZooKeeper's
    /// `SaslQuorumServerCallbackHandler`), and the authentication id is the identity.
    strict_authzid: bool,
    phase: Phase,
}

impl DigestMd5Server {
    pub fn new(credentials: Arc<Credentials>) -> Self {
        Self::with_names(credentials, PROTOCOL, SERVER_NAME, None)
    }

    /// A server for another service than the client port's: quorum SASL passes
    /// [`QUORUM_PROTOCOL`] and [`QUORUM_SERVER_NAME`]. As ZooKeeper's quorum callback handler
    /// does, it refuses an authzid other than the user name instead of mapping principals.
    pub fn for_service(credentials: Arc<Credentials>, protocol: &str, server_name: &str) -> Self {
        DigestMd5Server {
            strict_authzid: true,
            ..Self::with_names(credentials, protocol, server_name, None)
        }
    }

    /// For the RFC 2831 example and replayable tests: other names and a nonce of our choosing.
    pub(crate) fn with_names(
        credentials: Arc<Credentials>,
        protocol: &str,
        server_name: &str,
        fixed_nonce: Option<&[u8]>,
    ) -> Self {
        DigestMd5Server {
            credentials,
            protocol: protocol.to_string(),
            server_name: server_name.to_string(),
            fixed_nonce: fixed_nonce.map(<[u8]>::to_vec),
            strict_authzid: false,
            phase: Phase::Initial,
        }
    }

    /// One client token in, one server token out. Any error ends the exchange: later tokens
    /// get [`SaslError::AfterFailure`].
    pub fn evaluate(&mut self, token: &[u8]) -> Result<Step, SaslError> {
        if token.len() > TOKEN_BYTES_MAX {
            self.phase = Phase::Failed;
            return Err(SaslError::TooLong {
                len_bytes: token.len(),
            });
        }
        match std::mem::replace(&mut self.phase, Phase::Failed) {
            // A non-empty first token would be a "subsequent authentication" attempt; like the
            // JDK we do not support it and answer with a fresh challenge (RFC 2831 2.2).
            Phase::Initial => {
                let nonce = match &self.fixed_nonce {
                    Some(nonce) => nonce.clone(),
                    None => random_nonce()?,
                };
                let challenge = self.challenge(&nonce);
                self.phase = Phase::Challenged { nonce };
                Ok(Step::Challenge(challenge))
            }
            Phase::Challenged { nonce } => {
                let step = self.verify(token, &nonce)?;
                self.phase = Phase::Complete;
                Ok(step)
            }
            Phase::Complete => {
                self.phase = Phase::Complete;
                Err(SaslError::AfterCompletion)
            }
            Phase::Failed => Err(SaslError::AfterFailure),
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.phase, Phase::Complete)
    }

    fn challenge(&self, nonce: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"realm=\"");
        write_quoted(&mut out, self.server_name.as_bytes());
        out.extend_from_slice(b"\",nonce=\"");
        write_quoted(&mut out, nonce);
        out.extend_from_slice(b"\",charset=utf-8,algorithm=md5-sess");
        out
    }

    /// The JDK's validateClientResponse, in its order.
    fn verify(&self, token: &[u8], nonce: &[u8]) -> Result<Step, SaslError> {
        let d = parse_directives(token, &RESPONSE_KEYS)?;
        // The JDK decodes every directive as UTF-8 whether or not the client sent
        // charset=utf-8 (its server encoding is UTF-8 by default), replacing bad sequences.
        let text = |i: usize| {
            d[i].as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };

        if let Some(charset) = text(CHARSET) {
            if charset != "utf-8" {
                return Err(invalid("charset", charset));
            }
        }
        // Only checked for syntax: without a security layer there is nothing to size.
        if let Some(maxbuf) = text(MAXBUF) {
            if maxbuf.parse::<i32>().is_err() {
                return Err(invalid("maxbuf", maxbuf));
            }
        }
        let username = text(USERNAME).ok_or(SaslError::MissingDirective("username"))?;
        // No realm means "" to the JDK, which is not one of its realms: realm is required.
        let realm = text(REALM).unwrap_or_default();
        if realm != self.server_name {
            return Err(SaslError::UnknownRealm(realm));
        }
        let client_nonce = d[NONCE]
            .as_deref()
            .ok_or(SaslError::MissingDirective("nonce"))?;
        if client_nonce != nonce {
            return Err(SaslError::NonceMismatch);
        }
        let cnonce = d[CNONCE]
            .as_deref()
            .ok_or(SaslError::MissingDirective("cnonce"))?;
        // Absent means 1. Java's Integer.parseInt(s, 16) takes "1" and "+1" as well; Rust's
        // from_str_radix agrees. The hash always uses "00000001", so such a client only
        // passes this check, not the response comparison, unless it hashed that spelling.
        for nc in [text(NONCE_COUNT), text(NONCE_COUNT_LONG)]
            .into_iter()
            .flatten()
        {
            if i32::from_str_radix(&nc, 16) != Ok(1) {
                return Err(SaslError::NonceCount(nc));
            }
        }
        let qop = text(QOP).unwrap_or_else(|| "auth".to_string());
        if qop != "auth" {
            return Err(SaslError::UnsupportedQop(qop));
        }
        // Required in practice: the JDK compares null with its own URI and fails. The compare
        // ignores case and the client's spelling is what gets hashed. (Java's equalsIgnoreCase
        // also folds a few non-ASCII letters; no real client sends those.)
        let expected_uri = format!("{}/{}", self.protocol, self.server_name);
        let digest_uri = d[DIGEST_URI].as_deref().unwrap_or_default();
        if d[DIGEST_URI].is_none() || !digest_uri.eq_ignore_ascii_case(expected_uri.as_bytes()) {
            return Err(SaslError::DigestUriMismatch {
                got: text(DIGEST_URI).unwrap_or_default(),
                expected: expected_uri,
            });
        }
        let response = d[RESPONSE]
            .as_deref()
            .ok_or(SaslError::MissingDirective("response"))?;
        let authzid = d[AUTHZID].as_deref();

        let password = self
            .credentials
            .password(&username)
            .ok_or_else(|| SaslError::UnknownUser(username.clone()))?;
        let input = DigestInput {
            username: &username,
            realm: &realm,
            password,
            nonce,
            cnonce,
            digest_uri,
            qop: &qop,
            authzid,
        };
        let expected = response_value(&input, b"AUTHENTICATE");
        // Byte compare like the JDK's Arrays.equals, so upper-case hex is refused; constant
        // time so the comparison leaks nothing about the expected value.
        if !constant_time_eq(response, &expected) {
            return Err(SaslError::ResponseMismatch(username));
        }
        let authzid_text = authzid.map(|a| String::from_utf8_lossy(a).into_owned());
        if self.strict_authzid {
            if let Some(authzid) = authzid_text.filter(|a| *a != username) {
                return Err(SaslError::AuthzidMismatch { username, authzid });
            }
            let mut token = b"rspauth=".to_vec();
            token.extend_from_slice(&response_value(&input, b""));
            return Ok(Step::Complete {
                token,
                authorization_id: username,
            });
        }
        let authorization_id = self
            .credentials
            .principal_rules()
            .authorized_id(&username, authzid_text.as_deref())
            .map_err(|MalformedPrincipal| SaslError::MalformedPrincipal(username.clone()))?;
        let mut token = b"rspauth=".to_vec();
        token.extend_from_slice(&response_value(&input, b""));
        Ok(Step::Complete {
            token,
            authorization_id,
        })
    }
}

fn invalid(directive: &'static str, value: String) -> SaslError {
    SaslError::InvalidDirective { directive, value }
}

fn random_nonce() -> Result<Vec<u8>, SaslError> {
    let mut raw = [0u8; NONCE_RAW_BYTES];
    getrandom::fill(&mut raw).map_err(|e| SaslError::Random(e.to_string()))?;
    Ok(base64(&raw))
}

fn base64(raw: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(raw.len() % 3, 0);
    let mut out = Vec::with_capacity(raw.len() / 3 * 4);
    for chunk in raw.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((n >> shift) & 63) as usize]);
        }
    }
    out
}

/// RFC 2831 7.2: inside a quoted string, '"', '\\', DEL and controls other than CR, LF, HT
/// are escaped.
fn write_quoted(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        if b == b'"' || b == b'\\' || b == 127 || (b < 32 && !matches!(b, b'\r' | b'\n' | b'\t')) {
            out.push(b'\\');
        }
        out.push(b);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The strings that go into the digest.
struct DigestInput<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a [u8],
    cnonce: &'a [u8],
    digest_uri: &'a [u8],
    qop: &'a str,
    authzid: Option<&'a [u8]>,
}

/// RFC 2831 2.1.2.1 for qop=auth: `method` is "AUTHENTICATE" for the client's response and
/// empty for rspauth. Lower-case hex, like every implementation.
fn response_value(input: &DigestInput<'_>, method: &[u8]) -> [u8; 32] {
    let a2 = [method, b":", input.digest_uri].concat();
    let ha2 = hex(&Md5::digest(&a2));

    let mut secret = Md5::new();
    secret.update(iso_8859_1_or_utf8(input.username));
    secret.update(b":");
    secret.update(iso_8859_1_or_utf8(input.realm));
    secret.update(b":");
    secret.update(iso_8859_1_or_utf8(input.password));
    let mut a1 = Md5::new();
    a1.update(secret.finalize());
    a1.update(b":");
    a1.update(input.nonce);
    a1.update(b":");
    a1.update(input.cnonce);
    if let Some(authzid) = input.authzid {
        a1.update(b":");
        a1.update(authzid);
    }
    let ha1 = hex(&a1.finalize());

    let mut kd = Md5::new();
    for part in [
        &ha1[..],
        input.nonce,
        NONCE_COUNT_HEX.as_bytes(),
        input.cnonce,
        input.qop.as_bytes(),
    ] {
        kd.update(part);
        kd.update(b":");
    }
    kd.update(ha2);
    hex(&kd.finalize())
}

/// RFC 2831 2.1.2.1: user name, realm and password go into the hash in ISO 8859-1 when they
/// can be written in it, otherwise in UTF-8. The JDK server applies this whatever charset the
/// client announced, so a client that hashes UTF-8 bytes without converting (pure-sasl) fails
/// for a password like "pässword" and passes for "пароль"; Apache behaves the same.
fn iso_8859_1_or_utf8(s: &str) -> Vec<u8> {
    if s.chars().all(|c| u32::from(c) <= 0xff) {
        s.chars().map(|c| u32::from(c) as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    assert_eq!(bytes.len(), 16);
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

const USERNAME: usize = 0;
const REALM: usize = 1;
const NONCE: usize = 2;
const CNONCE: usize = 3;
const NONCE_COUNT: usize = 4;
const QOP: usize = 5;
const DIGEST_URI: usize = 6;
const RESPONSE: usize = 7;
const MAXBUF: usize = 8;
const CHARSET: usize = 9;
const AUTHZID: usize = 10;
const NONCE_COUNT_LONG: usize = 11;

/// The digest-response directives the JDK knows, so the same ones count as duplicates;
/// anything else is ignored (RFC 2831: unknown directives MUST be ignored). cipher and
/// auth-param are parsed only to refuse their repetition, as the JDK does. The JDK's table
/// spells the nonce count "nonce-count", so it ignores the "nc" that clients really send; we
/// check both for 1, which refuses only clients whose response could not match anyway, and a
/// repeated "nc", which the JDK lets through.
const RESPONSE_KEYS: [&str; 14] = [
    "username",
    "realm",
    "nonce",
    "cnonce",
    "nc",
    "qop",
    "digest-uri",
    "response",
    "maxbuf",
    "charset",
    "authzid",
    "nonce-count",
    "cipher",
    "auth-param",
];

type Directives = Vec<Option<Vec<u8>>>;

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_lws(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && is_lws(buf[i]) {
        i += 1;
    }
    i
}

/// `key=value` or `key="quoted\"value"` pairs separated by commas and/or whitespace; keys are
/// case-insensitive; empty elements (",,") are skipped. The JDK's parseDirectives accepts
/// exactly this, including whitespace as a separator.
fn parse_directives(buf: &[u8], keys: &[&'static str]) -> Result<Directives, SaslError> {
    let mut values: Directives = vec![None; keys.len()];
    let mut store = |key: &[u8], value: Vec<u8>| -> Result<(), SaslError> {
        if let Some(i) = keys
            .iter()
            .position(|k| k.as_bytes().eq_ignore_ascii_case(key))
        {
            if values[i].is_some() {
                return Err(SaslError::DuplicateDirective(keys[i]));
            }
            values[i] = Some(value);
        }
        Ok(())
    };
    let syntax = |what: &str, key: &[u8]| {
        SaslError::Syntax(format!(
            "{what} (directive {:?})",
            String::from_utf8_lossy(key)
        ))
    };
    let mut i = skip_lws(buf, 0);
    while i < buf.len() {
        // Key.
        let key_start = i;
        while i < buf.len() && !is_lws(buf[i]) && buf[i] != b'=' && buf[i] != b',' {
            i += 1;
        }
        let key = &buf[key_start..i];
        i = skip_lws(buf, i);
        if key.is_empty() {
            match buf.get(i) {
                Some(b',') => {
                    i = skip_lws(buf, i + 1);
                    continue;
                }
                _ => return Err(SaslError::Syntax("empty directive key".to_string())),
            }
        }
        if buf.get(i) != Some(&b'=') {
            return Err(syntax("'=' expected after key", key));
        }
        i = skip_lws(buf, i + 1);
        if i >= buf.len() {
            return Err(syntax("valueless directive", key));
        }
        // Value.
        let mut value = Vec::new();
        if buf[i] == b'"' {
            i += 1;
            loop {
                match buf.get(i) {
                    None => return Err(syntax("unmatched quote", key)),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let &escaped = buf
                            .get(i + 1)
                            .ok_or_else(|| syntax("unmatched quote", key))?;
                        value.push(escaped);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            if i < buf.len() && !is_lws(buf[i]) && buf[i] != b',' {
                return Err(syntax(
                    "comma or whitespace expected after quoted string",
                    key,
                ));
            }
        } else {
            while i < buf.len() && !is_lws(buf[i]) && buf[i] != b',' {
                value.push(buf[i]);
                i += 1;
            }
        }
        store(key, value)?;
        // One separator (a comma or whitespace) and the whitespace around it.
        if i < buf.len() {
            i = skip_lws(buf, i + 1);
        }
    }
    Ok(values)
}

mod client;
pub use client::DigestMd5Client;

#[cfg(test)]
mod tests;
