//! `embed_migrations!` reads `migrations/` when this crate compiles, but Cargo
//! only knows the files it already embedded: a new migration folder would not
//! rebuild the crate, and the binary (and the tests' template database) would
//! silently lack it. Watching the folder makes any change there rebuild.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
