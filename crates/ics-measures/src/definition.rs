//! Measure definitions: validation and the SPC settings they imply.

use ics_proto::events::v1::{
    ImprovementDirection, MeasureDefinition, MeasureFrequency, MeasureScoring, SpcConflictRule,
    SpcRuleSet,
};
use ics_spc::{ConflictRule, Direction, RuleSet};
use ics_validate::Violations;
use ics_validate::{self as validate, MAX_LONG_TEXT_CHARS};

use crate::keys::is_measure_code;

/// Longest display unit.
const MAX_UNIT_CHARS: usize = 40;
/// Largest display scale (per million).
const MAX_DISPLAY_SCALE: f64 = 1_000_000.0;

/// Checks a measure definition; `field` is its path in the request.
pub fn validate_definition(
    violations: &mut Violations,
    field: &str,
    definition: Option<&MeasureDefinition>,
) {
    let Some(definition) = definition else {
        violations.add(field, "is required");
        return;
    };
    if !is_measure_code(&definition.code) {
        violations.add(
            format!("{field}.code"),
            "must be 2–40 upper-case letters, digits or underscores, starting with a letter",
        );
    }
    validate::name(violations, &format!("{field}.name"), &definition.name);
    validate::text(
        violations,
        &format!("{field}.description"),
        &definition.description,
        false,
        MAX_LONG_TEXT_CHARS,
    );
    validate::text(
        violations,
        &format!("{field}.unit"),
        &definition.unit,
        true,
        MAX_UNIT_CHARS,
    );
    validate::enum_value::<ImprovementDirection>(
        violations,
        &format!("{field}.direction"),
        definition.direction,
    );
    let scoring = validate::enum_value::<MeasureScoring>(
        violations,
        &format!("{field}.scoring"),
        definition.scoring,
    );
    validate::enum_value::<MeasureFrequency>(
        violations,
        &format!("{field}.frequency"),
        definition.frequency,
    );
    validate::enum_value::<SpcRuleSet>(
        violations,
        &format!("{field}.rule_set"),
        definition.rule_set,
    );
    validate::enum_value::<SpcConflictRule>(
        violations,
        &format!("{field}.conflict_rule"),
        definition.conflict_rule,
    );
    if let Some(target) = definition.target {
        let (min, max) = if scoring == Some(MeasureScoring::Proportion) {
            (0.0, 1.0)
        } else {
            (f64::MIN, f64::MAX)
        };
        validate::number(violations, &format!("{field}.target"), target, min, max);
    }
    if definition.display_scale != 0.0 {
        validate::number(
            violations,
            &format!("{field}.display_scale"),
            definition.display_scale,
            f64::MIN_POSITIVE,
            MAX_DISPLAY_SCALE,
        );
    }
}

/// The definition as stored: an unset display scale becomes 1.
pub fn normalised(definition: &MeasureDefinition) -> MeasureDefinition {
    let mut definition = definition.clone();
    if definition.display_scale == 0.0 {
        definition.display_scale = 1.0;
    }
    definition.name = definition.name.trim().to_string();
    definition.unit = definition.unit.trim().to_string();
    definition
}

/// The SPC rule set a measure is analysed with. A per-measure conflict rule that differs from
/// the rule set's own gives the rule set another name, so stored results stay distinguishable.
pub fn rule_set(definition: &MeasureDefinition) -> RuleSet {
    let nhsr = definition.rule_set == SpcRuleSet::NhsrPlotthedots as i32;
    let base = if nhsr {
        RuleSet::NHSR_PLOTTHEDOTS
    } else {
        RuleSet::MDC_V2_5
    };
    if definition.conflict_rule == SpcConflictRule::Concern as i32
        && base.conflict_rule != ConflictRule::Concern
    {
        RuleSet {
            name: if nhsr {
                "nhsr-plotthedots/concern-wins"
            } else {
                "mdc-sql/concern-wins"
            },
            conflict_rule: ConflictRule::Concern,
            ..base
        }
    } else {
        base
    }
}

/// The measure's improvement direction, as SPC and peer comparison read it.
pub fn direction(definition: &MeasureDefinition) -> Direction {
    direction_of(definition.direction)
}

/// An `ImprovementDirection` number (a definition's, a measure view row's) as a [`Direction`];
/// unset or unknown (a newer peer's value) reads as having no direction.
pub fn direction_of(number: i32) -> Direction {
    match ImprovementDirection::try_from(number) {
        Ok(ImprovementDirection::Increase) => Direction::Increase,
        Ok(ImprovementDirection::Decrease) => Direction::Decrease,
        _ => Direction::Neither,
    }
}

/// The contract's value of a direction, for a definition sent over the API.
pub fn improvement_direction(direction: Direction) -> ImprovementDirection {
    match direction {
        Direction::Increase => ImprovementDirection::Increase,
        Direction::Decrease => ImprovementDirection::Decrease,
        Direction::Neither => ImprovementDirection::Neither,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> MeasureDefinition {
        MeasureDefinition {
            code: "FFT_POSITIVE".into(),
            name: "Friends and Family Test % positive".into(),
            description: String::new(),
            unit: "%".into(),
            direction: ImprovementDirection::Increase as i32,
            scoring: MeasureScoring::Proportion as i32,
            frequency: MeasureFrequency::Monthly as i32,
            target: Some(0.95),
            rule_set: SpcRuleSet::MdcV25 as i32,
            conflict_rule: SpcConflictRule::Improvement as i32,
            display_scale: 100.0,
        }
    }

    fn violations_of(definition: &MeasureDefinition) -> Vec<String> {
        let mut violations = Violations::default();
        validate_definition(&mut violations, "definition", Some(definition));
        violations
            .into_vec()
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    #[test]
    fn directions_convert_both_ways_and_unknown_has_none() {
        for direction in [Direction::Increase, Direction::Decrease, Direction::Neither] {
            assert_eq!(
                direction_of(improvement_direction(direction) as i32),
                direction
            );
        }
        assert_eq!(direction_of(0), Direction::Neither);
        assert_eq!(direction_of(99), Direction::Neither);
        assert_eq!(direction(&definition()), Direction::Increase);
    }

    #[test]
    fn a_complete_definition_passes() {
        assert!(violations_of(&definition()).is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut bad = definition();
        bad.code = "fft".into();
        bad.target = Some(95.0);
        bad.direction = 0;
        bad.display_scale = f64::NAN;
        assert_eq!(
            violations_of(&bad),
            [
                "definition.code",
                "definition.direction",
                "definition.target",
                "definition.display_scale"
            ]
        );
    }

    #[test]
    fn a_concern_conflict_rule_renames_the_rule_set() {
        let mut concern = definition();
        concern.conflict_rule = SpcConflictRule::Concern as i32;
        let rules = rule_set(&concern);
        assert_eq!(rules.conflict_rule, ConflictRule::Concern);
        assert_eq!(rules.name, "mdc-sql/concern-wins");
        assert_eq!(rule_set(&definition()), RuleSet::MDC_V2_5);
    }
}
