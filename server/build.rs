//! `sqlx::migrate!` embeds `migrations/` when this crate compiles; a migration added alone must
//! compile it again (as sqlx advises).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
