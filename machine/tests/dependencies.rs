//! The machine depends on the core and, through it, only on what the core may depend on: no
//! tokio, no rustix, nothing that reaches a clock, a file or a thread.

use std::process::Command;

/// The core, and what the core is allowed (core/tests/dependencies.rs).
const ALLOWED: [&str; 11] = [
    "sanlock-core",
    "bytes",
    "crc32c",
    "zerocopy",
    "thiserror",
    "zerocopy-derive",
    "thiserror-impl",
    "proc-macro2",
    "quote",
    "syn",
    "unicode-ident",
];

#[test]
fn the_machines_whole_normal_dependency_tree_is_the_cores() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "sanlock-machine",
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
    let text = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|k| *k != "sanlock-machine")
        .collect();
    assert!(crates.contains(&"sanlock-core"), "{text}");
    for krate in crates {
        assert!(
            ALLOWED.contains(&krate),
            "the machine's dependency tree contains {krate}:\n{text}"
        );
    }
}
