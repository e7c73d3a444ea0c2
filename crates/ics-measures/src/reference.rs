//! The reference measure catalogue, installed by `icsctl measure install-reference` and by the
//! demo: patient experience (Friends and Family Test), workforce (leaver rate, stability index,
//! NHS Staff Survey People Promise themes) and productivity (reference cost index).
//!
//! Every definition uses the Making Data Count v2.5 rule set with improvement winning a
//! conflict. Each is sent with its own deterministic request id ([`request_id`]), so installing
//! twice writes nothing: the server replays the first answer. A changed definition here needs a
//! new [`REFERENCE_VERSION`] so that it is sent as a new command (and becomes a new revision).

use ics_proto::events::v1::{
    CommandOptions, CommandResult, ImprovementDirection, MeasureDefinition, MeasureFrequency,
    MeasureScoring, SpcConflictRule, SpcRuleSet,
};
use ics_proto::metrics::v1::DefineMeasureRequest;

/// Bumped whenever a definition below changes.
pub const REFERENCE_VERSION: &str = "v1";

const SURVEY_UNIT: &str = "score 0-10";

/// The request id a reference definition is installed with: `reference-measure-<CODE>-v1`.
pub fn request_id(code: &str) -> String {
    format!("reference-measure-{code}-{REFERENCE_VERSION}")
}

struct Reference {
    code: &'static str,
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    direction: ImprovementDirection,
    scoring: MeasureScoring,
    frequency: MeasureFrequency,
    target: Option<f64>,
    display_scale: f64,
}

/// NHS Staff Survey theme scores (0–10): the seven People Promise elements, then the staff
/// engagement and morale themes.
const STAFF_SURVEY_THEMES: [(&str, &str, &str); 9] = [
    (
        "STAFF_SURVEY_COMPASSIONATE_INCLUSIVE",
        "Staff Survey: we are compassionate and inclusive",
        "People Promise element 1",
    ),
    (
        "STAFF_SURVEY_RECOGNISED_REWARDED",
        "Staff Survey: we are recognised and rewarded",
        "People Promise element 2",
    ),
    (
        "STAFF_SURVEY_VOICE_THAT_COUNTS",
        "Staff Survey: we each have a voice that counts",
        "People Promise element 3",
    ),
    (
        "STAFF_SURVEY_SAFE_HEALTHY",
        "Staff Survey: we are safe and healthy",
        "People Promise element 4",
    ),
    (
        "STAFF_SURVEY_ALWAYS_LEARNING",
        "Staff Survey: we are always learning",
        "People Promise element 5",
    ),
    (
        "STAFF_SURVEY_WORK_FLEXIBLY",
        "Staff Survey: we work flexibly",
        "People Promise element 6",
    ),
    (
        "STAFF_SURVEY_TEAM",
        "Staff Survey: we are a team",
        "People Promise element 7",
    ),
    (
        "STAFF_SURVEY_STAFF_ENGAGEMENT",
        "Staff Survey: staff engagement",
        "Theme",
    ),
    ("STAFF_SURVEY_MORALE", "Staff Survey: morale", "Theme"),
];

const FIXED: [Reference; 4] = [
    Reference {
        code: "FFT_POSITIVE",
        name: "Friends and Family Test: % positive",
        description: "Share of Friends and Family Test responses that rated the experience \
                      'very good' or 'good'. Numerator: positive responses; denominator: all \
                      responses. Published monthly by NHS England.",
        unit: "%",
        direction: ImprovementDirection::Increase,
        scoring: MeasureScoring::Proportion,
        frequency: MeasureFrequency::Monthly,
        target: Some(0.95),
        display_scale: 100.0,
    },
    Reference {
        code: "STAFF_LEAVER_RATE",
        name: "Staff leaver rate",
        description: "Leavers in the period ÷ mean headcount, the mean of the headcounts at the \
                      start and at the end of the period. Numerator: leavers; denominator: mean \
                      headcount.",
        unit: "% of staff",
        direction: ImprovementDirection::Decrease,
        scoring: MeasureScoring::Rate,
        frequency: MeasureFrequency::Monthly,
        target: None,
        display_scale: 100.0,
    },
    Reference {
        code: "STAFF_STABILITY_INDEX",
        name: "Staff stability index",
        description: "Share of the staff in post a year before the end of the period who are \
                      still in post at its end. Numerator: still in post; denominator: in post a \
                      year earlier.",
        unit: "%",
        direction: ImprovementDirection::Increase,
        scoring: MeasureScoring::Proportion,
        frequency: MeasureFrequency::Monthly,
        target: None,
        display_scale: 100.0,
    },
    Reference {
        code: "REFERENCE_COST_INDEX",
        name: "Reference cost index",
        description: "National Cost Collection index: the trust's actual cost of its casemix ÷ \
                      the national average cost of the same casemix × 100, adjusted for the \
                      market forces factor. Annual (financial year).",
        unit: "index (100 = national average)",
        direction: ImprovementDirection::Decrease,
        scoring: MeasureScoring::Continuous,
        frequency: MeasureFrequency::Annual,
        target: Some(100.0),
        display_scale: 1.0,
    },
];

fn definition(reference: &Reference) -> MeasureDefinition {
    MeasureDefinition {
        code: reference.code.to_owned(),
        name: reference.name.to_owned(),
        description: reference.description.to_owned(),
        unit: reference.unit.to_owned(),
        direction: reference.direction as i32,
        scoring: reference.scoring as i32,
        frequency: reference.frequency as i32,
        target: reference.target,
        rule_set: SpcRuleSet::MdcV25 as i32,
        conflict_rule: SpcConflictRule::Improvement as i32,
        display_scale: reference.display_scale,
    }
}

/// Every reference definition, in a fixed order: FFT, leaver rate, stability index, the Staff
/// Survey themes, reference cost index.
pub fn definitions() -> Vec<MeasureDefinition> {
    let survey = STAFF_SURVEY_THEMES
        .iter()
        .map(|&(code, name, kind)| Reference {
            code,
            name,
            description: match kind {
                "Theme" => {
                    "NHS Staff Survey theme score, 0–10, from the annual survey of all staff \
                     (published the following March)."
                }
                _ => {
                    "NHS Staff Survey People Promise element score, 0–10, from the annual survey \
                     of all staff (published the following March)."
                }
            },
            unit: SURVEY_UNIT,
            direction: ImprovementDirection::Increase,
            scoring: MeasureScoring::Continuous,
            frequency: MeasureFrequency::Annual,
            target: None,
            display_scale: 1.0,
        })
        .collect::<Vec<_>>();
    FIXED[..3]
        .iter()
        .chain(survey.iter())
        .chain(FIXED[3..].iter())
        .map(definition)
        .collect()
}

/// Every reference definition as the command that installs it, under its own request id, in
/// the order of [`definitions`]. Whoever installs them sends exactly these, so the command line
/// and the demo never define a reference measure twice.
pub fn install_requests() -> Vec<DefineMeasureRequest> {
    definitions()
        .into_iter()
        .map(|definition| DefineMeasureRequest {
            options: Some(CommandOptions {
                request_id: request_id(&definition.code),
                expected_version: None,
            }),
            definition: Some(definition),
        })
        .collect()
}

/// What installing one reference definition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// Newly defined: an event was written.
    Defined,
    /// The same definition was already there; nothing was written.
    Unchanged,
    /// This request id was used before: the server replayed its first answer.
    AlreadyInstalled,
}

impl Installed {
    pub fn of(result: &CommandResult) -> Installed {
        if result.replayed {
            Installed::AlreadyInstalled
        } else if result.event_ids.is_empty() {
            Installed::Unchanged
        } else {
            Installed::Defined
        }
    }

    /// `defined`, `unchanged` or `already installed`.
    pub fn word(self) -> &'static str {
        match self {
            Installed::Defined => "defined",
            Installed::Unchanged => "unchanged",
            Installed::AlreadyInstalled => "already installed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_validate::Violations;

    fn find(code: &str) -> MeasureDefinition {
        definitions()
            .into_iter()
            .find(|definition| definition.code == code)
            .unwrap_or_else(|| panic!("no reference measure {code}"))
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let definitions = definitions();
        assert_eq!(definitions.len(), 13);
        let mut codes: Vec<&str> = definitions.iter().map(|d| d.code.as_str()).collect();
        for code in &codes {
            assert!((2..=40).contains(&code.len()), "{code}");
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{code}"
            );
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 13);
    }

    #[test]
    fn every_definition_is_complete_and_uses_mdc_v2_5() {
        for definition in definitions() {
            let code = &definition.code;
            assert!(!definition.name.is_empty(), "{code}");
            assert!(!definition.description.is_empty(), "{code}");
            assert!(!definition.unit.is_empty(), "{code}");
            assert_ne!(definition.direction, 0, "{code}");
            assert_ne!(definition.scoring, 0, "{code}");
            assert_ne!(definition.frequency, 0, "{code}");
            assert_eq!(definition.rule_set, SpcRuleSet::MdcV25 as i32, "{code}");
            assert_eq!(
                definition.conflict_rule,
                SpcConflictRule::Improvement as i32,
                "{code}"
            );
            assert!(definition.display_scale >= 1.0, "{code}");
            if definition.scoring == MeasureScoring::Proportion as i32 {
                let target = definition.target.unwrap_or(0.5);
                assert!((0.0..=1.0).contains(&target), "{code}: a fraction");
            }
        }
    }

    #[test]
    fn the_headline_measures_are_as_specified() {
        let fft = find("FFT_POSITIVE");
        assert_eq!(fft.scoring, MeasureScoring::Proportion as i32);
        assert_eq!(fft.direction, ImprovementDirection::Increase as i32);
        assert_eq!(fft.frequency, MeasureFrequency::Monthly as i32);
        assert_eq!((fft.display_scale, fft.target), (100.0, Some(0.95)));

        let leavers = find("STAFF_LEAVER_RATE");
        assert_eq!(leavers.scoring, MeasureScoring::Rate as i32);
        assert_eq!(leavers.direction, ImprovementDirection::Decrease as i32);
        assert_eq!(leavers.unit, "% of staff");

        let stability = find("STAFF_STABILITY_INDEX");
        assert_eq!(stability.direction, ImprovementDirection::Increase as i32);
        assert_eq!(stability.display_scale, 100.0);

        let morale = find("STAFF_SURVEY_MORALE");
        assert_eq!(morale.scoring, MeasureScoring::Continuous as i32);
        assert_eq!(morale.frequency, MeasureFrequency::Annual as i32);
        assert_eq!(morale.unit, "score 0-10");

        let cost = find("REFERENCE_COST_INDEX");
        assert_eq!(cost.direction, ImprovementDirection::Decrease as i32);
        assert_eq!(cost.target, Some(100.0));
        assert_eq!(cost.unit, "index (100 = national average)");
    }

    #[test]
    fn request_ids_are_deterministic() {
        assert_eq!(
            request_id("FFT_POSITIVE"),
            "reference-measure-FFT_POSITIVE-v1"
        );
        let first: Vec<String> = definitions().iter().map(|d| request_id(&d.code)).collect();
        let second: Vec<String> = definitions().iter().map(|d| request_id(&d.code)).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn every_definition_passes_the_services_validation() {
        for definition in definitions() {
            let mut violations = Violations::default();
            crate::validate_definition(&mut violations, "definition", Some(&definition));
            assert!(
                violations.into_vec().is_empty(),
                "{} does not validate",
                definition.code
            );
        }
    }

    #[test]
    fn install_requests_carry_each_definition_under_its_own_request_id() {
        let requests = install_requests();
        assert_eq!(requests.len(), definitions().len());
        for (request, definition) in requests.iter().zip(definitions()) {
            assert_eq!(request.definition.as_ref(), Some(&definition));
            assert_eq!(
                request
                    .options
                    .as_ref()
                    .map(|options| options.request_id.clone()),
                Some(request_id(&definition.code))
            );
        }
    }

    #[test]
    fn an_install_reads_as_defined_unchanged_or_already_installed() {
        let mut result = CommandResult {
            stream_id: "measure-FFT_POSITIVE".to_owned(),
            version: 1,
            event_ids: vec!["e-1".to_owned()],
            replayed: false,
        };
        assert_eq!(Installed::of(&result), Installed::Defined);
        result.replayed = true;
        assert_eq!(Installed::of(&result).word(), "already installed");
        result.replayed = false;
        result.event_ids.clear();
        assert_eq!(Installed::of(&result).word(), "unchanged");
    }
}
