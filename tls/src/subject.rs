//! Subject: the identity ZooKeeper's X509AuthenticationProvider gives a client certificate,
//! `getSubjectX500Principal().getName()`, i.e. Java's RFC 2253 rendering of the subject.
//! ACLs of the form `x509:<name>` compare this string byte for byte, so every detail
//! (order, escaping, hex for unknown attributes) follows what Java prints, checked against
//! a real JVM; the expected strings in the tests come from it.
//! Not here: validating the certificate (rustls did that in the handshake).

use crate::TlsError;

const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;

/// Returns the certificate subject as Java's `X500Principal.getName()` prints it.
pub fn x509_subject(cert_der: &[u8]) -> Result<String, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| TlsError::Certificate {
            reason: e.to_string(),
        })?;
    // x509-parser has validated the structure; walking the raw Name here keeps each
    // attribute value's exact DER bytes, which the hex form must reproduce.
    render_name(cert.subject().as_raw()).map_err(|reason| TlsError::Certificate {
        reason: reason.to_string(),
    })
}

fn render_name(name_der: &[u8]) -> Result<String, &'static str> {
    let (tag, rdns, rest) = tlv(name_der)?;
    if tag != TAG_SEQUENCE || !rest.is_empty() {
        return Err("subject is not a SEQUENCE");
    }
    let mut rendered: Vec<String> = Vec::new();
    let mut input = rdns;
    while !input.is_empty() {
        let (tag, rdn, rest) = tlv(input)?;
        if tag != TAG_SET {
            return Err("relative distinguished name is not a SET");
        }
        input = rest;
        let mut attributes: Vec<String> = Vec::new();
        let mut rdn_input = rdn;
        while !rdn_input.is_empty() {
            let (tag, attribute, rest) = tlv(rdn_input)?;
            if tag != TAG_SEQUENCE {
                return Err("attribute is not a SEQUENCE");
            }
            rdn_input = rest;
            attributes.push(render_attribute(attribute)?);
        }
        rendered.push(attributes.join("+"));
    }
    // RFC 2253 prints the most specific RDN first, the reverse of DER order.
    rendered.reverse();
    Ok(rendered.join(","))
}

fn render_attribute(attribute: &[u8]) -> Result<String, &'static str> {
    let (tag, oid, value_der) = tlv(attribute)?;
    if tag != TAG_OID {
        return Err("attribute type is not an OID");
    }
    let oid = dotted_oid(oid)?;
    let (value_tag, value, rest) = tlv(value_der)?;
    if !rest.is_empty() {
        return Err("trailing bytes after attribute value");
    }
    let name = keyword(&oid).map_or(oid.clone(), str::to_string);
    // Java prints unknown types, and known types whose value is not a string it decodes, as
    // "#" + the hex of the value's whole DER encoding (tag and length included).
    let text = match keyword(&oid) {
        Some(_) => decode_string(value_tag, value),
        None => None,
    };
    Ok(match text {
        Some(s) => format!("{name}={}", escape(&s)),
        None => {
            let hex: String = value_der.iter().map(|b| format!("{b:02x}")).collect();
            format!("{name}=#{hex}")
        }
    })
}

/// The attribute types Java's RFC 2253 output names by keyword.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The DER string types Java renders as text, decoded as Java does; any other tag falls back
/// to hex.
fn decode_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String
        0x0c => String::from_utf8(value.to_vec()).ok(),
        // PrintableString, IA5String: ASCII.
        0x13 | 0x16 => value
            .is_ascii()
            .then(|| String::from_utf8_lossy(value).into_owned()),
        // TeletexString, GeneralString: Java reads them one byte per char (ISO-8859-1).
        0x14 | 0x1b => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: OpenJDK 17 decodes the raw UTF-16 bytes as if they were UTF-8 here
        // ("Bob" prints as "\00B\00o\00b"), and ZooKeeper ACLs hold whatever Java printed,
        // so rzk does the same.
        0x1e => Some(String::from_utf8_lossy(value).into_owned()),
        // UniversalString and every other type: Java prints hex.
        _ => None,
    }
}

/// RFC 2253 escaping as Java applies it: a backslash before `,=+<>#;"\` anywhere (Java
/// escapes `=` and `#` even mid-value), NUL as `\00`, and a backslash before every leading
/// or trailing space or carriage return.
fn escape(value: &str) -> String {
    let mut chars: Vec<(bool, char)> = Vec::new();
    for c in value.chars() {
        if ",=+<>#;\"\\".contains(c) {
            chars.push((true, c));
        } else if c == '\0' {
            chars.push((true, '0'));
            chars.push((false, '0'));
        } else {
            chars.push((false, c));
        }
    }
    let is_blank = |&(escaped, c): &(bool, char)| !escaped && (c == ' ' || c == '\r');
    let lead = chars.iter().take_while(|c| is_blank(c)).count();
    let trail = chars.iter().rev().take_while(|c| is_blank(c)).count();
    let mut out = String::with_capacity(value.len() + 4);
    let total = chars.len();
    for (i, (escaped, c)) in chars.into_iter().enumerate() {
        if escaped || i < lead || i >= total - trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits one DER TLV off `input`: (tag byte, contents, rest). Only single-byte tags,
/// which is all a Name uses.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated DER")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tag in a Name");
    }
    let (&first, mut rest) = rest.split_first().ok_or("truncated DER")?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("bad DER length");
        }
        let mut length = 0usize;
        for &b in &rest[..count] {
            length = (length << 8) | usize::from(b);
        }
        rest = &rest[count..];
        length
    };
    if rest.len() < length {
        return Err("truncated DER");
    }
    Ok((tag, &rest[..length], &rest[length..]))
}

fn dotted_oid(bytes: &[u8]) -> Result<String, &'static str> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut current: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if current > (u64::MAX >> 7) {
            return Err("OID arc too large");
        }
        current = (current << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                // The first subidentifier packs two arcs: 40 * first + second.
                let first = (current / 40).min(2);
                arcs.push(first);
                arcs.push(current - first * 40);
            } else {
                arcs.push(current);
            }
            current = 0;
        } else if i + 1 == bytes.len() {
            return Err("truncated OID");
        }
    }
    if arcs.is_empty() {
        return Err("empty OID");
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

#[cfg(test)]
mod tests {
    //! Goal: x509_subject prints exactly what Java's X500Principal.getName() prints, since
    //! ZooKeeper ACLs compare that string. Method: certificates with chosen subjects (rcgen at
    //! test time, and two openssl-made certificates in testdata/ for shapes rcgen cannot make:
    //! a multi-valued RDN and a repeated attribute type). The expected strings were printed by
    //! OpenJDK 17 for these same subjects. Set RZK_TLS_DUMP_SUBJECTS=<dir> to write the rcgen
    //! certificates there and re-check with a JVM:
    //! `CertificateFactory.getInstance("X.509").generateCertificate(in)
    //!     .getSubjectX500Principal().getName()`.
    use super::*;
    use crate::testutil::Ca;
    use rcgen::{CertificateParams, DnType, DnValue};

    const EMAIL: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];
    const SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];
    const STREET: &[u64] = &[2, 5, 4, 9];
    const DC: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 25];
    const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

    fn custom(oid: &[u64]) -> DnType {
        DnType::CustomDnType(oid.to_vec())
    }

    fn subject_of(name: &str, attributes: Vec<(DnType, DnValue)>) -> String {
        let ca = Ca::new("subject test CA");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for (ty, value) in attributes {
            params.distinguished_name.push(ty, value);
        }
        let leaf = ca.leaf_from(params);
        if let Some(dir) = std::env::var_os("RZK_TLS_DUMP_SUBJECTS") {
            let path = std::path::Path::new(&dir).join(format!("{name}.pem"));
            std::fs::write(path, &leaf.cert_pem).unwrap();
        }
        x509_subject(&leaf.cert_der).unwrap()
    }

    fn utf8(s: &str) -> DnValue {
        DnValue::Utf8String(s.to_string())
    }

    #[test]
    fn common_attributes_in_reverse_order() {
        let got = subject_of(
            "simple",
            vec![
                (
                    DnType::CountryName,
                    DnValue::PrintableString("US".try_into().unwrap()),
                ),
                (DnType::StateOrProvinceName, utf8("CA")),
                (DnType::LocalityName, utf8("SF")),
                (DnType::OrganizationName, utf8("Acme")),
                (DnType::OrganizationalUnitName, utf8("Eng")),
                (DnType::CommonName, utf8("zk1")),
            ],
        );
        // rcgen writes CN first whatever the push order, so it prints last.
        assert_eq!(got, "OU=Eng,O=Acme,L=SF,ST=CA,C=US,CN=zk1");
    }

    #[test]
    fn unknown_attributes_print_as_oid_and_der_hex() {
        let got = subject_of(
            "email",
            vec![
                (DnType::CommonName, utf8("alice")),
                (
                    custom(EMAIL),
                    DnValue::Ia5String("alice@example.com".try_into().unwrap()),
                ),
            ],
        );
        assert_eq!(
            got,
            "1.2.840.113549.1.9.1=#1611616c696365406578616d706c652e636f6d,CN=alice"
        );
    }

    #[test]
    fn keywords_dc_uid_street_and_a_hex_serial_number() {
        let got = subject_of(
            "keywords",
            vec![
                (
                    custom(DC),
                    DnValue::Ia5String("example".try_into().unwrap()),
                ),
                (custom(UID), utf8("u1")),
                (custom(STREET), utf8("1 Main")),
                (DnType::CommonName, utf8("host")),
                (
                    custom(SERIAL_NUMBER),
                    DnValue::PrintableString("42".try_into().unwrap()),
                ),
            ],
        );
        assert_eq!(
            got,
            "2.5.4.5=#13023432,STREET=1 Main,UID=u1,DC=example,CN=host"
        );
    }

    #[test]
    fn comma_in_a_value_is_escaped() {
        let got = subject_of(
            "comma",
            vec![
                (DnType::OrganizationName, utf8("Acme")),
                (DnType::CommonName, utf8("Smith, John")),
            ],
        );
        assert_eq!(got, "O=Acme,CN=Smith\\, John");
    }

    #[test]
    fn special_characters_are_escaped_as_java_does() {
        let got = subject_of(
            "special",
            vec![
                (
                    DnType::CommonName,
                    utf8(" #lead+x\"y<z>;w=v\\q a#b trail  "),
                ),
                (DnType::OrganizationalUnitName, utf8("#hash")),
                (DnType::OrganizationName, utf8("nul\0cr\r")),
                (DnType::LocalityName, utf8("a@b_c*d&e")),
            ],
        );
        assert_eq!(
            got,
            "L=a@b_c*d&e,O=nul\\00cr\\\r,OU=\\#hash,\
             CN=\\ \\#lead\\+x\\\"y\\<z\\>\\;w\\=v\\\\q a\\#b trail\\ \\ "
        );
    }

    #[test]
    fn other_string_types_print_as_openjdk_17_does() {
        let got = subject_of(
            "strings",
            vec![
                (
                    DnType::CommonName,
                    DnValue::BmpString("Jürgen".try_into().unwrap()),
                ),
                (
                    DnType::OrganizationName,
                    DnValue::UniversalString("Ñandú".try_into().unwrap()),
                ),
                (
                    DnType::LocalityName,
                    DnValue::TeletexString("Teletex".try_into().unwrap()),
                ),
                (DnType::OrganizationalUnitName, utf8("ütf8")),
                (
                    DnType::StateOrProvinceName,
                    DnValue::BmpString("Bob".try_into().unwrap()),
                ),
            ],
        );
        assert_eq!(
            got,
            "ST=\\00B\\00o\\00b,OU=ütf8,L=Teletex,\
             O=#1c14000000d1000000610000006e00000064000000fa,\
             CN=\\00J\\00\u{fffd}\\00r\\00g\\00e\\00n"
        );
    }

    #[test]
    fn openssl_made_subjects() {
        let der = |pem: &str| {
            rustls_pemfile::certs(&mut pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
        };
        let multi = der(include_str!("../testdata/multi_valued_rdn.pem"));
        assert_eq!(x509_subject(&multi).unwrap(), "CN=a+UID=b,O=Acme");
        let repeated = der(include_str!("../testdata/repeated_dc.pem"));
        assert_eq!(
            x509_subject(&repeated).unwrap(),
            "2.5.4.5=#13023432,CN=host,DC=example,DC=com"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(x509_subject(b"").is_err());
        assert!(x509_subject(b"\x30\x03\x02\x01").is_err());
    }

    #[test]
    fn oid_decoding() {
        assert_eq!(dotted_oid(&[0x55, 0x04, 0x03]).unwrap(), "2.5.4.3");
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).unwrap(),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(
            dotted_oid(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]).unwrap(),
            "0.9.2342.19200300.100.1.25"
        );
        assert!(dotted_oid(&[0x86]).is_err());
    }
}
