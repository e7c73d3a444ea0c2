//! Commands and lookups of the workshops service.

use ics_proto::events::v1::{FollowUpCheckpoint, MetricValue, WorkshopKind, WorkshopRoles};
use ics_proto::streams;
use ics_proto::workshops::v1::{self as api, ListWorkshopsResponse, Workshop};

use crate::args::enum_number;
use crate::cli::{RolesArgs, WorkshopCommand};
use crate::commands::lookups;
use crate::commands::trusts::print_result;
use crate::connect::Context;
use crate::render::{
    self, Align, Table, checkpoint_days, date_text, follow_up_state_word, metric_kind_word,
    metric_unit_word, outln, workshop_kind_word, workshop_status_word,
};

fn roles_from(args: RolesArgs) -> WorkshopRoles {
    WorkshopRoles {
        sponsor: args.sponsor.unwrap_or_default(),
        process_owner: args.process_owner.unwrap_or_default(),
        workshop_lead: args.workshop_lead.unwrap_or_default(),
        team_lead: args.team_lead.unwrap_or_default(),
        team_size: args.team_size.unwrap_or(0),
    }
}

pub async fn workshop(context: &Context, command: WorkshopCommand) -> anyhow::Result<()> {
    let mut workshops = context.workshops().await?;
    let options = Some(context.options());
    let result = match command {
        WorkshopCommand::Charter {
            ods_code,
            value_stream,
            title,
            kind,
            roles,
            preparation_starts_on,
            metrics,
        } => {
            let result = workshops
                .charter_workshop(api::CharterWorkshopRequest {
                    options,
                    ods_code,
                    value_stream_id: value_stream,
                    kind: enum_number::<_, WorkshopKind>(kind),
                    title,
                    roles: Some(roles_from(roles)),
                    preparation_starts_on: Some(preparation_starts_on),
                    target_sheet: metrics,
                })
                .await?;
            return print_result(
                context,
                &result.into_inner(),
                Some(("workshop", streams::WORKSHOP)),
            );
        }
        WorkshopCommand::Schedule {
            workshop_id,
            starts_on,
            ends_on,
            override_reason,
        } => {
            workshops
                .schedule_workshop(api::ScheduleWorkshopRequest {
                    options,
                    workshop_id,
                    starts_on: Some(starts_on),
                    ends_on: Some(ends_on),
                    duration_override_reason: override_reason.unwrap_or_default(),
                })
                .await?
        }
        WorkshopCommand::Held {
            workshop_id,
            from,
            to,
        } => {
            workshops
                .record_workshop_held(api::RecordWorkshopHeldRequest {
                    options,
                    workshop_id,
                    held_from: from,
                    held_to: to,
                })
                .await?
        }
        WorkshopCommand::ReportOut {
            workshop_id,
            delivered_on,
            after,
        } => {
            workshops
                .deliver_report_out(api::DeliverReportOutRequest {
                    options,
                    workshop_id,
                    delivered_on: Some(delivered_on),
                    after,
                })
                .await?
        }
        WorkshopCommand::FollowUp {
            workshop_id,
            checkpoint,
            measured_on,
            values,
        } => {
            workshops
                .record_follow_up(api::RecordFollowUpRequest {
                    options,
                    workshop_id,
                    checkpoint: FollowUpCheckpoint::from(checkpoint) as i32,
                    measured_on: Some(measured_on),
                    values,
                })
                .await?
        }
        WorkshopCommand::Cancel {
            workshop_id,
            on,
            reason,
        } => {
            workshops
                .cancel_workshop(api::CancelWorkshopRequest {
                    options,
                    workshop_id,
                    cancelled_on: Some(on),
                    reason,
                })
                .await?
        }
        WorkshopCommand::Close { workshop_id, on } => {
            workshops
                .close_workshop(api::CloseWorkshopRequest {
                    options,
                    workshop_id,
                    closed_on: Some(on),
                })
                .await?
        }
        WorkshopCommand::Get { workshop_id } => {
            let workshop = workshops
                .get_workshop(api::GetWorkshopRequest { workshop_id })
                .await?
                .into_inner();
            if context.json() {
                return render::print_json(&workshop);
            }
            for line in workshop_lines(&workshop) {
                outln!("{line}")?;
            }
            return Ok(());
        }
        WorkshopCommand::List { ods_code, page } => {
            let (listed, next) = lookups::read_pages(page, |page_size, page_token| {
                let request = api::ListWorkshopsRequest {
                    ods_code: ods_code.clone(),
                    page_size,
                    page_token,
                };
                let mut workshops = workshops.clone();
                async move {
                    let page = workshops.list_workshops(request).await?.into_inner();
                    Ok((page.workshops, page.next_page_token))
                }
            })
            .await?;
            let list = ListWorkshopsResponse {
                workshops: listed,
                next_page_token: next.clone().unwrap_or_default(),
            };
            if context.json() {
                return render::print_json(&list);
            }
            for line in list_lines(&list) {
                outln!("{line}")?;
            }
            return lookups::print_next(next.as_deref());
        }
    };
    print_result(context, &result.into_inner(), None)
}

/// `40` rather than `40.0`, `12.5` as given: what the person typed.
fn number_text(number: f64) -> String {
    number.to_string()
}

fn values_text(values: &[MetricValue]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values
        .iter()
        .map(|value| format!("{}={}", value.metric_id, number_text(value.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn days_text(workshop: &Workshop) -> String {
    match (&workshop.starts_on, &workshop.ends_on) {
        (None, None) => "-".to_owned(),
        (starts_on, ends_on) => format!(
            "{} to {}",
            date_text(starts_on.as_ref()),
            date_text(ends_on.as_ref())
        ),
    }
}

/// A workshop as a heading, its roles and dates, the target sheet with the report-out values
/// beside the targets, and the follow-ups.
pub fn workshop_lines(workshop: &Workshop) -> Vec<String> {
    let roles = workshop.roles.clone().unwrap_or_default();
    let team = if roles.team_size == 0 {
        "-".to_owned()
    } else {
        roles.team_size.to_string()
    };
    let mut lines = vec![
        format!("workshop {}  {}", workshop.workshop_id, workshop.title),
        format!(
            "trust {}, value stream {}, kind {}, status {}, version {}",
            workshop.ods_code,
            workshop.value_stream_id,
            workshop_kind_word(workshop.kind),
            workshop_status_word(workshop.status),
            workshop.version
        ),
        format!(
            "sponsor {}; process owner {}; workshop lead {}; team lead {}; team size {team}",
            or_dash(&roles.sponsor),
            or_dash(&roles.process_owner),
            or_dash(&roles.workshop_lead),
            or_dash(&roles.team_lead),
        ),
        format!(
            "preparation from {}; workshop days {}",
            date_text(workshop.preparation_starts_on.as_ref()),
            days_text(workshop)
        ),
        String::new(),
    ];

    let mut sheet = Table::new(&[
        ("metric", Align::Left),
        ("name", Align::Left),
        ("kind", Align::Left),
        ("unit", Align::Left),
        ("baseline", Align::Right),
        ("target", Align::Right),
        ("after", Align::Right),
    ]);
    for metric in &workshop.target_sheet {
        let after = workshop
            .after
            .iter()
            .find(|value| value.metric_id == metric.metric_id)
            .map(|value| number_text(value.value))
            .unwrap_or_else(|| "-".to_owned());
        sheet.row(vec![
            metric.metric_id.clone(),
            metric.name.clone(),
            metric_kind_word(metric.kind),
            metric_unit_word(metric.unit),
            number_text(metric.baseline),
            number_text(metric.target),
            after,
        ]);
    }
    lines.extend(sheet.lines());

    if !workshop.follow_ups.is_empty() {
        lines.push(String::new());
        let mut follow_ups = Table::new(&[
            ("follow-up", Align::Right),
            ("due", Align::Left),
            ("state", Align::Left),
            ("measured", Align::Left),
            ("values", Align::Left),
            ("at or better than target", Align::Left),
        ]);
        for follow_up in &workshop.follow_ups {
            let sustained = if follow_up.sustained.is_empty() {
                "-".to_owned()
            } else {
                follow_up
                    .sustained
                    .iter()
                    .zip(&workshop.target_sheet)
                    .map(|(sustained, metric)| {
                        format!(
                            "{} {}",
                            metric.metric_id,
                            if *sustained { "yes" } else { "no" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            follow_ups.row(vec![
                format!("{} days", checkpoint_days(follow_up.checkpoint)),
                date_text(follow_up.due_on.as_ref()),
                follow_up_state_word(follow_up.state),
                date_text(follow_up.measured_on.as_ref()),
                values_text(&follow_up.values),
                sustained,
            ]);
        }
        lines.extend(follow_ups.lines());
    }
    lines
}

/// One row per workshop.
pub fn list_lines(list: &ListWorkshopsResponse) -> Vec<String> {
    let mut table = Table::new(&[
        ("workshop", Align::Left),
        ("kind", Align::Left),
        ("status", Align::Left),
        ("workshop days", Align::Left),
        ("metrics", Align::Right),
        ("title", Align::Left),
    ]);
    for workshop in &list.workshops {
        table.row(vec![
            workshop.workshop_id.clone(),
            workshop_kind_word(workshop.kind),
            workshop_status_word(workshop.status),
            days_text(workshop),
            workshop.target_sheet.len().to_string(),
            workshop.title.clone(),
        ]);
    }
    let mut lines = table.lines();
    lines.push(match list.workshops.len() {
        1 => "1 workshop".to_owned(),
        count => format!("{count} workshops"),
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::{Date, MetricKind, MetricUnit, TargetMetric};
    use ics_proto::workshops::v1::{FollowUp, FollowUpState, WorkshopStatus};

    fn date(year: i32, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    fn workshop() -> Workshop {
        Workshop {
            workshop_id: "w-1".to_owned(),
            ods_code: "RTP".to_owned(),
            value_stream_id: "vs-1".to_owned(),
            kind: WorkshopKind::ThreeP as i32,
            title: "Faster discharge".to_owned(),
            roles: Some(WorkshopRoles {
                sponsor: "Chief Operating Officer".to_owned(),
                team_size: 8,
                ..WorkshopRoles::default()
            }),
            status: WorkshopStatus::ReportedOut as i32,
            preparation_starts_on: Some(date(2016, 1, 4)),
            starts_on: Some(date(2016, 2, 29)),
            ends_on: Some(date(2016, 3, 4)),
            target_sheet: vec![TargetMetric {
                metric_id: "m1".to_owned(),
                name: "Length of stay".to_owned(),
                kind: MetricKind::ProcessTime as i32,
                unit: MetricUnit::Hours as i32,
                baseline: 40.0,
                target: 20.0,
            }],
            after: vec![MetricValue {
                metric_id: "m1".to_owned(),
                value: 12.5,
            }],
            follow_ups: vec![
                FollowUp {
                    checkpoint: FollowUpCheckpoint::Day30 as i32,
                    due_on: Some(date(2016, 4, 3)),
                    state: FollowUpState::Recorded as i32,
                    measured_on: Some(date(2016, 4, 3)),
                    values: vec![MetricValue {
                        metric_id: "m1".to_owned(),
                        value: 21.0,
                    }],
                    sustained: vec![false],
                },
                FollowUp {
                    checkpoint: FollowUpCheckpoint::Day365 as i32,
                    due_on: Some(date(2017, 3, 4)),
                    state: FollowUpState::Missed as i32,
                    ..FollowUp::default()
                },
            ],
            version: 6,
        }
    }

    #[test]
    fn a_workshop_reads_as_its_target_sheet_and_follow_ups() {
        let lines = workshop_lines(&workshop());
        assert_eq!(lines[0], "workshop w-1  Faster discharge");
        assert_eq!(
            lines[1],
            "trust RTP, value stream vs-1, kind 3p, status reported-out, version 6"
        );
        assert_eq!(
            lines[2],
            "sponsor Chief Operating Officer; process owner -; workshop lead -; team lead -; \
             team size 8"
        );
        assert_eq!(
            lines[3],
            "preparation from 2016-01-04; workshop days 2016-02-29 to 2016-03-04"
        );
        assert_eq!(
            lines[6],
            "m1      Length of stay  process-time  hours        40      20   12.5"
        );
        assert!(lines[9].starts_with("  30 days  2016-04-03  recorded  2016-04-03  m1=21"));
        assert!(lines[9].ends_with("m1 no"));
        assert!(lines[10].starts_with(" 365 days  2017-03-04  missed    -"));
    }

    #[test]
    fn the_list_has_a_row_per_workshop_and_a_count() {
        let list = ListWorkshopsResponse {
            workshops: vec![workshop()],
            next_page_token: String::new(),
        };
        let lines = list_lines(&list);
        assert!(lines[1].starts_with("w-1       3p    reported-out  2016-02-29 to 2016-03-04"));
        assert_eq!(lines[2], "1 workshop");
    }
}
