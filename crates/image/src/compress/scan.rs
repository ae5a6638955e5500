//! A raw-deflate block scanner: it walks a deflate stream block by block, decoding
//! Huffman symbols without producing output, to find where the last block starts and
//! where it ends, to the bit. [`super::gzip`] uses it to turn a complete libdeflate stream
//! (whose last block is marked final) into a non-final piece that the next block's stream
//! can follow: clear the final bit, cut after the end-of-block code, and byte-align with an
//! empty stored block (what zlib's sync flush writes).
//!
//! The scanner touches each compressed bit once with table lookups, about a tenth of the
//! cost of compressing the block.

use std::io;

/// The position of the last block of a deflate stream, in bits from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastBlock {
    /// The bit holding the last block's BFINAL flag (its first header bit).
    pub header_bit: usize,
    /// The bit right after the last block's end (its end-of-block code, or its stored
    /// bytes).
    pub end_bit: usize,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("deflate scan: {what}"))
}

/// Find the last block (the one with BFINAL set) of the raw deflate stream `data`.
pub(crate) fn last_block(data: &[u8]) -> io::Result<LastBlock> {
    let mut r = Bits::new(data);
    let mut lit = Table::new(Alphabet::LitLen);
    let mut dist = Table::new(Alphabet::Dist);
    loop {
        let header_bit = r.pos();
        let final_block = r.take(1)? == 1;
        match r.take(2)? {
            0 => {
                r.skip_to_byte_and(0)?;
                let len = r.take(16)?;
                let nlen = r.take(16)?;
                if len != !nlen & 0xffff {
                    return Err(corrupt("stored block length check failed"));
                }
                r.skip_to_byte_and(len as usize)?;
            }
            1 => {
                lit.build(&FIXED_LIT_LENGTHS)?;
                dist.build(&[5; 30])?;
                r.symbols(&lit, &dist)?;
            }
            2 => {
                read_dynamic_tables(&mut r, &mut lit, &mut dist)?;
                r.symbols(&lit, &dist)?;
            }
            _ => return Err(corrupt("reserved block type")),
        }
        if final_block {
            let end_bit = r.pos();
            if end_bit > 8 * data.len() {
                return Err(corrupt("stream ends inside its last block"));
            }
            return Ok(LastBlock {
                header_bit,
                end_bit,
            });
        }
    }
}

/// The code lengths of the fixed literal/length code (RFC 1951 3.2.6).
const FIXED_LIT_LENGTHS: [u8; 288] = {
    let mut l = [8u8; 288];
    let mut i = 144;
    while i < 256 {
        l[i] = 9;
        i += 1;
    }
    while i < 280 {
        l[i] = 7;
        i += 1;
    }
    l
};

/// Extra bits of length symbols 257..=285.
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Extra bits of distance symbols 0..=29.
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order code-length code lengths are stored in.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

fn read_dynamic_tables(r: &mut Bits, lit: &mut Table, dist: &mut Table) -> io::Result<()> {
    let hlit = r.take(5)? as usize + 257;
    let hdist = r.take(5)? as usize + 1;
    let hclen = r.take(4)? as usize + 4;
    if hlit > 286 || hdist > 30 {
        return Err(corrupt("too many length or distance codes"));
    }
    let mut clen = [0u8; 19];
    for &i in &CLEN_ORDER[..hclen] {
        clen[i] = r.take(3)? as u8;
    }
    let mut clen_table = Table::new(Alphabet::CodeLen);
    clen_table.build(&clen)?;
    let mut lengths = [0u8; 286 + 30];
    let total = hlit + hdist;
    let mut i = 0;
    while i < total {
        r.refill()?;
        let sym = r.decode(&clen_table)? >> 16;
        let (value, repeat) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                if i == 0 {
                    return Err(corrupt("repeat with no previous length"));
                }
                (lengths[i - 1], 3 + r.take(2)? as usize)
            }
            17 => (0, 3 + r.take(3)? as usize),
            _ => (0, 11 + r.take(7)? as usize),
        };
        if i + repeat > total {
            return Err(corrupt("code lengths overflow"));
        }
        lengths[i..i + repeat].fill(value);
        i += repeat;
    }
    if lengths[256] == 0 {
        return Err(corrupt("no end-of-block code"));
    }
    lit.build(&lengths[..hlit])?;
    dist.build(&lengths[hlit..total])
}

/// Bits of the direct lookup; longer codes (rare by construction) take the slow path.
const FAST_BITS: u32 = 10;
const FAST_MASK: u64 = (1 << FAST_BITS) - 1;

/// Entry kinds. An entry is `symbol << 16 | kind << 8 | bits`, where `bits` counts the code
/// and, for lengths and distances, the extra bits after it: one lookup skips both.
const INVALID: u32 = 0;
const LITERAL: u32 = 1;
const MATCH: u32 = 2;
const END: u32 = 3;
const LONG: u32 = 4;

/// Which deflate alphabet a table decodes (it decides what a symbol's entry says).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Alphabet {
    LitLen,
    Dist,
    CodeLen,
}

fn entry(alphabet: Alphabet, sym: usize, len: u32) -> u32 {
    let (kind, extra) = match (alphabet, sym) {
        (Alphabet::LitLen, 0..=255) | (Alphabet::CodeLen, _) => (LITERAL, 0),
        (Alphabet::LitLen, 256) => (END, 0),
        (Alphabet::LitLen, 257..=285) => (MATCH, LEN_EXTRA[sym - 257]),
        (Alphabet::Dist, 0..=29) => (MATCH, DIST_EXTRA[sym]),
        _ => return INVALID,
    };
    (sym as u32) << 16 | kind << 8 | (len + extra as u32)
}

/// A canonical Huffman decoding table: a direct lookup of the next [`FAST_BITS`] input
/// bits (LSB first), and the code counts and symbols in canonical order for the codes
/// longer than that.
struct Table {
    alphabet: Alphabet,
    fast: Box<[u32; 1 << FAST_BITS]>,
    count: [u16; 16],
    sorted: Vec<u16>,
}

impl Table {
    fn new(alphabet: Alphabet) -> Self {
        Table {
            alphabet,
            fast: Box::new([INVALID; 1 << FAST_BITS]),
            count: [0; 16],
            sorted: Vec::new(),
        }
    }

    fn build(&mut self, lengths: &[u8]) -> io::Result<()> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        count[0] = 0;
        // Over-subscribed codes are corrupt; incomplete ones are legal (one distance
        // code, or none), their unused patterns stay INVALID.
        let mut left = 1i32;
        for &c in &count[1..] {
            left = (left << 1) - c as i32;
            if left < 0 {
                return Err(corrupt("over-subscribed Huffman code"));
            }
        }
        let mut offsets = [0u16; 16];
        for l in 1..15 {
            offsets[l + 1] = offsets[l] + count[l];
        }
        self.sorted.clear();
        self.sorted.resize(lengths.len(), 0);
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for l in 1..16 {
            code = (code + count[l - 1] as u32) << 1;
            next[l] = code;
        }
        self.fast.fill(INVALID);
        for (sym, &l) in lengths.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let l = l as usize;
            self.sorted[offsets[l] as usize] = sym as u16;
            offsets[l] += 1;
            let rev = next[l].reverse_bits() >> (32 - l);
            next[l] += 1;
            if l as u32 > FAST_BITS {
                self.fast[rev as usize & FAST_MASK as usize] = LONG << 8;
                continue;
            }
            let e = entry(self.alphabet, sym, l as u32);
            let mut i = rev as usize;
            while i < self.fast.len() {
                self.fast[i] = e;
                i += 1 << l;
            }
        }
        self.count = count;
        Ok(())
    }

    /// Decode a code longer than [`FAST_BITS`] from `bits` (canonical decoding, one bit at
    /// a time, as in zlib's puff.c).
    #[cold]
    fn slow(&self, mut bits: u64) -> u32 {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= (bits & 1) as i32;
            bits >>= 1;
            let count = self.count[len] as i32;
            if code - first < count {
                let sym = self.sorted[(index + code - first) as usize];
                return entry(self.alphabet, sym as usize, len as u32);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        INVALID
    }
}

/// An LSB-first bit reader with a 64-bit buffer refilled 8 bytes at a time.
struct Bits<'a> {
    data: &'a [u8],
    /// The next byte of `data` to load.
    next: usize,
    buf: u64,
    /// Valid bits in `buf`.
    n: u32,
    /// Zero bytes loaded past the end of `data`.
    over: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            next: 0,
            buf: 0,
            n: 0,
            over: 0,
        }
    }

    /// The position of the next unread bit.
    fn pos(&self) -> usize {
        (self.next + self.over) * 8 - self.n as usize
    }

    /// Make at least 56 bits available.
    #[inline(always)]
    fn refill(&mut self) -> io::Result<()> {
        if let Some(b) = self.data.get(self.next..self.next + 8) {
            let w = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            self.buf |= w << self.n;
            let k = (63 - self.n) >> 3;
            self.next += k as usize;
            self.n += k << 3;
            Ok(())
        } else {
            self.refill_tail()
        }
    }

    #[cold]
    fn refill_tail(&mut self) -> io::Result<()> {
        while self.n <= 56 {
            let b = match self.data.get(self.next) {
                Some(&b) => {
                    self.next += 1;
                    b
                }
                None => {
                    // A code may legitimately peek past the end; a stream that keeps
                    // reading is cut short.
                    self.over += 1;
                    if self.over > 16 {
                        return Err(corrupt("stream ends inside a block"));
                    }
                    0
                }
            };
            self.buf |= (b as u64) << self.n;
            self.n += 8;
        }
        Ok(())
    }

    /// Take `n` (≤ 32) bits.
    #[inline(always)]
    fn take(&mut self, n: u32) -> io::Result<u32> {
        if self.n < n {
            self.refill()?;
        }
        Ok(self.take_unchecked(n))
    }

    /// Take `n` bits known to be in the buffer.
    #[inline(always)]
    fn take_unchecked(&mut self, n: u32) -> u32 {
        let v = (self.buf & ((1u64 << n) - 1)) as u32;
        self.buf >>= n;
        self.n -= n;
        v
    }

    /// Skip to the next byte boundary, then `bytes` more bytes.
    fn skip_to_byte_and(&mut self, bytes: usize) -> io::Result<()> {
        let pos = self.pos().next_multiple_of(8) + 8 * bytes;
        if pos > 8 * self.data.len() {
            return Err(corrupt("stored block runs past the end"));
        }
        self.next = pos / 8;
        self.over = 0;
        self.buf = 0;
        self.n = 0;
        Ok(())
    }

    /// Decode one symbol and skip its extra bits; needs 15 bits plus the extra bits in
    /// the buffer. Returns the entry.
    #[inline(always)]
    fn decode(&mut self, t: &Table) -> io::Result<u32> {
        let mut e = t.fast[(self.buf & FAST_MASK) as usize];
        if e >> 8 & 0xff == LONG {
            e = t.slow(self.buf);
        }
        let bits = e & 0xff;
        if e == INVALID || bits > self.n {
            return Err(corrupt("invalid Huffman code"));
        }
        self.buf >>= bits;
        self.n -= bits;
        Ok(e)
    }

    /// Walk the symbols of one Huffman-coded block up to and including its end-of-block.
    /// The hot loop of the scanner: the reader's state lives in locals here.
    fn symbols(&mut self, lit: &Table, dist: &Table) -> io::Result<()> {
        let data = self.data;
        let (mut buf, mut n, mut next) = (self.buf, self.n, self.next);
        // One lookup: the entry for the buffered bits, resolving long codes.
        let look = |t: &Table, buf: u64| {
            let e = t.fast[(buf & FAST_MASK) as usize];
            if e >> 8 & 0xff == LONG {
                t.slow(buf)
            } else {
                e
            }
        };
        loop {
            // Refill to 56+ bits, 8 bytes at a time while they last.
            match data.get(next..next + 8) {
                Some(b) => {
                    buf |= u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) << n;
                    let k = (63 - n) >> 3;
                    next += k as usize;
                    n += k << 3;
                }
                None => {
                    (self.buf, self.n, self.next) = (buf, n, next);
                    self.refill_tail()?;
                    (buf, n, next) = (self.buf, self.n, self.next);
                }
            }
            // 15 + 5 + 15 + 13 = 48 bits: a literal/length code, its extra bits, a
            // distance code and its extra bits; decode while that much is buffered.
            while n >= 48 {
                let e = look(lit, buf);
                let bits = e & 0xff;
                buf >>= bits;
                n -= bits;
                match e >> 8 & 0xff {
                    LITERAL => {}
                    MATCH => {
                        let d = look(dist, buf);
                        let bits = d & 0xff;
                        if d == INVALID {
                            return Err(corrupt("invalid distance code"));
                        }
                        buf >>= bits;
                        n -= bits;
                    }
                    END => {
                        (self.buf, self.n, self.next) = (buf, n, next);
                        return Ok(());
                    }
                    _ => return Err(corrupt("invalid literal/length code")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::text;

    fn libdeflate(data: &[u8], level: i32) -> Vec<u8> {
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut out = vec![0; c.deflate_compress_bound(data.len())];
        let n = c.deflate_compress(data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn finds_the_end_of_every_kind_of_block() {
        let mut noise = vec![0u8; 300_000];
        let mut x = 1u64;
        for b in &mut noise {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (x >> 56) as u8;
        }
        let cases: Vec<(Vec<u8>, i32)> = vec![
            (Vec::new(), 6),        // one empty fixed block
            (b"a".to_vec(), 6),     // fixed
            (text(1 << 20, 1), 6),  // several dynamic blocks
            (text(1 << 20, 2), 1),  // level 1
            (text(200_000, 3), 12), // near-optimal parsing
            (noise.clone(), 6),     // stored blocks
            (text(100_000, 4), 0),  // level 0: stored only
        ];
        for (data, level) in cases {
            // libdeflate's streams, and zlib's (other block choices: fixed blocks, sync
            // flushes with empty stored blocks in the middle).
            let mut zl = flate2::write::DeflateEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            );
            for part in data.chunks(70_000) {
                std::io::Write::write_all(&mut zl, part).unwrap();
                std::io::Write::flush(&mut zl).unwrap();
            }
            for z in [libdeflate(&data, level), zl.finish().unwrap()] {
                let lb = last_block(&z).unwrap();
                // The final block is padded with fewer than 8 zero bits.
                assert!(lb.end_bit <= 8 * z.len() && lb.end_bit + 8 > 8 * z.len());
                assert_eq!(z[lb.header_bit / 8] >> (lb.header_bit % 8) & 1, 1);
            }
        }
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        let z = libdeflate(&text(100_000, 5), 6);
        for cut in [0, 1, 10, z.len() / 2, z.len() - 1] {
            assert!(last_block(&z[..cut]).is_err(), "cut at {cut}");
        }
        let mut x = 7u64;
        for _ in 0..2000 {
            let mut bad = z.clone();
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let i = (x >> 33) as usize % bad.len();
            bad[i] ^= 1 << ((x >> 20) % 8);
            let _ = last_block(&bad);
        }
        let mut garbage = vec![0u8; 4096];
        for b in garbage.iter_mut() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (x >> 56) as u8;
        }
        for start in 0..64 {
            let _ = last_block(&garbage[start..]);
        }
    }
}
