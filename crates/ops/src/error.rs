//! The one public error type of hoist-ops: what went wrong (a [`ErrorKind`] with
//! predicates), and what the verb was doing (`copying oci:a to docker://b`), as a chain a
//! `{:#}`-printing program shows on one line: `copying ...: invalid reference "X": ...`.

use std::fmt;

/// What kind of failure, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's input is wrong: a location, a reference, contradicting options, a
    /// source that is not what the verb takes (an index where an image is needed).
    InvalidInput,
    /// Something asked for is not there.
    NotFound,
    /// The registry or the source does not support what was asked.
    Unsupported,
    /// An error from the image model (a bad manifest, a digest mismatch, local I/O).
    Image,
    /// An error from a registry (protocol, transport, authentication).
    Registry,
}

/// The error type of hoist-ops.
#[derive(Debug)]
pub struct Error {
    repr: Box<Repr>,
}

#[derive(Debug)]
enum Repr {
    /// A message of our own.
    Message(ErrorKind, String),
    /// What the verb was doing when `source` happened.
    Context(String, Error),
    Image(hoist_image::Error),
    Remote(hoist_remote::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(repr: Repr) -> Error {
        Error {
            repr: Box::new(repr),
        }
    }

    /// An error of `kind` with this message (one line, naming the input).
    pub fn msg(kind: ErrorKind, message: impl fmt::Display) -> Error {
        Error::new(Repr::Message(kind, message.to_string()))
    }

    /// A bad input: the message names it and says what was expected.
    pub fn invalid(message: impl fmt::Display) -> Error {
        Error::msg(ErrorKind::InvalidInput, message)
    }

    /// This error, saying what was being done (`copying A to B`).
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error::new(Repr::Context(what.to_string(), self))
    }

    /// The innermost error (past every context).
    fn root(&self) -> &Error {
        match &*self.repr {
            Repr::Context(_, e) => e.root(),
            _ => self,
        }
    }

    /// What kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match &*self.root().repr {
            Repr::Message(k, _) => *k,
            Repr::Image(e) if e.is_not_found() => ErrorKind::NotFound,
            Repr::Image(_) => ErrorKind::Image,
            Repr::Remote(e) if e.is_not_found() => ErrorKind::NotFound,
            Repr::Remote(e) if e.is_unsupported() => ErrorKind::Unsupported,
            Repr::Remote(_) => ErrorKind::Registry,
            Repr::Context(..) => unreachable!("root has no context"),
        }
    }

    /// The image-model error at the root, if that is what it is.
    pub fn as_image(&self) -> Option<&hoist_image::Error> {
        match &*self.root().repr {
            Repr::Image(e) => Some(e),
            Repr::Remote(e) => match e.kind() {
                hoist_remote::ErrorKind::Image(e) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }

    /// The registry error at the root, if that is what it is.
    pub fn as_remote(&self) -> Option<&hoist_remote::Error> {
        match &*self.root().repr {
            Repr::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// True when something asked for is not there.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// True when the input was wrong.
    pub fn is_invalid_input(&self) -> bool {
        self.kind() == ErrorKind::InvalidInput
    }

    /// True when the registry (or source) does not support what was asked.
    pub fn is_unsupported(&self) -> bool {
        self.kind() == ErrorKind::Unsupported
    }

    /// True when trying again later may succeed (a registry's temporary failure).
    pub fn is_temporary(&self) -> bool {
        self.as_remote().is_some_and(|e| e.is_temporary())
    }

    /// True when the registry refused the credentials (or asked for some).
    pub fn is_unauthorized(&self) -> bool {
        self.as_remote().is_some_and(|e| e.is_unauthorized())
    }

    /// True when the failure is a closed output (`hoist ... | head`): a reader that went
    /// away, not something wrong.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match &*self.root().repr {
            Repr::Image(e) => image_io(e),
            Repr::Remote(e) => match e.kind() {
                hoist_remote::ErrorKind::Io { source, .. } => Some(source),
                hoist_remote::ErrorKind::Image(e) => image_io(e),
                _ => None,
            },
            _ => None,
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

fn image_io(e: &hoist_image::Error) -> Option<&std::io::Error> {
    match e.kind() {
        hoist_image::ErrorKind::Io { source, .. } => Some(source),
        _ => None,
    }
}

impl fmt::Display for Error {
    /// `{}` shows this level only (the cause follows through `source()`, as anyhow's
    /// contexts do); `{:#}` shows the whole chain on one line, joined by `": "`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Message(_, m) => f.write_str(m)?,
            Repr::Context(what, _) => f.write_str(what)?,
            Repr::Image(e) => write!(f, "{e}")?,
            Repr::Remote(e) => write!(f, "{e}")?,
        }
        if f.alternate() {
            let mut cause = std::error::Error::source(self);
            while let Some(c) = cause {
                write!(f, ": {c}")?;
                cause = c.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.repr {
            Repr::Context(_, e) => Some(e),
            Repr::Message(..) => None,
            Repr::Image(e) => std::error::Error::source(e),
            Repr::Remote(e) => std::error::Error::source(e),
        }
    }
}

impl From<hoist_image::Error> for Error {
    fn from(e: hoist_image::Error) -> Self {
        Error::new(Repr::Image(e))
    }
}

impl From<hoist_remote::Error> for Error {
    fn from(e: hoist_remote::Error) -> Self {
        Error::new(Repr::Remote(e))
    }
}

/// `.context(...)` / `.with_context(|| ...)` on results, as anyhow spells them.
pub trait Context<T> {
    /// Say what was being done.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// Say what was being done, computed only on failure.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

/// Return early with an [`ErrorKind::InvalidInput`] error formatted like `format!`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `{:#}` printer (anyhow) shows: each level of the chain, joined by ": ".
    fn chain(e: &Error) -> String {
        let mut parts = vec![e.to_string()];
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(c) = cur {
            parts.push(c.to_string());
            cur = c.source();
        }
        parts.join(": ")
    }

    #[test]
    fn chains_read_as_one_line_and_keep_their_kind() {
        let inner: Result<()> = Err(hoist_image::Error::not_found("blob x").into());
        let e = inner
            .context("reading oci:a")
            .with_context(|| "copying oci:a to oci:b")
            .unwrap_err();
        assert_eq!(
            chain(&e),
            "copying oci:a to oci:b: reading oci:a: not found: blob x"
        );
        assert!(e.is_not_found());
        assert!(e.as_image().is_some());

        let e = Error::invalid("invalid location \"\": expected oci:DIR").context("x");
        assert!(e.is_invalid_input());
        assert_eq!(chain(&e), "x: invalid location \"\": expected oci:DIR");
        assert_eq!(format!("{e:#}"), chain(&e));
        assert_eq!(e.to_string(), "x");

        let pipe = hoist_image::Error::io(
            "stdout",
            std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        );
        assert!(Error::from(pipe).context("exporting").is_broken_pipe());
    }
}
