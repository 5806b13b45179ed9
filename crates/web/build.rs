//! The front end is embedded from web/dist (scripts/build-web.sh makes it):
//! a new build of it, or its first, must rebuild this crate. Cargo scans a
//! directory named here for changes, and reruns while it does not exist.
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
