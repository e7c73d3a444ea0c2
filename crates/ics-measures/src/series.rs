//! A series folded from its events, and its SPC.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use chrono::NaiveDate;
use ics_proto::EventName;
use ics_proto::date::{from_naive, to_naive};
use ics_proto::events::v1::{
    AssuranceIcon, MeasureDefinition, ObservationCorrected, ObservationGhosted, ObservationPoint,
    ObservationsRecorded, PartitionMark, PartitionMarkKind, PartitionMarked, SeriesKey,
    SeriesRecord, SeriesRecordPoint, SeriesTargetSet, SpcClassification, SpcPoint, SpcRule,
    SpcRuleSetVersion, SpcSeries, VariationIcon,
};
use ics_spc::{Analysis, Classification, Point, analyse};
use prost::Message;

use crate::definition::{direction, rule_set};
use crate::signals::{assurance_proto, rule_set_version, variation_proto};

/// One point of a series: its current revision and whether it is ghosted.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    pub observation: ObservationPoint,
    pub ghosted: bool,
}

/// What a board's summary of a series shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SpcSummary {
    pub variation: VariationIcon,
    pub assurance: AssuranceIcon,
    pub target: Option<f64>,
    pub rule_set: SpcRuleSetVersion,
}

/// How an incoming observation compares with what the series holds for its period.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// Nothing recorded for the period.
    New,
    /// Recorded with the same period end, value, numerator and denominator.
    Unchanged,
    /// Recorded with other content: a conflict, described.
    Conflict(String),
}

/// A series as its events leave it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub key: SeriesKey,
    points: BTreeMap<NaiveDate, SeriesPoint>,
    marks: BTreeMap<NaiveDate, PartitionMark>,
    /// `Some(target)` when the series set its own target (which may be none).
    own_target: Option<Option<f64>>,
}

/// Whether two observations of the same period carry the same figures (the source and
/// revision do not count).
pub fn same_observation(a: &ObservationPoint, b: &ObservationPoint) -> bool {
    a.period_end == b.period_end
        && a.value.to_bits() == b.value.to_bits()
        && a.numerator.map(f64::to_bits) == b.numerator.map(f64::to_bits)
        && a.denominator.map(f64::to_bits) == b.denominator.map(f64::to_bits)
}

fn start_of(point: &ObservationPoint) -> Option<NaiveDate> {
    point.period_start.as_ref().and_then(to_naive)
}

/// An event that changes a series' data (rather than reporting its SPC), decoded once.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesChange {
    Recorded(ObservationsRecorded),
    Corrected(ObservationCorrected),
    Ghosted(ObservationGhosted),
    Marked(PartitionMarked),
    Target(SeriesTargetSet),
}

impl SeriesChange {
    /// The change an event makes; `None` for other event types.
    pub fn decode(event_type: &str, payload: &[u8]) -> Result<Option<Self>, prost::DecodeError> {
        Ok(Some(if event_type == ObservationsRecorded::EVENT_TYPE {
            SeriesChange::Recorded(ObservationsRecorded::decode(payload)?)
        } else if event_type == ObservationCorrected::EVENT_TYPE {
            SeriesChange::Corrected(ObservationCorrected::decode(payload)?)
        } else if event_type == ObservationGhosted::EVENT_TYPE {
            SeriesChange::Ghosted(ObservationGhosted::decode(payload)?)
        } else if event_type == PartitionMarked::EVENT_TYPE {
            SeriesChange::Marked(PartitionMarked::decode(payload)?)
        } else if event_type == SeriesTargetSet::EVENT_TYPE {
            SeriesChange::Target(SeriesTargetSet::decode(payload)?)
        } else {
            return Ok(None);
        }))
    }

    /// The series the change is about.
    pub fn series(&self) -> Option<&SeriesKey> {
        match self {
            SeriesChange::Recorded(event) => event.series.as_ref(),
            SeriesChange::Corrected(event) => event.series.as_ref(),
            SeriesChange::Ghosted(event) => event.series.as_ref(),
            SeriesChange::Marked(event) => event.series.as_ref(),
            SeriesChange::Target(event) => event.series.as_ref(),
        }
    }
}

impl Series {
    pub fn new(key: SeriesKey) -> Series {
        Series {
            key,
            ..Series::default()
        }
    }

    /// A series as readers store it: an encoded `SeriesRecord`.
    pub fn decode(bytes: &[u8]) -> Result<Series, prost::DecodeError> {
        Ok(Series::from_record(&SeriesRecord::decode(bytes)?))
    }

    /// The series encoded for storage, as [`Series::decode`] reads it back.
    pub fn encode(&self) -> Vec<u8> {
        self.to_record().encode_to_vec()
    }

    fn from_record(record: &SeriesRecord) -> Series {
        let mut series = Series::new(record.series.clone().unwrap_or_default());
        for point in &record.points {
            if let Some(observation) = &point.observation
                && let Some(start) = start_of(observation)
            {
                series.points.insert(
                    start,
                    SeriesPoint {
                        observation: observation.clone(),
                        ghosted: point.ghosted,
                    },
                );
            }
        }
        for mark in &record.marks {
            if let Some(start) = mark.period_start.as_ref().and_then(to_naive) {
                series.marks.insert(start, *mark);
            }
        }
        if record.has_own_target {
            series.own_target = Some(record.own_target);
        }
        series
    }

    fn to_record(&self) -> SeriesRecord {
        SeriesRecord {
            series: Some(self.key.clone()),
            points: self
                .points
                .values()
                .map(|point| SeriesRecordPoint {
                    observation: Some(point.observation.clone()),
                    ghosted: point.ghosted,
                })
                .collect(),
            marks: self.marks.values().cloned().collect(),
            has_own_target: self.own_target.is_some(),
            own_target: self.own_target.flatten(),
        }
    }

    /// Folds one event into the series; other event types (SPC signals) change nothing.
    pub fn apply(&mut self, event_type: &str, payload: &[u8]) -> Result<(), prost::DecodeError> {
        if let Some(change) = SeriesChange::decode(event_type, payload)? {
            self.apply_change(change);
        }
        Ok(())
    }

    /// Folds one decoded change into the series.
    pub fn apply_change(&mut self, change: SeriesChange) {
        match change {
            SeriesChange::Recorded(recorded) => {
                for observation in recorded.observations {
                    self.put(observation);
                }
            }
            SeriesChange::Corrected(corrected) => {
                if let Some(observation) = corrected.observation {
                    self.put(observation);
                }
            }
            SeriesChange::Ghosted(ghosted) => {
                if let Some(start) = ghosted.period_start.as_ref().and_then(to_naive)
                    && let Some(point) = self.points.get_mut(&start)
                {
                    point.ghosted = ghosted.ghosted;
                }
            }
            SeriesChange::Marked(marked) => {
                if let Some(start) = marked.period_start.as_ref().and_then(to_naive) {
                    if marked.removed {
                        self.marks.remove(&start);
                    } else {
                        self.marks.insert(
                            start,
                            PartitionMark {
                                period_start: marked.period_start,
                                kind: marked.kind,
                                baseline_points: marked.baseline_points,
                            },
                        );
                    }
                }
            }
            // An absent target clears the series' own: it follows its measure's again, as
            // `SetSeriesTargetRequest` promises.
            SeriesChange::Target(set) => self.own_target = set.target.map(Some),
        }
    }

    /// Records or supersedes the observation of its period (ghosting is kept).
    pub fn put(&mut self, observation: ObservationPoint) {
        if let Some(start) = start_of(&observation) {
            // One search of the map per point: a back-load puts millions.
            match self.points.entry(start) {
                Entry::Occupied(mut recorded) => recorded.get_mut().observation = observation,
                Entry::Vacant(period) => {
                    period.insert(SeriesPoint {
                        observation,
                        ghosted: false,
                    });
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// About how many bytes the series holds in memory: its points and marks, each with a
    /// B-tree node's share (the observations' strings are short and not counted one by one).
    pub fn approximate_bytes(&self) -> usize {
        const NODE_SHARE: usize = 32;
        std::mem::size_of::<Series>()
            + self.points.len() * (std::mem::size_of::<(NaiveDate, SeriesPoint)>() + NODE_SHARE)
            + self.marks.len() * (std::mem::size_of::<(NaiveDate, PartitionMark)>() + NODE_SHARE)
    }

    pub fn point(&self, period_start: NaiveDate) -> Option<&SeriesPoint> {
        self.points.get(&period_start)
    }

    pub fn points(&self) -> impl Iterator<Item = &SeriesPoint> {
        self.points.values()
    }

    /// Every point with its period start, in period order.
    pub fn dated_points(&self) -> impl DoubleEndedIterator<Item = (NaiveDate, &SeriesPoint)> {
        self.points.iter().map(|(start, point)| (*start, point))
    }

    /// The points that are not ghosted and carry a numerator and denominator, as
    /// `(period start, numerator, denominator)` in period order: what peers are compared on.
    pub fn counts(&self) -> impl DoubleEndedIterator<Item = (NaiveDate, f64, f64)> + '_ {
        self.dated_points().filter_map(|(start, point)| {
            if point.ghosted {
                return None;
            }
            let observation = &point.observation;
            Some((start, observation.numerator?, observation.denominator?))
        })
    }

    /// The latest point that is not ghosted.
    pub fn latest(&self) -> Option<&SeriesPoint> {
        self.points.values().rev().find(|point| !point.ghosted)
    }

    pub fn mark(&self, period_start: NaiveDate) -> Option<&PartitionMark> {
        self.marks.get(&period_start)
    }

    /// Records `observation` as the first of its period, unless the period holds one already:
    /// then says whether it is the same (unchanged) or another (a conflict, which leaves the
    /// recorded one). One search of the map: a back-load brings millions of new points.
    pub fn put_new(
        &mut self,
        period_start: NaiveDate,
        observation: &ObservationPoint,
    ) -> Comparison {
        let recorded = match self.points.entry(period_start) {
            Entry::Vacant(period) => {
                period.insert(SeriesPoint {
                    observation: observation.clone(),
                    ghosted: false,
                });
                return Comparison::New;
            }
            Entry::Occupied(recorded) => &recorded.into_mut().observation,
        };
        if same_observation(recorded, observation) {
            return Comparison::Unchanged;
        }
        Comparison::Conflict(format!(
            "period starting {period_start} is already recorded with value {} (revision {}); \
             send a correction to change it",
            recorded.value, recorded.revision
        ))
    }

    /// The series' own target (`Some(None)`: explicitly none), or `None` when it follows its
    /// measure's.
    pub fn own_target(&self) -> Option<Option<f64>> {
        self.own_target
    }

    /// The target the assurance icon is judged against: the series' own, else the measure's.
    pub fn target(&self, measure: &MeasureDefinition) -> Option<f64> {
        match self.own_target {
            Some(own) => own,
            None => measure.target,
        }
    }

    /// The series' points as the SPC analysis takes them, with their partition marks.
    fn spc_points(&self) -> Vec<Point> {
        self.points
            .iter()
            .map(|(start, point)| {
                let mut spc = if point.ghosted {
                    Point::ghost(point.observation.value)
                } else {
                    Point::new(point.observation.value)
                };
                if let Some(mark) = self.marks.get(start) {
                    spc = spc.recalculate();
                    if mark.kind == PartitionMarkKind::Baseline as i32 {
                        spc = spc.with_baseline(mark.baseline_points as usize);
                    }
                }
                spc
            })
            .collect()
    }

    pub fn analyse(&self, measure: &MeasureDefinition) -> Analysis {
        analyse(
            &self.spc_points(),
            direction(measure),
            self.target(measure),
            &rule_set(measure),
        )
    }

    /// The icons, target and rule set of the series' SPC, without the per-point detail.
    pub fn summary(&self, measure: &MeasureDefinition) -> SpcSummary {
        let analysis = self.analyse(measure);
        SpcSummary {
            variation: variation_proto(analysis.variation),
            assurance: assurance_proto(analysis.assurance),
            target: self.target(measure),
            rule_set: rule_set_version(&analysis),
        }
    }

    /// The series with its SPC, as the APIs return it.
    pub fn spc_series(&self, measure: &MeasureDefinition) -> SpcSeries {
        self.chart(measure).0
    }

    /// As [`spc_series`](Self::spc_series), with the analysis it was made from (each point's
    /// partition limits and every partition's summary), which is what a chart draws.
    pub fn chart(&self, measure: &MeasureDefinition) -> (SpcSeries, Analysis) {
        let analysis = self.analyse(measure);
        let points = self
            .points
            .iter()
            .zip(&analysis.points)
            .map(|((start, point), result)| {
                let mark = self.marks.get(start);
                SpcPoint {
                    period_start: Some(from_naive(*start)),
                    period_end: point.observation.period_end,
                    value: point.observation.value,
                    numerator: point.observation.numerator,
                    denominator: point.observation.denominator,
                    revision: point.observation.revision,
                    ghosted: point.ghosted,
                    partition: u32::try_from(result.partition).unwrap_or(u32::MAX),
                    mean: result.mean,
                    upper_process_limit: result.limits.map(|l| l.upper_process_limit),
                    lower_process_limit: result.limits.map(|l| l.lower_process_limit),
                    upper_two_sigma: result.limits.map(|l| l.upper_two_sigma),
                    lower_two_sigma: result.limits.map(|l| l.lower_two_sigma),
                    classification: result
                        .classification
                        .map_or(SpcClassification::Unspecified, classification_proto)
                        as i32,
                    rules: rules_of(result.flags),
                    recalculate_from: mark.is_some(),
                    baseline_points: mark
                        .filter(|mark| mark.kind == PartitionMarkKind::Baseline as i32)
                        .map_or(0, |mark| mark.baseline_points),
                }
            })
            .collect();
        let series = SpcSeries {
            series: Some(self.key.clone()),
            measure: Some(measure.clone()),
            target: self.target(measure),
            points,
            variation: variation_proto(analysis.variation) as i32,
            assurance: assurance_proto(analysis.assurance) as i32,
            run_chart: analysis.run_chart,
            rule_set: Some(rule_set_version(&analysis)),
            warnings: analysis
                .warnings
                .iter()
                .map(|warning| format!("{warning:?}"))
                .collect(),
        };
        (series, analysis)
    }
}

pub fn classification_proto(classification: Classification) -> SpcClassification {
    match classification {
        Classification::CommonCause => SpcClassification::CommonCause,
        Classification::Improvement => SpcClassification::Improvement,
        Classification::Concern => SpcClassification::Concern,
        Classification::NeitherHigh => SpcClassification::NeitherHigh,
        Classification::NeitherLow => SpcClassification::NeitherLow,
    }
}

pub(crate) fn rules_of(flags: ics_spc::Flags) -> Vec<i32> {
    let mut rules = Vec::new();
    if flags.astronomical.any() {
        rules.push(SpcRule::Astronomical as i32);
    }
    if flags.shift.any() {
        rules.push(SpcRule::Shift as i32);
    }
    if flags.trend.any() {
        rules.push(SpcRule::Trend as i32);
    }
    if flags.two_in_three.any() {
        rules.push(SpcRule::TwoInThree as i32);
    }
    rules
}

/// An observation at revision 1, for tests.
#[cfg(test)]
pub(crate) fn observation(start: NaiveDate, end: NaiveDate, value: f64) -> ObservationPoint {
    ObservationPoint {
        period_start: Some(from_naive(start)),
        period_end: Some(from_naive(end)),
        value,
        numerator: None,
        denominator: None,
        source: String::new(),
        revision: 1,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Days, NaiveDate};
    use ics_proto::events::v1::{ImprovementDirection, MeasureScoring, SeriesKey};

    use super::*;

    #[test]
    fn putting_a_new_point_records_it_once_and_keeps_what_was_there() {
        let day =
            |offset: u64| NaiveDate::from_ymd_opt(2024, 1, 1).expect("date") + Days::new(offset);
        let mut series = Series::new(SeriesKey::default());
        let first = observation(day(0), day(0), 4.0);
        assert_eq!(series.put_new(day(0), &first), Comparison::New);
        assert_eq!(series.len(), 1);
        assert_eq!(series.put_new(day(0), &first), Comparison::Unchanged);
        let other = observation(day(0), day(0), 5.0);
        assert_eq!(
            series.put_new(day(0), &other),
            Comparison::Conflict(
                "period starting 2024-01-01 is already recorded with value 4 (revision 1); \
                 send a correction to change it"
                    .to_string()
            )
        );
        assert_eq!(series.len(), 1);
        assert_eq!(
            series.point(day(0)).map(|point| point.observation.value),
            Some(4.0),
            "a conflict leaves the recorded point"
        );
    }

    #[test]
    fn clearing_a_series_target_falls_back_to_the_measures() {
        let measure = MeasureDefinition {
            target: Some(0.9),
            ..MeasureDefinition::default()
        };
        let mut series = Series::new(SeriesKey::default());
        let set = |target: Option<f64>| {
            SeriesChange::Target(SeriesTargetSet {
                series: None,
                target,
                reason: String::new(),
            })
        };
        series.apply_change(set(Some(0.95)));
        assert_eq!(series.target(&measure), Some(0.95));
        series.apply_change(set(None));
        assert_eq!(series.own_target(), None);
        assert_eq!(series.target(&measure), Some(0.9));
        // And so it stays once stored and read back.
        let stored = Series::decode(&series.encode()).expect("decodes");
        assert_eq!(stored.target(&measure), Some(0.9));
    }

    #[test]
    fn a_chart_is_the_api_series_and_the_analysis_its_icons_came_from() {
        let measure = MeasureDefinition {
            code: "WAIT".into(),
            direction: ImprovementDirection::Decrease as i32,
            scoring: MeasureScoring::Continuous as i32,
            target: Some(12.0),
            ..MeasureDefinition::default()
        };
        let mut series = Series::new(SeriesKey::default());
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        for offset in 0..20u32 {
            let day = start + Days::new(u64::from(offset));
            series.put(observation(day, day, 10.0 + f64::from(offset % 4)));
        }
        let (chart, analysis) = series.chart(&measure);
        assert_eq!(chart, series.spc_series(&measure));
        assert_eq!(analysis, series.analyse(&measure));
        assert_eq!(chart.points.len(), analysis.points.len());
        assert_eq!(
            chart.variation,
            variation_proto(analysis.variation) as i32,
            "the series' icon is the analysis'"
        );
    }
}
