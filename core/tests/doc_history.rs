//! docs/HISTORICAL-BUGS.md stays true: it has a row for each of sanlock's 36 past bugs, and
//! every test function it names exists in the workspace.

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" && name != "fuzz" {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_historical_bug_has_a_row_and_every_test_it_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = fs::read_to_string(root.join("docs/HISTORICAL-BUGS.md")).unwrap();
    let mut numbers: Vec<u32> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=36).collect::<Vec<_>>(),
        "one row per scenario"
    );

    let mut files = Vec::new();
    for dir in [
        "core", "wire", "machine", "backends", "daemon", "client", "sim", "tests",
    ] {
        sources(&root.join(dir), &mut files);
    }
    let code: String = files
        .iter()
        .map(|f| fs::read_to_string(f).unwrap_or_default())
        .collect();
    let named: Vec<&str> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| {
            t.matches('_').count() >= 3
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(named.len() > 60, "the tests are named: {}", named.len());
    let missing: Vec<&&str> = named
        .iter()
        .filter(|t| !code.contains(&format!("fn {t}(")) && !code.contains(&format!("fn {t} (")))
        .collect();
    assert!(
        missing.is_empty(),
        "named in the doc, not found: {missing:?}"
    );
}
