//! ACL checks as ZooKeeper's `ZooKeeperServer.checkACL` and the built-in providers (world,
//! digest, ip; "auth" is expanded at create/setACL time) decide them.

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
        "digest" => client_id == acl_expr,
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
            // Only identities whose provider says `isAuthenticated()` count: digest does, ip
            // and super do not.
            let mut any = false;
            for id in auth_ids.iter().filter(|id| id.scheme == "digest") {
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
