//! The demo's data set, as plain data.
//!
//! What is real: the organisations (names and ODS codes of the NHS England regions, the ICBs
//! and the trusts), the programme (the NHS–Virginia Mason Institute partnership, 2015–2021, its
//! five trusts and its Transformation Guiding Board of the five chief executives plus
//! regulators), and the headline figures the programme's evaluation reports (over 1,000
//! leadership-training participants, about 85% of whom valued it; 3 trusts chose value streams
//! top-down, 2 bottom-up; in 2015 every trust was rated "Requires improvement" or worse).
//!
//! Everything else is SAMPLE data, invented to make the demo show something: the individual
//! CQC ratings and their dates, the executives, the value streams, the meeting dates and the
//! per-trust training numbers. It is plausible, not true, and is labelled as such wherever it
//! is stored. People appear only as roles ("Chief Executive, SASH"), never by name.
//!
//! Dates are ISO `YYYY-MM-DD`. Changing anything here changes the requests the demo sends, so
//! bump [`REQUEST_ID_PREFIX`] at the same time: the server refuses a known request id that
//! arrives with a different command.

// The contract's enums under short names, so that each entry stays on a line or two.
use ics_proto::events::v1::{
    BoardRole as Seat, CqcRating as Rating, ExecutiveRole as ExecRole, OrganisationKind as Kind,
    ValueStreamOrigin as Origin, ValueStreamStatus as Status,
};
// Shorter still for the ratings: O outstanding, G good, RI requires improvement, I inadequate.
use Rating::{Good as G, Inadequate as I, Outstanding as O, RequiresImprovement as RI};

/// Every demo request id starts with this, so a re-run replays the first run's results.
pub const REQUEST_ID_PREFIX: &str = "demo-v1";

pub const SAMPLE_NOTICE: &str = "SAMPLE DATA for demonstration only: CQC ratings, executives, \
value streams, board meetings and training figures below are invented, not real performance data.";

pub const SAMPLE_REMINDER: &str = "Reminder: the ratings, executives, value streams and training \
figures above are SAMPLE data for demonstration, not real performance data.";

pub const SYNTHETIC_REMINDER: &str = "Reminder: the workshops behind the outcomes above are \
SYNTHETIC, generated to add up to the programme's published headline; only that headline is the \
programme's.";

pub struct Organisation {
    pub ods_code: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// The ICB of a trust, the region of an ICB.
    pub parent: Option<&'static str>,
}

/// ICBs were established on 1 July 2022; every link in the demo starts then.
pub const LINKED_FROM: &str = "2022-07-01";

const fn organisation(
    ods_code: &'static str,
    name: &'static str,
    kind: Kind,
    parent: Option<&'static str>,
) -> Organisation {
    Organisation {
        ods_code,
        name,
        kind,
        parent,
    }
}

pub const REGIONS: &[Organisation] = &[
    organisation("Y59", "NHS England South East", Kind::Region, None),
    organisation(
        "Y63",
        "NHS England North East and Yorkshire",
        Kind::Region,
        None,
    ),
    organisation("Y60", "NHS England Midlands", Kind::Region, None),
    organisation("Y56", "NHS England London", Kind::Region, None),
];

pub const ICBS: &[Organisation] = &[
    organisation("QXU", "NHS Surrey Heartlands ICB", Kind::Icb, Some("Y59")),
    organisation("QWO", "NHS West Yorkshire ICB", Kind::Icb, Some("Y63")),
    organisation(
        "QWU",
        "NHS Coventry and Warwickshire ICB",
        Kind::Icb,
        Some("Y60"),
    ),
    organisation(
        "QOC",
        "NHS Shropshire, Telford and Wrekin ICB",
        Kind::Icb,
        Some("Y60"),
    ),
    organisation("QMF", "NHS North East London ICB", Kind::Icb, Some("Y56")),
];

/// The five trusts of the partnership.
pub const PROGRAMME_TRUSTS: &[Organisation] = &[
    organisation(
        "RTP",
        "Surrey and Sussex Healthcare NHS Trust",
        Kind::Trust,
        Some("QXU"),
    ),
    organisation(
        "RR8",
        "The Leeds Teaching Hospitals NHS Trust",
        Kind::Trust,
        Some("QWO"),
    ),
    organisation(
        "RKB",
        "University Hospitals Coventry and Warwickshire NHS Trust",
        Kind::Trust,
        Some("QWU"),
    ),
    organisation(
        "RXW",
        "The Shrewsbury and Telford Hospital NHS Trust",
        Kind::Trust,
        Some("QOC"),
    ),
    organisation(
        "RF4",
        "Barking, Havering and Redbridge University Hospitals NHS Trust",
        Kind::Trust,
        Some("QMF"),
    ),
];

/// The other acute trusts linked to West Yorkshire ICB, so that its overview has neighbours
/// for Leeds.
pub const OTHER_WEST_YORKSHIRE_TRUSTS: &[Organisation] = &[
    organisation(
        "RCF",
        "Airedale NHS Foundation Trust",
        Kind::FoundationTrust,
        Some("QWO"),
    ),
    organisation(
        "RAE",
        "Bradford Teaching Hospitals NHS Foundation Trust",
        Kind::FoundationTrust,
        Some("QWO"),
    ),
    organisation(
        "RWY",
        "Calderdale and Huddersfield NHS Foundation Trust",
        Kind::FoundationTrust,
        Some("QWO"),
    ),
    organisation(
        "RCD",
        "Harrogate and District NHS Foundation Trust",
        Kind::FoundationTrust,
        Some("QWO"),
    ),
    organisation(
        "RXF",
        "Mid Yorkshire Teaching NHS Trust",
        Kind::Trust,
        Some("QWO"),
    ),
];

/// The regulator on the guiding board. NHS Improvement (now part of NHS England) is given a
/// placeholder code here: "NHSI" is NOT a real ODS code, only a key inside this demo.
pub const REGULATORS: &[Organisation] = &[organisation(
    "NHSI",
    "NHS Improvement (demo placeholder code)",
    Kind::Regulator,
    None,
)];

pub struct Programme {
    pub name: &'static str,
    pub description: &'static str,
    pub starts_on: &'static str,
    pub ends_on: &'static str,
    /// Every trust joined when the partnership started.
    pub trusts_joined_on: &'static str,
}

pub const PROGRAMME: Programme = Programme {
    name: "NHS–Virginia Mason Institute partnership",
    description: "Five NHS trusts (SASH, LTHT, UHCW, SATH and BHRUT) working with the Virginia \
                  Mason Institute to build a sustainable culture of continuous improvement and \
                  to derive lessons for the wider NHS. Planned for five years; it ended a year \
                  late because of Covid-19.",
    starts_on: "2015-07-01",
    ends_on: "2021-06-30",
    trusts_joined_on: "2015-07-01",
};

/// A seat on the Transformation Guiding Board; `key` names it in request ids.
pub struct BoardSeat {
    pub key: &'static str,
    pub ods_code: &'static str,
    pub person_name: &'static str,
    pub role: Seat,
}

pub const BOARD: &[BoardSeat] = &[
    BoardSeat {
        key: "RTP-ceo",
        ods_code: "RTP",
        person_name: "Chief Executive, SASH",
        role: Seat::ChiefExecutive,
    },
    BoardSeat {
        key: "RR8-ceo",
        ods_code: "RR8",
        person_name: "Chief Executive, LTHT",
        role: Seat::ChiefExecutive,
    },
    BoardSeat {
        key: "RKB-ceo",
        ods_code: "RKB",
        person_name: "Chief Executive, UHCW",
        role: Seat::ChiefExecutive,
    },
    BoardSeat {
        key: "RXW-ceo",
        ods_code: "RXW",
        person_name: "Chief Executive, SATH",
        role: Seat::ChiefExecutive,
    },
    BoardSeat {
        key: "RF4-ceo",
        ods_code: "RF4",
        person_name: "Chief Executive, BHRUT",
        role: Seat::ChiefExecutive,
    },
    BoardSeat {
        key: "NHSI-1",
        ods_code: "NHSI",
        person_name: "NHS Improvement representative (seat 1)",
        role: Seat::Regulator,
    },
    BoardSeat {
        key: "NHSI-2",
        ods_code: "NHSI",
        person_name: "NHS Improvement representative (seat 2)",
        role: Seat::Regulator,
    },
];

pub struct Compact {
    pub vision: &'static str,
    pub behaviours: &'static [&'static str],
    pub responsibilities: &'static [&'static str],
    pub adopted_on: &'static str,
}

/// The first version of the board's compact, drawn from what the evaluation says the board
/// agreed; the wording is the demo's. Every board seat signs it.
pub const COMPACT: Compact = Compact {
    vision: "Together, build a sustainable culture of continuous improvement in our five \
             trusts, and share what we learn with the wider NHS.",
    behaviours: &[
        "Put collective progress before the preservation of our own organisations",
        "Coach and learn from each other rather than criticise",
        "Speak with honesty and trust at this table, including when things go badly",
    ],
    responsibilities: &[
        "Attend the monthly board for the whole day",
        "Show the same commitment to training that we expect of other leaders",
        "Remove the barriers that stop staff improving their own work",
    ],
    adopted_on: "2016-01-15",
};

pub struct Meeting {
    pub held_on: &'static str,
    pub notes: &'static str,
}

/// SAMPLE: monthly meetings in early 2016, each reviewing the compact.
pub const MEETINGS: &[Meeting] = &[
    Meeting {
        held_on: "2016-02-17",
        notes: "SAMPLE: compact reviewed; value-stream choices shared by each trust",
    },
    Meeting {
        held_on: "2016-03-16",
        notes: "SAMPLE: compact reviewed; first workshop report-outs",
    },
    Meeting {
        held_on: "2016-04-20",
        notes: "SAMPLE: compact reviewed; leadership-training progress",
    },
    Meeting {
        held_on: "2016-05-18",
        notes: "SAMPLE: compact reviewed; regulators and trusts on balancing compliance and improvement",
    },
];

/// A SAMPLE CQC rating: overall, then safe, effective, caring, responsive, well-led.
pub struct CqcRating {
    pub ods_code: &'static str,
    pub published_on: &'static str,
    pub overall: Rating,
    pub safe: Rating,
    pub effective: Rating,
    pub caring: Rating,
    pub responsive: Rating,
    pub well_led: Rating,
}

const fn rating(
    ods_code: &'static str,
    published_on: &'static str,
    [overall, safe, effective, caring, responsive, well_led]: [Rating; 6],
) -> CqcRating {
    CqcRating {
        ods_code,
        published_on,
        overall,
        safe,
        effective,
        caring,
        responsive,
        well_led,
    }
}

/// SAMPLE ratings, two per trust. The first of each programme trust is "Requires improvement"
/// or "Inadequate", as the evaluation says of 2015; three programme trusts then improve and
/// two (SATH, BHRUT, which stood improvement down for compliance) do not.
pub const CQC_RATINGS: &[CqcRating] = &[
    rating("RTP", "2015-06-18", [RI, RI, G, G, RI, RI]),
    rating("RTP", "2019-02-14", [O, G, O, O, G, O]),
    rating("RR8", "2015-07-02", [RI, RI, G, G, RI, G]),
    rating("RR8", "2018-05-10", [G, RI, G, G, G, G]),
    rating("RKB", "2015-04-09", [RI, RI, G, G, RI, RI]),
    rating("RKB", "2019-03-21", [G, RI, G, G, G, G]),
    rating("RXW", "2015-10-15", [RI, RI, RI, G, RI, RI]),
    rating("RXW", "2018-11-29", [I, I, RI, G, RI, I]),
    rating("RF4", "2015-03-12", [I, I, RI, RI, I, I]),
    rating("RF4", "2019-07-04", [RI, RI, RI, G, RI, G]),
    rating("RCF", "2016-03-09", [RI, RI, G, G, RI, RI]),
    rating("RCF", "2019-06-20", [G, RI, G, G, G, G]),
    rating("RAE", "2016-06-08", [RI, RI, G, G, RI, RI]),
    rating("RAE", "2018-12-13", [G, RI, G, G, G, G]),
    rating("RWY", "2016-09-14", [RI, RI, RI, G, RI, RI]),
    rating("RWY", "2018-10-04", [G, RI, G, G, RI, G]),
    rating("RCD", "2016-05-12", [G, RI, G, G, G, G]),
    rating("RCD", "2019-05-30", [G, G, G, G, G, G]),
    rating("RXF", "2016-08-03", [RI, RI, RI, G, RI, RI]),
    rating("RXF", "2019-01-24", [RI, RI, G, G, RI, RI]),
];

/// A SAMPLE executive appointment, and the departure when it ended. `person_name` is a role
/// label: the demo names no real person.
pub struct Executive {
    pub key: &'static str,
    pub ods_code: &'static str,
    pub role: ExecRole,
    pub person_name: &'static str,
    pub started_on: &'static str,
    pub departure: Option<Departure>,
}

pub struct Departure {
    pub left_on: &'static str,
    pub reason: &'static str,
}

/// SAMPLE leadership histories: stable chief executives at SASH, LTHT and UHCW; turnover at
/// SATH and BHRUT, as the evaluation describes.
pub const EXECUTIVES: &[Executive] = &[
    Executive {
        key: "RTP-ceo",
        ods_code: "RTP",
        role: ExecRole::ChiefExecutive,
        person_name: "Chief Executive (sample)",
        started_on: "2013-02-01",
        departure: None,
    },
    Executive {
        key: "RR8-ceo",
        ods_code: "RR8",
        role: ExecRole::ChiefExecutive,
        person_name: "Chief Executive (sample)",
        started_on: "2013-03-01",
        departure: None,
    },
    Executive {
        key: "RKB-ceo",
        ods_code: "RKB",
        role: ExecRole::ChiefExecutive,
        person_name: "Chief Executive (sample)",
        started_on: "2010-08-01",
        departure: None,
    },
    Executive {
        key: "RXW-ceo-1",
        ods_code: "RXW",
        role: ExecRole::ChiefExecutive,
        person_name: "Chief Executive (sample, first)",
        started_on: "2014-06-01",
        departure: Some(Departure {
            left_on: "2018-09-30",
            reason: "Left the trust (sample)",
        }),
    },
    Executive {
        key: "RXW-ceo-2",
        ods_code: "RXW",
        role: ExecRole::ChiefExecutive,
        person_name: "Chief Executive (sample, second)",
        started_on: "2018-10-01",
        departure: Some(Departure {
            left_on: "2020-12-31",
            reason: "Left the trust (sample)",
        }),
    },
    Executive {
        key: "RXW-md",
        ods_code: "RXW",
        role: ExecRole::MedicalDirector,
        person_name: "Medical Director (sample)",
        started_on: "2016-01-04",
        departure: Some(Departure {
            left_on: "2019-11-30",
            reason: "Left the trust (sample)",
        }),
    },
    Executive {
        key: "RF4-ceo",
        ods_code: "RF4",
        role: ExecRole::ChiefExecutive,
        person_name: "Chief Executive (sample)",
        started_on: "2015-04-01",
        departure: Some(Departure {
            left_on: "2020-03-31",
            reason: "Left the trust (sample)",
        }),
    },
    Executive {
        key: "RF4-fd",
        ods_code: "RF4",
        role: ExecRole::FinanceDirector,
        person_name: "Finance Director (sample)",
        started_on: "2016-09-01",
        departure: Some(Departure {
            left_on: "2019-09-30",
            reason: "Left the trust (sample)",
        }),
    },
];

/// A SAMPLE value stream, and what later happened to it.
pub struct ValueStream {
    pub key: &'static str,
    pub ods_code: &'static str,
    pub name: &'static str,
    pub pathway: &'static str,
    pub sponsor: &'static str,
    pub lead: &'static str,
    pub origin: Origin,
    pub outcome_measures: &'static [&'static str],
    pub status: Status,
    pub later: Later,
}

pub enum Later {
    Unchanged,
    /// A narrower definition, with the reason kept beside it.
    Revised {
        name: &'static str,
        pathway: &'static str,
        outcome_measures: &'static [&'static str],
        rationale: &'static str,
    },
    StatusChanged(Status),
    Closed {
        closed_on: &'static str,
        reason: &'static str,
    },
}

/// SAMPLE value streams. The evaluation says three trusts chose top-down and two bottom-up;
/// which is which here is the demo's choice.
pub const VALUE_STREAMS: &[ValueStream] = &[
    ValueStream {
        key: "RTP-discharge",
        ods_code: "RTP",
        name: "Discharge (sample)",
        pathway: "Discharge",
        sponsor: "Chief Operating Officer (sample)",
        lead: "Discharge improvement lead (sample)",
        origin: Origin::TopDown,
        outcome_measures: &["Length of stay", "Discharges before noon (%)"],
        status: Status::Active,
        later: Later::StatusChanged(Status::Sustaining),
    },
    ValueStream {
        key: "RTP-emergency",
        ods_code: "RTP",
        name: "Emergency department flow (sample)",
        pathway: "Emergency care",
        sponsor: "Medical Director (sample)",
        lead: "Emergency care improvement lead (sample)",
        origin: Origin::TopDown,
        outcome_measures: &["Time in department", "Patients seen within four hours (%)"],
        status: Status::Active,
        later: Later::Unchanged,
    },
    ValueStream {
        key: "RR8-outpatients",
        ods_code: "RR8",
        name: "Outpatients (sample)",
        pathway: "Outpatients",
        sponsor: "Chief Operating Officer (sample)",
        lead: "Outpatients improvement lead (sample)",
        origin: Origin::TopDown,
        outcome_measures: &[
            "Waiting time to first appointment",
            "Clinic letters sent within 7 days (%)",
        ],
        status: Status::Active,
        later: Later::Revised {
            name: "Outpatient follow-up (sample)",
            pathway: "Outpatients: follow-up appointments",
            outcome_measures: &[
                "Follow-ups booked within target (%)",
                "Clinic letters sent within 7 days (%)",
            ],
            rationale: "SAMPLE: the first scope (all outpatients) proved too broad to improve \
                        through workshops; narrowed to follow-up appointments, where most \
                        waste was found.",
        },
    },
    ValueStream {
        key: "RR8-pathology",
        ods_code: "RR8",
        name: "Pathology turnaround (sample)",
        pathway: "Pathology",
        sponsor: "Medical Director (sample)",
        lead: "Pathology improvement lead (sample)",
        origin: Origin::TopDown,
        outcome_measures: &["Sample-to-result time"],
        status: Status::Proposed,
        later: Later::Unchanged,
    },
    ValueStream {
        key: "RKB-theatres",
        ods_code: "RKB",
        name: "Theatres (sample)",
        pathway: "Theatres",
        sponsor: "Chief Operating Officer (sample)",
        lead: "Theatres improvement lead (sample)",
        origin: Origin::TopDown,
        outcome_measures: &["Theatre start-time errors", "On-the-day cancellations"],
        status: Status::Active,
        later: Later::Unchanged,
    },
    ValueStream {
        key: "RKB-imaging",
        ods_code: "RKB",
        name: "Imaging (sample)",
        pathway: "Diagnostic imaging",
        sponsor: "Director of Improvement (sample)",
        lead: "Imaging improvement lead (sample)",
        origin: Origin::TopDown,
        outcome_measures: &["Request-to-report time"],
        status: Status::Active,
        later: Later::Unchanged,
    },
    ValueStream {
        key: "RXW-sepsis",
        ods_code: "RXW",
        name: "Sepsis (sample)",
        pathway: "Sepsis care",
        sponsor: "Director of Nursing (sample)",
        lead: "Sepsis improvement lead (sample)",
        origin: Origin::BottomUp,
        outcome_measures: &["Antibiotics within one hour (%)"],
        status: Status::Active,
        later: Later::Unchanged,
    },
    ValueStream {
        key: "RXW-ward-discharge",
        ods_code: "RXW",
        name: "Ward discharge (sample)",
        pathway: "Discharge",
        sponsor: "Chief Operating Officer (sample)",
        lead: "Ward discharge improvement lead (sample)",
        origin: Origin::BottomUp,
        outcome_measures: &["Length of stay"],
        status: Status::Active,
        later: Later::Closed {
            closed_on: "2018-12-31",
            reason: "SAMPLE: improvement activity stood down to focus on regulatory compliance",
        },
    },
    ValueStream {
        key: "RF4-emergency",
        ods_code: "RF4",
        name: "Emergency department (sample)",
        pathway: "Emergency care",
        sponsor: "Chief Operating Officer (sample)",
        lead: "Emergency care improvement lead (sample)",
        origin: Origin::BottomUp,
        outcome_measures: &["Time in department", "Handover delays"],
        status: Status::Active,
        later: Later::Unchanged,
    },
    ValueStream {
        key: "RF4-outpatient-booking",
        ods_code: "RF4",
        name: "Outpatient booking (sample)",
        pathway: "Outpatients",
        sponsor: "Director of Improvement (sample)",
        lead: "Outpatient booking improvement lead (sample)",
        origin: Origin::BottomUp,
        outcome_measures: &["Booking errors"],
        status: Status::Proposed,
        later: Later::Unchanged,
    },
];

pub struct TrainingCohort {
    pub course: &'static str,
    pub name: &'static str,
    pub starts_on: &'static str,
    pub ends_on: &'static str,
}

pub const TRAINING_COHORT: TrainingCohort = TrainingCohort {
    course: "Leadership for continuous improvement",
    name: "Programme leaders 2016-2017 (sample cohort)",
    starts_on: "2016-03-01",
    ends_on: "2017-03-31",
};

/// SAMPLE participation per trust: 1,060 participants in all, 680 of 800 respondents (85%)
/// valued the training, as the evaluation reports for the programme as a whole.
pub struct Participation {
    pub ods_code: &'static str,
    pub participants: u32,
    pub completed: u32,
    pub survey_respondents: u32,
    pub valued: u32,
}

pub const PARTICIPATION: &[Participation] = &[
    Participation {
        ods_code: "RTP",
        participants: 230,
        completed: 215,
        survey_respondents: 180,
        valued: 156,
    },
    Participation {
        ods_code: "RR8",
        participants: 260,
        completed: 238,
        survey_respondents: 200,
        valued: 168,
    },
    Participation {
        ods_code: "RKB",
        participants: 220,
        completed: 205,
        survey_respondents: 170,
        valued: 148,
    },
    Participation {
        ods_code: "RXW",
        participants: 180,
        completed: 150,
        survey_respondents: 130,
        valued: 108,
    },
    Participation {
        ods_code: "RF4",
        participants: 170,
        completed: 140,
        survey_respondents: 120,
        valued: 100,
    },
];

/// The programme overview is shown as of the partnership's last day, so that it reads as the
/// programme stood then (before ICBs existed, hence no ICB column values).
pub const PROGRAMME_OVERVIEW_AS_OF: &str = PROGRAMME.ends_on;

/// The ICS whose overview the demo prints after the programme's.
pub const ICS: &str = "QWO";
