//! A child's name as its parent's children set keeps it.
//!
//! Most names are short ("lock-0000000042", "member_0000000001"): they live inside the set's
//! B-tree slot, so a child costs no allocation of its own and comparing two names while
//! searching the set touches no other cache line. Longer names share one `Arc<str>`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Names up to this many bytes are stored inline; 22 keeps the whole value at 24 bytes.
const INLINE_BYTES: usize = 22;

#[derive(Clone)]
pub enum ChildName {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Shared(Arc<str>),
}

impl ChildName {
    pub fn as_str(&self) -> &str {
        match self {
            // Only `From<&str>` builds this variant, from whole characters of a str.
            ChildName::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("an inline name holds the bytes of a str"),
            ChildName::Shared(s) => s,
        }
    }

    /// The name's bytes without the UTF-8 check `as_str` makes: comparisons use these.
    fn as_bytes(&self) -> &[u8] {
        match self {
            ChildName::Inline { len, bytes } => &bytes[..*len as usize],
            ChildName::Shared(s) => s.as_bytes(),
        }
    }
}

impl From<&str> for ChildName {
    fn from(name: &str) -> Self {
        if name.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            ChildName::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            ChildName::Shared(Arc::from(name))
        }
    }
}

impl std::ops::Deref for ChildName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ChildName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// Equality, order and hash are those of the str, as `Borrow<str>` requires; byte order is
// str order.
impl PartialEq for ChildName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ChildName {}

impl PartialOrd for ChildName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChildName {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Two inline names compare as integers: building a children set of a million
        // names from a snapshot sorts them and then inserts each, and a memcmp call per
        // comparison was most of that time.
        match (self, other) {
            (
                ChildName::Inline { len, bytes },
                ChildName::Inline {
                    len: other_len,
                    bytes: other_bytes,
                },
            ) => inline_key(*len, bytes).cmp(&inline_key(*other_len, other_bytes)),
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

/// An inline name's place in byte order: the zero-padded bytes (as a u128 and a u64 that
/// overlap by two bytes, which the u128 has already compared), then the length. The padding
/// is zero (only `From<&str>` builds names), so a name sorts before any longer name it is a
/// prefix of, as `[u8]` does, and equal keys mean equal names.
#[inline]
fn inline_key(len: u8, bytes: &[u8; INLINE_BYTES]) -> (u128, u64, u8) {
    let (head, _) = bytes.split_first_chunk::<16>().expect("22 bytes hold 16");
    let (_, tail) = bytes.split_last_chunk::<8>().expect("22 bytes hold 8");
    (u128::from_be_bytes(*head), u64::from_be_bytes(*tail), len)
}

impl Hash for ChildName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_inline_and_long_ones_shared() {
        assert!(matches!(
            ChildName::from(""),
            ChildName::Inline { len: 0, .. }
        ));
        assert!(matches!(
            ChildName::from("member_000000000012345"),
            ChildName::Inline { len: 22, .. }
        ));
        let long = "a-name-of-twenty-three!";
        assert_eq!(long.len(), 23);
        assert!(matches!(ChildName::from(long), ChildName::Shared(_)));
        assert_eq!(std::mem::size_of::<ChildName>(), 24);
    }

    #[test]
    fn order_and_equality_are_the_str_ones_across_representations() {
        let names = [
            "",
            "a",
            "a-name-of-twenty-three!",
            "a-name-of-twenty-three",
            "b",
            "é",
            "z-a-much-longer-name-that-is-shared",
        ];
        for x in names {
            for y in names {
                let (cx, cy) = (ChildName::from(x), ChildName::from(y));
                assert_eq!(cx.partial_cmp(&cy), Some(x.cmp(y)));
                assert_eq!(cx.cmp(&cy), x.cmp(y), "{x:?} vs {y:?}");
                assert_eq!(cx == cy, x == y);
            }
            assert_eq!(ChildName::from(x).as_str(), x);
            assert_eq!(ChildName::from(x).to_string(), x);
        }
    }

    proptest::proptest! {
        #[test]
        fn the_integer_order_of_inline_names_is_the_byte_order(
            // A shared prefix, so that names differ anywhere, up to past the inline limit.
            prefix in "[ab]{0,21}",
            x in "[ab\\x00\u{ff}]{0,3}",
            y in "[ab\\x00\u{ff}]{0,3}",
        ) {
            let (x, y) = (format!("{prefix}{x}"), format!("{prefix}{y}"));
            let (cx, cy) = (ChildName::from(x.as_str()), ChildName::from(y.as_str()));
            proptest::prop_assert_eq!(cx.cmp(&cy), x.as_bytes().cmp(y.as_bytes()));
            proptest::prop_assert_eq!(cx == cy, x == y);
        }
    }
}
