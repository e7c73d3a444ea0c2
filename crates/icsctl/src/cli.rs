//! The command tree. Every flag that a deployment would set once has an `ICS_*` variable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ics_auth::Principal;
use ics_proto::events::v1::{Date, MetricValue, TargetMetric};
use ics_spc::Direction;

use crate::args::{
    Checkpoint, ConflictRule, EventKind, ExecRole, Frequency, Kind, Origin, PartitionKind,
    PeerMethod, Rating, RuleSet, Scoring, Seat, Status, direction_parser, parse_date, parse_finite,
    parse_metric, parse_metric_value, parse_principal,
};

#[derive(Debug, Parser)]
#[command(
    name = "icsctl",
    version,
    about = "Command-line client of the ICS improvement-programme platform",
    long_about = "Command-line client of the ICS improvement-programme platform.\n\n\
                  Dates are written YYYY-MM-DD; enum values as kebab-case words \
                  (requires-improvement, foundation-trust, top-down…)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// URL of the trusts service.
    #[arg(
        long,
        global = true,
        env = "ICS_TRUSTS_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub trusts_url: String,

    /// URL of the workshops service.
    #[arg(
        long,
        global = true,
        env = "ICS_WORKSHOPS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub workshops_url: String,

    /// URL of the metrics service (measures, observations, SPC, peer groups).
    #[arg(
        long,
        alias = "metrics",
        global = true,
        env = "ICS_METRICS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub metrics_url: String,

    /// URL of the reporting service.
    #[arg(
        long,
        global = true,
        env = "ICS_REPORTING_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub reporting_url: String,

    /// Bearer token sent with every call; takes precedence over --token-secret.
    #[arg(long, global = true, env = "ICS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Signing secret to mint a short-lived token locally for --as.
    #[arg(long, global = true, env = "ICS_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// File holding the signing secret (a mounted secret), instead of --token-secret.
    #[arg(
        long,
        global = true,
        env = "ICS_TOKEN_SECRET_FILE",
        conflicts_with = "token_secret"
    )]
    pub token_secret_file: Option<std::path::PathBuf>,

    /// Principal of a locally minted token: operator, trust:<ODS>, board:ics:<ODS> or
    /// board:programme:<id> [default: operator].
    #[arg(
        long = "as",
        global = true,
        env = "ICS_AS",
        value_name = "PRINCIPAL",
        value_parser = parse_principal
    )]
    pub as_principal: Option<Principal>,

    #[command(flatten)]
    pub tls: ics_client::ClientTlsArgs,

    /// Issuer written into minted tokens.
    #[arg(long, global = true, env = "ICS_TOKEN_ISSUER", default_value = "ics")]
    pub token_issuer: String,

    /// Audience written into minted tokens.
    #[arg(
        long,
        global = true,
        env = "ICS_TOKEN_AUDIENCE",
        default_value = "ics-platform"
    )]
    pub token_audience: String,

    /// Idempotency key of the command [default: a fresh UUIDv7]; repeat it to retry safely.
    #[arg(long, global = true, value_name = "ID")]
    pub request_id: Option<String>,

    /// Fail with ABORTED unless the aggregate is at exactly this version (0: must not exist).
    #[arg(long, global = true, value_name = "VERSION")]
    pub expected_version: Option<u64>,

    /// How to print responses.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        env = "ICS_OUTPUT",
        default_value_t = OutputFormat::Text
    )]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// The response message in the protobuf JSON mapping.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    Trusts,
    Workshops,
    Metrics,
    Reporting,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Organisations (trusts, ICBs, regions, regulators) and their dated parent links.
    #[command(subcommand)]
    Org(OrgCommand),
    /// CQC ratings.
    #[command(subcommand)]
    Cqc(CqcCommand),
    /// Executive appointments and departures.
    #[command(subcommand)]
    Exec(ExecCommand),
    /// Value streams: patient pathways a trust chose to improve.
    #[command(subcommand)]
    ValueStream(ValueStreamCommand),
    /// Leadership-training cohorts and participation.
    #[command(subcommand)]
    Training(TrainingCommand),
    /// Improvement programmes, their trusts and guiding boards.
    #[command(subcommand)]
    Programme(ProgrammeCommand),
    /// Improvement events (RPIW, kaizen, 3P, value-stream analysis) from charter to close.
    #[command(subcommand)]
    Workshop(WorkshopCommand),
    /// Measure definitions: what is measured, which way is better, how SPC reads it.
    #[command(subcommand)]
    Measure(MeasureCommand),
    /// Observations of a series (a measure at an organisation): record, correct, ghost,
    /// partition, target.
    #[command(subcommand)]
    Observation(ObservationCommand),
    /// A series with its statistical process control (Making Data Count) analysis.
    #[command(subcommand)]
    Series(SeriesCommand),
    /// Groups of trusts that measures are compared across.
    #[command(subcommand)]
    PeerGroup(PeerGroupCommand),
    /// Bulk loads from files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Cross-trust views from the reporting service.
    #[command(subcommand)]
    Report(ReportCommand),
    /// A service's event log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Operator functions: re-publishing, dead letters, projection rebuilds.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load a SAMPLE data set (the NHS–Virginia Mason Institute partnership), a SYNTHETIC
    /// workshop programme, the reference measures and 36 months of SYNTHETIC measure figures,
    /// and show the programme and West Yorkshire ICS overviews, the programme's workshop
    /// outcomes and the ICS's measure view. Safe to re-run.
    ///
    /// The ratings, executives, value streams, meetings and training figures are invented
    /// SAMPLE data, not real performance data. The 231 workshops are SYNTHETIC: generated by a
    /// fixed formula so that they add up to the programme's published headline (82, 54 and 90
    /// workshops; 62% = 3,020 hours, 67%, 63%). Every command uses the demo's own request id
    /// (demo-v1-…), so --request-id and --expected-version do not apply; re-run it with the
    /// same credentials as the first time and the server replays the first run's results.
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Register an organisation under its ODS code.
    Register {
        /// ODS code, e.g. RTP.
        ods_code: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: Option<Kind>,
    },
    /// Change an organisation's name.
    Rename {
        ods_code: String,
        #[arg(long)]
        name: String,
    },
    /// Link an organisation to its parent (trust → ICB, ICB → region) from a date.
    Link {
        ods_code: String,
        /// ODS code of the parent.
        #[arg(long)]
        parent: String,
        /// First day of the link.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        from: Date,
    },
    /// End an organisation's link to its parent.
    Unlink {
        ods_code: String,
        #[arg(long)]
        parent: String,
        /// Last day on which the link held.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        to: Date,
    },
    /// Show one organisation with its links, CQC ratings and executives.
    Get { ods_code: String },
    /// List the organisations the caller may read, by ODS code.
    List {
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CqcCommand {
    /// Record a published CQC rating: overall and per key question.
    Publish(CqcPublishArgs),
}

#[derive(Debug, Args)]
pub struct CqcPublishArgs {
    /// ODS code of the trust.
    pub ods_code: String,
    /// The day the CQC published the report.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub published_on: Date,
    #[arg(long, value_enum)]
    pub overall: Option<Rating>,
    #[arg(long, value_enum)]
    pub safe: Option<Rating>,
    #[arg(long, value_enum)]
    pub effective: Option<Rating>,
    #[arg(long, value_enum)]
    pub caring: Option<Rating>,
    #[arg(long, value_enum)]
    pub responsive: Option<Rating>,
    #[arg(long, value_enum)]
    pub well_led: Option<Rating>,
}

#[derive(Debug, Subcommand)]
pub enum ExecCommand {
    /// Record an executive appointment.
    Appoint {
        /// ODS code of the organisation.
        ods_code: String,
        #[arg(long, value_enum)]
        role: Option<ExecRole>,
        #[arg(long)]
        person_name: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        started_on: Date,
    },
    /// Record that an appointee left (see `org get` for appointment ids).
    Depart {
        ods_code: String,
        #[arg(long, value_name = "ID")]
        appointment: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        left_on: Date,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct DefinitionArgs {
    #[arg(long)]
    pub name: Option<String>,
    /// The patient pathway, e.g. Discharge.
    #[arg(long)]
    pub pathway: Option<String>,
    #[arg(long)]
    pub sponsor: Option<String>,
    #[arg(long)]
    pub lead: Option<String>,
    #[arg(long, value_enum)]
    pub origin: Option<Origin>,
    /// An outcome measure; repeat for several.
    #[arg(long = "measure", value_name = "MEASURE")]
    pub measures: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ValueStreamCommand {
    /// Define a new value stream at a trust; prints its id.
    Define {
        /// ODS code of the trust.
        ods_code: String,
        #[command(flatten)]
        definition: DefinitionArgs,
        /// Initial status [server default: proposed].
        #[arg(long, value_enum)]
        status: Option<Status>,
    },
    /// Revise a value stream with a rationale; the earlier definition stays readable. Fields
    /// not given are kept from the current definition (--measure replaces the whole list).
    Revise {
        value_stream_id: String,
        #[command(flatten)]
        definition: DefinitionArgs,
        /// Why it changed.
        #[arg(long)]
        rationale: String,
    },
    /// Move a value stream to proposed, active or sustaining.
    Status {
        value_stream_id: String,
        #[arg(value_enum)]
        status: Status,
    },
    /// Close a value stream.
    Close {
        value_stream_id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        closed_on: Date,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Show a value stream with every revision.
    Get { value_stream_id: String },
    /// The value streams of the scope's trusts, by trust.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Only this trust's value streams.
        #[arg(long, value_name = "ODS")]
        trust: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrainingCommand {
    /// Register a leadership-training cohort; prints its id.
    Cohort {
        #[arg(long)]
        course: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        starts_on: Date,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        ends_on: Date,
        /// The programme the cohort belongs to.
        #[arg(long, value_name = "ID")]
        programme: Option<String>,
    },
    /// Record a trust's participation in a cohort.
    Participation {
        cohort_id: String,
        /// ODS code of the trust.
        ods_code: String,
        #[arg(long)]
        participants: u32,
        #[arg(long)]
        completed: u32,
        /// Participants who answered the survey.
        #[arg(long)]
        respondents: u32,
        /// Respondents who said the training was valuable.
        #[arg(long)]
        valued: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProgrammeCommand {
    /// Register an improvement programme; prints its id.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        starts_on: Date,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        ends_on: Option<Date>,
    },
    /// A trust joins a programme.
    Join {
        programme_id: String,
        ods_code: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        joined_on: Date,
    },
    /// Add a member to the programme's guiding board.
    BoardMember {
        programme_id: String,
        /// ODS code of the member's organisation.
        ods_code: String,
        #[arg(long)]
        person_name: String,
        #[arg(long, value_enum)]
        role: Option<Seat>,
    },
    /// Adopt a new version of the board's compact.
    Compact {
        programme_id: String,
        #[arg(long)]
        vision: String,
        /// Repeat for several.
        #[arg(long = "behaviour", value_name = "TEXT")]
        behaviours: Vec<String>,
        /// Repeat for several.
        #[arg(long = "responsibility", value_name = "TEXT")]
        responsibilities: Vec<String>,
        /// Repeat for several.
        #[arg(long = "signatory", value_name = "NAME")]
        signatories: Vec<String>,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        adopted_on: Date,
    },
    /// Record a guiding-board meeting.
    Meeting {
        programme_id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        held_on: Date,
        /// Member id of someone who attended; repeat for several.
        #[arg(long = "attending", value_name = "MEMBER_ID")]
        attending: Vec<String>,
        /// Compact version reviewed at the meeting.
        #[arg(long, value_name = "VERSION", default_value_t = 0)]
        compact_version: u32,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Show a programme with its trusts, board, compacts and meetings.
    Get { programme_id: String },
    /// The programmes the scope's trusts have joined (a programme scope: that programme).
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// The optional people of a workshop, by role.
#[derive(Debug, Args)]
pub struct RolesArgs {
    #[arg(long)]
    pub sponsor: Option<String>,
    #[arg(long)]
    pub process_owner: Option<String>,
    #[arg(long)]
    pub workshop_lead: Option<String>,
    #[arg(long)]
    pub team_lead: Option<String>,
    /// How many people are in the workshop team.
    #[arg(long)]
    pub team_size: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum WorkshopCommand {
    /// Charter an improvement event at a trust, with its target sheet; prints its id.
    Charter {
        /// ODS code of the trust.
        ods_code: String,
        /// A value stream of the same trust that is not closed.
        #[arg(long, value_name = "ID")]
        value_stream: String,
        #[arg(long)]
        title: String,
        /// [server default: rpiw]
        #[arg(long, value_enum)]
        kind: Option<EventKind>,
        #[command(flatten)]
        roles: RolesArgs,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        preparation_starts_on: Date,
        /// A target-sheet line; repeat for several:
        /// 'id=m1,name=Length of stay,kind=process-time,unit=hours,baseline=40,target=20'.
        /// Kinds: process-time, error-count, error-rate; units: minutes, hours, days (process
        /// time), count, percent [default: the kind's usual unit].
        #[arg(
            long = "metric",
            value_name = "SPEC",
            required = true,
            value_parser = parse_metric
        )]
        metrics: Vec<TargetMetric>,
    },
    /// Set the workshop days (normally 3–5).
    Schedule {
        workshop_id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        starts_on: Date,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        ends_on: Date,
        /// Why a workshop runs longer than the maximum (5 days unless configured).
        #[arg(long, value_name = "TEXT")]
        override_reason: Option<String>,
    },
    /// Record that the workshop was held [default: on the scheduled days].
    Held {
        workshop_id: String,
        /// First day it actually ran.
        #[arg(long, value_name = "DATE", value_parser = parse_date, requires = "to")]
        from: Option<Date>,
        /// Last day it actually ran.
        #[arg(long, value_name = "DATE", value_parser = parse_date, requires = "from")]
        to: Option<Date>,
    },
    /// Deliver the report-out: each metric's value right after the workshop.
    ReportOut {
        workshop_id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        delivered_on: Date,
        /// <metric id>=<value>, one per target-sheet metric: --after m1=12.5 m2=3.
        #[arg(
            long = "after",
            value_name = "ID=VALUE",
            required = true,
            num_args = 1..,
            value_parser = parse_metric_value
        )]
        after: Vec<MetricValue>,
    },
    /// Record a follow-up re-measurement 30, 60, 90 or 365 days after the workshop.
    FollowUp {
        workshop_id: String,
        #[arg(long, value_enum)]
        checkpoint: Checkpoint,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        measured_on: Date,
        /// <metric id>=<value>, one per target-sheet metric: --value m1=13 m2=2.
        #[arg(
            long = "value",
            value_name = "ID=VALUE",
            required = true,
            num_args = 1..,
            value_parser = parse_metric_value
        )]
        values: Vec<MetricValue>,
    },
    /// Cancel a workshop before its report-out.
    Cancel {
        workshop_id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        on: Date,
        #[arg(long)]
        reason: String,
    },
    /// Close a workshop after its follow-ups.
    Close {
        workshop_id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        on: Date,
    },
    /// Show a workshop with its target sheet, report-out and follow-ups.
    Get { workshop_id: String },
    /// List a trust's workshops, by workshop id.
    List {
        /// ODS code of the trust.
        ods_code: String,
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum MeasureCommand {
    /// Define a measure, or redefine it as a new revision (operators). The same definition
    /// again writes nothing.
    Define(MeasureDefineArgs),
    /// Show one measure's current definition.
    Get {
        /// Measure code, e.g. FFT_POSITIVE.
        code: String,
    },
    /// List every measure.
    List,
    /// Define the reference measures that ship with icsctl (Friends and Family Test, staff
    /// leaver rate, stability index, NHS Staff Survey themes, reference cost index). Each is
    /// sent with a fixed request id (reference-measure-<CODE>-v1), so running it again writes
    /// nothing; --request-id and --expected-version do not apply.
    InstallReference,
}

#[derive(Debug, Args)]
pub struct MeasureDefineArgs {
    /// Upper-case letters, digits and underscores, 2–40 characters, e.g. FFT_INPATIENT.
    pub code: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Display unit, e.g. '%', 'score 0-10'.
    #[arg(long, default_value = "")]
    pub unit: String,
    /// Which way is better.
    #[arg(long, value_parser = direction_parser())]
    pub direction: Direction,
    #[arg(long, value_enum)]
    pub scoring: Scoring,
    #[arg(long, value_enum)]
    pub frequency: Frequency,
    /// Default target of every series, on the stored scale (a proportion as 0–1).
    #[arg(long, value_parser = parse_finite)]
    pub target: Option<f64>,
    #[arg(long, value_enum, default_value_t = RuleSet::MdcV2_5)]
    pub rule_set: RuleSet,
    /// Which classification wins when a point triggers both an improvement and a concern rule.
    #[arg(long, value_enum, default_value_t = ConflictRule::Improvement)]
    pub conflict_rule: ConflictRule,
    /// Proportions and rates are shown multiplied by this (100 for a percentage) [server
    /// default: 1].
    #[arg(long, value_parser = parse_finite)]
    pub display_scale: Option<f64>,
}

/// One series: a measure at an organisation, optionally for one of its value streams.
#[derive(Debug, Clone, Args)]
pub struct SeriesArgs {
    /// ODS code of the organisation, e.g. RR8.
    #[arg(long, value_name = "ODS")]
    pub ods: String,
    /// Measure code, e.g. FFT_POSITIVE.
    #[arg(long, value_name = "CODE")]
    pub measure: String,
    /// One of the organisation's value streams [default: the organisation as a whole].
    #[arg(long, value_name = "ID")]
    pub value_stream: Option<String>,
}

#[derive(Debug, Args)]
pub struct ObservationArgs {
    #[command(flatten)]
    pub series: SeriesArgs,
    /// First day of the period (the observation's key within the series).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub period_start: Date,
    /// Last day of the period.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub period_end: Date,
    /// The value; a proportion as a fraction 0–1. May be left out for a proportion or rate
    /// when --numerator and --denominator are given.
    #[arg(long, value_parser = parse_finite)]
    pub value: Option<f64>,
    #[arg(long, value_parser = parse_finite, requires = "denominator")]
    pub numerator: Option<f64>,
    #[arg(long, value_parser = parse_finite, requires = "numerator")]
    pub denominator: Option<f64>,
    /// Where the figure came from (an extract, a file).
    #[arg(long, default_value = "")]
    pub source: String,
}

#[derive(Debug, Subcommand)]
pub enum ObservationCommand {
    /// Record one observation. The same observation again is a no-op; a different value for
    /// a recorded period is refused (use correct).
    Record(ObservationArgs),
    /// Supersede a recorded observation; the earlier value stays in the log.
    Correct {
        #[command(flatten)]
        observation: ObservationArgs,
        /// Why it changed.
        #[arg(long)]
        reason: String,
    },
    /// Ghost a point: shown on charts, left out of every calculation (--restore undoes it).
    Ghost {
        #[command(flatten)]
        series: SeriesArgs,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        period_start: Date,
        /// Restore a ghosted point instead.
        #[arg(long)]
        restore: bool,
        #[arg(long)]
        reason: String,
    },
    /// Start a new partition (new centre line and limits) at a period, or take one off.
    MarkPartition {
        #[command(flatten)]
        series: SeriesArgs,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        period_start: Date,
        #[arg(long, value_enum)]
        kind: PartitionKind,
        /// For a baseline: how many points fix its limits (at least 2).
        #[arg(long, value_name = "N", required_if_eq("kind", "baseline"))]
        baseline_points: Option<u32>,
        /// Take the marker off instead.
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        reason: String,
    },
    /// Set a series' own target, or clear it to fall back to the measure's.
    SetTarget(SetTargetArgs),
}

#[derive(Debug, Args)]
pub struct SetTargetArgs {
    #[command(flatten)]
    pub series: SeriesArgs,
    /// On the stored scale (a proportion as 0–1).
    #[arg(long, value_parser = parse_finite, required_unless_present = "clear")]
    pub target: Option<f64>,
    /// Fall back to the measure's target.
    #[arg(long, conflicts_with = "target")]
    pub clear: bool,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum SeriesCommand {
    /// A series point by point: value, mean, process limits, classification, rules; its
    /// variation and assurance icons and rule set on top.
    Get(SeriesArgs),
    /// The series with observations of the scope's trusts, by measure and trust.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Only this trust's series.
        #[arg(long, value_name = "ODS")]
        trust: Option<String>,
        /// Only this measure's series.
        #[arg(long, value_name = "CODE")]
        measure: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeerGroupCommand {
    /// Define a peer group (operators); prints its id. Defining an existing id with other
    /// content makes a new version.
    Define {
        /// The group's UUID [default: a new one].
        #[arg(long, value_name = "UUID")]
        id: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        method: PeerMethod,
        /// The ICB (ics-members) or NHS region (region) whose trusts form the group.
        #[arg(long, value_name = "ODS")]
        anchor: Option<String>,
        /// A trust of a custom group; repeat, or list several after one flag.
        #[arg(long = "member", value_name = "ODS", num_args = 1..)]
        members: Vec<String>,
    },
    /// Show a peer group's current version.
    Get { peer_group_id: String },
    /// The peer groups an ICS's board may compare against.
    List {
        /// ODS code of the ICB.
        #[arg(long, value_name = "ODS")]
        ics: String,
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Load observations from a long-format CSV, one observation a row:
    /// ods_code,measure_code,period_start,period_end,value,numerator,denominator[,value_stream_id]
    /// (dates YYYY-MM-DD; value may be empty when numerator and denominator are given; the
    /// last three columns may be left off). A wrong header or a file that is not UTF-8 is
    /// refused whole; bad rows are listed by line and not sent; the good rows are streamed
    /// in chunks on one call. Exits 1 if any row was rejected, after the good rows landed.
    Observations(ImportObservationsArgs),
}

#[derive(Debug, Args)]
pub struct ImportObservationsArgs {
    /// The CSV file.
    #[arg(value_name = "FILE.csv")]
    pub file: std::path::PathBuf,
    /// Observations per message.
    #[arg(long, value_name = "N", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub chunk: u32,
    /// Where the figures came from, written into every observation [default: the file name].
    #[arg(long, value_name = "TEXT")]
    pub source: Option<String>,
    /// Read and check the file, report, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How much of a list to read: every page, or one page from a token.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Entries asked for per page (the server gives at most 1000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    /// Print only the page after this token (a previous page's `next page:` token) and the
    /// token of the page after it. Without it every page is read and printed.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// Which cross-trust view to read: one ICS or one programme.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// ODS code of an ICB, e.g. QWO.
    #[arg(long, value_name = "ODS")]
    pub ics: Option<String>,
    /// Id of a programme.
    #[arg(long, value_name = "ID")]
    pub programme: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Member trusts with CQC rating, value streams, leadership stability and training.
    Overview {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Membership as it held on this date [default: today].
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        as_of: Option<Date>,
    },
    /// Every CQC rating of one trust in the scope, oldest first.
    CqcHistory {
        #[command(flatten)]
        scope: ScopeArgs,
        /// ODS code of the trust.
        #[arg(long, value_name = "ODS")]
        trust: String,
        /// The trust must belong to the scope on this date [default: today].
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        as_of: Option<Date>,
    },
    /// Print a line for every change to the overview until Ctrl-C.
    Watch {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Workshop outcomes by improvement kind (the headline table), then per trust.
    Outcomes {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Membership as it held on this date [default: today].
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        as_of: Option<Date>,
    },
    /// Print a line for every change to the workshop outcomes until Ctrl-C.
    WatchOutcomes {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Write the board pack the reporting service renders — the workshop outcomes and an ICS's
    /// measures — as one self-contained HTML page with charts that opens offline, or as CSV
    /// files of one table each.
    BoardPack {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long, value_enum)]
        format: BoardPackFormat,
        /// Where to write (files are replaced if they exist): the HTML page, or with --table
        /// the one CSV file; for CSV without --table a directory (created if missing) that
        /// receives every table under the name the server gives it.
        #[arg(long, value_name = "PATH")]
        out: std::path::PathBuf,
        /// CSV only: the one table to write, `outcomes` or (for an ICS) `measures`.
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
        /// Membership as it held on this date [default: today].
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        as_of: Option<Date>,
    },
    /// Each member trust × measure of an ICS: latest value, points, variation and assurance
    /// icons, peer band.
    Measures {
        /// ODS code of the ICB, e.g. QWO.
        #[arg(long, value_name = "ODS")]
        ics: String,
        /// Peer group the bands are read against [default: the ICS's member trusts].
        #[arg(long, value_name = "ID")]
        peer_group: Option<String>,
        /// Membership as it held on this date [default: today].
        #[arg(long, value_name = "DATE", value_parser = parse_date, conflicts_with = "watch")]
        as_of: Option<Date>,
        /// Print the view again after every change until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// SPC chart data of one series of a trust of the ICS.
    Series {
        /// ODS code of the ICB, e.g. QWO.
        #[arg(long, value_name = "ODS")]
        ics: String,
        #[command(flatten)]
        series: SeriesArgs,
    },
    /// Funnel plot of a proportion measure across a peer group for one period.
    Peers {
        /// ODS code of the ICB, e.g. QWO.
        #[arg(long, value_name = "ODS")]
        ics: String,
        /// Measure code, e.g. FFT_POSITIVE.
        #[arg(long, value_name = "CODE")]
        measure: String,
        /// [default: the ICS's member trusts]
        #[arg(long, value_name = "ID")]
        peer_group: Option<String>,
        /// Start of the period compared [default: the latest with data from two peers].
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        period: Option<Date>,
    },
    /// A trust's change between two periods against its peers' changes.
    PeerChange {
        /// ODS code of the ICB, e.g. QWO.
        #[arg(long, value_name = "ODS")]
        ics: String,
        /// Measure code, e.g. FFT_POSITIVE.
        #[arg(long, value_name = "CODE")]
        measure: String,
        /// ODS code of the trust judged.
        #[arg(long, value_name = "ODS")]
        ods: String,
        /// [default: the ICS's member trusts]
        #[arg(long, value_name = "ID")]
        peer_group: Option<String>,
        /// Start of the first period compared.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        from: Date,
        /// Start of the last period compared.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        to: Date,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoardPackFormat {
    /// One file per table: the outcomes (a row per scope, trust and value stream and
    /// improvement kind) and an ICS's measures (a row per trust × measure).
    Csv,
    /// One page with inline CSS and SVG charts, no external resources.
    Html,
}

impl From<BoardPackFormat> for ics_proto::reporting::v1::BoardPackFormat {
    fn from(format: BoardPackFormat) -> Self {
        match format {
            BoardPackFormat::Csv => ics_proto::reporting::v1::BoardPackFormat::Csv,
            BoardPackFormat::Html => ics_proto::reporting::v1::BoardPackFormat::Html,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print a service's events as JSON Lines, payloads decoded.
    Tail {
        #[arg(long, value_enum)]
        service: ServiceName,
        /// Global position to start from.
        #[arg(long, value_name = "N", default_value_t = 0)]
        from: u64,
        /// Keep printing new events until Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Re-publish a service's event log to JetStream from a global position.
    Republish {
        #[arg(long, value_enum)]
        service: ServiceName,
        #[arg(long, value_name = "N")]
        from: u64,
    },
    /// Messages a projection gave up on, from every service that runs projections.
    DeadLetters {
        /// Only this projection's.
        #[arg(long)]
        projection: Option<String>,
    },
    /// Drop a projection (of whichever service runs it) and replay it from the beginning; an
    /// unknown name is answered with the valid ones.
    Rebuild {
        #[arg(long)]
        projection: String,
    },
    /// Compare every service's event log with its stream and relay checkpoint, and every
    /// projection with the logs it reads; print each gap and exit 1 when there is one.
    Verify,
    /// The audit trail: refusals and administrative actions, newest first, with the call each
    /// happened in (every service's, merged, unless --service names one).
    Audit {
        #[arg(long, value_enum)]
        service: Option<ServiceName>,
        /// Records per service.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only records older than this id (the id column; needs --service).
        #[arg(long, value_name = "ID", requires = "service")]
        before: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed bearer token for the principal given with --as.
    Mint {
        /// The platform's signing secret [default: --token-secret or --token-secret-file].
        #[arg(long, hide_env_values = true)]
        secret: Option<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=24 * 366))]
        ttl_hours: u64,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds to wait for the reporting projections to show the loaded data.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub wait: u64,
    /// Seconds to wait for the programme's workshop outcomes to show every SYNTHETIC workshop.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub outcomes_wait: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(arguments: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["icsctl"];
        argv.extend_from_slice(arguments);
        Cli::try_parse_from(argv)
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cqc_ratings_are_kebab_case_words() {
        let cli = parse(&[
            "cqc",
            "publish",
            "RTP",
            "--published-on",
            "2019-02-14",
            "--overall",
            "outstanding",
            "--safe",
            "requires-improvement",
            "--well-led",
            "good",
        ])
        .expect("parses");
        let Command::Cqc(CqcCommand::Publish(publish)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(publish.overall, Some(Rating::Outstanding));
        assert_eq!(publish.safe, Some(Rating::RequiresImprovement));
        assert_eq!(publish.well_led, Some(Rating::Good));
        assert_eq!(publish.caring, None);
        assert_eq!(
            publish.published_on,
            Date {
                year: 2019,
                month: 2,
                day: 14
            }
        );
    }

    #[test]
    fn bad_dates_and_enum_words_are_usage_errors() {
        let bad_date = parse(&[
            "org",
            "link",
            "RTP",
            "--parent",
            "QXU",
            "--from",
            "2022-02-30",
        ])
        .expect_err("bad date");
        assert_eq!(bad_date.kind(), ErrorKind::ValueValidation);
        assert!(bad_date.to_string().contains("not a real calendar date"));
        assert_eq!(bad_date.exit_code(), 2);

        let bad_rating = parse(&[
            "cqc",
            "publish",
            "RTP",
            "--published-on",
            "2019-02-14",
            "--overall",
            "excellent",
        ])
        .expect_err("bad rating");
        assert_eq!(bad_rating.kind(), ErrorKind::InvalidValue);
        assert_eq!(bad_rating.exit_code(), 2);
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let cli = parse(&[
            "org",
            "get",
            "RTP",
            "--output",
            "json",
            "--as",
            "board:ics:QWO",
            "--request-id",
            "retry-1",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.request_id.as_deref(), Some("retry-1"));
        assert_eq!(
            cli.global.as_principal,
            Some(Principal::BoardReader {
                ics_ods_code: Some("QWO".to_owned()),
                programme_id: None
            })
        );
    }

    #[test]
    fn a_bad_principal_is_a_usage_error() {
        let error = parse(&["--as", "root", "org", "list"]).expect_err("bad principal");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("not a principal"));
    }

    #[test]
    fn report_scope_is_one_of_ics_or_programme() {
        assert!(parse(&["report", "overview", "--ics", "QWO"]).is_ok());
        assert!(parse(&["report", "overview"]).is_err());
        let both = parse(&["report", "overview", "--ics", "QWO", "--programme", "p"])
            .expect_err("both scopes");
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn repeated_flags_build_lists() {
        let cli = parse(&[
            "value-stream",
            "define",
            "RTP",
            "--name",
            "Timely discharge",
            "--origin",
            "top-down",
            "--measure",
            "Length of stay",
            "--measure",
            "Discharges before noon",
            "--status",
            "active",
        ])
        .expect("parses");
        let Command::ValueStream(ValueStreamCommand::Define {
            definition, status, ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(definition.origin, Some(Origin::TopDown));
        assert_eq!(definition.measures.len(), 2);
        assert_eq!(status, Some(Status::Active));
    }

    #[test]
    fn a_workshop_is_chartered_with_a_target_sheet() {
        let cli = parse(&[
            "workshop",
            "charter",
            "RTP",
            "--value-stream",
            "vs-1",
            "--title",
            "Faster discharge",
            "--kind",
            "3p",
            "--team-size",
            "8",
            "--preparation-starts-on",
            "2016-01-04",
            "--metric",
            "id=m1,name=Length of stay,kind=process-time,unit=hours,baseline=40,target=20",
            "--metric",
            "id=m2,name=Discharge summaries incomplete,kind=error-rate,baseline=30,target=10",
        ])
        .expect("parses");
        let Command::Workshop(WorkshopCommand::Charter {
            kind,
            roles,
            metrics,
            ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(kind, Some(EventKind::ThreeP));
        assert_eq!(roles.team_size, Some(8));
        assert_eq!(roles.sponsor, None);
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics[1].metric_id, "m2");

        let without_metric = parse(&[
            "workshop",
            "charter",
            "RTP",
            "--value-stream",
            "vs-1",
            "--title",
            "T",
            "--preparation-starts-on",
            "2016-01-04",
        ])
        .expect_err("a target sheet is required");
        assert_eq!(without_metric.kind(), ErrorKind::MissingRequiredArgument);

        let bad_metric = parse(&[
            "workshop",
            "charter",
            "RTP",
            "--value-stream",
            "vs-1",
            "--title",
            "T",
            "--preparation-starts-on",
            "2016-01-04",
            "--metric",
            "id=m1,name=LOS,kind=time,baseline=4,target=2",
        ])
        .expect_err("bad kind");
        assert_eq!(bad_metric.exit_code(), 2);
        assert!(bad_metric.to_string().contains("not a metric kind"));
    }

    #[test]
    fn measured_values_may_follow_one_flag_or_repeat_it() {
        for arguments in [
            &["--after", "m1=12.5", "m2=3"][..],
            &["--after", "m1=12.5", "--after", "m2=3"][..],
        ] {
            let mut argv = vec![
                "workshop",
                "report-out",
                "w-1",
                "--delivered-on",
                "2016-03-04",
            ];
            argv.extend_from_slice(arguments);
            let cli = parse(&argv).expect("parses");
            let Command::Workshop(WorkshopCommand::ReportOut {
                workshop_id, after, ..
            }) = cli.command
            else {
                panic!("wrong command");
            };
            assert_eq!(workshop_id, "w-1");
            let values: Vec<(String, f64)> = after
                .into_iter()
                .map(|value| (value.metric_id, value.value))
                .collect();
            assert_eq!(values, [("m1".to_owned(), 12.5), ("m2".to_owned(), 3.0)]);
        }
        let cli = parse(&[
            "workshop",
            "follow-up",
            "w-1",
            "--checkpoint",
            "365",
            "--measured-on",
            "2017-03-04",
            "--value",
            "m1=13",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Workshop(WorkshopCommand::FollowUp {
                checkpoint: Checkpoint::Day365,
                ..
            })
        ));
        assert!(
            parse(&[
                "workshop",
                "follow-up",
                "w-1",
                "--checkpoint",
                "45",
                "--measured-on",
                "2017-03-04",
                "--value",
                "m1=13",
            ])
            .is_err()
        );
    }

    #[test]
    fn held_days_are_both_given_or_neither() {
        assert!(parse(&["workshop", "held", "w-1"]).is_ok());
        assert!(
            parse(&[
                "workshop",
                "held",
                "w-1",
                "--from",
                "2016-02-29",
                "--to",
                "2016-03-03"
            ])
            .is_ok()
        );
        let half =
            parse(&["workshop", "held", "w-1", "--from", "2016-02-29"]).expect_err("--to missing");
        assert_eq!(half.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn board_packs_need_a_format_and_a_file() {
        let cli = parse(&[
            "report",
            "board-pack",
            "--programme",
            "p-1",
            "--format",
            "html",
            "--out",
            "pack.html",
            "--as-of",
            "2021-06-30",
        ])
        .expect("parses");
        let Command::Report(ReportCommand::BoardPack {
            format, out, table, ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(format, BoardPackFormat::Html);
        assert_eq!(out, std::path::PathBuf::from("pack.html"));
        assert_eq!(table, None);
        let cli = parse(&[
            "report",
            "board-pack",
            "--ics",
            "QWO",
            "--format",
            "csv",
            "--table",
            "measures",
            "--out",
            "measures.csv",
        ])
        .expect("parses");
        let Command::Report(ReportCommand::BoardPack { table, .. }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(table.as_deref(), Some("measures"));
        assert!(parse(&["report", "board-pack", "--ics", "QWO", "--format", "csv"]).is_err());
        assert!(parse(&["report", "outcomes", "--ics", "QWO"]).is_ok());
        assert!(parse(&["report", "watch-outcomes"]).is_err());
    }

    #[test]
    fn the_metrics_url_has_a_default_a_flag_and_an_alias() {
        let cli = parse(&["measure", "list"]).expect("parses");
        assert_eq!(cli.global.metrics_url, "http://127.0.0.1:50053");
        let cli = parse(&["measure", "list", "--metrics-url", "http://m:1"]).expect("parses");
        assert_eq!(cli.global.metrics_url, "http://m:1");
        let cli = parse(&["--metrics", "http://m:2", "measure", "list"]).expect("parses");
        assert_eq!(cli.global.metrics_url, "http://m:2");
    }

    #[test]
    fn measures_are_defined_with_mdc_v2_5_unless_told_otherwise() {
        let cli = parse(&[
            "measure",
            "define",
            "FFT_AE",
            "--name",
            "FFT A&E",
            "--direction",
            "increase",
            "--scoring",
            "proportion",
            "--frequency",
            "monthly",
            "--target",
            "0.9",
        ])
        .expect("parses");
        let Command::Measure(MeasureCommand::Define(define)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(define.direction, Direction::Increase);
        assert_eq!(define.rule_set, RuleSet::MdcV2_5);
        assert_eq!(define.conflict_rule, ConflictRule::Improvement);
        assert_eq!(define.target, Some(0.9));
        assert_eq!(define.display_scale, None);
        let dotted = parse(&[
            "measure",
            "define",
            "X1",
            "--name",
            "x",
            "--direction",
            "neither",
            "--scoring",
            "continuous",
            "--frequency",
            "annual",
            "--rule-set",
            "mdc-v2.5",
            "--target",
            "NaN",
        ])
        .expect_err("NaN is no target");
        assert_eq!(dotted.exit_code(), 2);
        let sideways = parse(&[
            "measure",
            "define",
            "X1",
            "--name",
            "x",
            "--direction",
            "sideways",
            "--scoring",
            "continuous",
            "--frequency",
            "annual",
        ])
        .expect_err("not a direction");
        assert_eq!(sideways.exit_code(), 2);
        assert!(sideways.to_string().contains("increase, decrease, neither"));
        assert!(parse(&["measure", "install-reference"]).is_ok());
    }

    #[test]
    fn observations_name_their_series_and_period() {
        let cli = parse(&[
            "observation",
            "record",
            "--ods",
            "RR8",
            "--measure",
            "FFT_POSITIVE",
            "--period-start",
            "2024-04-01",
            "--period-end",
            "2024-04-30",
            "--numerator",
            "912",
            "--denominator",
            "960",
        ])
        .expect("parses");
        let Command::Observation(ObservationCommand::Record(record)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(record.series.ods, "RR8");
        assert_eq!(record.value, None);
        assert_eq!(record.numerator, Some(912.0));
        let half = parse(&[
            "observation",
            "record",
            "--ods",
            "RR8",
            "--measure",
            "M",
            "--period-start",
            "2024-04-01",
            "--period-end",
            "2024-04-30",
            "--numerator",
            "912",
        ])
        .expect_err("--denominator missing");
        assert_eq!(half.kind(), ErrorKind::MissingRequiredArgument);

        let series = ["--ods", "RR8", "--measure", "M", "--reason", "r"];
        let with = |extra: &[&'static str]| {
            let mut argv = vec!["observation", "set-target"];
            argv.extend_from_slice(&series);
            argv.extend_from_slice(extra);
            parse(&argv)
        };
        assert!(with(&["--target", "0.9"]).is_ok());
        assert!(with(&["--clear"]).is_ok());
        assert!(with(&[]).is_err());
        assert!(with(&["--target", "0.9", "--clear"]).is_err());

        let mark = |extra: &[&'static str]| {
            let mut argv = vec![
                "observation",
                "mark-partition",
                "--period-start",
                "2024-04-01",
            ];
            argv.extend_from_slice(&series);
            argv.extend_from_slice(extra);
            parse(&argv)
        };
        assert!(mark(&["--kind", "recalculate-from"]).is_ok());
        assert!(mark(&["--kind", "baseline", "--baseline-points", "12"]).is_ok());
        assert!(mark(&["--kind", "baseline"]).is_err());
    }

    #[test]
    fn imports_default_to_chunks_of_5000() {
        let cli = parse(&["import", "observations", "data.csv"]).expect("parses");
        let Command::Import(ImportCommand::Observations(import)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(import.chunk, 5000);
        assert!(!import.dry_run);
        assert_eq!(import.source, None);
        assert!(parse(&["import", "observations", "d.csv", "--chunk", "0"]).is_err());
        assert!(
            parse(&[
                "import",
                "observations",
                "d.csv",
                "--chunk",
                "10",
                "--dry-run",
                "--source",
                "ESR extract"
            ])
            .is_ok()
        );
    }

    #[test]
    fn measure_reports_take_an_ics() {
        assert!(parse(&["report", "measures", "--ics", "QWO", "--watch"]).is_ok());
        assert!(parse(&["report", "measures"]).is_err());
        let both = parse(&[
            "report",
            "measures",
            "--ics",
            "QWO",
            "--watch",
            "--as-of",
            "2025-01-31",
        ])
        .expect_err("a watch has no as-of");
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        assert!(
            parse(&[
                "report",
                "series",
                "--ics",
                "QWO",
                "--measure",
                "M",
                "--ods",
                "RR8"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "report",
                "peers",
                "--ics",
                "QWO",
                "--measure",
                "M",
                "--period",
                "2024-04-01"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "report",
                "peer-change",
                "--ics",
                "QWO",
                "--measure",
                "M",
                "--ods",
                "RR8",
                "--from",
                "2023-04-01",
                "--to",
                "2024-04-01"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "peer-group",
                "define",
                "--name",
                "Acute peers",
                "--method",
                "custom",
                "--member",
                "RR8",
                "RAE",
                "--member",
                "RXF"
            ])
            .is_ok()
        );
    }

    #[test]
    fn the_organisation_and_workshop_lists_read_every_page_or_the_one_a_token_names() {
        let cli = parse(&["org", "list", "--kind", "icb"]).expect("parses");
        let Command::Org(OrgCommand::List { kind, page }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(kind, Some(Kind::Icb));
        assert_eq!((page.page_size, page.page_token), (100, None));
        let cli = parse(&[
            "workshop",
            "list",
            "RTP",
            "--page-size",
            "5",
            "--page-token",
            "abc",
        ])
        .expect("parses");
        let Command::Workshop(WorkshopCommand::List { ods_code, page }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(ods_code, "RTP");
        assert_eq!(
            (page.page_size, page.page_token.as_deref()),
            (5, Some("abc"))
        );
        assert!(parse(&["org", "list", "--page-size", "1001"]).is_err());
    }

    #[test]
    fn the_workshops_url_has_a_default_and_a_flag() {
        let cli = parse(&["workshop", "list", "RTP"]).expect("parses");
        assert!(cli.global.workshops_url.starts_with("http://"));
        let cli =
            parse(&["workshop", "get", "w-1", "--workshops-url", "http://w:1"]).expect("parses");
        assert_eq!(cli.global.workshops_url, "http://w:1");
    }
}
