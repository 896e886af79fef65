#!/usr/bin/env bash
# All tests: formatting, clippy with warnings as errors, then every crate's tests, the loom
# models, the client crate's docs, the Debian package, then the simulator's mutant suite (core
# built with its deliberate bugs). Tests that need the C sanlock, root or loop devices print one "skipped: …"
# line where those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p sanlock-sim --features mutants --all-targets --quiet -- -D warnings
cargo test --workspace
# The loom models of the backends' threads (backends/src/loom_models.rs), built with loom's
# primitives in a target dir of their own so that the ordinary build is not invalidated.
LOOM_TARGET="${CARGO_TARGET_DIR:-target}/loom"
RUSTFLAGS="--cfg sanlock_loom" CARGO_TARGET_DIR="$LOOM_TARGET" \
    cargo clippy -p sanlock-backends --lib --tests --quiet -- -D warnings
RUSTFLAGS="--cfg sanlock_loom" CARGO_TARGET_DIR="$LOOM_TARGET" \
    cargo test --release -p sanlock-backends --lib loom_models
# The fuzz targets (their own workspace, run with cargo-fuzz) still build against the crates.
cargo check --manifest-path fuzz/Cargo.toml --bins --quiet
# The client crate's documentation builds without a warning (it denies missing docs).
RUSTDOCFLAGS="-D warnings" cargo doc -p sanlock-client --no-deps --quiet
# The Debian package around the binary just tested: fields, files, unit, man page, and the
# python3-sanlock tests against the binary taken out of it.
./scripts/package-check.sh
cargo test -p sanlock-sim --features mutants --test mutants --test msg_mutants -- --nocapture
