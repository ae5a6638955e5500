//! Untrusted text in messages: a tar member name, a registry's error message, a header
//! value, a tag read from an archive. [`quote`] writes it in double quotes with control
//! and other non-printing characters escaped (`\n`, `\u{1b}`, `\u{202e}`), invalid UTF-8
//! replaced, and long text cut, so an error line stays one line that cannot move the
//! cursor, recolour the terminal or reorder what follows it.

use std::fmt;

/// Characters of untrusted text shown at most; the rest is elided (`...`).
pub const MAX_QUOTED_CHARS: usize = 200;

/// Quote untrusted bytes for a message (see the [module docs](self)).
pub fn quote<T: AsRef<[u8]> + ?Sized>(text: &T) -> Quoted<'_> {
    Quoted(text.as_ref())
}

/// Untrusted bytes, displayed quoted and escaped: made by [`quote`].
#[derive(Clone, Copy)]
pub struct Quoted<'a>(&'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        let text = String::from_utf8_lossy(self.0);
        for (i, c) in text.chars().enumerate() {
            if i == MAX_QUOTED_CHARS {
                f.write_str("...")?;
                break;
            }
            match c {
                // escape_debug escapes `'` for char literals; in double quotes it is plain.
                '\'' => f.write_char(c)?,
                c => {
                    for e in c.escape_debug() {
                        f.write_char(e)?;
                    }
                }
            }
        }
        f.write_char('"')
    }
}

/// An I/O error raised while reading untrusted data (the `tar` crate quotes a broken
/// header's bytes in its messages): its message quoted like [`quote`]'s text, its kind
/// kept. An error that carries an [`crate::Error`] (from a reader that names its own
/// failures) is left alone.
pub(crate) fn untrusted_io(e: std::io::Error) -> std::io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<crate::Error>()) {
        return e;
    }
    std::io::Error::new(e.kind(), quote(&e.to_string()).to_string())
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        for (input, want) in [
            (&b"plain/name.tar"[..], r#""plain/name.tar""#),
            (b"it's", r#""it's""#),
            (b"a\nb\r\tc", r#""a\nb\r\tc""#),
            (b"\x1b[31mred\x1b[0m", r#""\u{1b}[31mred\u{1b}[0m""#),
            (b"quote\"back\\slash", r#""quote\"back\\slash""#),
            ("rtl\u{202e}gpj.exe".as_bytes(), r#""rtl\u{202e}gpj.exe""#),
            ("\u{85}next line".as_bytes(), r#""\u{85}next line""#),
            (b"bad \xff utf8", "\"bad \u{fffd} utf8\""),
            ("ünïcödé".as_bytes(), "\"ünïcödé\""),
            (b"", r#""""#),
        ] {
            assert_eq!(quote(input).to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn long_text_is_cut() {
        let long = "x".repeat(10_000);
        let q = quote(&long).to_string();
        assert_eq!(q.len(), MAX_QUOTED_CHARS + 5, "{q}");
        assert!(q.ends_with("...\""));
        assert!(!quote(&"a\n".repeat(300)).to_string().contains('\n'));
    }
}
