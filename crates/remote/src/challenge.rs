//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1): one header may hold several challenges,
//! each a scheme followed by comma-separated `name=value` parameters whose values are
//! tokens or quoted strings (with `\` escapes).

use std::collections::BTreeMap;

/// An authentication scheme a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// HTTP Basic: send the username and password with every request.
    Basic,
    /// The docker token protocol: get a bearer token from `realm`.
    Bearer,
    /// Anything else (kept for error messages).
    Other(String),
}

/// One challenge: a scheme and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// Parameters, names lower-cased.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// `service`.
    pub fn service(&self) -> Option<&str> {
        self.param("service")
    }

    /// `scope` (space-separated scopes).
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }
}

/// Parse every challenge of a `WWW-Authenticate` value. Malformed trailing text is
/// ignored; an empty or unparseable header yields no challenges.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_ws_commas();
        let Some(scheme) = p.token() else { break };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "basic" => Scheme::Basic,
            "bearer" => Scheme::Bearer,
            _ => Scheme::Other(scheme),
        };
        let mut params = BTreeMap::new();
        loop {
            let save = p.i;
            p.skip_ws_commas();
            let Some(name) = p.token() else {
                // token68 or garbage: skip to the next comma.
                p.skip_until_comma();
                if p.i == save || p.at_end() {
                    break;
                }
                continue;
            };
            p.skip_ws();
            if !p.eat(b'=') {
                // A bare token: the start of the next challenge.
                p.i = save;
                break;
            }
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().unwrap_or_default()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(Challenge { scheme, params });
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn skip_until_comma(&mut self) {
        while let Some(c) = self.peek() {
            if c == b',' {
                break;
            }
            self.i += 1;
        }
    }
    /// RFC 9110 `token` characters.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c);
            if !ok {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> String {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(scheme: Scheme, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            ("", vec![]),
            ("   ", vec![]),
            ("Basic", vec![c(Scheme::Basic, &[])]),
            (
                r#"Basic realm="Registry Realm""#,
                vec![c(Scheme::Basic, &[("realm", "Registry Realm")])],
            ),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
                vec![c(
                    Scheme::Bearer,
                    &[
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/alpine:pull,push"),
                    ],
                )],
            ),
            (
                // unquoted values, odd spacing and case
                "bearer  Realm = http://127.0.0.1:5001/token , service=reg",
                vec![c(
                    Scheme::Bearer,
                    &[("realm", "http://127.0.0.1:5001/token"), ("service", "reg")],
                )],
            ),
            (
                // escapes inside quoted strings, an error param
                r#"Bearer realm="a\"b",error="insufficient_scope",scope="repository:x:pull repository:y:push""#,
                vec![c(
                    Scheme::Bearer,
                    &[
                        ("realm", "a\"b"),
                        ("error", "insufficient_scope"),
                        ("scope", "repository:x:pull repository:y:push"),
                    ],
                )],
            ),
            (
                // two challenges in one header
                r#"Bearer realm="r", service="s", Basic realm="b""#,
                vec![
                    c(Scheme::Bearer, &[("realm", "r"), ("service", "s")]),
                    c(Scheme::Basic, &[("realm", "b")]),
                ],
            ),
            (
                "Negotiate, Basic realm=x",
                vec![
                    c(Scheme::Other("Negotiate".into()), &[]),
                    c(Scheme::Basic, &[("realm", "x")]),
                ],
            ),
            (
                // unterminated quote: take what is there
                r#"Bearer realm="http://x"#,
                vec![c(Scheme::Bearer, &[("realm", "http://x")])],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), want, "input {input:?}");
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "=",
            "==,,",
            "\"",
            "Bearer =",
            "Bearer a=",
            "Bearer ,,,=\"",
            "\\",
            "Bearer a=\"\\",
        ] {
            let _ = parse(s);
        }
    }
}
