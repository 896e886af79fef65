//! The machine depends on the core and, through it, on nothing the core may not depend on
//! (core/tests/dependencies.rs pins that list): no tokio, no rustix, nothing that reaches a
//! clock, a file or a thread.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates in `package`'s normal dependency tree, itself left out.
fn tree(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|k| *k != package)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_machines_whole_normal_dependency_tree_is_the_cores() {
    let mut core = tree("sanlock-core");
    core.insert("sanlock-core".to_string());
    // The socket protocol's crate, which depends on the core alone.
    assert_eq!(tree("sanlock-wire"), core);
    core.insert("sanlock-wire".to_string());
    assert_eq!(tree("sanlock-machine"), core);
}
