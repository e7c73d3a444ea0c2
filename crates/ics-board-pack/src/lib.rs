//! Board packs and workshop outcomes as people read them, rendered from the reporting
//! service's contract types (`ics.reporting.v1`) with no I/O, so that what a board reads can be
//! tested without a server and rendered wherever the data is: by the reporting service, which
//! serves board packs, and by clients.
//!
//! * [`html`] ([`html_file`]) and [`csv_files`]: a scope's board pack — its workshop
//!   [`Outcomes`] and, for an ICS, its measures ([`MeasurePack`]: a trust × measure table, XmR
//!   charts and funnel plots, each drawn from the analysis the reporting service made) — as one
//!   HTML page a board member can open offline (inline CSS and SVG, nothing fetched), or as CSV
//!   files of one table each with fixed decimals and empty cells where there is no data.
//! * [`outcomes`]: the outcomes' headline, per-trust table and watch lines in words, the same
//!   in a terminal, in the pack and in the demo.
//! * [`text`]: how values read — enum values as command-line words, dates, scaled figures —
//!   and plain-text tables.
//!
//! All markup is escaped with [`ics_charts::escape`], the one escaping of text for HTML and SVG.
//!
//! [`Outcomes`]: ics_proto::reporting::v1::Outcomes

pub mod measures;
pub mod outcomes;
mod pack;
pub mod text;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

pub use measures::{
    MeasurePack, PeerFunnel, STALE_AFTER_DAYS, SeriesChart, funnel_html, is_proportion,
    newest_period, staleness,
};
pub use pack::{
    MEASURES_TABLE, OUTCOMES_TABLE, csv_files, csv_tables, html, html_file, measures_ics,
    outcomes_csv,
};
