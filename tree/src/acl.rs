//! ACL checks as ZooKeeper's `ZooKeeperServer.checkACL` and its providers decide them: world,
//! digest, ip, x509 (a TLS client certificate's subject) and sasl (the authorization id of a
//! SASL exchange); "auth" is expanded at create/setACL time. ZooKeeper registers x509 and
//! sasl only when `authProvider.N` names them; rzk always has them, so an ensemble moved from
//! ZooKeeper keeps working whether or not its zoo.cfg listed them.

use std::net::IpAddr;

use rzk_proto::{Acl, Id};

/// True if `ids` (a connection's authenticated identities) grant any bit of `perm` under `acl`.
pub fn allowed(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter().filter(|a| a.perms & perm != 0).any(|a| {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return true;
        }
        ids.iter()
            .filter(|id| id.scheme == a.id.scheme)
            .any(|id| matches(&a.id.scheme, &id.id, &a.id.id))
    })
}

fn matches(scheme: &str, client_id: &str, acl_expr: &str) -> bool {
    match scheme {
        "digest" | "x509" => client_id == acl_expr,
        // ZooKeeper's SASLAuthenticationProvider lets a SASL user named "super" match every
        // sasl ACL (and no other scheme's).
        "sasl" => client_id == "super" || client_id == acl_expr,
        "ip" => ip_matches(client_id, acl_expr),
        _ => false,
    }
}

fn parse_ip_expr(expr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (expr, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return None;
    }
    Some((addr, bits))
}

fn ip_matches(client: &str, expr: &str) -> bool {
    let (Ok(client), Some((net, bits))) = (client.parse::<IpAddr>(), parse_ip_expr(expr)) else {
        return false;
    };
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `ServerAuthenticationProvider.isValid` for the schemes rzk knows.
pub fn id_is_valid(id: &Id) -> bool {
    match id.scheme.as_str() {
        "world" => id.id == "anyone",
        "digest" => id.id.split(':').count() == 2,
        "ip" => parse_ip_expr(&id.id).is_some(),
        // Any subject (X500Principal parses it) or principal name (KerberosName) is a valid
        // identity to ZooKeeper; an empty one matches no client.
        "x509" | "sasl" => !id.id.is_empty(),
        _ => false,
    }
}

/// Expands and validates an ACL list the way `PrepRequestProcessor.fixupACL` does: duplicates
/// dropped, "auth" replaced by the caller's authenticated ids, anything else must be valid.
/// `None` means InvalidACL.
pub fn fixup(acl: &[Acl], auth_ids: &[Id]) -> Option<Vec<Acl>> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    if unique.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            // Only identities whose provider says `isAuthenticated()` count: digest, x509 and
            // sasl do, ip and super do not.
            let mut any = false;
            for id in auth_ids
                .iter()
                .filter(|id| matches!(id.scheme.as_str(), "digest" | "x509" | "sasl"))
            {
                any = true;
                out.push(Acl {
                    perms: a.perms,
                    id: id.clone(),
                });
            }
            if !any {
                return None;
            }
        } else if id_is_valid(&a.id) {
            out.push(a.clone());
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzk_proto::perms;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn world_digest_ip_and_super() {
        let ip = [Id::new("ip", "127.0.0.1")];
        assert!(allowed(&Acl::open_unsafe(), perms::WRITE, &ip));
        assert!(!allowed(&Acl::read_unsafe(), perms::WRITE, &ip));
        let digest = [acl(perms::ALL, "digest", "u:abc")];
        assert!(!allowed(&digest, perms::READ, &ip));
        assert!(allowed(&digest, perms::READ, &[Id::new("digest", "u:abc")]));
        assert!(allowed(&digest, perms::READ, &[Id::new("super", "")]));
        assert!(allowed(
            &[acl(perms::READ, "ip", "127.0.0.0/8")],
            perms::READ,
            &ip
        ));
        assert!(!allowed(
            &[acl(perms::READ, "ip", "10.0.0.0/8")],
            perms::READ,
            &ip
        ));
    }

    #[test]
    fn x509_and_sasl_identities_match_exactly_and_expand_auth() {
        let alice = Id::new("x509", "CN=alice,O=rzk-test");
        let bob = Id::new("sasl", "bob");
        let node = [acl(perms::READ, "x509", "CN=alice,O=rzk-test")];
        assert!(allowed(&node, perms::READ, std::slice::from_ref(&alice)));
        assert!(!allowed(&node, perms::READ, &[Id::new("x509", "CN=alice")]));
        assert!(!allowed(
            &node,
            perms::READ,
            &[Id::new("sasl", "CN=alice,O=rzk-test")]
        ));
        let ids = [Id::new("ip", "127.0.0.1"), alice.clone(), bob.clone()];
        let fixed = fixup(&[acl(perms::ALL, "auth", "")], &ids).unwrap();
        assert_eq!(
            fixed,
            vec![
                acl(perms::ALL, "x509", &alice.id),
                acl(perms::ALL, "sasl", &bob.id)
            ]
        );
        assert_eq!(fixup(&[acl(perms::ALL, "sasl", "")], &ids), None);
        assert!(allowed(
            &[acl(perms::READ, "sasl", "bob")],
            perms::READ,
            &[Id::new("sasl", "super")]
        ));
        assert!(!allowed(
            &[acl(perms::READ, "sasl", "super")],
            perms::READ,
            &[bob]
        ));
    }

    #[test]
    fn fixup_expands_auth_and_rejects_unknown() {
        let ids = [Id::new("ip", "127.0.0.1"), Id::new("digest", "u:x")];
        let fixed = fixup(&[acl(perms::ALL, "auth", "")], &ids).unwrap();
        assert_eq!(fixed, vec![acl(perms::ALL, "digest", "u:x")]);
        assert_eq!(fixup(&[acl(perms::ALL, "auth", "")], &ids[..1]), None);
        assert_eq!(fixup(&[acl(perms::ALL, "auth", "")], &[]), None);
        assert_eq!(fixup(&[acl(perms::ALL, "world", "nobody")], &ids), None);
        assert_eq!(fixup(&[], &ids), None);
        assert_eq!(fixup(&[acl(perms::ALL, "digest", "nocolon")], &ids), None);
    }
}
