//! The `sanlock` command line: its grammar, its location strings and its usage text.

pub mod client_actions;
pub mod cnum;
pub mod locators;
#[cfg(test)]
mod man_page;
pub mod msg;
pub mod options;
pub mod progress;
pub mod show;
pub mod usage;
