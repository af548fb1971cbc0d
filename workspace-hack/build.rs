// Empty: Cargo builds `[build-dependencies]` only for a crate with a build script.
fn main() {}
