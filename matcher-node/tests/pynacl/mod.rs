//! Finding a Python that can check sealed boxes against libsodium, for the tests of the
//! matcher and of the secret-santa workload.

use std::process::Command;

/// The first Python that imports PyNaCl: `python3` on the PATH, or the Debian system
/// Python that the python3-nacl package installs into (a PATH may put another first).
pub fn python() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import nacl.public"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .expect("a python3 with PyNaCl (make deps installs python3-nacl)")
}
