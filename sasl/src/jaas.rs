//! JAAS login-configuration files, the format Java reads from `java.security.auth.login.config`.
//!
//! ```text
//! Server {
//!        org.apache.zookeeper.server.auth.DigestLoginModule required
//!        user_super="adminsecret"
//!        user_bob="bobsecret";
//! };
//! ```
//!
//! The grammar follows the JDK's `ConfigFile` (a `StreamTokenizer` with `//` and `/* */`
//! comments, `"` and `'` quotes, words of letters, digits and `._-$*`):
//! `file = { name "{" { class flag { key "=" value } ";" } "}" ";" }`.
//! Deliberate differences, all on the lenient side: a bare value may start with a digit (Java
//! reads that as a number and rejects it), and `${property}` references are kept literally
//! (Java expands system properties; rzk has none to expand).

use std::fmt;
use std::path::{Path, PathBuf};

/// A parse or load failure. `line` is 1-based; 0 when no line applies (the file is unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for JaasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for JaasError {}

/// One `class flag options;` entry of a section.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    /// Lower-cased: `required`, `requisite`, `sufficient` or `optional` (Java accepts any case).
    pub flag: String,
    /// In file order; a repeated key stays repeated here, and readers let the last one win as
    /// Java's per-entry `HashMap` does.
    pub options: Vec<(String, String)>,
}

// Options hold passwords (user_NAME="pw", password="pw"), so Debug shows keys only.
impl fmt::Debug for LoginModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("LoginModule")
            .field("class", &self.class)
            .field("flag", &self.flag)
            .field("option_keys", &keys)
            .finish()
    }
}

/// A parsed login-configuration file: named sections of login modules.
#[derive(Debug, Clone, Default)]
pub struct Jaas {
    sections: Vec<(String, Vec<LoginModule>)>,
    path: Option<PathBuf>,
}

impl Jaas {
    pub fn parse(text: &str) -> Result<Jaas, JaasError> {
        let mut parser = Parser {
            lexer: Lexer::new(text),
        };
        let sections = parser.file()?;
        Ok(Jaas {
            sections,
            path: None,
        })
    }

    pub fn load(path: &Path) -> Result<Jaas, JaasError> {
        let text = std::fs::read_to_string(path).map_err(|e| JaasError {
            line: 0,
            message: format!("cannot read JAAS file {}: {e}", path.display()),
        })?;
        let mut jaas = Jaas::parse(&text).map_err(|e| JaasError {
            line: e.line,
            message: format!("{}: {}", path.display(), e.message),
        })?;
        jaas.path = Some(path.to_path_buf());
        Ok(jaas)
    }

    /// The modules of section `name` (case-sensitive, as in Java). An empty section is
    /// returned as an empty slice; ZooKeeper treats that like a missing one.
    pub fn section(&self, name: &str) -> Option<&[LoginModule]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, modules)| modules.as_slice())
    }

    /// The file this came from, when it was loaded with [`Jaas::load`]; for error messages.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
    Eof,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("'{w}'"),
            Token::Quoted(_) => "a quoted string".to_string(),
            Token::Punct(c) => format!("'{c}'"),
            Token::Eof => "end of file".to_string(),
        }
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '$' | '*')
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// Returns the next token and the line it starts on.
    fn next(&mut self) -> Result<(Token, usize), JaasError> {
        loop {
            let line = self.line;
            let Some(c) = self.bump() else {
                return Ok((Token::Eof, line));
            };
            match c {
                c if c.is_whitespace() => continue,
                '/' => match self.chars.peek() {
                    Some('/') => {
                        while let Some(c) = self.bump() {
                            if c == '\n' {
                                break;
                            }
                        }
                    }
                    Some('*') => {
                        self.bump();
                        let mut star = false;
                        loop {
                            match self.bump() {
                                None => {
                                    return Err(JaasError {
                                        line,
                                        message: "unterminated /* comment".to_string(),
                                    })
                                }
                                Some('/') if star => break,
                                Some(c) => star = c == '*',
                            }
                        }
                    }
                    _ => {
                        return Err(JaasError {
                            line,
                            message: "unexpected '/'".to_string(),
                        })
                    }
                },
                '"' | '\'' => return Ok((Token::Quoted(self.quoted(c, line)?), line)),
                '{' | '}' | ';' | '=' => return Ok((Token::Punct(c), line)),
                c if is_word_char(c) => {
                    let mut word = String::from(c);
                    while let Some(&c) = self.chars.peek() {
                        if !is_word_char(c) {
                            break;
                        }
                        word.push(c);
                        self.bump();
                    }
                    return Ok((Token::Word(word), line));
                }
                c => {
                    return Err(JaasError {
                        line,
                        message: format!("unexpected character {c:?}"),
                    })
                }
            }
        }
    }

    /// The escapes StreamTokenizer knows: \a \b \f \n \r \t \v, up to three octal digits, and a
    /// backslash before anything else stands for that character (so \" and \\ work).
    fn quoted(&mut self, quote: char, line: usize) -> Result<String, JaasError> {
        let unterminated = || JaasError {
            line,
            message: "unterminated quoted string".to_string(),
        };
        let mut out = String::new();
        loop {
            let c = self.bump().ok_or_else(unterminated)?;
            if c == quote {
                return Ok(out);
            }
            // StreamTokenizer ends a quoted string at a line end; a value never spans lines.
            if c == '\n' {
                return Err(unterminated());
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.bump().ok_or_else(unterminated)?;
            let decoded = match e {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                '0'..='7' => {
                    let mut value = e.to_digit(8).unwrap_or(0);
                    // Three digits only when the first is 0-3, so the value stays below 256.
                    let max_digits = if value <= 3 { 3 } else { 2 };
                    for _ in 1..max_digits {
                        match self.chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                value = value * 8 + d;
                                self.bump();
                            }
                            None => break,
                        }
                    }
                    char::from_u32(value).unwrap_or('\u{fffd}')
                }
                '\n' => return Err(unterminated()),
                other => other,
            };
            out.push(decoded);
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
}

fn expected(what: &str, found: &Token, line: usize) -> JaasError {
    JaasError {
        line,
        message: format!("expected {what}, found {}", found.describe()),
    }
}

impl Parser<'_> {
    fn file(&mut self) -> Result<Vec<(String, Vec<LoginModule>)>, JaasError> {
        let mut sections: Vec<(String, Vec<LoginModule>)> = Vec::new();
        loop {
            let (token, line) = self.lexer.next()?;
            let name = match token {
                Token::Eof => return Ok(sections),
                Token::Word(w) | Token::Quoted(w) => w,
                other => return Err(expected("a section name", &other, line)),
            };
            let modules = self.section_body()?;
            // Java refuses a repeated section rather than merging or replacing it.
            if sections.iter().any(|(n, _)| *n == name) {
                return Err(JaasError {
                    line,
                    message: format!("section '{name}' appears more than once"),
                });
            }
            sections.push((name, modules));
        }
    }

    fn punct(&mut self, want: char) -> Result<(), JaasError> {
        match self.lexer.next()? {
            (Token::Punct(c), _) if c == want => Ok(()),
            (other, line) => Err(expected(&format!("'{want}'"), &other, line)),
        }
    }

    fn section_body(&mut self) -> Result<Vec<LoginModule>, JaasError> {
        self.punct('{')?;
        let mut modules = Vec::new();
        loop {
            let (token, line) = self.lexer.next()?;
            let class = match token {
                Token::Punct('}') => break,
                Token::Word(w) | Token::Quoted(w) => w,
                other => return Err(expected("a login module class or '}'", &other, line)),
            };
            modules.push(self.module(class)?);
        }
        self.punct(';')?;
        Ok(modules)
    }

    fn module(&mut self, class: String) -> Result<LoginModule, JaasError> {
        let (token, line) = self.lexer.next()?;
        let flag = match token {
            Token::Word(w) | Token::Quoted(w) => w.to_ascii_lowercase(),
            other => return Err(expected("a control flag", &other, line)),
        };
        if !matches!(
            flag.as_str(),
            "required" | "requisite" | "sufficient" | "optional"
        ) {
            return Err(JaasError {
                line,
                message: format!(
                    "invalid control flag '{flag}' (want required, requisite, sufficient or optional)"
                ),
            });
        }
        let mut options = Vec::new();
        loop {
            let (token, line) = self.lexer.next()?;
            let key = match token {
                Token::Punct(';') => break,
                Token::Word(w) | Token::Quoted(w) => w,
                // The usual mistake: the entry's ';' is missing before the section's '}'.
                other => return Err(expected("an option key or ';'", &other, line)),
            };
            self.punct('=')?;
            let value = match self.lexer.next()? {
                (Token::Word(w) | Token::Quoted(w), _) => w,
                (other, line) => return Err(expected("an option value", &other, line)),
            };
            options.push((key, value));
        }
        Ok(LoginModule {
            class,
            flag,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the files ZooKeeper users write parse the way Java's ConfigFile parses them, and
    //! mistakes are reported with the line they are on. Method: small literal files.
    use super::*;

    #[test]
    fn zookeeper_sample_with_comments_and_two_sections() {
        let text = r#"
// The server's users.
Server {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       user_super="adminsecret"   /* the super user */
       user_bob="bobsecret";
};
Client { org.apache.zookeeper.server.auth.DigestLoginModule REQUIRED username="bob" password="bobsecret"; };
"#;
        let jaas = Jaas::parse(text).unwrap();
        let server = jaas.section("Server").unwrap();
        assert_eq!(server.len(), 1);
        assert_eq!(
            server[0].class,
            "org.apache.zookeeper.server.auth.DigestLoginModule"
        );
        assert_eq!(server[0].flag, "required");
        assert_eq!(
            server[0].options,
            vec![
                ("user_super".to_string(), "adminsecret".to_string()),
                ("user_bob".to_string(), "bobsecret".to_string()),
            ]
        );
        let client = jaas.section("Client").unwrap();
        assert_eq!(client[0].flag, "required");
        assert_eq!(client[0].options.len(), 2);
        assert!(jaas.section("server").is_none());
        assert!(jaas.section("Other").is_none());
    }

    #[test]
    fn escapes_single_quotes_bare_values_and_several_modules() {
        let text = "Server {\n a.B sufficient user_x=\"q\\\"uo\\\\te\\n\\101\" debug=true;\n c.D optional user_y='it is';\n e.F requisite;\n};";
        let jaas = Jaas::parse(text).unwrap();
        let s = jaas.section("Server").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].options[0].1, "q\"uo\\te\nA");
        assert_eq!(s[0].options[1], ("debug".to_string(), "true".to_string()));
        assert_eq!(s[1].flag, "optional");
        assert_eq!(s[1].options[0].1, "it is");
        assert_eq!(s[2].flag, "requisite");
        assert!(s[2].options.is_empty());
    }

    #[test]
    fn empty_section_and_empty_file() {
        assert!(Jaas::parse("").unwrap().section("Server").is_none());
        let jaas = Jaas::parse("Server { };").unwrap();
        assert_eq!(jaas.section("Server").unwrap().len(), 0);
    }

    #[test]
    fn missing_entry_semicolon_names_its_line() {
        let text = "Server {\n  a.B required\n  user_bob=\"x\"\n};\n";
        let err = Jaas::parse(text).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err
            .to_string()
            .starts_with("line 4: expected an option key or ';'"));
    }

    #[test]
    fn missing_section_semicolon_names_its_line() {
        let err =
            Jaas::parse("Server {\n a.B required;\n}\nClient { c.D required; };").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.message.contains("expected ';'"), "{err}");
    }

    #[test]
    fn other_errors_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("Server {\n a.B mandatory;\n};", 2, "invalid control flag"),
            (
                "Server {\n a.B required user=;\n};",
                2,
                "expected an option value",
            ),
            (
                "Server {\n a.B required user=\"x\n\";};",
                2,
                "unterminated quoted string",
            ),
            ("/* open\n\n", 1, "unterminated /* comment"),
            (
                "Server { a.B required; };\nServer { };",
                2,
                "more than once",
            ),
            (
                "Server {\n a.B required;\n",
                3,
                "expected a login module class or '}'",
            ),
            ("Server\n a.B", 2, "expected '{'"),
            (
                "Server { a.B required x=1 @ };",
                1,
                "unexpected character '@'",
            ),
        ];
        for (text, line, fragment) in cases {
            let err = Jaas::parse(text).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err}");
            assert!(err.message.contains(fragment), "{text:?}: {err}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("rzk-sasl-jaas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.conf");
        std::fs::write(&bad, "Server {\n a.B required\n};").unwrap();
        let err = Jaas::load(&bad).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().contains("bad.conf"), "{err}");
        let missing = Jaas::load(&dir.join("missing.conf")).unwrap_err();
        assert!(missing.to_string().contains("missing.conf"), "{missing}");
        let good = dir.join("good.conf");
        std::fs::write(&good, "Server { a.B required user_a=\"b\"; };").unwrap();
        assert_eq!(Jaas::load(&good).unwrap().path(), Some(good.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_option_values() {
        let jaas = Jaas::parse("Server { a.B required user_bob=\"hunter2\"; };").unwrap();
        let shown = format!("{jaas:?}");
        assert!(shown.contains("user_bob"));
        assert!(!shown.contains("hunter2"));
    }
}
