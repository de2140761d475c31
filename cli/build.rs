//! Links the `berth` binary as a fixed-address executable.
//!
//! Every container start runs this binary at least once, and a
//! position-independent one makes the dynamic loader apply ~28,000 relative
//! relocations first, copying every page it writes: a third of a start's
//! page faults. The code stays position-independent (it is compiled so); only
//! the executable's own addresses are fixed at link time, as Go links runc.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
