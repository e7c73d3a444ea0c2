//! One module per area of the API.

pub mod admin;
pub mod demo;
pub mod lookups;
pub mod measure_report;
pub mod metrics;
pub mod report;
pub mod trusts;
pub mod workshops;
