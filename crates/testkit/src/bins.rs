//! Binaries of other workspace packages, for tests that need them (e.g. the CLI's tests run
//! the metrics server with every argument a profile renders). Cargo only provides
//! `CARGO_BIN_EXE_*` for the package under test, and a test cannot run `cargo build` itself:
//! `cargo test` holds the target directory's lock until every test has finished. So the
//! README's test command, `cargo test --workspace`, builds every package's binaries before any
//! test runs, and this finds them next to the test executable.

use std::path::PathBuf;

/// Path of `bin` in the running test's target directory. Panics (this is a test helper) with
/// the command to run when it has not been built.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    // The running test executable is <target>/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in <target>/<profile>/deps");
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or first `cargo build -p {package} --bin {bin}`)",
        path.display()
    );
    path
}
