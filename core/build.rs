// refinery embeds the migration files at compile time, but cargo does not know
// about them: without this, a new V*.sql would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
