//! A test that keeps the daemon's shell in layers (issue 16): its files name each other only
//! downwards. Leaves (config, log, storage, disk_ops, lockfile) name no sibling; `messages`
//! only types; the shell's hands (`shell`, `conn`, `watchdog`) never the loop; the loop
//! (`runner`) sits on top and alone drives the engine, which lives in `sanlock_machine::daemon`
//! behind the machine crate's fence (no I/O, clock or threads) and cannot name the shell.

/// Every file of the tree, with its source.
const FILES: &[(&str, &str)] = &[
    ("config", include_str!("config.rs")),
    ("conn", include_str!("conn.rs")),
    ("disk_ops", include_str!("disk_ops.rs")),
    ("lockfile", include_str!("lockfile.rs")),
    ("log", include_str!("log.rs")),
    ("messages", include_str!("messages.rs")),
    ("runner", include_str!("runner.rs")),
    ("shell", include_str!("shell.rs")),
    ("storage", include_str!("storage.rs")),
    ("watchdog", include_str!("watchdog.rs")),
];

/// The siblings a file names: `super::name` and `super::{a, b}`, outside its tests.
fn names(source: &str) -> Vec<&'static str> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut out = Vec::new();
    for (i, _) in code.match_indices("super::") {
        let rest = &code[i + "super::".len()..];
        let words: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').map(str::trim).collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        for w in words {
            let w = w.split("::").next().unwrap_or(w);
            if let Some(&(name, _)) = FILES.iter().find(|(n, _)| *n == w) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// A cycle of files naming each other, if any.
fn cycle() -> Option<Vec<&'static str>> {
    fn visit(
        at: &'static str,
        path: &mut Vec<&'static str>,
        done: &mut Vec<&'static str>,
    ) -> Option<Vec<&'static str>> {
        if let Some(i) = path.iter().position(|&p| p == at) {
            let mut c = path[i..].to_vec();
            c.push(at);
            return Some(c);
        }
        if done.contains(&at) {
            return None;
        }
        path.push(at);
        let source = FILES.iter().find(|(n, _)| *n == at).expect("listed").1;
        for next in names(source) {
            if let Some(c) = visit(next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(at);
        None
    }
    let mut done = Vec::new();
    FILES
        .iter()
        .find_map(|&(name, _)| visit(name, &mut Vec::new(), &mut done))
}

fn source(name: &str) -> &'static str {
    FILES.iter().find(|(n, _)| *n == name).expect("listed").1
}

#[test]
fn the_server_files_name_each_other_in_layers_without_a_circle() {
    assert_eq!(cycle(), None, "an import circle in daemon/src/server");
    for leaf in ["config", "log", "storage", "disk_ops", "lockfile"] {
        assert_eq!(names(source(leaf)), Vec::<&str>::new(), "{leaf} is a leaf");
    }
    assert_eq!(names(source("messages")), ["storage"]);
    for hands in ["shell", "conn", "watchdog"] {
        assert!(
            !names(source(hands)).contains(&"runner"),
            "{hands} names the loop"
        );
    }
}

#[test]
fn the_layer_check_reads_both_forms_of_a_super_path_and_skips_tests() {
    assert_eq!(
        names("use super::{runner, log};\nsuper::shell::x()"),
        ["runner", "log", "shell"]
    );
    assert_eq!(
        names("use super::conn::*;\n#[cfg(test)]\nuse super::shell;"),
        ["conn"]
    );
}
