//! The `sanlock` command line: its grammar, its location strings and its usage text.

pub mod client_actions;
pub mod cnum;
pub mod locators;
pub mod msg;
pub mod options;
pub mod usage;
