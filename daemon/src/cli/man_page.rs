//! docs/sanlock.8 against the program: every synopsis line of `sanlock help` is in the page's
//! SYNOPSIS and every line there is one of help's; every daemon option help lists has an entry,
//! and no other; every action the parser knows has an entry, and every entry is an action; every
//! option letter the parser accepts is described, and every one described is accepted.

use std::collections::BTreeSet;

use super::options::{self, CLIENT_ACTIONS, DIRECT_ACTIONS};
use super::usage::USAGE;

const PAGE: &str = include_str!("../../../docs/sanlock.8");

/// The page's text with roff's font changes and escapes resolved.
fn plain(line: &str) -> String {
    let mut out = line.to_string();
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        out = out.replace(font, "");
    }
    out.replace("\\-", "-").replace("\\e", "\\")
}

/// The lines of section `name` (from `.SH name` to the next `.SH`).
fn section(name: &str) -> Vec<String> {
    PAGE.lines()
        .skip_while(|l| *l != format!(".SH {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .map(plain)
        .collect()
}

/// The term of each `.TP` entry of a section (`.B term` on the line after `.TP`).
fn entries(name: &str) -> Vec<String> {
    let lines = section(name);
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .filter_map(|w| w[1].strip_prefix(".B ").map(str::to_string))
        .collect()
}

#[test]
fn the_synopsis_is_helps_usage_lines_and_nothing_else() {
    let synopsis: BTreeSet<String> = section("SYNOPSIS")
        .into_iter()
        .filter(|l| !l.starts_with('.'))
        .collect();
    let help: BTreeSet<String> = USAGE
        .lines()
        .filter(|l| l.starts_with("sanlock "))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = help.difference(&synopsis).collect();
    assert!(
        missing.is_empty(),
        "in help, not in the man page: {missing:#?}"
    );
    // help and version appear in help's command list rather than as usage lines.
    let extra: Vec<_> = synopsis
        .difference(&help)
        .filter(|l| !["sanlock help", "sanlock version"].contains(&l.as_str()))
        .collect();
    assert!(extra.is_empty(), "in the man page, not in help: {extra:#?}");
}

#[test]
fn every_daemon_option_in_help_has_an_entry_and_no_other_does() {
    let help: BTreeSet<String> = USAGE
        .lines()
        .skip_while(|l| *l != "sanlock daemon [options]")
        .skip(1)
        .take_while(|l| l.starts_with("  -"))
        .map(|l| l.trim_start().split("  ").next().unwrap().to_string())
        .collect();
    let page: BTreeSet<String> = entries("DAEMON OPTIONS").into_iter().collect();
    assert_eq!(help.len(), 15, "{help:?}");
    assert_eq!(page, help);
}

#[test]
fn every_action_has_an_entry_and_every_entry_is_an_action() {
    let mut known: BTreeSet<String> = BTreeSet::new();
    // `write` is another name for `init`, described there.
    known.extend(
        CLIENT_ACTIONS
            .iter()
            .filter(|(n, _)| *n != "write")
            .map(|(n, _)| format!("client {n}")),
    );
    known.extend(DIRECT_ACTIONS.iter().map(|(n, _)| format!("direct {n}")));
    known.extend(super::msg::ACTIONS.iter().map(|n| format!("msg {n}")));
    known.insert("client show".to_string());
    let mut page: BTreeSet<String> = BTreeSet::new();
    for name in ["CLIENT ACTIONS", "MSG ACTIONS", "DIRECT ACTIONS"] {
        page.extend(entries(name));
    }
    assert_eq!(page, known);
}

/// Whether the parser knows `-<letter>`: it refuses an unknown one as "unknown option: X".
fn accepted(letter: char) -> bool {
    let argv: Vec<Vec<u8>> = ["sanlock", "client", "status", &format!("-{letter}"), "1"]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    match options::parse(&argv) {
        Ok(_) => true,
        Err(exit) => exit.stdout != format!("unknown option: {letter}\n").into_bytes(),
    }
}

#[test]
fn every_option_letter_the_parser_takes_is_described_and_only_those() {
    let described: BTreeSet<char> = ["DAEMON OPTIONS", "CLIENT AND DIRECT OPTIONS"]
        .iter()
        .flat_map(|s| entries(s))
        .filter_map(|term| {
            let flag = term.split(' ').next()?;
            let mut chars = flag.strip_prefix('-')?.chars();
            let letter = chars.next()?;
            chars.next().is_none().then_some(letter)
        })
        .collect();
    let taken: BTreeSet<char> = ('A'..='Z')
        .chain('a'..='z')
        .filter(|&l| accepted(l))
        .collect();
    assert!(taken.len() > 25, "{taken:?}");
    assert_eq!(described, taken);
}
