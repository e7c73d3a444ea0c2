//! Field rules shared by every service's commands (the `ics-validate` crate, which clients use
//! too).

pub use ics_validate::*;
