//! Stream ids and the codes they are built from.

use ics_proto::events::v1::SeriesKey;
use ics_validate as validate;
use ics_validate::Violations;

pub const MEASURE_STREAM_PREFIX: &str = "measure-";
pub const SERIES_STREAM_PREFIX: &str = "series-";
pub const PEER_GROUP_STREAM_PREFIX: &str = "peer-group-";

/// Upper-case letters, digits and underscores, 2–40 characters, starting with a letter. No
/// hyphen, so a series stream id (`series-<measure>-<ODS>`) splits back unambiguously.
pub fn is_measure_code(code: &str) -> bool {
    (2..=40).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

pub fn measure_stream(code: &str) -> String {
    format!("{MEASURE_STREAM_PREFIX}{code}")
}

pub fn series_stream(key: &SeriesKey) -> String {
    if key.value_stream_id.is_empty() {
        format!(
            "{SERIES_STREAM_PREFIX}{}-{}",
            key.measure_code, key.ods_code
        )
    } else {
        format!(
            "{SERIES_STREAM_PREFIX}{}-{}-{}",
            key.measure_code, key.ods_code, key.value_stream_id
        )
    }
}

pub fn peer_group_stream(peer_group_id: &str) -> String {
    format!("{PEER_GROUP_STREAM_PREFIX}{peer_group_id}")
}

/// A series key's shape: a measure code, an ODS code, and an empty or UUID value stream.
pub fn validate_series_key(violations: &mut Violations, field: &str, key: Option<&SeriesKey>) {
    let Some(key) = key else {
        violations.add(field, "is required");
        return;
    };
    if !is_measure_code(&key.measure_code) {
        violations.add(
            format!("{field}.measure_code"),
            "must be 2–40 upper-case letters, digits or underscores, starting with a letter",
        );
    }
    validate::ods_code(violations, &format!("{field}.ods_code"), &key.ods_code);
    if !key.value_stream_id.is_empty() {
        validate::uuid(
            violations,
            &format!("{field}.value_stream_id"),
            &key.value_stream_id,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_codes_are_upper_case_words_without_hyphens() {
        assert!(is_measure_code("FFT_POSITIVE"));
        assert!(is_measure_code("RCI"));
        assert!(!is_measure_code("F"));
        assert!(!is_measure_code("fft"));
        assert!(!is_measure_code("FFT-POSITIVE"));
        assert!(!is_measure_code("1FFT"));
        assert!(!is_measure_code(&"A".repeat(41)));
    }

    #[test]
    fn series_streams_name_measure_organisation_and_value_stream() {
        let mut key = SeriesKey {
            measure_code: "FFT_POSITIVE".into(),
            ods_code: "RTP".into(),
            value_stream_id: String::new(),
        };
        assert_eq!(series_stream(&key), "series-FFT_POSITIVE-RTP");
        key.value_stream_id = "0190f0a0-0000-7000-8000-000000000001".into();
        assert_eq!(
            series_stream(&key),
            "series-FFT_POSITIVE-RTP-0190f0a0-0000-7000-8000-000000000001"
        );
    }
}
