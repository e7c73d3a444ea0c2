//! Measures, series and observations, shared by the metrics service (which decides and records
//! them) and the reporting service (which projects them): how a measure definition and an
//! observation are validated, how a series is folded from its events, and how its Making Data
//! Count SPC is read — so both services compute the same icons from the same data.
//!
//! * A **series** is one measure for one organisation, optionally for one of its value streams:
//!   [`SeriesKey`](ics_proto::events::v1::SeriesKey), stream id [`series_stream`].
//! * Within a series an observation is keyed by its **period start**. The same observation again
//!   is a no-op; another value for a recorded period is a conflict, settled only by a correction,
//!   which supersedes the value (revision + 1) and leaves the earlier one in the event log.
//! * Ghosted points are kept and shown but excluded from every calculation; partition marks
//!   (recalculate-from, baseline) start new partitions; a series may carry its own target,
//!   otherwise its measure's applies.
//! * [`signals`] compares a series' SPC before and after new data and names what changed:
//!   newly flagged special-cause points, and the variation and assurance icons.
//! * [`reference`] is the catalogue of reference measures (Friends and Family Test, staff
//!   leavers, NHS Staff Survey themes, reference cost index) that clients install.

mod definition;
mod keys;
mod observation;
pub mod reference;
mod series;
mod signals;

pub use definition::{
    direction, direction_of, improvement_direction, normalised, rule_set, validate_definition,
};
pub use keys::{
    MEASURE_STREAM_PREFIX, PEER_GROUP_STREAM_PREFIX, SERIES_STREAM_PREFIX, is_measure_code,
    measure_stream, peer_group_stream, series_stream, validate_series_key,
};
pub use observation::{Checked, MAX_SOURCE_CHARS, check_figures, check_observation};
pub use series::{
    Comparison, Series, SeriesChange, SeriesPoint, SpcSummary, classification_proto,
    same_observation,
};
pub use signals::{SpcSignal, assurance_icon, rule_set_version, signals, variation_icon};
