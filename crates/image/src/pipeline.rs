//! The one-pass layer pipeline: uncompressed `Read` → sha256 (diff_id) → encoder →
//! sha256 + count (digest, size) → sink `Write`, returning [`Sealed`]. And the matching
//! streaming decoders (gzip with every member, zstd).

use std::io::{self, Read, Write};

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
}

/// gzip level used when none is given.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// zstd level used when none is given (the zstd CLI's default).
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

impl Encoding {
    /// gzip at the default level on all cores.
    pub fn gzip() -> Self {
        Encoding {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
        }
    }

    /// zstd at the default level on all cores.
    pub fn zstd() -> Self {
        Encoding {
            compression: Compression::Zstd,
            level: None,
            threads: 0,
        }
    }

    /// No compression.
    pub fn none() -> Self {
        Encoding {
            compression: Compression::None,
            level: None,
            threads: 0,
        }
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
}

/// Read `src` once: hash it (diff_id), compress it per `encoding`, hash and count the
/// compressed bytes (digest, size) while writing them to `sink`.
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
    let mut src = HashingReader::new(src);
    let mut out = HashingWriter::new(sink);
    let level = encoding.effective_level();
    let io_err = |e: io::Error| Error::from_io("layer", e);
    match encoding.compression {
        Compression::None => {
            io::copy(&mut src, &mut out).map_err(io_err)?;
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(level));
            io::copy(&mut src, &mut enc).map_err(io_err)?;
            enc.finish().map_err(io_err)?;
        }
        Compression::Zstd => {
            let mut enc =
                zstd::stream::write::Encoder::new(&mut out, level as i32).map_err(io_err)?;
            let workers = match encoding.threads {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            }
            // zstd's single-thread mode gives other bytes than its multithreaded mode:
            // always at least 2 workers, so output does not depend on the core count.
            .max(2);
            enc.multithread(workers as u32).map_err(io_err)?;
            io::copy(&mut src, &mut enc).map_err(io_err)?;
            enc.finish().map_err(io_err)?;
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
