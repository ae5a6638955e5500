//! SHA-256 / SHA-512 throughput (the target: SHA-256 at >= 1 GB/s on the 2-core
//! reference machine; sha2 picks SHA-NI at run time).
//!
//! `cargo bench -p hoist-image --bench digest`

use divan::counter::BytesCount;
use hoist_image::Algorithm;

fn main() {
    divan::main();
}

const SIZE: usize = 64 << 20;

#[divan::bench(args = [Algorithm::Sha256, Algorithm::Sha512], sample_count = 10)]
fn hash_64mib(bencher: divan::Bencher, alg: Algorithm) {
    let data: Vec<u8> = (0..SIZE)
        .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
        .collect();
    bencher.counter(BytesCount::new(SIZE)).bench(|| {
        let mut h = alg.hasher();
        for chunk in data.chunks(1 << 20) {
            h.update(divan::black_box(chunk));
        }
        h.finish()
    });
}
