//! Goal: the client completes an exchange with this crate's server exactly when the password
//! is right, refuses a server that cannot prove it knows the password, and never panics on a
//! hostile challenge. Method: the RFC 2831 example (the client's response and the server's
//! rspauth, byte for byte), exchanges against `DigestMd5Server` under the client port's and
//! the quorum's names, tampered tokens, and arbitrary challenges.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::digest::{DigestMd5Server, Step, PROTOCOL, QUORUM_PROTOCOL, QUORUM_SERVER_NAME};
use crate::Credentials;

fn creds(users: &[(&str, &str)]) -> Arc<Credentials> {
    Arc::new(Credentials::from_users(users.iter().copied()))
}

/// Runs a whole exchange; on success returns the server's identity for the client.
fn exchange(
    server: &mut DigestMd5Server,
    client: &mut DigestMd5Client,
) -> Result<String, SaslError> {
    let Step::Challenge(challenge) = server.evaluate(b"")? else {
        panic!("first step must be a challenge");
    };
    let response = client.evaluate(&challenge)?;
    assert!(!client.is_complete());
    match server.evaluate(&response)? {
        Step::Complete {
            token,
            authorization_id,
        } => {
            assert_eq!(client.evaluate(&token)?, b"");
            assert!(client.is_complete());
            Ok(authorization_id)
        }
        Step::Challenge(c) => panic!("second challenge {c:?}"),
    }
}

fn quorum_server(users: &[(&str, &str)]) -> DigestMd5Server {
    DigestMd5Server::for_service(creds(users), QUORUM_PROTOCOL, QUORUM_SERVER_NAME)
}

fn quorum_client(user: &str, password: &str) -> DigestMd5Client {
    DigestMd5Client::new(QUORUM_PROTOCOL, QUORUM_SERVER_NAME, user, password)
}

#[test]
fn rfc2831_section_4_example() {
    let mut client = DigestMd5Client::new("imap", "elwood.innosoft.com", "chris", "secret")
        .with_cnonce(b"OA6MHXh6VqTrRk");
    let challenge = b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",\
algorithm=md5-sess,charset=utf-8";
    let response = String::from_utf8(client.evaluate(challenge).unwrap()).unwrap();
    assert_eq!(
        response,
        "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
digest-uri=\"imap/elwood.innosoft.com\",maxbuf=65536,\
response=d388dad90d4bbd760a152321f2143af7,qop=auth"
    );
    assert_eq!(
        client.evaluate(b"rspauth=ea40f60335c427b5527b84dbabcdfffd"),
        Ok(Vec::new())
    );
    assert!(client.is_complete());
    assert_eq!(client.evaluate(b""), Err(SaslError::AfterCompletion));
}

#[test]
fn completes_against_the_server_under_both_names() {
    let mut server = DigestMd5Server::new(creds(&[("bob", "bobsecret")]));
    let mut client = DigestMd5Client::new(PROTOCOL, crate::SERVER_NAME, "bob", "bobsecret");
    assert_eq!(exchange(&mut server, &mut client), Ok("bob".to_string()));

    let mut server = quorum_server(&[("test", "mypassword")]);
    let mut client = quorum_client("test", "mypassword");
    assert_eq!(exchange(&mut server, &mut client), Ok("test".to_string()));
    // Non-Latin-1 passwords go into the hash as UTF-8 on both sides.
    let mut server = quorum_server(&[("test", "пароль")]);
    let mut client = quorum_client("test", "пароль");
    assert_eq!(exchange(&mut server, &mut client), Ok("test".to_string()));
}

#[test]
fn wrong_password_unknown_user_and_other_service() {
    let mut server = quorum_server(&[("test", "mypassword")]);
    assert_eq!(
        exchange(&mut server, &mut quorum_client("test", "wrong")),
        Err(SaslError::ResponseMismatch("test".to_string()))
    );
    let mut server = quorum_server(&[("test", "mypassword")]);
    assert_eq!(
        exchange(&mut server, &mut quorum_client("eve", "mypassword")),
        Err(SaslError::UnknownUser("eve".to_string()))
    );
    // The client port's names do not pass at the quorum's server, nor the reverse.
    let mut server = quorum_server(&[("test", "mypassword")]);
    let mut client = DigestMd5Client::new(PROTOCOL, QUORUM_SERVER_NAME, "test", "mypassword");
    assert!(matches!(
        exchange(&mut server, &mut client),
        Err(SaslError::DigestUriMismatch { .. })
    ));
    let mut server = DigestMd5Server::new(creds(&[("test", "mypassword")]));
    assert!(matches!(
        exchange(&mut server, &mut quorum_client("test", "mypassword")),
        Err(SaslError::DigestUriMismatch { .. })
    ));
}

#[test]
fn a_server_without_the_password_is_refused() {
    let mut server = quorum_server(&[("test", "mypassword")]);
    let mut client = quorum_client("test", "mypassword");
    let Step::Challenge(challenge) = server.evaluate(b"").unwrap() else {
        panic!()
    };
    client.evaluate(&challenge).unwrap();
    // Any rspauth but the one computed from the password: a server that accepted the
    // response without checking it could not produce it.
    assert_eq!(
        client.evaluate(b"rspauth=0123456789abcdef0123456789abcdef"),
        Err(SaslError::RspauthMismatch)
    );
    assert!(!client.is_complete());
    assert_eq!(client.evaluate(b""), Err(SaslError::AfterFailure));

    let mut client = quorum_client("test", "mypassword");
    client.evaluate(&challenge).unwrap();
    assert_eq!(
        client.evaluate(b"realm=\"x\""),
        Err(SaslError::MissingDirective("rspauth"))
    );
}

#[test]
fn quorum_server_refuses_a_foreign_authzid() {
    // The response hash covers the authzid (the client here never sends one): build
    // consistent responses by hand, with the server's nonce fixed.
    let mut server = DigestMd5Server::with_names(
        creds(&[("test", "mypassword")]),
        QUORUM_PROTOCOL,
        QUORUM_SERVER_NAME,
        Some(b"nonce"),
    );
    server.strict_authzid = true;
    server.evaluate(b"").unwrap();
    let input = |authzid: Option<&'static [u8]>| DigestInput {
        username: "test",
        realm: QUORUM_SERVER_NAME,
        password: "mypassword",
        nonce: b"nonce",
        cnonce: b"cn",
        digest_uri: b"zookeeper-quorum/zk-quorum-sasl-md5",
        qop: "auth",
        authzid,
    };
    let token = |authzid: &str, response: [u8; 32]| {
        format!(
            "username=\"test\",realm=\"zk-quorum-sasl-md5\",nonce=\"nonce\",cnonce=\"cn\",nc=00000001,\
qop=auth,digest-uri=\"zookeeper-quorum/zk-quorum-sasl-md5\",authzid=\"{authzid}\",response={}",
            std::str::from_utf8(&response).unwrap()
        )
    };
    let other = token(
        "admin",
        response_value(&input(Some(b"admin")), b"AUTHENTICATE"),
    );
    assert_eq!(
        server.evaluate(other.as_bytes()),
        Err(SaslError::AuthzidMismatch {
            username: "test".to_string(),
            authzid: "admin".to_string()
        })
    );
    let mut server = DigestMd5Server::with_names(
        creds(&[("test", "mypassword")]),
        QUORUM_PROTOCOL,
        QUORUM_SERVER_NAME,
        Some(b"nonce"),
    );
    server.strict_authzid = true;
    server.evaluate(b"").unwrap();
    let same = token(
        "test",
        response_value(&input(Some(b"test")), b"AUTHENTICATE"),
    );
    assert!(matches!(
        server.evaluate(same.as_bytes()),
        Ok(Step::Complete { authorization_id, .. }) if authorization_id == "test"
    ));
}

#[test]
fn bad_challenges_are_refused() {
    for challenge in [
        &b"realm=\"r\",charset=utf-8,algorithm=md5-sess"[..],
        b"realm=\"r\",nonce=\"\",charset=utf-8,algorithm=md5-sess",
        b"realm=\"r\",nonce=\"n\",charset=utf-8",
        b"realm=\"r\",nonce=\"n\",charset=utf-8,algorithm=md5",
        b"realm=\"r\",nonce=\"n\",charset=latin1,algorithm=md5-sess",
        b"realm=\"r\",nonce=\"n\",qop=\"auth-int,auth-conf\",algorithm=md5-sess",
        b"realm=\"r\",nonce=\"n\",nonce=\"m\",algorithm=md5-sess",
        b"realm=\"r",
    ] {
        let mut client = quorum_client("test", "mypassword");
        assert!(
            client.evaluate(challenge).is_err(),
            "{}",
            String::from_utf8_lossy(challenge)
        );
        assert_eq!(client.evaluate(b""), Err(SaslError::AfterFailure));
    }
    let mut client = quorum_client("test", "mypassword");
    assert_eq!(
        client.evaluate(&vec![b'a'; TOKEN_BYTES_MAX + 1]),
        Err(SaslError::TooLong {
            len_bytes: TOKEN_BYTES_MAX + 1
        })
    );
    // qop as a list that offers auth is fine.
    let mut client = quorum_client("test", "mypassword");
    assert!(client
        .evaluate(b"nonce=\"n\",qop=\"auth-int, auth\",algorithm=md5-sess")
        .is_ok());
}

#[test]
fn the_password_never_shows() {
    let client = quorum_client("test", "hunter2-secret");
    assert!(!format!("{client:?}").contains("hunter2-secret"));
    let mut server = quorum_server(&[("test", "other")]);
    let mut client = quorum_client("test", "hunter2-secret");
    let err = exchange(&mut server, &mut client).unwrap_err();
    assert!(!err.to_string().contains("hunter2-secret"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2-secret"), "{err:?}");
}

proptest! {
    #[test]
    fn arbitrary_challenges_never_panic(
        first in proptest::collection::vec(any::<u8>(), 0..600),
        second in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut client = quorum_client("test", "mypassword");
        if client.evaluate(&first).is_ok() {
            // An rspauth nobody computed from the password never completes the exchange.
            prop_assert!(client.evaluate(&second).is_err());
            prop_assert!(!client.is_complete());
        }
    }
}
