#!/usr/bin/env bash
# All tests: formatting, clippy with warnings as errors, then every crate's tests. Tests that
# need the C sanlock, root or loop devices print one "skipped: …" line where those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
