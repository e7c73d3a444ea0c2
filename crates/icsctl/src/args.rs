//! Turning command-line words into API values: ISO dates, kebab-case enum words and principal
//! specs. Parsers return `String` errors so that clap reports them as usage errors (exit 2).

use chrono::NaiveDate;
use clap::ValueEnum;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    BoardRole, CqcRating, Date, ExecutiveRole, OrganisationKind, ValueStreamOrigin,
    ValueStreamStatus,
};
use ics_service_kit::Principal;

/// Parses a calendar date written exactly as `YYYY-MM-DD`.
///
/// Only the shape and the calendar are checked here; whether a date makes sense for a command
/// (in the future, before a start date…) is for the server to judge.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "'{text}' is not a date: write it as YYYY-MM-DD, e.g. 2015-07-01"
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(from_naive)
        .map_err(|_| format!("'{text}' is not a real calendar date"))
}

/// Parses who a locally minted token speaks for: `operator`, `trust:<ODS>`, `board:ics:<ODS>`,
/// `board:programme:<id>` or `board:ics:<ODS>:programme:<id>`.
pub fn parse_principal(spec: &str) -> Result<Principal, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let principal = match parts.as_slice() {
        ["operator"] => Some(Principal::Operator),
        ["trust", ods_code] if is_identifier(ods_code) => Some(Principal::TrustWriter {
            ods_code: (*ods_code).to_owned(),
        }),
        ["board", "ics", ics_ods_code] if is_identifier(ics_ods_code) => {
            Some(Principal::BoardReader {
                ics_ods_code: Some((*ics_ods_code).to_owned()),
                programme_id: None,
            })
        }
        ["board", "programme", programme_id] if is_identifier(programme_id) => {
            Some(Principal::BoardReader {
                ics_ods_code: None,
                programme_id: Some((*programme_id).to_owned()),
            })
        }
        ["board", "ics", ics_ods_code, "programme", programme_id]
            if is_identifier(ics_ods_code) && is_identifier(programme_id) =>
        {
            Some(Principal::BoardReader {
                ics_ods_code: Some((*ics_ods_code).to_owned()),
                programme_id: Some((*programme_id).to_owned()),
            })
        }
        _ => None,
    };
    principal.ok_or_else(|| {
        format!(
            "'{spec}' is not a principal: use operator, trust:<ODS>, board:ics:<ODS> or \
             board:programme:<id>"
        )
    })
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(char::is_whitespace)
}

/// Kinds of organisation, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Trust,
    FoundationTrust,
    Icb,
    Region,
    Regulator,
}

impl From<Kind> for OrganisationKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Trust => OrganisationKind::Trust,
            Kind::FoundationTrust => OrganisationKind::FoundationTrust,
            Kind::Icb => OrganisationKind::Icb,
            Kind::Region => OrganisationKind::Region,
            Kind::Regulator => OrganisationKind::Regulator,
        }
    }
}

/// A CQC rating, overall or for one key question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rating {
    Outstanding,
    Good,
    RequiresImprovement,
    Inadequate,
}

impl From<Rating> for CqcRating {
    fn from(rating: Rating) -> Self {
        match rating {
            Rating::Outstanding => CqcRating::Outstanding,
            Rating::Good => CqcRating::Good,
            Rating::RequiresImprovement => CqcRating::RequiresImprovement,
            Rating::Inadequate => CqcRating::Inadequate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecRole {
    ChiefExecutive,
    Chair,
    MedicalDirector,
    DirectorOfNursing,
    FinanceDirector,
    ChiefOperatingOfficer,
    DirectorOfImprovement,
}

impl From<ExecRole> for ExecutiveRole {
    fn from(role: ExecRole) -> Self {
        match role {
            ExecRole::ChiefExecutive => ExecutiveRole::ChiefExecutive,
            ExecRole::Chair => ExecutiveRole::Chair,
            ExecRole::MedicalDirector => ExecutiveRole::MedicalDirector,
            ExecRole::DirectorOfNursing => ExecutiveRole::DirectorOfNursing,
            ExecRole::FinanceDirector => ExecutiveRole::FinanceDirector,
            ExecRole::ChiefOperatingOfficer => ExecutiveRole::ChiefOperatingOfficer,
            ExecRole::DirectorOfImprovement => ExecutiveRole::DirectorOfImprovement,
        }
    }
}

/// How a value stream was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Origin {
    TopDown,
    BottomUp,
}

impl From<Origin> for ValueStreamOrigin {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::TopDown => ValueStreamOrigin::TopDown,
            Origin::BottomUp => ValueStreamOrigin::BottomUp,
        }
    }
}

/// A value stream's status. `closed` is accepted so that the server, not the client, explains
/// that closing has its own command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Proposed,
    Active,
    Sustaining,
    Closed,
}

impl From<Status> for ValueStreamStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Proposed => ValueStreamStatus::Proposed,
            Status::Active => ValueStreamStatus::Active,
            Status::Sustaining => ValueStreamStatus::Sustaining,
            Status::Closed => ValueStreamStatus::Closed,
        }
    }
}

/// A seat on a programme's guiding board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Seat {
    Chair,
    ChiefExecutive,
    Regulator,
    Adviser,
}

impl From<Seat> for BoardRole {
    fn from(seat: Seat) -> Self {
        match seat {
            Seat::Chair => BoardRole::Chair,
            Seat::ChiefExecutive => BoardRole::ChiefExecutive,
            Seat::Regulator => BoardRole::Regulator,
            Seat::Adviser => BoardRole::Adviser,
        }
    }
}

/// `None` stays unset on the wire (zero), which the server reports as a missing field.
pub fn enum_number<E: Into<T>, T: Into<i32>>(value: Option<E>) -> i32 {
    value.map(|value| value.into().into()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn iso_dates_parse() {
        assert_eq!(parse_date("2015-07-01"), Ok(date(2015, 7, 1)));
        assert_eq!(parse_date("2016-02-29"), Ok(date(2016, 2, 29)));
    }

    #[test]
    fn dates_must_be_written_as_yyyy_mm_dd() {
        for bad in [
            "",
            "2015-7-1",
            "01/07/2015",
            "2015-07-01T00:00",
            "+2015-07-01",
            "2015-07-0a",
            "2015_07_01",
            " 2015-07-01",
        ] {
            let error = parse_date(bad).expect_err(bad);
            assert!(error.contains("YYYY-MM-DD"), "{bad}: {error}");
        }
    }

    #[test]
    fn impossible_calendar_dates_are_refused() {
        for bad in ["2015-02-29", "2015-13-01", "2015-04-31", "2015-00-10"] {
            let error = parse_date(bad).expect_err(bad);
            assert!(error.contains("not a real calendar date"), "{bad}: {error}");
        }
    }

    #[test]
    fn principal_specs_parse() {
        assert_eq!(parse_principal("operator"), Ok(Principal::Operator));
        assert_eq!(
            parse_principal("trust:RTP"),
            Ok(Principal::TrustWriter {
                ods_code: "RTP".to_owned()
            })
        );
        assert_eq!(
            parse_principal("board:ics:QWO"),
            Ok(Principal::BoardReader {
                ics_ods_code: Some("QWO".to_owned()),
                programme_id: None
            })
        );
        assert_eq!(
            parse_principal("board:programme:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            Ok(Principal::BoardReader {
                ics_ods_code: None,
                programme_id: Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned())
            })
        );
        assert_eq!(
            parse_principal("board:ics:QWO:programme:p-1"),
            Ok(Principal::BoardReader {
                ics_ods_code: Some("QWO".to_owned()),
                programme_id: Some("p-1".to_owned())
            })
        );
    }

    #[test]
    fn malformed_principal_specs_are_refused() {
        for bad in [
            "",
            "admin",
            "trust",
            "trust:",
            "trust:RTP:extra",
            "board:QWO",
            "board:ics:",
            "board:region:Y63",
            "trust:R TP",
            "development",
        ] {
            let error = parse_principal(bad).expect_err(bad);
            assert!(error.contains("not a principal"), "{bad}: {error}");
        }
    }

    #[test]
    fn enum_words_are_kebab_case() {
        let word = |value: clap::builder::PossibleValue| value.get_name().to_owned();
        assert_eq!(
            Kind::FoundationTrust
                .to_possible_value()
                .map(word)
                .as_deref(),
            Some("foundation-trust")
        );
        assert_eq!(
            Rating::RequiresImprovement
                .to_possible_value()
                .map(word)
                .as_deref(),
            Some("requires-improvement")
        );
        assert_eq!(
            ExecRole::ChiefOperatingOfficer
                .to_possible_value()
                .map(word)
                .as_deref(),
            Some("chief-operating-officer")
        );
        assert_eq!(
            Rating::from_str("inadequate", false),
            Ok(Rating::Inadequate)
        );
        assert_eq!(Origin::from_str("bottom-up", false), Ok(Origin::BottomUp));
        assert!(Rating::from_str("requires_improvement", false).is_err());
    }

    #[test]
    fn enum_words_map_to_the_proto_enums() {
        assert_eq!(OrganisationKind::from(Kind::Icb), OrganisationKind::Icb);
        assert_eq!(CqcRating::from(Rating::Good), CqcRating::Good);
        assert_eq!(
            enum_number::<Rating, CqcRating>(Some(Rating::RequiresImprovement)),
            CqcRating::RequiresImprovement as i32
        );
        assert_eq!(enum_number::<Rating, CqcRating>(None), 0);
        assert_eq!(
            ValueStreamStatus::from(Status::Sustaining),
            ValueStreamStatus::Sustaining
        );
        assert_eq!(BoardRole::from(Seat::Regulator), BoardRole::Regulator);
    }
}
