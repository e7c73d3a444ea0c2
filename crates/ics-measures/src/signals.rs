//! What new data changed in a series' SPC: the events the metrics service records.

use std::collections::BTreeSet;

use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    AssuranceIcon, AssuranceIconChanged, MeasureDefinition, SpcRuleSetVersion,
    SpecialCauseDetected, SpecialCausePoint, VariationIcon, VariationIconChanged,
};
use ics_spc::Analysis;

use crate::series::{Series, classification_proto, rules_of};

/// One change of a series' SPC state.
#[derive(Debug, Clone, PartialEq)]
pub enum SpcSignal {
    SpecialCause(SpecialCauseDetected),
    Variation(VariationIconChanged),
    Assurance(AssuranceIconChanged),
}

pub fn rule_set_version(analysis: &Analysis) -> SpcRuleSetVersion {
    SpcRuleSetVersion {
        name: analysis.rule_set_name().to_string(),
        version: analysis.rule_set_version().to_string(),
    }
}

pub(crate) fn variation_proto(icon: Option<ics_spc::VariationIcon>) -> VariationIcon {
    use ics_spc::VariationIcon as Spc;
    match icon {
        None => VariationIcon::Unspecified,
        Some(Spc::CommonCause) => VariationIcon::CommonCause,
        Some(Spc::ImprovementHigh) => VariationIcon::ImprovementHigh,
        Some(Spc::ImprovementLow) => VariationIcon::ImprovementLow,
        Some(Spc::ConcernHigh) => VariationIcon::ConcernHigh,
        Some(Spc::ConcernLow) => VariationIcon::ConcernLow,
        Some(Spc::NeitherHigh) => VariationIcon::NeitherHigh,
        Some(Spc::NeitherLow) => VariationIcon::NeitherLow,
    }
}

pub(crate) fn assurance_proto(icon: Option<ics_spc::AssuranceIcon>) -> AssuranceIcon {
    match icon {
        None => AssuranceIcon::Unspecified,
        Some(ics_spc::AssuranceIcon::Pass) => AssuranceIcon::Pass,
        Some(ics_spc::AssuranceIcon::Fail) => AssuranceIcon::Fail,
        Some(ics_spc::AssuranceIcon::HitOrMiss) => AssuranceIcon::HitOrMiss,
    }
}

/// The variation icon a stored value names (none for unspecified or unknown values).
pub fn variation_icon(value: i32) -> Option<ics_spc::VariationIcon> {
    use ics_spc::VariationIcon as Spc;
    match VariationIcon::try_from(value).ok()? {
        VariationIcon::Unspecified => None,
        VariationIcon::CommonCause => Some(Spc::CommonCause),
        VariationIcon::ImprovementHigh => Some(Spc::ImprovementHigh),
        VariationIcon::ImprovementLow => Some(Spc::ImprovementLow),
        VariationIcon::ConcernHigh => Some(Spc::ConcernHigh),
        VariationIcon::ConcernLow => Some(Spc::ConcernLow),
        VariationIcon::NeitherHigh => Some(Spc::NeitherHigh),
        VariationIcon::NeitherLow => Some(Spc::NeitherLow),
    }
}

/// The assurance icon a stored value names (none for unspecified or unknown values).
pub fn assurance_icon(value: i32) -> Option<ics_spc::AssuranceIcon> {
    match AssuranceIcon::try_from(value).ok()? {
        AssuranceIcon::Unspecified => None,
        AssuranceIcon::Pass => Some(ics_spc::AssuranceIcon::Pass),
        AssuranceIcon::Fail => Some(ics_spc::AssuranceIcon::Fail),
        AssuranceIcon::HitOrMiss => Some(ics_spc::AssuranceIcon::HitOrMiss),
    }
}

/// Period starts of the points flagged as special cause.
fn flagged(series: &Series, analysis: &Analysis) -> BTreeSet<chrono::NaiveDate> {
    series
        .dated_points()
        .zip(&analysis.points)
        .filter(|(_, result)| {
            result
                .classification
                .is_some_and(|classification| classification.is_special_cause())
        })
        .map(|((start, _), _)| start)
        .collect()
}

/// What changed between `before` and `after` (the same series, before and after a command):
/// points flagged as special cause that were not flagged before (one event listing them), and
/// the variation and assurance icons when they differ. Nothing when nothing changed, so a
/// repeated command records nothing.
pub fn signals(before: &Series, after: &Series, measure: &MeasureDefinition) -> Vec<SpcSignal> {
    let old = before.analyse(measure);
    let new = after.analyse(measure);
    let rule_set = rule_set_version(&new);
    let mut signals = Vec::new();

    let previously = flagged(before, &old);
    let points: Vec<SpecialCausePoint> = after
        .dated_points()
        .zip(&new.points)
        .filter_map(|((start, point), result)| {
            let classification = result.classification?;
            (classification.is_special_cause() && !previously.contains(&start)).then(|| {
                SpecialCausePoint {
                    period_start: Some(from_naive(start)),
                    value: point.observation.value,
                    classification: classification_proto(classification) as i32,
                    rules: rules_of(result.flags),
                }
            })
        })
        .collect();
    if !points.is_empty() {
        signals.push(SpcSignal::SpecialCause(SpecialCauseDetected {
            series: Some(after.key.clone()),
            points,
            rule_set: Some(rule_set.clone()),
        }));
    }

    let (old_variation, new_variation) = (
        variation_proto(old.variation),
        variation_proto(new.variation),
    );
    if old_variation != new_variation {
        signals.push(SpcSignal::Variation(VariationIconChanged {
            series: Some(after.key.clone()),
            previous: old_variation as i32,
            current: new_variation as i32,
            latest_period_start: after
                .latest()
                .and_then(|point| point.observation.period_start),
            rule_set: Some(rule_set.clone()),
        }));
    }
    let (old_assurance, new_assurance) = (
        assurance_proto(old.assurance),
        assurance_proto(new.assurance),
    );
    if old_assurance != new_assurance {
        signals.push(SpcSignal::Assurance(AssuranceIconChanged {
            series: Some(after.key.clone()),
            previous: old_assurance as i32,
            current: new_assurance as i32,
            target: after.target(measure),
            rule_set: Some(rule_set),
        }));
    }
    signals
}

#[cfg(test)]
mod tests {
    use chrono::{Days, NaiveDate};
    use ics_proto::EventName;
    use ics_proto::events::v1::{
        ImprovementDirection, MeasureScoring, ObservationsRecorded, SeriesKey, SpcClassification,
    };
    use prost::Message;

    use super::*;
    use crate::series::observation;

    fn measure(direction: ImprovementDirection) -> MeasureDefinition {
        MeasureDefinition {
            code: "WAIT".into(),
            direction: direction as i32,
            scoring: MeasureScoring::Continuous as i32,
            target: Some(10.0),
            ..MeasureDefinition::default()
        }
    }

    fn with_values(series: &Series, first_day: u64, values: &[f64]) -> Series {
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
        let observations = values
            .iter()
            .enumerate()
            .map(|(offset, value)| {
                let day = start + Days::new(first_day + offset as u64);
                observation(day, day, *value)
            })
            .collect();
        let mut next = series.clone();
        next.apply(
            ObservationsRecorded::EVENT_TYPE,
            &ObservationsRecorded {
                series: Some(series.key.clone()),
                observations,
            }
            .encode_to_vec(),
        )
        .expect("decodes");
        next
    }

    fn stable() -> Vec<f64> {
        (0..20).map(|i| 10.0 + f64::from(i % 3)).collect()
    }

    #[test]
    fn too_few_points_signal_nothing_and_the_fifteenth_brings_the_icons() {
        let empty = Series::new(SeriesKey::default());
        let increase = measure(ImprovementDirection::Increase);
        let fourteen = with_values(&empty, 0, &stable()[..14]);
        assert!(signals(&empty, &fourteen, &increase).is_empty());
        let fifteen = with_values(&fourteen, 14, &stable()[14..15]);
        let changed = signals(&fourteen, &fifteen, &increase);
        assert!(matches!(
            changed.as_slice(),
            [SpcSignal::Variation(v), SpcSignal::Assurance(_)]
                if v.current == VariationIcon::CommonCause as i32
        ));
    }

    #[test]
    fn a_point_beyond_the_lower_limit_is_concern_once() {
        let increase = measure(ImprovementDirection::Increase);
        let base = with_values(&Series::new(SeriesKey::default()), 0, &stable());
        let dropped = with_values(&base, 20, &[4.0]);
        let changed = signals(&base, &dropped, &increase);
        let SpcSignal::SpecialCause(detected) = &changed[0] else {
            panic!("expected a special cause first: {changed:?}");
        };
        assert_eq!(detected.points.len(), 1);
        assert_eq!(
            detected.points[0].classification,
            SpcClassification::Concern as i32
        );
        assert!(changed.iter().any(|signal| matches!(
            signal,
            SpcSignal::Variation(v) if v.current == VariationIcon::ConcernLow as i32
        )));
        // The same data again changes nothing.
        assert!(signals(&dropped, &dropped, &increase).is_empty());
    }

    #[test]
    fn a_decrease_measure_reads_the_same_drop_as_improvement() {
        let decrease = measure(ImprovementDirection::Decrease);
        let base = with_values(&Series::new(SeriesKey::default()), 0, &stable());
        let dropped = with_values(&base, 20, &[4.0]);
        assert!(
            signals(&base, &dropped, &decrease)
                .iter()
                .any(|signal| matches!(
                    signal,
                    SpcSignal::Variation(v) if v.current == VariationIcon::ImprovementLow as i32
                ))
        );
    }
}
