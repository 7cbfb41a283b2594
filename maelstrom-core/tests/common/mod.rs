//! What the process tests share: finding the example nodes they spawn.

use std::path::PathBuf;

/// An example node: `cargo test` leaves the examples beside the test binaries' parent
/// directory.
pub fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --examples`",
        path.display()
    );
    path
}
