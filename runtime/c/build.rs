//! Link options that make the shared library smaller, where the linker is known to take them.
//!
//! On x86_64 Linux, Rust links with its own lld unless told otherwise (`RUSTC_LINKER` is then
//! set): there, identical code folding (`--icf=all`) merges the many copies of generic code that
//! differ only in their types, and packed relative relocations (`-z pack-relative-relocs`, which
//! glibc loads from 2.36) shrink the relocation table. Together they take the tract-only library
//! from 21.5 to 15.1 MB (docs/edge.md). Elsewhere, and with a linker of the user's, nothing is added.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || std::env::var_os("RUSTC_LINKER").is_some() {
        return;
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,--icf=all");
    // Built here for here: the C library of this machine says whether its loader reads them.
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is at least `major.minor`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
