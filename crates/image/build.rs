//! Builds the vendored libdeflate compressor (`libdeflate/`, with hoist's sync-flush
//! addition; see its README).

fn main() {
    let dir = std::path::Path::new("libdeflate");
    println!("cargo:rerun-if-changed=libdeflate");
    cc::Build::new()
        .files([dir.join("lib/deflate_compress.c"), dir.join("lib/utils.c")])
        .include(dir)
        .opt_level(2)
        .warnings(false)
        .compile("hoist_libdeflate");
}
