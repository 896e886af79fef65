//! The threading primitives the backends' shared parts use: std's, or loom's when built with
//! `--cfg sanlock_loom`, so that the loom models (`loom_models`) run the very code the daemon
//! runs. (A cfg of our own: tokio reads `cfg(loom)` itself and would then want loom too.)

#[cfg(not(sanlock_loom))]
pub(crate) use std::sync::{atomic, mpsc, Arc, Mutex};
#[cfg(not(sanlock_loom))]
pub(crate) use std::thread;

#[cfg(sanlock_loom)]
pub(crate) use loom::sync::{atomic, mpsc, Arc, Mutex};
#[cfg(sanlock_loom)]
pub(crate) use loom::thread;
