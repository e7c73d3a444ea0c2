//! Feeding the SYNTHETIC workshop programme of [`crate::workshops`] through the workshops
//! service, and waiting for the programme's outcomes to show it.
//!
//! Each workshop's commands go in order (charter, schedule, held, report-out, follow-ups,
//! close), but different workshops are loaded side by side: one after another, ~1,800 round
//! trips would make the demo slow for no reason.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use chrono::NaiveDate;
use ics_board_pack::outcomes::{find_kind, kind_label};
use ics_board_pack::text::checkpoint_days;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{CommandResult, Date, MetricValue, WorkshopRoles};
use ics_proto::reporting::v1::{GetOutcomesRequest, Outcomes, Scope};
use ics_proto::streams::{self, created_id};
use ics_proto::workshops::v1 as api;
use tokio::task::JoinSet;
use tonic::{Code, Response, Status};

use crate::workshops::{Fate, HEADLINE, PlannedWorkshop};
use crate::{POLL_INTERVAL, Reporting, Workshops, request, step_failed};

/// Workshops loaded at the same time.
const IN_FLIGHT: usize = 16;

/// What loading one trust's workshops did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrustLoad {
    pub ods_code: &'static str,
    pub workshops: usize,
    pub written: usize,
    pub replayed: usize,
    /// Follow-ups the service had already recorded as missed (see [`missed_by_service`]).
    pub missed_by_service: usize,
}

#[derive(Debug, Default)]
struct Commands {
    written: usize,
    replayed: usize,
    missed_by_service: usize,
}

/// The workshops service records a follow-up as missed by itself once its due date has passed,
/// and then refuses a measurement. Every demo follow-up is long overdue, so the service's
/// periodic scan can get there between the report-out and the demo's measurement; the demo
/// then keeps the service's record rather than failing. Only sustainment figures change: the
/// headline counts and reductions come from the report-outs.
fn missed_by_service(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && status.message().contains("was missed")
}

impl Commands {
    fn settle(
        &mut self,
        workshop: &PlannedWorkshop,
        step: &str,
        reply: Result<Response<CommandResult>, Status>,
    ) -> anyhow::Result<CommandResult> {
        let result = reply
            .map_err(|status| {
                step_failed(
                    status,
                    &format!("SYNTHETIC workshop {} {step}", workshop.key),
                )
            })?
            .into_inner();
        if result.replayed {
            self.replayed += 1;
        } else {
            self.written += 1;
        }
        Ok(result)
    }
}

fn day(date: NaiveDate) -> Option<Date> {
    Some(from_naive(date))
}

fn value(metric_id: &str, value: f64) -> Vec<MetricValue> {
    vec![MetricValue {
        metric_id: metric_id.to_owned(),
        value,
    }]
}

/// How long a charter waits for the workshops service to learn of its value stream.
const REFERENCES_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One workshop's commands, in lifecycle order; each has its own deterministic request id.
async fn load_one(
    mut client: Workshops,
    workshop: PlannedWorkshop,
    value_stream_id: String,
) -> anyhow::Result<(&'static str, Commands)> {
    let mut commands = Commands::default();
    let key = |step: &str| request(&format!("workshop-{}-{step}", workshop.key));
    let metric_id = workshop.metric.metric_id.clone();

    let charter = api::CharterWorkshopRequest {
        options: key("charter"),
        ods_code: workshop.ods_code.to_owned(),
        value_stream_id,
        kind: workshop.kind as i32,
        title: workshop.title.clone(),
        roles: Some(WorkshopRoles {
            sponsor: workshop.sponsor.to_owned(),
            process_owner: workshop.process_owner.clone(),
            workshop_lead: workshop.workshop_lead.clone(),
            team_lead: workshop.team_lead.clone(),
            team_size: workshop.team_size,
        }),
        preparation_starts_on: day(workshop.preparation_starts_on),
        target_sheet: vec![workshop.metric.clone()],
    };
    // The workshops service learns of the value streams the demo just defined from the trusts
    // service's events, a moment later: until then it answers NOT_FOUND, and a refused command
    // does not use up its request id, so the same charter is simply asked again.
    let deadline = tokio::time::Instant::now() + REFERENCES_WAIT;
    let reply = loop {
        let reply = client.charter_workshop(charter.clone()).await;
        match &reply {
            Err(status)
                if status.code() == tonic::Code::NotFound
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => break reply,
        }
    };
    let chartered = commands.settle(&workshop, "charter", reply)?;
    let workshop_id = created_id(&chartered, streams::WORKSHOP)?;

    let reply = client
        .schedule_workshop(api::ScheduleWorkshopRequest {
            options: key("schedule"),
            workshop_id: workshop_id.clone(),
            starts_on: day(workshop.starts_on),
            ends_on: day(workshop.ends_on),
            duration_override_reason: String::new(),
        })
        .await;
    commands.settle(&workshop, "schedule", reply)?;

    let (after, follow_ups, closed_on) = match &workshop.fate {
        Fate::Cancelled {
            cancelled_on,
            reason,
        } => {
            let reply = client
                .cancel_workshop(api::CancelWorkshopRequest {
                    options: key("cancel"),
                    workshop_id,
                    cancelled_on: day(*cancelled_on),
                    reason: (*reason).to_owned(),
                })
                .await;
            commands.settle(&workshop, "cancel", reply)?;
            return Ok((workshop.ods_code, commands));
        }
        Fate::Completed {
            after,
            follow_ups,
            closed_on,
        } => (*after, follow_ups, *closed_on),
    };

    let reply = client
        .record_workshop_held(api::RecordWorkshopHeldRequest {
            options: key("held"),
            workshop_id: workshop_id.clone(),
            held_from: day(workshop.starts_on),
            held_to: day(workshop.ends_on),
        })
        .await;
    commands.settle(&workshop, "held", reply)?;

    // Improvement teams report out on the workshop's last day.
    let reply = client
        .deliver_report_out(api::DeliverReportOutRequest {
            options: key("report-out"),
            workshop_id: workshop_id.clone(),
            delivered_on: day(workshop.ends_on),
            after: value(&metric_id, after),
        })
        .await;
    commands.settle(&workshop, "report-out", reply)?;

    for follow_up in follow_ups {
        let days = checkpoint_days(follow_up.checkpoint as i32);
        let step = format!("follow-up-{days}");
        let reply = client
            .record_follow_up(api::RecordFollowUpRequest {
                options: key(&step),
                workshop_id: workshop_id.clone(),
                checkpoint: follow_up.checkpoint as i32,
                measured_on: day(follow_up.measured_on),
                values: value(&metric_id, follow_up.value),
            })
            .await;
        match reply {
            Err(status) if missed_by_service(&status) => commands.missed_by_service += 1,
            reply => {
                commands.settle(&workshop, &step, reply)?;
            }
        }
    }

    if let Some(closed_on) = closed_on {
        let reply = client
            .close_workshop(api::CloseWorkshopRequest {
                options: key("close"),
                workshop_id,
                closed_on: day(closed_on),
            })
            .await;
        commands.settle(&workshop, "close", reply)?;
    }
    Ok((workshop.ods_code, commands))
}

/// Loads every workshop, [`IN_FLIGHT`] at a time, and stops at the first failure (the
/// workshops still in flight are dropped; a re-run replays what was written and goes on).
/// Answers per trust, in the order the trusts first appear in `programme`.
pub async fn load(
    client: &Workshops,
    programme: Vec<PlannedWorkshop>,
    value_stream_ids: &HashMap<&'static str, String>,
) -> anyhow::Result<Vec<TrustLoad>> {
    let mut loads: Vec<TrustLoad> = Vec::new();
    for workshop in &programme {
        if !loads.iter().any(|load| load.ods_code == workshop.ods_code) {
            loads.push(TrustLoad {
                ods_code: workshop.ods_code,
                ..TrustLoad::default()
            });
        }
    }
    let mut record = |(ods_code, commands): (&'static str, Commands)| {
        if let Some(load) = loads.iter_mut().find(|load| load.ods_code == ods_code) {
            load.workshops += 1;
            load.written += commands.written;
            load.replayed += commands.replayed;
            load.missed_by_service += commands.missed_by_service;
        }
    };

    let mut in_flight = JoinSet::new();
    for workshop in programme {
        let value_stream_id = value_stream_ids
            .get(workshop.value_stream)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "demo data: SYNTHETIC workshop {} names value stream {}, which the demo did \
                     not define",
                    workshop.key,
                    workshop.value_stream
                )
            })?;
        while in_flight.len() >= IN_FLIGHT {
            if let Some(joined) = in_flight.join_next().await {
                record(joined.context("a workshop's loading task failed")??);
            }
        }
        in_flight.spawn(load_one(client.clone(), workshop, value_stream_id));
    }
    while let Some(joined) = in_flight.join_next().await {
        record(joined.context("a workshop's loading task failed")??);
    }
    Ok(loads)
}

/// What the outcomes' headline lacks: kinds with fewer workshops than the SYNTHETIC programme
/// holds.
pub fn outcomes_missing(outcomes: &Outcomes) -> Vec<String> {
    HEADLINE
        .iter()
        .filter_map(|headline| {
            let shown = find_kind(&outcomes.headline, headline.kind)
                .map(|outcome| outcome.workshops)
                .unwrap_or(0);
            let expected = u32::try_from(headline.workshops).unwrap_or(u32::MAX);
            (shown < expected).then(|| {
                format!(
                    "{}: {shown} workshops, expected {expected}",
                    kind_label(headline.kind as i32)
                )
            })
        })
        .collect()
}

/// The outcomes as they stood when the demo stopped waiting, and what they still lacked.
pub struct WaitedOutcomes {
    pub outcomes: Outcomes,
    pub missing: Vec<String>,
}

/// Projections are eventually consistent: ask again until the headline counts every workshop
/// or the deadline passes.
pub async fn wait_for_outcomes(
    reporting: &mut Reporting,
    scope: &Scope,
    as_of: Option<Date>,
    deadline: Instant,
) -> anyhow::Result<WaitedOutcomes> {
    let mut latest: Option<Outcomes> = None;
    let mut last_status: Option<Status> = None;
    loop {
        let reply = reporting
            .get_outcomes(GetOutcomesRequest {
                scope: Some(scope.clone()),
                as_of,
            })
            .await;
        match reply.map(tonic::Response::into_inner) {
            Ok(outcomes) => {
                let missing = outcomes_missing(&outcomes);
                if missing.is_empty() {
                    return Ok(WaitedOutcomes { outcomes, missing });
                }
                latest = Some(outcomes);
            }
            Err(status)
                if matches!(
                    status.code(),
                    Code::NotFound | Code::Unavailable | Code::DeadlineExceeded
                ) =>
            {
                last_status = Some(status);
            }
            Err(status) => {
                return Err(anyhow::Error::new(status).context("reading the workshop outcomes"));
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    match latest {
        Some(outcomes) => {
            let missing = outcomes_missing(&outcomes);
            Ok(WaitedOutcomes { outcomes, missing })
        }
        None => {
            let status = last_status.unwrap_or_else(|| Status::unavailable("no answer"));
            Err(anyhow::Error::new(status).context(
                "the reporting service gave no workshop outcomes before the demo stopped waiting",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workshops::programme;
    use ics_board_pack::fixtures::kind_outcome;
    use ics_proto::events::v1::MetricKind;
    use std::collections::HashSet;

    #[test]
    fn the_demo_waits_until_every_workshop_is_counted() {
        let mut outcomes = Outcomes {
            headline: vec![
                kind_outcome(MetricKind::ProcessTime, 82, 4871.0, 1851.0),
                kind_outcome(MetricKind::ErrorCount, 54, 3100.0, 1023.0),
                kind_outcome(MetricKind::ErrorRate, 90, 1850.0, 684.5),
            ],
            ..Outcomes::default()
        };
        assert!(outcomes_missing(&outcomes).is_empty());
        outcomes.headline[1].workshops = 50;
        outcomes.headline.pop();
        assert_eq!(
            outcomes_missing(&outcomes),
            vec![
                "total errors: 50 workshops, expected 54",
                "error rate: 0 workshops, expected 90"
            ]
        );
    }

    #[test]
    fn only_the_services_own_missed_record_is_tolerated() {
        assert!(missed_by_service(&Status::failed_precondition(
            "the 30-day follow-up of workshop w-1 was missed (due 2016-04-03)"
        )));
        assert!(!missed_by_service(&Status::failed_precondition(
            "the 30-day follow-up of workshop w-1 is already recorded"
        )));
        assert!(!missed_by_service(&Status::invalid_argument("was missed")));
    }

    #[test]
    fn request_ids_are_unique_deterministic_and_short_enough() {
        let mut ids = Vec::new();
        for workshop in programme() {
            let mut steps = vec!["charter".to_owned(), "schedule".to_owned()];
            match &workshop.fate {
                Fate::Cancelled { .. } => steps.push("cancel".to_owned()),
                Fate::Completed {
                    follow_ups,
                    closed_on,
                    ..
                } => {
                    steps.extend(["held".to_owned(), "report-out".to_owned()]);
                    steps.extend(follow_ups.iter().map(|follow_up| {
                        format!("follow-up-{}", checkpoint_days(follow_up.checkpoint as i32))
                    }));
                    if closed_on.is_some() {
                        steps.push("close".to_owned());
                    }
                }
            }
            for step in steps {
                let id = request(&format!("workshop-{}-{step}", workshop.key))
                    .map(|options| options.request_id)
                    .unwrap_or_default();
                assert!(id.starts_with("demo-v1-workshop-"), "{id}");
                assert!(id.len() <= 128, "{id}");
                ids.push(id);
            }
        }
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        assert!(ids.contains(&"demo-v1-workshop-RTP-001-charter".to_owned()));
        assert!(ids.contains(&"demo-v1-workshop-RF4-041-schedule".to_owned()));
        // About eight commands a workshop: worth loading side by side.
        assert!(ids.len() > 1_700, "{}", ids.len());
    }
}
