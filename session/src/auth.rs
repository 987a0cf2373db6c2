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

/// `String.hashCode()` of Java: over UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The jute-generated `Id.hashCode()`.
fn java_id_hash(id: &Id) -> i32 {
    let mut result: i32 = 17;
    result = result
        .wrapping_mul(37)
        .wrapping_add(java_string_hash(&id.scheme));
    result
        .wrapping_mul(37)
        .wrapping_add(java_string_hash(&id.id))
}

/// Puts a connection's identities (given in the order they were added) in the order
/// ZooKeeper iterates them: its `ServerCnxn.authInfo` is a set backed by a
/// `ConcurrentHashMap`, whose iteration goes by hash bucket, then insertion order. The order
/// is visible to clients: an "auth" ACL expands to the identities in this order.
pub fn order_like_zookeeper(ids: &mut [Id]) {
    // The map's table starts at 16 buckets and doubles past a 0.75 load.
    let mut buckets = 16usize;
    while ids.len() > buckets * 3 / 4 {
        buckets *= 2;
    }
    let bucket = |id: &Id| {
        let h = java_id_hash(id);
        let spread = (h ^ ((h as u32) >> 16) as i32) & 0x7fff_ffff;
        spread as usize & (buckets - 1)
    };
    // A stable sort keeps insertion order within a bucket.
    ids.sort_by_key(|id| bucket(id));
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
    fn java_hashes_match_the_jvm() {
        // Values printed by the JVM: "digest".hashCode() and "ip".hashCode().
        assert_eq!(java_string_hash("digest"), -1331913276);
        assert_eq!(java_string_hash("ip"), 3367);
        assert_eq!(java_string_hash(""), 0);
    }

    #[test]
    fn identities_iterate_in_the_jvm_set_order() {
        // The order a ConcurrentHashMap-backed set of these Ids iterates in on the JVM.
        let mut ids = vec![
            Id::new("ip", "127.0.0.1"),
            Id::new("digest", "u1:gt9jc5WecOnhjjYcMHfWn6inh6g="),
            Id::new("digest", "u1:fpT/y03U+EjItKZOSLGvjnJlyng="),
            Id::new("digest", "u2:o9NxcCGDPOlcV7JVhmKHOf5ctVE="),
            Id::new("super", ""),
        ];
        order_like_zookeeper(&mut ids);
        let order: Vec<&str> = ids.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "u1:gt9jc5WecOnhjjYcMHfWn6inh6g=",
                "u2:o9NxcCGDPOlcV7JVhmKHOf5ctVE=",
                "u1:fpT/y03U+EjItKZOSLGvjnJlyng=",
                "",
                "127.0.0.1"
            ]
        );
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
