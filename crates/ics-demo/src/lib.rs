//! The demo: loads the SAMPLE data set of [`data`], the SYNTHETIC workshop programme of
//! [`workshops`] and the reference measures with SYNTHETIC monthly figures of [`measures`]
//! through the services' gRPC APIs, then waits until the reporting service shows them: the
//! programme overview, the West Yorkshire ICS overview, the programme's workshop outcomes and
//! the ICS's measure view ([`run`]). `icsctl demo` prints what it shows.
//!
//! Re-running is safe: every command carries a deterministic request id
//! (`demo-v1-register-RTP`), so the server answers a repeat with the first run's result instead
//! of writing again, and the ids the first run was given (programme, value streams, cohort)
//! come back the same. The server remembers request ids per principal, though: under other
//! credentials, naturally keyed commands (an ODS code, a rating date) fail with
//! FAILED_PRECONDITION "already …" and count as present, and the demo stops before it would
//! create a second programme (see [`Loader::cqc_ratings`]). Observations need no request id:
//! the same figures for a recorded period are left unchanged, so a re-run records none.

pub mod data;
pub mod measures;
mod workshop_loader;
pub mod workshops;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use chrono::NaiveDate;
use ics_board_pack::text::{rating_word, status_word};
use ics_client::BearerChannel;
use ics_proto::date::{from_naive, iso, to_naive};
use ics_proto::events::v1::{
    CommandOptions, CommandResult, CqcRating, CqcRatings, Date, ExecutiveRole,
    ValueStreamDefinition,
};
use ics_proto::metrics::v1::metrics_service_client::MetricsServiceClient;
use ics_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use ics_proto::reporting::v1::{GetOverviewRequest, MeasureView, Overview, Scope, scope};
use ics_proto::streams::{self, created_id};
use ics_proto::trusts::v1 as api;
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_proto::workshops::v1::workshops_service_client::WorkshopsServiceClient;
use tonic::{Code, Response, Status};

use data::{Later, Organisation};
pub use workshop_loader::WaitedOutcomes;

pub type Trusts = TrustsServiceClient<BearerChannel>;
pub type Workshops = WorkshopsServiceClient<BearerChannel>;
pub type Metrics = MetricsServiceClient<BearerChannel>;
pub type Reporting = ReportingServiceClient<BearerChannel>;

const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The services the demo loads through, and the addresses it names while it does.
pub struct Services {
    pub trusts: Trusts,
    pub trusts_url: String,
    pub workshops: Workshops,
    pub workshops_url: String,
    pub metrics: Metrics,
    pub metrics_url: String,
    pub reporting: Reporting,
}

/// How long the demo waits for the reporting service to show what it loaded.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For the two overviews together, and again for the measure view.
    pub overviews: Duration,
    /// For the workshop outcomes, which reach reporting through a second service's relay.
    pub outcomes: Duration,
}

/// What the reporting service showed once the demo stopped waiting.
pub struct Shown {
    /// As of [`data::PROGRAMME_OVERVIEW_AS_OF`], the partnership's last day.
    pub programme_overview: Waited,
    /// West Yorkshire's ([`data::ICS`]) today.
    pub ics_overview: Waited,
    /// The programme's, as of its last day.
    pub outcomes: WaitedOutcomes,
    /// West Yorkshire's today, and what it still lacked.
    pub measure_view: Option<MeasureView>,
    pub measures_missing: Vec<String>,
}

impl Shown {
    /// Fails, naming what is missing, unless every view showed everything the demo loaded.
    pub fn complete(&self, waits: &Waits) -> anyhow::Result<()> {
        for waited in [&self.programme_overview, &self.ics_overview] {
            if !waited.missing.is_empty() {
                anyhow::bail!(
                    "the reporting service did not show all of the demo data within {} s \
                     (projections are eventually consistent; run the demo again to re-check): {}",
                    waits.overviews.as_secs(),
                    waited.missing.join("; ")
                );
            }
        }
        if !self.outcomes.missing.is_empty() {
            anyhow::bail!(
                "the reporting service did not count every SYNTHETIC workshop within {} s \
                 (projections are eventually consistent; run the demo again to re-check): {}",
                waits.outcomes.as_secs(),
                self.outcomes.missing.join("; ")
            );
        }
        if !self.measures_missing.is_empty() {
            anyhow::bail!(
                "the reporting service did not show every SYNTHETIC measure series within {} s \
                 (projections are eventually consistent; run the demo again to re-check): {}",
                waits.overviews.as_secs(),
                self.measures_missing.join("; ")
            );
        }
        Ok(())
    }
}

/// Loads everything, telling `say` each step as it goes, then waits (within `waits`) for the
/// reporting service to show it and answers what it showed.
pub async fn run(
    services: Services,
    waits: &Waits,
    say: &mut dyn FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<Shown> {
    let Services {
        trusts,
        trusts_url,
        workshops: workshops_client,
        workshops_url,
        mut metrics,
        metrics_url,
        mut reporting,
    } = services;
    let mut loader = Loader {
        trusts,
        say,
        tally: Tally::default(),
    };
    loader.say(data::SAMPLE_NOTICE)?;
    loader.say(&format!(
        "Loading the demo data set through the trusts service at {trusts_url} …"
    ))?;
    loader.organisations().await?;
    loader.cqc_ratings().await?;
    let programme_id = loader.programme().await?;
    loader.board(&programme_id).await?;
    loader.executives().await?;
    let value_stream_ids = loader.value_streams().await?;
    loader.training(&programme_id).await?;

    loader.say(workshops::NOTICE)?;
    let programme = workshops::programme();
    loader.say(&format!(
        "Loading {} SYNTHETIC workshops through the workshops service at {workshops_url} …",
        programme.len()
    ))?;
    for load in workshop_loader::load(&workshops_client, programme, &value_stream_ids).await? {
        loader.tally.written += load.written;
        loader.tally.replayed += load.replayed;
        loader.tally.present += load.missed_by_service;
        let missed = match load.missed_by_service {
            0 => String::new(),
            1 => "; 1 follow-up the service had already recorded as missed".to_owned(),
            count => format!("; {count} follow-ups the service had already recorded as missed"),
        };
        loader.say(&format!(
            "  SYNTHETIC workshops at {}: {} ({} commands written, {} replayed{missed})",
            load.ods_code, load.workshops, load.written, load.replayed
        ))?;
    }
    let tally = &loader.tally;
    let loaded = format!(
        "Loaded: {} written, {} replayed from an earlier run, {} already present.",
        tally.written, tally.replayed, tally.present
    );
    loader.say(&loaded)?;

    loader.say(measures::NOTICE)?;
    loader.say(&format!(
        "Installing the reference measures and loading SYNTHETIC monthly figures through the \
         metrics service at {metrics_url} …"
    ))?;
    let installed = measures::install(&mut metrics).await?;
    loader.say(&format!(
        "  reference measures: {} ({} defined, {} already installed)",
        installed.measures, installed.defined, installed.present
    ))?;
    let loaded = measures::load(&mut metrics).await?;
    let waited = match loaded.retries {
        0 => String::new(),
        retries => format!(
            " (sent {} more time{} while the metrics service learnt of the trusts)",
            retries,
            if retries == 1 { "" } else { "s" }
        ),
    };
    loader.say(&format!(
        "  SYNTHETIC observations: {} series, {} observations: {} recorded, {} unchanged{waited}",
        loaded.series, loaded.observations, loaded.recorded, loaded.unchanged
    ))?;

    // One budget for both overviews: by the time the first is complete the second usually is.
    let deadline = Instant::now() + waits.overviews;
    let programme_as_of = date(data::PROGRAMME_OVERVIEW_AS_OF)?;
    let programme_trusts: Vec<&Organisation> = data::PROGRAMME_TRUSTS.iter().collect();
    let programme_overview = wait_for_overview(
        &mut reporting,
        &Scope {
            scope: Some(scope::Scope::ProgrammeId(programme_id.clone())),
        },
        Some(programme_as_of),
        &expectations(&programme_trusts, &programme_as_of, true)?,
        deadline,
    )
    .await?;

    let today = from_naive(chrono::Utc::now().date_naive());
    let ics_trusts: Vec<&Organisation> = data::PROGRAMME_TRUSTS
        .iter()
        .chain(data::OTHER_WEST_YORKSHIRE_TRUSTS)
        .filter(|trust| trust.parent == Some(data::ICS))
        .collect();
    let ics_overview = wait_for_overview(
        &mut reporting,
        &Scope {
            scope: Some(scope::Scope::IcsOdsCode(data::ICS.to_owned())),
        },
        None,
        &expectations(&ics_trusts, &today, false)?,
        deadline,
    )
    .await?;

    let outcomes = workshop_loader::wait_for_outcomes(
        &mut reporting,
        &Scope {
            scope: Some(scope::Scope::ProgrammeId(programme_id.clone())),
        },
        Some(programme_as_of),
        Instant::now() + waits.outcomes,
    )
    .await?;

    let (measure_view, measures_missing) =
        measures::wait_for_view(&mut reporting, Instant::now() + waits.overviews).await?;
    Ok(Shown {
        programme_overview,
        ics_overview,
        outcomes,
        measure_view,
        measures_missing,
    })
}

/// A date of the data set, written `YYYY-MM-DD`.
fn date(text: &str) -> anyhow::Result<Date> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(from_naive)
        .map_err(|_| anyhow!("demo data: '{text}' is not a YYYY-MM-DD calendar date"))
}

fn request(key: &str) -> Option<CommandOptions> {
    Some(CommandOptions {
        request_id: format!("{}-{key}", data::REQUEST_ID_PREFIX),
        expected_version: None,
    })
}

#[derive(Debug, Default)]
struct Tally {
    written: usize,
    replayed: usize,
    present: usize,
}

struct Loader<'a> {
    trusts: Trusts,
    /// Where each step is told.
    say: &'a mut dyn FnMut(&str) -> anyhow::Result<()>,
    tally: Tally,
}

/// A naturally keyed command (an ODS code, a date) that the server refuses as already done
/// when it comes under another request id. A reused request id with different content also
/// says "already", but that means the data set changed and must not be papered over.
fn already_done(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
        && status.message().contains("already")
        && !status.message().starts_with("request id")
}

fn step_failed(status: Status, what: &str) -> anyhow::Error {
    let hint = if status.message().starts_with("request id") {
        " — the database holds an earlier demo run with different data; use a fresh database"
    } else {
        ""
    };
    anyhow::Error::new(status).context(format!("demo step: {what}{hint}"))
}

impl Loader<'_> {
    fn say(&mut self, line: &str) -> anyhow::Result<()> {
        (self.say)(line)
    }

    /// Records a command's outcome; fails on any error.
    fn settle(
        &mut self,
        what: &str,
        reply: Result<Response<CommandResult>, Status>,
    ) -> anyhow::Result<CommandResult> {
        let result = reply
            .map_err(|status| step_failed(status, what))?
            .into_inner();
        let label = if result.replayed {
            self.tally.replayed += 1;
            "replayed"
        } else {
            self.tally.written += 1;
            "written"
        };
        self.say(&format!("  {label:<9} {what}"))?;
        Ok(result)
    }

    /// As [`settle`](Self::settle), but data that is already there counts as done.
    fn settle_or_present(
        &mut self,
        what: &str,
        reply: Result<Response<CommandResult>, Status>,
    ) -> anyhow::Result<()> {
        match reply {
            Err(status) if already_done(&status) => {
                self.tally.present += 1;
                self.say(&format!("  {:<9} {what} ({})", "present", status.message()))
            }
            reply => self.settle(what, reply).map(drop),
        }
    }

    async fn organisations(&mut self) -> anyhow::Result<()> {
        let groups = [
            data::REGIONS,
            data::REGULATORS,
            data::ICBS,
            data::PROGRAMME_TRUSTS,
            data::OTHER_WEST_YORKSHIRE_TRUSTS,
        ];
        for organisation in groups.into_iter().flatten() {
            let reply = self
                .trusts
                .register_organisation(api::RegisterOrganisationRequest {
                    options: request(&format!("register-{}", organisation.ods_code)),
                    ods_code: organisation.ods_code.to_owned(),
                    name: organisation.name.to_owned(),
                    kind: organisation.kind as i32,
                })
                .await;
            self.settle_or_present(
                &format!("register {} {}", organisation.ods_code, organisation.name),
                reply,
            )?;
        }
        let linked_from = date(data::LINKED_FROM)?;
        for organisation in groups.into_iter().flatten() {
            let Some(parent) = organisation.parent else {
                continue;
            };
            let what = format!(
                "link {} to {parent} from {}",
                organisation.ods_code,
                data::LINKED_FROM
            );
            let reply = self
                .trusts
                .link_organisation(api::LinkOrganisationRequest {
                    options: request(&format!("link-{}-{parent}", organisation.ods_code)),
                    ods_code: organisation.ods_code.to_owned(),
                    parent_ods_code: parent.to_owned(),
                    valid_from: Some(linked_from),
                })
                .await;
            match reply {
                // The refusal of a second open link does not say "already"; look instead.
                Err(status)
                    if status.code() == Code::FailedPrecondition
                        && self
                            .is_linked(organisation.ods_code, parent, &linked_from)
                            .await? =>
                {
                    self.tally.present += 1;
                    self.say(&format!("  {:<9} {what}", "present"))?;
                }
                reply => {
                    self.settle(&what, reply)?;
                }
            }
        }
        Ok(())
    }

    async fn is_linked(
        &mut self,
        ods_code: &str,
        parent: &str,
        valid_from: &Date,
    ) -> anyhow::Result<bool> {
        let organisation = self
            .trusts
            .get_organisation(api::GetOrganisationRequest {
                ods_code: ods_code.to_owned(),
                as_of: None,
            })
            .await?
            .into_inner();
        Ok(organisation.parents.iter().any(|link| {
            link.parent_ods_code == parent && link.valid_from.as_ref() == Some(valid_from)
        }))
    }

    async fn programme(&mut self) -> anyhow::Result<String> {
        let programme = &data::PROGRAMME;
        let reply = self
            .trusts
            .register_programme(api::RegisterProgrammeRequest {
                options: request("programme"),
                name: programme.name.to_owned(),
                description: programme.description.to_owned(),
                starts_on: Some(date(programme.starts_on)?),
                ends_on: Some(date(programme.ends_on)?),
            })
            .await;
        let result = self.settle(&format!("register programme {}", programme.name), reply)?;
        let programme_id = created_id(&result, streams::PROGRAMME)?;

        let joined_on = date(programme.trusts_joined_on)?;
        for trust in data::PROGRAMME_TRUSTS {
            let reply = self
                .trusts
                .join_programme(api::JoinProgrammeRequest {
                    options: request(&format!("join-{}", trust.ods_code)),
                    programme_id: programme_id.clone(),
                    ods_code: trust.ods_code.to_owned(),
                    joined_on: Some(joined_on),
                })
                .await;
            self.settle_or_present(
                &format!(
                    "{} joins the programme on {}",
                    trust.ods_code, programme.trusts_joined_on
                ),
                reply,
            )?;
        }
        Ok(programme_id)
    }

    async fn board(&mut self, programme_id: &str) -> anyhow::Result<()> {
        for seat in data::BOARD {
            let reply = self
                .trusts
                .add_board_member(api::AddBoardMemberRequest {
                    options: request(&format!("board-{}", seat.key)),
                    programme_id: programme_id.to_owned(),
                    ods_code: seat.ods_code.to_owned(),
                    person_name: seat.person_name.to_owned(),
                    role: seat.role as i32,
                })
                .await;
            self.settle_or_present(&format!("board member {}", seat.person_name), reply)?;
        }

        let compact = &data::COMPACT;
        let adopted_on = date(compact.adopted_on)?;
        let reply = self
            .trusts
            .adopt_compact(api::AdoptCompactRequest {
                options: request("compact-1"),
                programme_id: programme_id.to_owned(),
                vision: compact.vision.to_owned(),
                behaviours: to_strings(compact.behaviours),
                responsibilities: to_strings(compact.responsibilities),
                signatories: data::BOARD
                    .iter()
                    .map(|seat| seat.person_name.to_owned())
                    .collect(),
                adopted_on: Some(adopted_on),
            })
            .await;
        self.settle(&format!("compact adopted on {}", compact.adopted_on), reply)?;

        // Member ids and the compact's version are the server's; read them back. Filtering by
        // our own seats keeps the meeting requests identical on a re-run.
        let programme = self
            .trusts
            .get_programme(api::GetProgrammeRequest {
                programme_id: programme_id.to_owned(),
            })
            .await
            .map_err(|status| step_failed(status, "read the programme back"))?
            .into_inner();
        let attending: Vec<String> = programme
            .board_members
            .iter()
            .filter(|member| {
                data::BOARD.iter().any(|seat| {
                    seat.ods_code == member.ods_code && seat.person_name == member.person_name
                })
            })
            .map(|member| member.member_id.clone())
            .collect();
        let compact_version = programme
            .compacts
            .iter()
            .find(|adopted| {
                adopted.vision == compact.vision && adopted.adopted_on.as_ref() == Some(&adopted_on)
            })
            .map(|adopted| adopted.version)
            .context("the programme does not show the compact just adopted")?;

        for meeting in data::MEETINGS {
            let reply = self
                .trusts
                .record_board_meeting(api::RecordBoardMeetingRequest {
                    options: request(&format!("meeting-{}", meeting.held_on)),
                    programme_id: programme_id.to_owned(),
                    held_on: Some(date(meeting.held_on)?),
                    attending_member_ids: attending.clone(),
                    compact_version_reviewed: compact_version,
                    notes: meeting.notes.to_owned(),
                })
                .await;
            self.settle(&format!("board meeting on {}", meeting.held_on), reply)?;
        }
        Ok(())
    }

    /// Runs before anything the server gives a fresh id (programme, value streams, cohort,
    /// appointments), because it tells whether those would be made twice: when every SAMPLE
    /// rating is already there but none replays, an earlier run was made by another principal
    /// (request ids are remembered per principal) and its ids cannot be found again.
    async fn cqc_ratings(&mut self) -> anyhow::Result<()> {
        let present_before = self.tally.present;
        for rating in data::CQC_RATINGS {
            let number = |value: CqcRating| value as i32;
            let reply = self
                .trusts
                .publish_cqc_rating(api::PublishCqcRatingRequest {
                    options: request(&format!("cqc-{}-{}", rating.ods_code, rating.published_on)),
                    ods_code: rating.ods_code.to_owned(),
                    published_on: Some(date(rating.published_on)?),
                    ratings: Some(CqcRatings {
                        overall: number(rating.overall),
                        safe: number(rating.safe),
                        effective: number(rating.effective),
                        caring: number(rating.caring),
                        responsive: number(rating.responsive),
                        well_led: number(rating.well_led),
                    }),
                })
                .await;
            self.settle_or_present(
                &format!(
                    "SAMPLE CQC rating of {} published {}: {}",
                    rating.ods_code,
                    rating.published_on,
                    rating_word(number(rating.overall))
                ),
                reply,
            )?;
        }
        if self.tally.present - present_before == data::CQC_RATINGS.len() {
            anyhow::bail!(
                "the SAMPLE data set was already loaded by another principal (the server \
                 remembers request ids per principal), so going on would create a second \
                 programme, value streams and cohort; run the demo with the credentials of the \
                 first run (the same --token, or --token-secret with the same --as, or neither \
                 against a development-mode server), or against a fresh database"
            );
        }
        Ok(())
    }

    async fn executives(&mut self) -> anyhow::Result<()> {
        for executive in data::EXECUTIVES {
            let role = executive.role;
            let reply = self
                .trusts
                .appoint_executive(api::AppointExecutiveRequest {
                    options: request(&format!("appoint-{}", executive.key)),
                    ods_code: executive.ods_code.to_owned(),
                    role: role as i32,
                    person_name: executive.person_name.to_owned(),
                    started_on: Some(date(executive.started_on)?),
                })
                .await;
            self.settle(
                &format!(
                    "SAMPLE appointment at {}: {} from {}",
                    executive.ods_code, executive.person_name, executive.started_on
                ),
                reply,
            )?;
        }
        for executive in data::EXECUTIVES {
            let Some(departure) = &executive.departure else {
                continue;
            };
            let appointment_id = self
                .find_appointment(executive.ods_code, executive.role, executive.person_name)
                .await?;
            let reply = self
                .trusts
                .record_executive_departure(api::RecordExecutiveDepartureRequest {
                    options: request(&format!("depart-{}", executive.key)),
                    ods_code: executive.ods_code.to_owned(),
                    appointment_id,
                    left_on: Some(date(departure.left_on)?),
                    reason: departure.reason.to_owned(),
                })
                .await;
            self.settle_or_present(
                &format!(
                    "SAMPLE departure at {}: {} on {}",
                    executive.ods_code, executive.person_name, departure.left_on
                ),
                reply,
            )?;
        }
        Ok(())
    }

    /// The appointment id of an executive, found by what the data set knows about them.
    async fn find_appointment(
        &mut self,
        ods_code: &str,
        role: ExecutiveRole,
        person_name: &str,
    ) -> anyhow::Result<String> {
        let organisation = self
            .trusts
            .get_organisation(api::GetOrganisationRequest {
                ods_code: ods_code.to_owned(),
                as_of: None,
            })
            .await?
            .into_inner();
        organisation
            .executives
            .iter()
            .find(|executive| executive.role == role as i32 && executive.person_name == person_name)
            .map(|executive| executive.appointment_id.clone())
            .with_context(|| format!("{ods_code} has no appointment of {person_name}"))
    }

    /// Answers each value stream's id by its key in [`data::VALUE_STREAMS`], for the workshops.
    async fn value_streams(&mut self) -> anyhow::Result<HashMap<&'static str, String>> {
        let mut ids = HashMap::new();
        for stream in data::VALUE_STREAMS {
            let definition = ValueStreamDefinition {
                name: stream.name.to_owned(),
                pathway: stream.pathway.to_owned(),
                sponsor: stream.sponsor.to_owned(),
                lead: stream.lead.to_owned(),
                origin: stream.origin as i32,
                outcome_measures: to_strings(stream.outcome_measures),
            };
            let reply = self
                .trusts
                .define_value_stream(api::DefineValueStreamRequest {
                    options: request(&format!("value-stream-{}", stream.key)),
                    ods_code: stream.ods_code.to_owned(),
                    definition: Some(definition.clone()),
                    status: stream.status as i32,
                })
                .await;
            let result = self.settle(
                &format!(
                    "SAMPLE value stream at {}: {} ({})",
                    stream.ods_code,
                    stream.name,
                    status_word(stream.status as i32)
                ),
                reply,
            )?;
            let value_stream_id = created_id(&result, streams::VALUE_STREAM)?;
            ids.insert(stream.key, value_stream_id.clone());

            match &stream.later {
                Later::Unchanged => {}
                Later::Revised {
                    name,
                    pathway,
                    outcome_measures,
                    rationale,
                } => {
                    let revised = ValueStreamDefinition {
                        name: (*name).to_owned(),
                        pathway: (*pathway).to_owned(),
                        outcome_measures: to_strings(outcome_measures),
                        ..definition
                    };
                    let reply = self
                        .trusts
                        .revise_value_stream(api::ReviseValueStreamRequest {
                            options: request(&format!("revise-{}", stream.key)),
                            value_stream_id,
                            definition: Some(revised),
                            rationale: (*rationale).to_owned(),
                        })
                        .await;
                    self.settle(&format!("  revised to {name}, with its rationale"), reply)?;
                }
                Later::StatusChanged(status) => {
                    let status = *status as i32;
                    let reply = self
                        .trusts
                        .change_value_stream_status(api::ChangeValueStreamStatusRequest {
                            options: request(&format!("status-{}", stream.key)),
                            value_stream_id,
                            status,
                        })
                        .await;
                    self.settle(&format!("  now {}", status_word(status)), reply)?;
                }
                Later::Closed { closed_on, reason } => {
                    let reply = self
                        .trusts
                        .close_value_stream(api::CloseValueStreamRequest {
                            options: request(&format!("close-{}", stream.key)),
                            value_stream_id,
                            closed_on: Some(date(closed_on)?),
                            reason: (*reason).to_owned(),
                        })
                        .await;
                    self.settle(&format!("  closed on {closed_on}"), reply)?;
                }
            }
        }
        Ok(ids)
    }

    async fn training(&mut self, programme_id: &str) -> anyhow::Result<()> {
        let cohort = &data::TRAINING_COHORT;
        let reply = self
            .trusts
            .register_training_cohort(api::RegisterTrainingCohortRequest {
                options: request("cohort"),
                programme_id: programme_id.to_owned(),
                course: cohort.course.to_owned(),
                name: cohort.name.to_owned(),
                starts_on: Some(date(cohort.starts_on)?),
                ends_on: Some(date(cohort.ends_on)?),
            })
            .await;
        let result = self.settle(&format!("training cohort {}", cohort.name), reply)?;
        let cohort_id = created_id(&result, streams::TRAINING_COHORT)?;

        for participation in data::PARTICIPATION {
            let reply = self
                .trusts
                .record_training_participation(api::RecordTrainingParticipationRequest {
                    options: request(&format!("training-{}", participation.ods_code)),
                    cohort_id: cohort_id.clone(),
                    ods_code: participation.ods_code.to_owned(),
                    participants: participation.participants,
                    completed: participation.completed,
                    survey_respondents: participation.survey_respondents,
                    valued: participation.valued,
                })
                .await;
            self.settle(
                &format!(
                    "SAMPLE training at {}: {} participants, {} of {} respondents valued it",
                    participation.ods_code,
                    participation.participants,
                    participation.valued,
                    participation.survey_respondents
                ),
                reply,
            )?;
        }
        Ok(())
    }
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// What an overview must show before the demo trusts it has caught up with what was loaded.
#[derive(Debug, PartialEq)]
struct Expectation {
    ods_code: &'static str,
    /// The latest SAMPLE rating published on or before the overview's date.
    rated_on: Option<Date>,
    /// Training is loaded last, so seeing it means the trust's earlier events were applied.
    participants: Option<u32>,
}

fn expectations(
    trusts: &[&Organisation],
    as_of: &Date,
    with_training: bool,
) -> anyhow::Result<Vec<Expectation>> {
    let as_of = to_naive(as_of).context("the overview date is not a calendar date")?;
    trusts
        .iter()
        .map(|trust| {
            let mut rated_on: Option<NaiveDate> = None;
            for rating in data::CQC_RATINGS
                .iter()
                .filter(|rating| rating.ods_code == trust.ods_code)
            {
                let published_on = to_naive(&date(rating.published_on)?)
                    .context("demo data: not a calendar date")?;
                if published_on <= as_of && rated_on.is_none_or(|latest| published_on > latest) {
                    rated_on = Some(published_on);
                }
            }
            let participants = data::PARTICIPATION
                .iter()
                .find(|participation| participation.ods_code == trust.ods_code)
                .filter(|_| with_training)
                .map(|participation| participation.participants);
            Ok(Expectation {
                ods_code: trust.ods_code,
                rated_on: rated_on.map(from_naive),
                participants,
            })
        })
        .collect()
}

/// What the overview does not show yet, in words.
fn missing(overview: &Overview, expected: &[Expectation]) -> Vec<String> {
    let mut gaps = Vec::new();
    for expectation in expected {
        let Some(trust) = overview
            .trusts
            .iter()
            .find(|trust| trust.ods_code == expectation.ods_code)
        else {
            gaps.push(format!("{}: not listed", expectation.ods_code));
            continue;
        };
        let shown = trust
            .current_cqc
            .as_ref()
            .and_then(|record| record.published_on);
        if let Some(rated_on) = &expectation.rated_on
            && shown.as_ref() != Some(rated_on)
        {
            let shown = shown.as_ref().map(iso).unwrap_or_else(|| "none".to_owned());
            gaps.push(format!(
                "{}: current CQC rating from {shown}, expected {}",
                expectation.ods_code,
                iso(rated_on)
            ));
        }
        if let Some(participants) = expectation.participants {
            let shown = trust
                .training
                .map(|training| training.participants)
                .unwrap_or(0);
            if shown != participants {
                gaps.push(format!(
                    "{}: {shown} training participants, expected {participants}",
                    expectation.ods_code
                ));
            }
        }
    }
    gaps
}

/// An overview as it stood when the demo stopped waiting, and what it still lacked.
pub struct Waited {
    pub overview: Option<Overview>,
    pub missing: Vec<String>,
}

/// Projections are eventually consistent: ask again until the overview shows what was loaded
/// or the deadline passes.
async fn wait_for_overview(
    reporting: &mut Reporting,
    scope: &Scope,
    as_of: Option<Date>,
    expected: &[Expectation],
    deadline: Instant,
) -> anyhow::Result<Waited> {
    let mut latest: Option<Overview> = None;
    let mut last_status: Option<Status> = None;
    loop {
        let reply = reporting
            .get_overview(GetOverviewRequest {
                scope: Some(scope.clone()),
                as_of,
            })
            .await;
        match reply.map(Response::into_inner) {
            Ok(overview) => {
                let gaps = missing(&overview, expected);
                if gaps.is_empty() {
                    return Ok(Waited {
                        overview: Some(overview),
                        missing: gaps,
                    });
                }
                latest = Some(overview);
            }
            // The projection may not know the scope yet, or the service may be starting.
            Err(status)
                if matches!(
                    status.code(),
                    Code::NotFound | Code::Unavailable | Code::DeadlineExceeded
                ) =>
            {
                last_status = Some(status);
            }
            Err(status) => {
                return Err(anyhow::Error::new(status).context("reading the overview"));
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    match latest {
        Some(overview) => {
            let gaps = missing(&overview, expected);
            Ok(Waited {
                overview: Some(overview),
                missing: gaps,
            })
        }
        None => {
            let status = last_status.unwrap_or_else(|| Status::unavailable("no answer"));
            Err(anyhow::Error::new(status)
                .context("the reporting service gave no overview before the demo stopped waiting"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::ValueStreamOrigin;
    use ics_proto::reporting::v1::{CqcRatingRecord, TrainingParticipation, TrustSummary};
    use std::collections::HashSet;

    fn all_organisations() -> impl Iterator<Item = &'static Organisation> {
        [
            data::REGIONS,
            data::REGULATORS,
            data::ICBS,
            data::PROGRAMME_TRUSTS,
            data::OTHER_WEST_YORKSHIRE_TRUSTS,
        ]
        .into_iter()
        .flatten()
    }

    fn is_trust(ods_code: &str) -> bool {
        data::PROGRAMME_TRUSTS
            .iter()
            .chain(data::OTHER_WEST_YORKSHIRE_TRUSTS)
            .any(|trust| trust.ods_code == ods_code)
    }

    #[test]
    fn every_date_in_the_data_set_parses() {
        let mut dates = vec![
            data::LINKED_FROM,
            data::PROGRAMME.starts_on,
            data::PROGRAMME.ends_on,
            data::PROGRAMME.trusts_joined_on,
            data::COMPACT.adopted_on,
            data::TRAINING_COHORT.starts_on,
            data::TRAINING_COHORT.ends_on,
        ];
        dates.extend(data::MEETINGS.iter().map(|meeting| meeting.held_on));
        dates.extend(data::CQC_RATINGS.iter().map(|rating| rating.published_on));
        for executive in data::EXECUTIVES {
            dates.push(executive.started_on);
            if let Some(departure) = &executive.departure {
                dates.push(departure.left_on);
                assert!(
                    departure.left_on > executive.started_on,
                    "{}",
                    executive.key
                );
            }
        }
        for stream in data::VALUE_STREAMS {
            if let Later::Closed { closed_on, .. } = stream.later {
                dates.push(closed_on);
            }
        }
        for text in dates {
            assert!(date(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn every_reference_names_a_registered_organisation() {
        let codes: HashSet<&str> = all_organisations().map(|org| org.ods_code).collect();
        for organisation in all_organisations() {
            if let Some(parent) = organisation.parent {
                assert!(codes.contains(parent), "{parent}");
            }
        }
        assert!(data::BOARD.iter().all(|seat| codes.contains(seat.ods_code)));
        assert!(
            data::CQC_RATINGS
                .iter()
                .all(|rating| is_trust(rating.ods_code))
        );
        assert!(
            data::EXECUTIVES
                .iter()
                .all(|executive| is_trust(executive.ods_code))
        );
        assert!(
            data::VALUE_STREAMS
                .iter()
                .all(|stream| is_trust(stream.ods_code))
        );
        assert!(data::PARTICIPATION.iter().all(|row| is_trust(row.ods_code)));
    }

    #[test]
    fn request_ids_are_unique_and_short_enough() {
        let mut keys: Vec<String> = all_organisations()
            .map(|org| format!("register-{}", org.ods_code))
            .collect();
        keys.extend(data::BOARD.iter().map(|seat| format!("board-{}", seat.key)));
        keys.extend(
            data::CQC_RATINGS
                .iter()
                .map(|rating| format!("cqc-{}-{}", rating.ods_code, rating.published_on)),
        );
        keys.extend(
            data::EXECUTIVES
                .iter()
                .map(|executive| format!("appoint-{}", executive.key)),
        );
        keys.extend(
            data::VALUE_STREAMS
                .iter()
                .map(|stream| format!("value-stream-{}", stream.key)),
        );
        keys.extend(
            data::MEETINGS
                .iter()
                .map(|meeting| format!("meeting-{}", meeting.held_on)),
        );
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        for key in &keys {
            let id = request(key)
                .map(|options| options.request_id)
                .unwrap_or_default();
            assert!(id.len() <= 128, "{id}");
        }
    }

    #[test]
    fn every_trust_has_two_sample_ratings_and_the_programme_trusts_start_badly() {
        for trust in data::PROGRAMME_TRUSTS
            .iter()
            .chain(data::OTHER_WEST_YORKSHIRE_TRUSTS)
        {
            let ratings: Vec<_> = data::CQC_RATINGS
                .iter()
                .filter(|rating| rating.ods_code == trust.ods_code)
                .collect();
            assert_eq!(ratings.len(), 2, "{}", trust.ods_code);
        }
        for trust in data::PROGRAMME_TRUSTS {
            let first = data::CQC_RATINGS
                .iter()
                .filter(|rating| rating.ods_code == trust.ods_code)
                .min_by_key(|rating| rating.published_on)
                .expect("a rating");
            assert!(first.published_on.starts_with("2015"), "{}", trust.ods_code);
            assert!(matches!(
                first.overall,
                CqcRating::RequiresImprovement | CqcRating::Inadequate
            ));
        }
    }

    #[test]
    fn training_numbers_are_consistent_and_about_85_percent_valued() {
        let mut participants = 0;
        let mut respondents = 0;
        let mut valued = 0;
        for row in data::PARTICIPATION {
            assert!(row.completed <= row.participants, "{}", row.ods_code);
            assert!(
                row.survey_respondents <= row.participants,
                "{}",
                row.ods_code
            );
            assert!(row.valued <= row.survey_respondents, "{}", row.ods_code);
            participants += row.participants;
            respondents += row.survey_respondents;
            valued += row.valued;
        }
        assert!(participants >= 1000);
        let share = f64::from(valued) / f64::from(respondents);
        assert!((share - 0.85).abs() < 0.005, "{share}");
    }

    #[test]
    fn one_value_stream_is_revised_and_one_closed_and_origins_split_three_two() {
        let revised = data::VALUE_STREAMS
            .iter()
            .filter(|stream| matches!(stream.later, Later::Revised { .. }))
            .count();
        let closed = data::VALUE_STREAMS
            .iter()
            .filter(|stream| matches!(stream.later, Later::Closed { .. }))
            .count();
        assert_eq!((revised, closed), (1, 1));
        let top_down: HashSet<&str> = data::VALUE_STREAMS
            .iter()
            .filter(|stream| stream.origin == ValueStreamOrigin::TopDown)
            .map(|stream| stream.ods_code)
            .collect();
        assert_eq!(top_down.len(), 3);
        for trust in data::PROGRAMME_TRUSTS {
            let count = data::VALUE_STREAMS
                .iter()
                .filter(|stream| stream.ods_code == trust.ods_code)
                .count();
            assert!((2..=3).contains(&count), "{}", trust.ods_code);
        }
    }

    #[test]
    fn people_appear_only_as_roles() {
        let names = data::BOARD.iter().map(|seat| seat.person_name).chain(
            data::EXECUTIVES
                .iter()
                .map(|executive| executive.person_name),
        );
        for name in names {
            assert!(
                name.contains("Chief Executive")
                    || name.contains("Director")
                    || name.contains("representative"),
                "{name}"
            );
        }
    }

    fn summary(ods_code: &str, rated_on: Date, participants: u32) -> TrustSummary {
        TrustSummary {
            ods_code: ods_code.to_owned(),
            current_cqc: Some(CqcRatingRecord {
                published_on: Some(rated_on),
                ratings: None,
            }),
            training: Some(TrainingParticipation {
                participants,
                ..TrainingParticipation::default()
            }),
            ..TrustSummary::default()
        }
    }

    #[test]
    fn the_demo_waits_for_the_latest_rating_and_the_training() {
        let trusts: Vec<&Organisation> = data::PROGRAMME_TRUSTS.iter().collect();
        let as_of = date(data::PROGRAMME_OVERVIEW_AS_OF).expect("date");
        let expected = expectations(&trusts, &as_of, true).expect("expectations");
        let rtp = expected
            .iter()
            .find(|expectation| expectation.ods_code == "RTP")
            .expect("RTP");
        assert_eq!(rtp.rated_on, Some(date("2019-02-14").expect("date")));
        assert_eq!(rtp.participants, Some(230));

        let mut overview = Overview {
            trusts: expected
                .iter()
                .map(|expectation| {
                    summary(
                        expectation.ods_code,
                        expectation.rated_on.unwrap_or_default(),
                        expectation.participants.unwrap_or_default(),
                    )
                })
                .collect(),
            ..Overview::default()
        };
        assert!(missing(&overview, &expected).is_empty());

        overview.trusts[0] = summary("RTP", date("2015-06-18").expect("date"), 0);
        assert_eq!(
            missing(&overview, &expected),
            vec![
                "RTP: current CQC rating from 2015-06-18, expected 2019-02-14",
                "RTP: 0 training participants, expected 230"
            ]
        );
        overview.trusts.pop();
        assert_eq!(missing(&overview, &expected).len(), 3);
    }

    #[test]
    fn an_early_overview_date_expects_the_earlier_rating() {
        let trusts: Vec<&Organisation> = data::PROGRAMME_TRUSTS.iter().collect();
        let expected =
            expectations(&trusts, &date("2017-01-01").expect("date"), false).expect("ok");
        let rxw = expected
            .iter()
            .find(|expectation| expectation.ods_code == "RXW")
            .expect("RXW");
        assert_eq!(rxw.rated_on, Some(date("2015-10-15").expect("date")));
        assert_eq!(rxw.participants, None);
    }

    #[test]
    fn only_already_done_refusals_count_as_present() {
        assert!(already_done(&Status::failed_precondition(
            "organisation RTP is already registered"
        )));
        assert!(!already_done(&Status::failed_precondition(
            "request id demo-v1-register-RTP was already used for a different command"
        )));
        assert!(!already_done(&Status::invalid_argument("already")));
        assert!(!already_done(&Status::failed_precondition(
            "RTP still belongs to QXU (since 2022-07-01); unlink it first"
        )));
    }
}
