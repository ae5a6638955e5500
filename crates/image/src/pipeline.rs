//! The one-pass layer pipeline: uncompressed `Read` → sha256 (diff_id) → encoder →
//! sha256 + count (digest, size) → sink `Write`, returning [`Sealed`]. And the matching
//! streaming decoders (gzip with every member, zstd).

use std::io::{self, Read, Write};

use crate::compress;
use crate::digest::{DiffId, HashingReader, HashingWriter};
use crate::error::{Error, Result};
use crate::layer::{BoxRead, Sealed};
use crate::media_type::{Compression, MediaType};

/// How to compress a layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// The algorithm.
    pub compression: Compression,
    /// The level; `None` is the algorithm's default in hoist.
    pub level: Option<u32>,
    /// Worker threads; 0 means all cores.
    pub threads: usize,
    /// gzip only: the opt-in fast mode, libdeflate with one gzip member per 1 MiB block
    /// (see [`crate::compress`] for the multi-member caveat). Part of the cache key, as
    /// it gives other bytes.
    pub fast_gzip: bool,
}

/// gzip level used when none is given: chosen by measurement against pigz, see
/// [`crate::compress`].
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// zstd level used when none is given (the zstd CLI's default).
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

impl Encoding {
    fn with(compression: Compression) -> Self {
        Encoding {
            compression,
            level: None,
            threads: 0,
            fast_gzip: false,
        }
    }

    /// gzip at the default level on all cores.
    pub fn gzip() -> Self {
        Self::with(Compression::Gzip)
    }

    /// zstd at the default level on all cores.
    pub fn zstd() -> Self {
        Self::with(Compression::Zstd)
    }

    /// No compression.
    pub fn none() -> Self {
        Self::with(Compression::None)
    }

    /// The default encoding of a compression.
    pub fn of(compression: Compression) -> Self {
        Self::with(compression)
    }

    /// Set the level.
    pub fn level(mut self, level: u32) -> Self {
        self.level = Some(level);
        self
    }

    /// Set the worker threads (0: all cores).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// gzip's multi-member libdeflate fast mode.
    pub fn fast(mut self) -> Self {
        self.fast_gzip = true;
        self
    }

    /// The level that will be used.
    pub fn effective_level(&self) -> u32 {
        match (self.compression, self.level) {
            (_, Some(l)) => l,
            (Compression::Gzip, None) => DEFAULT_GZIP_LEVEL,
            (Compression::Zstd, None) => DEFAULT_ZSTD_LEVEL,
            (Compression::None, None) => 0,
        }
    }

    /// Check the settings: a level in range for the algorithm, fast mode only for gzip.
    pub fn validate(&self) -> Result<()> {
        let level = self.effective_level();
        let range = match (self.compression, self.fast_gzip) {
            (Compression::Gzip, false) => 0..=compress::gzip::MAX_LEVEL,
            (Compression::Gzip, true) => 0..=compress::gzip::MAX_FAST_LEVEL,
            (Compression::Zstd, false) => 1..=compress::zstd::MAX_LEVEL,
            (Compression::None, false) => 0..=0,
            (c, true) => {
                return Err(Error::invalid_input(
                    format!("{c} fast mode"),
                    "the fast mode exists for gzip only",
                ));
            }
        };
        if !range.contains(&level) {
            return Err(Error::invalid_input(
                format!("{} level {level}", self.compression),
                format!("expected {}..={}", range.start(), range.end()),
            ));
        }
        Ok(())
    }

    /// A short stable name of the settings that change the output bytes (not the thread
    /// count, which never does): `gzip-6`, `gzip-fast-6`, `zstd-3`, `none`. Used as a
    /// cache key.
    pub fn key(&self) -> String {
        match (self.compression, self.fast_gzip) {
            (Compression::None, _) => "none".to_string(),
            (Compression::Gzip, true) => format!("gzip-fast-{}", self.effective_level()),
            (c, _) => format!("{c}-{}", self.effective_level()),
        }
    }
}

/// Read `src` once: hash it (diff_id), compress it per `encoding`, hash and count the
/// compressed bytes (digest, size) while writing them to `sink`.
///
/// The calling thread reads and hashes the input and hashes and writes the output;
/// compression runs on `encoding.threads` workers (see [`crate::compress`]). The output
/// bytes do not depend on the thread count.
pub fn seal<R: Read, W: Write>(
    src: R,
    encoding: &Encoding,
    media_type: MediaType,
    sink: W,
) -> Result<Sealed> {
    if media_type.layer_compression() != Some(encoding.compression) {
        return Err(Error::invalid_input(
            format!("media type {media_type}"),
            format!("not a layer type for {} compression", encoding.compression),
        ));
    }
    encoding.validate()?;
    let mut src = HashingReader::new(src);
    let mut out = HashingWriter::new(sink);
    let level = encoding.effective_level();
    let workers = compress::workers(encoding.threads);
    let io_err = |e: io::Error| Error::from_io("layer", e);
    match (encoding.compression, encoding.fast_gzip) {
        (Compression::None, _) => {
            io::copy(&mut src, &mut out).map_err(io_err)?;
        }
        (Compression::Gzip, false) => {
            compress::gzip::encode(&mut src, &mut out, level, workers).map_err(io_err)?
        }
        (Compression::Gzip, true) => {
            compress::gzip::encode_fast(&mut src, &mut out, level, workers).map_err(io_err)?
        }
        (Compression::Zstd, _) => {
            compress::zstd::encode(&mut src, &mut out, level, workers).map_err(io_err)?
        }
    }
    out.flush().map_err(io_err)?;
    let (_, diff_id, _) = src.finish();
    let (_, digest, size) = out.finish();
    Ok(Sealed {
        digest,
        diff_id: DiffId(diff_id),
        size,
        media_type,
    })
}

/// A streaming decoder: gzip (all members, as multi-member gzip is valid and used by
/// eStargz and hoist's fast mode), zstd, or pass-through.
pub fn decoder(compression: Compression, r: BoxRead) -> Result<BoxRead> {
    Ok(match compression {
        Compression::None => r,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(r))),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(r).map_err(|e| Error::io("zstd decoder", e))?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn seal_and_decode_every_compression() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for enc in [Encoding::none(), Encoding::gzip(), Encoding::zstd()] {
            let mt = MediaType::oci_layer(enc.compression);
            let mut blob = Vec::new();
            let s = seal(&data[..], &enc, mt.clone(), &mut blob).unwrap();
            assert_eq!(s.diff_id.0, Digest::sha256(&data));
            assert_eq!(s.digest, Digest::sha256(&blob));
            assert_eq!(s.size, blob.len() as u64);
            let mut back = Vec::new();
            decoder(enc.compression, Box::new(io::Cursor::new(blob)))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
        assert!(
            seal(
                &data[..],
                &Encoding::gzip(),
                MediaType::OciLayerZstd,
                io::sink()
            )
            .is_err()
        );
    }
}
