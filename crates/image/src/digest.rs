//! Content digests: [`Digest`] of the bytes as stored (compressed), [`DiffId`] of the
//! uncompressed layer tar, and the readers/writers that compute and check them in passing.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{Error, ErrorKind, Result};

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the registry default (64 hex characters).
    Sha256,
    /// SHA-512 (128 hex characters).
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh hasher of this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A content digest, `algorithm:hex`, with the hex validated (lowercase, right length).
///
/// In image terms this is the digest of bytes *as stored or sent*: a compressed layer blob,
/// a manifest's raw bytes, a config's raw bytes. The digest of an uncompressed layer tar is
/// a [`DiffId`], a distinct type so the two cannot be mixed up.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: Box<str>,
}

impl Digest {
    /// Parse and validate `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let bad = |reason: &str| {
            Error::new(ErrorKind::InvalidDigest {
                input: s.to_string(),
                reason: reason.to_string(),
            })
        };
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(bad("expected algorithm:hex, like sha256:<64 hex digits>"));
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(bad("missing algorithm before ':'")),
            _ => return Err(bad("unsupported algorithm (expected sha256 or sha512)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad(&format!(
                "{} digests have {} hex digits, this one has {}",
                algorithm.as_str(),
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("hex part must be lowercase hex digits [0-9a-f]"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }

    /// SHA-256 of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part (no algorithm prefix).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The digest of an *uncompressed* layer tar, as listed in a config's `rootfs.diff_ids`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DiffId(pub Digest);

impl DiffId {
    /// Parse a diff_id string.
    pub fn parse(s: &str) -> Result<DiffId> {
        Digest::parse(s).map(DiffId)
    }

    /// The underlying digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }
}

impl fmt::Display for DiffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for DiffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiffId({})", self.0)
    }
}

impl FromStr for DiffId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DiffId::parse(s)
    }
}

/// An incremental hasher of either algorithm (sha2 picks SHA-NI at run time when present).
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A SHA-256 hasher.
    pub fn sha256() -> Hasher {
        Algorithm::Sha256.hasher()
    }

    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(&h.finalize()[..])),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(&h.finalize()[..])),
        };
        Digest {
            algorithm,
            hex: hex.into(),
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hasher::Sha256(_) => "Hasher(sha256)",
            Hasher::Sha512(_) => "Hasher(sha512)",
        })
    }
}

/// A `Write` that hashes and counts everything written through it to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hash with SHA-256.
    pub fn new(inner: W) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }

    /// Hash with `algorithm`.
    pub fn with_algorithm(inner: W, algorithm: Algorithm) -> Self {
        HashingWriter {
            inner,
            hasher: algorithm.hasher(),
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Finish: (inner writer, digest, byte count).
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` that hashes and counts everything read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hash with SHA-256.
    pub fn new(inner: R) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }

    /// Hash with `algorithm`.
    pub fn with_algorithm(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: algorithm.hasher(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Finish: (inner reader, digest, byte count).
    pub fn finish(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A `Read` that checks what passes through: never more than `size` bytes (when known),
/// exactly `size` bytes at EOF, and the digest at EOF. A failed check is an `io::Error`
/// of kind `InvalidData` wrapping [`ErrorKind::DigestMismatch`] or [`ErrorKind::SizeMismatch`]
/// (recover it with [`Error::from_io`]). The caller must not keep or use the bytes of a
/// read that ended in an error. [`VerifyingReader::size_only`] skips the digest, for a
/// receiver that hashes the bytes itself.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    /// `None` when only the size is checked.
    hasher: Option<Hasher>,
    expected: Digest,
    size: Option<u64>,
    count: u64,
    /// EOF was reached and checked.
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Verify `inner` against `expected` and, if given, an exact `size`.
    pub fn new(inner: R, expected: Digest, size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(expected.algorithm().hasher()),
            expected,
            size,
            count: 0,
            done: false,
        }
    }

    /// Check only that `inner` holds exactly `size` bytes (errors name `blob`), not its
    /// digest: for a receiver that hashes the bytes itself, such as a registry, which
    /// commits an upload only under the digest its bytes have.
    pub fn size_only(inner: R, blob: Digest, size: u64) -> Self {
        VerifyingReader {
            hasher: None,
            ..VerifyingReader::new(inner, blob, Some(size))
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn size_error(&self, actual: u64) -> io::Error {
        Error::new(ErrorKind::SizeMismatch {
            what: self.expected.to_string(),
            expected: self.size.unwrap_or(0),
            actual,
        })
        .into_io()
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.done {
            return Ok(0); // already verified at EOF
        }
        // Read at most one byte past the announced size, to detect an over-long stream
        // without buffering it.
        let limit = match self.size {
            Some(size) => (size - self.count.min(size) + 1).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..limit])?;
        if let Some(size) = self.size
            && self.count + n as u64 > size
        {
            return Err(self.size_error(self.count + n as u64));
        }
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            self.count += n as u64;
            return Ok(n);
        }
        // EOF: check size and digest.
        if let Some(size) = self.size
            && self.count != size
        {
            return Err(self.size_error(self.count));
        }
        self.done = true;
        let Some(hasher) = self.hasher.take() else {
            return Ok(0);
        };
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(Error::new(ErrorKind::DigestMismatch {
                expected: self.expected.clone(),
                actual,
                bytes_read: self.count,
            })
            .into_io());
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let good = [
            EMPTY,
            "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        ];
        for g in good {
            assert_eq!(Digest::parse(g).unwrap().to_string(), g);
        }
        let bad = [
            ("", "algorithm:hex"),
            ("sha256", "algorithm:hex"),
            (":abc", "missing algorithm"),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "unsupported algorithm",
            ),
            ("sha256:abc", "64 hex digits"),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                "lowercase",
            ),
            (
                "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "lowercase hex",
            ),
            (
                "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "128 hex",
            ),
        ];
        for (input, want) in bad {
            let e = Digest::parse(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?}: {e}");
            assert!(e.contains(&format!("{input:?}")), "error names input: {e}");
        }
    }

    #[test]
    fn hashes() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY);
        let d = Digest::of(Algorithm::Sha512, b"");
        assert!(d.hex().starts_with("cf83e1357eefb8bd"));
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (v, d, n) = w.finish();
        assert_eq!((v.as_slice(), n), (&b"hello world"[..], 11));
        assert_eq!(d, Digest::sha256(b"hello world"));
    }

    #[test]
    fn verifying_reader() {
        let data = b"some blob bytes".to_vec();
        let d = Digest::sha256(&data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], d.clone(), Some(data.len() as u64))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        // Wrong digest.
        let other = Digest::sha256(b"other");
        let e = VerifyingReader::new(&data[..], other, None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let e = Error::from_io("blob", e);
        assert!(
            matches!(e.kind(), ErrorKind::DigestMismatch { bytes_read: 15, .. }),
            "{e}"
        );

        // Too long and too short.
        for size in [10u64, 20] {
            let e = VerifyingReader::new(&data[..], d.clone(), Some(size))
                .read_to_end(&mut Vec::new())
                .unwrap_err();
            let e = Error::from_io("blob", e);
            assert!(matches!(e.kind(), ErrorKind::SizeMismatch { .. }), "{e}");
        }

        // Size only: any bytes of the right length pass; the wrong length does not.
        let other = Digest::sha256(b"other");
        let mut out = Vec::new();
        VerifyingReader::size_only(&data[..], other.clone(), data.len() as u64)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        for size in [10u64, 20] {
            let e = VerifyingReader::size_only(&data[..], other.clone(), size)
                .read_to_end(&mut Vec::new())
                .unwrap_err();
            let e = Error::from_io("blob", e);
            assert!(matches!(e.kind(), ErrorKind::SizeMismatch { .. }), "{e}");
            assert!(e.to_string().contains(&other.to_string()), "{e}");
        }
    }
}
