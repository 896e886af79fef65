//! What the sanlock daemon decides, as pure code beside the core: the socket protocol as bytes
//! (`wire`), and (issue 16, under way) the daemon machine itself. The same fence as core's: no
//! I/O, no clock, no threads, no tokio (`clippy.toml`, `tests/dependencies.rs`).

pub mod wire;
