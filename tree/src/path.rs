//! ZooKeeper's path rules (`PathUtils.validatePath`), kept character for character because
//! clients rely on which paths the server rejects with BadArguments.

/// Why a path is not a valid znode path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    NotAbsolute,
    TrailingSlash,
    NullCharacter,
    EmptyNodeName,
    Relative,
    InvalidCharacter,
}

/// ZooKeeper validates Java UTF-16 chars: surrogates (so every character outside the BMP),
/// control characters and the private-use and specials ranges are rejected.
fn is_invalid_char(c: char) -> bool {
    let c = c as u32;
    (c > 0 && c <= 0x1f)
        || (0x7f..=0x9f).contains(&c)
        || (0xd800..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c)
        || c > 0xffff
}

pub fn validate_path(path: &str) -> Result<(), PathError> {
    // Nearly every path is printable ASCII: prove those valid a segment at a time, and leave
    // the rest (and every invalid path, whose exact error matters) to ZooKeeper's walk.
    if is_plainly_valid(path) {
        return Ok(());
    }
    validate_path_walk(path)
}

/// True when `path` is "/" or "/"-separated segments of printable ASCII, none empty, "." or
/// "..": valid by ZooKeeper's rules without looking at characters one by one. False says
/// nothing.
fn is_plainly_valid(path: &str) -> bool {
    let Some(rest) = path.as_bytes().strip_prefix(b"/") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    // One pass over the bytes (recovery checks a million paths): a segment ends valid when
    // it is not empty and not one or two dots only.
    let segment_ok = |len: usize, dots: usize| len > 0 && !(dots == len && len <= 2);
    let (mut len, mut dots) = (0usize, 0usize);
    for &b in rest {
        if b == b'/' {
            if !segment_ok(len, dots) {
                return false;
            }
            (len, dots) = (0, 0);
        } else if (0x20..0x7f).contains(&b) {
            len += 1;
            dots += usize::from(b == b'.');
        } else {
            return false;
        }
    }
    segment_ok(len, dots)
}

fn validate_path_walk(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    // Walk with the two previous characters and one of lookahead, as ZooKeeper's loop over
    // its char array does, without collecting the path.
    let mut chars = path.chars().skip(1).peekable();
    let (mut before_last, mut last) = ('/', '/');
    while let Some(c) = chars.next() {
        let next_ends_segment = matches!(chars.peek(), None | Some('/'));
        if c == '\0' {
            return Err(PathError::NullCharacter);
        } else if c == '/' && last == '/' {
            return Err(PathError::EmptyNodeName);
        } else if c == '.' && last == '.' {
            if before_last == '/' && next_ends_segment {
                return Err(PathError::Relative);
            }
        } else if c == '.' {
            if last == '/' && next_ends_segment {
                return Err(PathError::Relative);
            }
        } else if is_invalid_char(c) {
            return Err(PathError::InvalidCharacter);
        }
        before_last = last;
        last = c;
    }
    Ok(())
}

/// The parent of an absolute path ("/a" → "/", "/a/b" → "/a"); `None` for "/" or a path
/// without a slash.
pub fn parent(path: &str) -> Option<&str> {
    let slash = path.rfind('/')?;
    if path.len() == 1 {
        return None;
    }
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

/// The last segment of a path ("/a/b" → "b").
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_zookeeper() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/..a",
            "/a..",
            "/.a/b",
            "/zookeeper",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("", PathError::Empty),
            ("a", PathError::NotAbsolute),
            ("/a/", PathError::TrailingSlash),
            ("//a", PathError::EmptyNodeName),
            ("/a//b", PathError::EmptyNodeName),
            ("/.", PathError::Relative),
            ("/a/./b", PathError::Relative),
            ("/..", PathError::Relative),
            ("/a/../b", PathError::Relative),
            ("/a\u{1}", PathError::InvalidCharacter),
            ("/a\u{1F600}", PathError::InvalidCharacter),
            ("/a\0b", PathError::NullCharacter),
        ];
        for (path, err) in bad {
            assert_eq!(validate_path(path), Err(err), "{path:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_shortcut_agrees_with_the_walk(
            path in "(/[a-z.\\x00-\\x1f\\x7f\u{80}-\u{10ffff}]{0,4}){0,4}/?",
        ) {
            proptest::prop_assert_eq!(validate_path(&path), validate_path_walk(&path));
        }
    }

    #[test]
    fn parent_of_paths() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
