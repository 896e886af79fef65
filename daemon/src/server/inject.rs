//! Panics injected by the end-to-end tests, in debug builds only (the package is a release
//! build, where this is empty): with `SANLOCK_TEST_PANIC=WHAT` the daemon's first blocking
//! operation called WHAT ("lockspace probe", "disk operation", "rindex format", ...) panics,
//! once, so that a test can see the daemon fail that one operation and go on serving.

/// Panics if this is the operation named in `SANLOCK_TEST_PANIC` and none has panicked yet.
#[cfg(debug_assertions)]
pub fn maybe_panic(what: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if std::env::var("SANLOCK_TEST_PANIC").is_ok_and(|v| v == what)
        && !DONE.swap(true, Ordering::AcqRel)
    {
        panic!("injected panic in {what} (SANLOCK_TEST_PANIC)");
    }
}

/// Release builds: nothing is ever injected.
#[cfg(not(debug_assertions))]
pub fn maybe_panic(_what: &str) {}
