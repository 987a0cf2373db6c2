//! The DIGEST-MD5 user table and the mapping from an authenticated user name to the `sasl` ACL
//! identity, as ZooKeeper's `SaslServerCallbackHandler` builds them.

use std::collections::HashMap;
use std::fmt;

use crate::jaas::Jaas;

const USER_PREFIX: &str = "user_";

/// How an authentication id becomes the `sasl` identity. The defaults are ZooKeeper's defaults
/// (`zookeeper.kerberos.removeHostFromPrincipal` and `...removeRealmFromPrincipal` unset, no
/// Kerberos configuration so the default realm is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalRules {
    /// `zookeeper.kerberos.removeHostFromPrincipal=true`.
    pub remove_host: bool,
    /// `zookeeper.kerberos.removeRealmFromPrincipal=true`.
    pub remove_realm: bool,
    /// `default_realm` of krb5.conf; empty when there is none (ZooKeeper's fallback).
    pub default_realm: String,
}

/// Why an authentication id has no identity: it has an '@' but is not `name[/host]@realm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedPrincipal;

impl PrincipalRules {
    /// ZooKeeper's `handleAuthorizeCallback` with the `DEFAULT` auth_to_local rule:
    /// 1) split `service[/host]@realm` (no '@': the whole name is the service, '/' included);
    /// 2) the short name is the service when there is neither host nor realm, or when the realm
    ///    equals the default realm; otherwise no rule matches;
    /// 3) with a short name, host and realm are appended back unless the remove_* flags say no;
    /// 4) with no match, ZooKeeper logs and leaves the AuthorizeCallback's authorized id unset, so
    ///    Java falls back to the client's authzid: a user whose name carries a foreign realm
    ///    could then claim any identity, `super` included. rzk gives such a user its own
    ///    authentication id instead; the authzid a client sends never picks an identity.
    pub fn authorized_id(
        &self,
        authentication_id: &str,
        authzid: Option<&str>,
    ) -> Result<String, MalformedPrincipal> {
        let Some((service, host, realm)) = split_principal(authentication_id)? else {
            return Ok(authentication_id.to_string());
        };
        if realm != self.default_realm {
            let _ = authzid;
            return Ok(authentication_id.to_string());
        }
        let mut id = service.to_string();
        if let Some(host) = host {
            if !self.remove_host {
                id.push('/');
                id.push_str(host);
            }
        }
        if !self.remove_realm {
            id.push('@');
            id.push_str(realm);
        }
        Ok(id)
    }
}

type Principal<'a> = (&'a str, Option<&'a str>, &'a str);

/// Matches Java's `([^/@]*)(/([^/@]*))?@([^/@]*)` against the whole name. Ok(None): no '@' at
/// all, a plain name.
fn split_principal(name: &str) -> Result<Option<Principal<'_>>, MalformedPrincipal> {
    let Some((left, realm)) = name.split_once('@') else {
        return Ok(None);
    };
    if realm.contains(['/', '@']) {
        return Err(MalformedPrincipal);
    }
    let (service, host) = match left.split_once('/') {
        Some((service, host)) => (service, Some(host)),
        None => (left, None),
    };
    if host.is_some_and(|h| h.contains('/')) {
        return Err(MalformedPrincipal);
    }
    Ok(Some((service, host, realm)))
}

/// The DIGEST-MD5 users of one JAAS section, with the super password override applied.
/// Built once at startup and shared by every connection's [`crate::DigestMd5Server`].
#[derive(Clone, Default)]
pub struct Credentials {
    users: HashMap<String, String>,
    rules: PrincipalRules,
}

// Passwords must not reach logs through {:?}.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Credentials")
            .field("users", &names)
            .field("rules", &self.rules)
            .finish()
    }
}

impl Credentials {
    /// Every `user_NAME="pw"` option of every module in `section` is a user; a later
    /// definition of the same name wins, as Java's map puts do.
    ///
    /// `super_password` is `zookeeper.SASLAuthenticationProvider.superPassword`. ZooKeeper
    /// consults it only after finding "super" in the section (its name callback refuses
    /// unknown users first), so it overrides `user_super` and never creates that user.
    pub fn from_jaas(
        jaas: &Jaas,
        section: &str,
        super_password: Option<&str>,
    ) -> Result<Credentials, String> {
        let origin = match jaas.path() {
            Some(path) => path.display().to_string(),
            None => "the JAAS configuration".to_string(),
        };
        // Java's Configuration returns null for an empty section too; ZooKeeper then refuses
        // to start.
        let modules = match jaas.section(section) {
            Some(modules) if !modules.is_empty() => modules,
            _ => return Err(format!("no '{section}' section in {origin}")),
        };
        let mut users = HashMap::new();
        for module in modules {
            for (key, value) in &module.options {
                if let Some(name) = key.strip_prefix(USER_PREFIX) {
                    users.insert(name.to_string(), value.clone());
                }
            }
        }
        if let (Some(pw), Some(slot)) = (super_password, users.get_mut("super")) {
            *slot = pw.to_string();
        }
        Ok(Credentials {
            users,
            rules: PrincipalRules::default(),
        })
    }

    /// A table from (name, password) pairs, for callers that do not read a JAAS file.
    pub fn from_users<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> Credentials {
        Credentials {
            users: users
                .into_iter()
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .collect(),
            rules: PrincipalRules::default(),
        }
    }

    pub fn with_principal_rules(mut self, rules: PrincipalRules) -> Credentials {
        self.rules = rules;
        self
    }

    pub fn principal_rules(&self) -> &PrincipalRules {
        &self.rules
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the user table and identities match ZooKeeper's SaslServerCallbackHandler and
    //! KerberosName for DIGEST users. Method: literal JAAS texts and names.
    use super::*;

    const TEXT: &str = r#"
Server {
    a.DigestLoginModule required user_super="adminsecret" user_bob="old" debug="true";
    b.Other optional user_bob="bobsecret" user_alice="a";
};
Client { a.DigestLoginModule required username="bob" password="bobsecret"; };
Empty { };
"#;

    #[test]
    fn users_from_every_module_later_wins() {
        let jaas = Jaas::parse(TEXT).unwrap();
        let c = Credentials::from_jaas(&jaas, "Server", None).unwrap();
        assert_eq!(c.user_count(), 3);
        assert_eq!(c.password("bob"), Some("bobsecret"));
        assert_eq!(c.password("super"), Some("adminsecret"));
        assert_eq!(c.password("alice"), Some("a"));
        assert_eq!(c.password("debug"), None);
        assert_eq!(c.password("Bob"), None);
    }

    #[test]
    fn super_password_overrides_but_never_creates_super() {
        let jaas = Jaas::parse(TEXT).unwrap();
        let c = Credentials::from_jaas(&jaas, "Server", Some("override")).unwrap();
        assert_eq!(c.password("super"), Some("override"));
        let no_super = Jaas::parse("Server { a.B required user_bob=\"x\"; };").unwrap();
        let c = Credentials::from_jaas(&no_super, "Server", Some("override")).unwrap();
        assert_eq!(c.password("super"), None);
    }

    #[test]
    fn missing_or_empty_section_is_an_error() {
        let jaas = Jaas::parse(TEXT).unwrap();
        let err = Credentials::from_jaas(&jaas, "Nope", None).unwrap_err();
        assert_eq!(err, "no 'Nope' section in the JAAS configuration");
        assert!(Credentials::from_jaas(&jaas, "Empty", None).is_err());
        // A section without user_ options is valid; it just has no users.
        let client = Credentials::from_jaas(&jaas, "Client", None).unwrap();
        assert_eq!(client.user_count(), 0);
    }

    #[test]
    fn debug_hides_passwords() {
        let c = Credentials::from_users([("bob", "hunter2")]);
        let shown = format!("{c:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Credentials>();
    }

    #[test]
    fn identities_follow_kerberos_name_default_rule() {
        let none = PrincipalRules::default();
        let id = |rules: &PrincipalRules, name: &str, authz: Option<&str>| {
            rules.authorized_id(name, authz)
        };
        // Plain names, with or without '/', pass through; authzid is ignored.
        assert_eq!(id(&none, "bob", Some("super")), Ok("bob".to_string()));
        assert_eq!(id(&none, "zk/host1", None), Ok("zk/host1".to_string()));
        // A realm other than the (empty) default realm matches no rule: Java falls back to
        // the client's authzid (so "eve", or "super"); rzk keeps the authentication id,
        // untouched by the remove_* flags.
        assert_eq!(
            id(&none, "bob@EXAMPLE.COM", None),
            Ok("bob@EXAMPLE.COM".to_string())
        );
        assert_eq!(
            id(&none, "bob@EXAMPLE.COM", Some("super")),
            Ok("bob@EXAMPLE.COM".to_string())
        );
        let strip = PrincipalRules {
            remove_host: true,
            remove_realm: true,
            default_realm: String::new(),
        };
        assert_eq!(
            id(&strip, "bob@EXAMPLE.COM", None),
            Ok("bob@EXAMPLE.COM".to_string())
        );
        // The default realm matches: host and realm come back unless removed.
        let krb = PrincipalRules {
            remove_host: false,
            remove_realm: false,
            default_realm: "EXAMPLE.COM".to_string(),
        };
        assert_eq!(
            id(&krb, "zk/h@EXAMPLE.COM", Some("x")),
            Ok("zk/h@EXAMPLE.COM".to_string())
        );
        let krb_strip = PrincipalRules {
            default_realm: "EXAMPLE.COM".to_string(),
            ..strip.clone()
        };
        assert_eq!(
            id(&krb_strip, "zk/h@EXAMPLE.COM", None),
            Ok("zk".to_string())
        );
        assert_eq!(
            id(&krb_strip, "bob@EXAMPLE.COM", None),
            Ok("bob".to_string())
        );
        // Empty default realm and "bob@": the realm "" matches, then is appended back.
        assert_eq!(id(&none, "bob@", None), Ok("bob@".to_string()));
        assert_eq!(id(&strip, "bob@", None), Ok("bob".to_string()));
        // Java throws "Malformed Kerberos name" for these.
        assert_eq!(id(&none, "a@b@c", None), Err(MalformedPrincipal));
        assert_eq!(id(&none, "a/b/c@R", None), Err(MalformedPrincipal));
        assert_eq!(id(&none, "a@R/x", None), Err(MalformedPrincipal));
    }
}
