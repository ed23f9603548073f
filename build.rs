// `sqlx::migrate!` reads migrations/ when the crate compiles; without this, a change to the
// migrations alone would not rebuild the binary, which would then lack it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
