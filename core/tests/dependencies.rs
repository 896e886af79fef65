//! core depends only on the crates the design card names (bytes, crc32c, zerocopy, thiserror),
//! and, through them, only on their own proc-macro helpers.

use std::process::Command;

const ALLOWED_DIRECT: [&str; 4] = ["bytes", "crc32c", "zerocopy", "thiserror"];
/// What the allowed crates bring at build time of normal dependencies (derive macros).
const ALLOWED_TRANSITIVE: [&str; 6] = [
    "zerocopy-derive",
    "thiserror-impl",
    "proc-macro2",
    "quote",
    "syn",
    "unicode-ident",
];

#[test]
fn core_depends_only_on_the_crates_the_design_names() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("core/Cargo.toml");
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] section")
        .split("\n[")
        .next()
        .unwrap();
    let direct: Vec<&str> = section
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(|k| k.trim().trim_end_matches(".workspace"))
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .collect();
    assert!(!direct.is_empty());
    for dep in &direct {
        assert!(ALLOWED_DIRECT.contains(dep), "core depends on {dep}");
    }
}

#[test]
fn cores_whole_normal_dependency_tree_is_allowed() {
    let cargo = env!("CARGO");
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "sanlock-core",
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
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let krate = line.split_whitespace().next().unwrap();
        if krate == "sanlock-core" {
            continue;
        }
        assert!(
            ALLOWED_DIRECT.contains(&krate) || ALLOWED_TRANSITIVE.contains(&krate),
            "core's dependency tree contains {krate}:\n{text}"
        );
    }
}
