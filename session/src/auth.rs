//! Authentication schemes a client can add with the `auth` request (ZooKeeper's built-in
//! DigestAuthenticationProvider and IPAuthenticationProvider).

use base64::Engine;
use rzk_proto::{ClientInfo, Id};
use sha1::{Digest, Sha1};

/// `DigestAuthenticationProvider.generateDigest`: "user:password" → "user:base64(sha1(...))".
/// Without a colon the whole string is the user name (ZooKeeper's `split(":", 2)[0]`).
pub fn generate_digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The ids an `auth` packet adds, or `None` for AuthFailed (unknown scheme, malformed data).
/// `super_digest` is `zookeeper.DigestAuthenticationProvider.superDigest` ("super:<digest>").
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    client_ip: &str,
    super_digest: Option<&str>,
) -> Option<Vec<Id>> {
    match scheme {
        "digest" => {
            let text = std::str::from_utf8(auth).ok()?;
            let digest = generate_digest(text);
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(digest.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", &digest));
            Some(ids)
        }
        "ip" => Some(vec![Id::new("ip", client_ip)]),
        _ => None,
    }
}

/// whoAmI's view of an identity: digest shows its user name, others their id.
pub fn client_info(id: &Id) -> ClientInfo {
    let user = match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
        _ => id.id.clone(),
    };
    ClientInfo {
        auth_scheme: id.scheme.clone(),
        user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        assert_eq!(
            generate_digest("user:password"),
            "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY="
        );
        assert!(generate_digest("nocolon").starts_with("nocolon:"));
    }

    #[test]
    fn super_digest_adds_super_id() {
        let super_digest = generate_digest("super:secret");
        let ids =
            authenticate("digest", b"super:secret", "127.0.0.1", Some(&super_digest)).unwrap();
        assert_eq!(ids[0], Id::new("super", ""));
        assert!(authenticate("world", b"x", "127.0.0.1", None).is_none());
    }
}
