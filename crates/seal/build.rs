//! Build script: declares the backend `--cfg` flags of chacha20 and poly1305, which
//! src/lib.rs reads too (the depth of the stack wipe depends on the backends).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!(
        "cargo::rustc-check-cfg=cfg(chacha20_backend, values(\"soft\", \"sse2\", \"avx2\", \"avx512\"))"
    );
    println!("cargo::rustc-check-cfg=cfg(poly1305_backend, values(\"soft\"))");
}
