//! Commands and lookups of the trusts service.

use ics_proto::events::v1::{
    BoardRole, CommandResult, CqcRating, CqcRatings, ExecutiveRole, OrganisationKind,
    ValueStreamDefinition, ValueStreamOrigin, ValueStreamStatus,
};
use ics_proto::streams::{self, created_id};
use ics_proto::trusts::v1 as api;

use crate::args::{Rating, enum_number};
use crate::cli::{
    CqcCommand, CqcPublishArgs, DefinitionArgs, ExecCommand, OrgCommand, ProgrammeCommand,
    TrainingCommand, ValueStreamCommand,
};
use crate::commands::lookups;
use crate::connect::Context;
use crate::render::{
    self, Align, PrintTable, Table, board_role_word, date_text, executive_role_word, kind_word,
    origin_word, outln, rating_word, status_word,
};

/// Prints what a command wrote. `created` names the new aggregate, e.g. `("programme",
/// streams::PROGRAMME)`: its id comes first, as `<noun> <id>` with a one-word noun, so that a
/// script can take it with `head -1 | cut -d' ' -f2`.
pub fn print_result(
    context: &Context,
    result: &CommandResult,
    created: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    if context.json() {
        return render::print_json(result);
    }
    if let Some((noun, prefix)) = created {
        let id = created_id(result, prefix)?;
        outln!("{noun} {id}")?;
    }
    let events = match result.event_ids.len() {
        1 => "1 event".to_owned(),
        count => format!("{count} events"),
    };
    outln!(
        "ok: {} at version {} ({events})",
        result.stream_id,
        result.version
    )?;
    if result.replayed {
        outln!("replayed: this request id was already used; nothing new was written")?;
    }
    Ok(())
}

fn ratings_from(publish: &CqcPublishArgs) -> CqcRatings {
    let number = |rating: Option<Rating>| enum_number::<Rating, CqcRating>(rating);
    CqcRatings {
        overall: number(publish.overall),
        safe: number(publish.safe),
        effective: number(publish.effective),
        caring: number(publish.caring),
        responsive: number(publish.responsive),
        well_led: number(publish.well_led),
    }
}

/// `current` supplies every field the command line left out, so that a revision can change one
/// thing without retyping the rest.
fn definition_from(args: DefinitionArgs, current: ValueStreamDefinition) -> ValueStreamDefinition {
    ValueStreamDefinition {
        name: args.name.unwrap_or(current.name),
        pathway: args.pathway.unwrap_or(current.pathway),
        sponsor: args.sponsor.unwrap_or(current.sponsor),
        lead: args.lead.unwrap_or(current.lead),
        origin: args
            .origin
            .map(|origin| ValueStreamOrigin::from(origin) as i32)
            .unwrap_or(current.origin),
        outcome_measures: if args.measures.is_empty() {
            current.outcome_measures
        } else {
            args.measures
        },
    }
}

pub async fn org(context: &Context, command: OrgCommand) -> anyhow::Result<()> {
    let mut trusts = context.trusts().await?;
    let options = Some(context.options());
    let result = match command {
        OrgCommand::Register {
            ods_code,
            name,
            kind,
        } => {
            trusts
                .register_organisation(api::RegisterOrganisationRequest {
                    options,
                    ods_code,
                    name,
                    kind: enum_number::<_, OrganisationKind>(kind),
                })
                .await?
        }
        OrgCommand::Rename { ods_code, name } => {
            trusts
                .rename_organisation(api::RenameOrganisationRequest {
                    options,
                    ods_code,
                    name,
                })
                .await?
        }
        OrgCommand::Link {
            ods_code,
            parent,
            from,
        } => {
            trusts
                .link_organisation(api::LinkOrganisationRequest {
                    options,
                    ods_code,
                    parent_ods_code: parent,
                    valid_from: Some(from),
                })
                .await?
        }
        OrgCommand::Unlink {
            ods_code,
            parent,
            to,
        } => {
            trusts
                .unlink_organisation(api::UnlinkOrganisationRequest {
                    options,
                    ods_code,
                    parent_ods_code: parent,
                    valid_to: Some(to),
                })
                .await?
        }
        OrgCommand::Get { ods_code } => {
            let organisation = trusts
                .get_organisation(api::GetOrganisationRequest {
                    ods_code,
                    as_of: None,
                })
                .await?
                .into_inner();
            return if context.json() {
                render::print_json(&organisation)
            } else {
                print_organisation(&organisation)
            };
        }
        OrgCommand::List { kind, page } => {
            let kind = enum_number::<_, OrganisationKind>(kind);
            let (organisations, next) = lookups::read_pages(page, |page_size, page_token| {
                let request = api::ListOrganisationsRequest {
                    kind,
                    as_of: None,
                    page_size,
                    page_token,
                };
                let mut trusts = trusts.clone();
                async move {
                    let page = trusts.list_organisations(request).await?.into_inner();
                    Ok((page.organisations, page.next_page_token))
                }
            })
            .await?;
            let list = api::ListOrganisationsResponse {
                organisations,
                next_page_token: next.clone().unwrap_or_default(),
            };
            if context.json() {
                return render::print_json(&list);
            }
            print_organisations(&list)?;
            return lookups::print_next(next.as_deref());
        }
    };
    print_result(context, &result.into_inner(), None)
}

pub async fn cqc(context: &Context, command: CqcCommand) -> anyhow::Result<()> {
    let CqcCommand::Publish(publish) = command;
    let mut trusts = context.trusts().await?;
    let ratings = ratings_from(&publish);
    let result = trusts
        .publish_cqc_rating(api::PublishCqcRatingRequest {
            options: Some(context.options()),
            ods_code: publish.ods_code,
            published_on: Some(publish.published_on),
            ratings: Some(ratings),
        })
        .await?;
    print_result(context, &result.into_inner(), None)
}

pub async fn exec(context: &Context, command: ExecCommand) -> anyhow::Result<()> {
    let mut trusts = context.trusts().await?;
    let options = Some(context.options());
    let result = match command {
        ExecCommand::Appoint {
            ods_code,
            role,
            person_name,
            started_on,
        } => {
            trusts
                .appoint_executive(api::AppointExecutiveRequest {
                    options,
                    ods_code,
                    role: enum_number::<_, ExecutiveRole>(role),
                    person_name,
                    started_on: Some(started_on),
                })
                .await?
        }
        ExecCommand::Depart {
            ods_code,
            appointment,
            left_on,
            reason,
        } => {
            trusts
                .record_executive_departure(api::RecordExecutiveDepartureRequest {
                    options,
                    ods_code,
                    appointment_id: appointment,
                    left_on: Some(left_on),
                    reason,
                })
                .await?
        }
    };
    print_result(context, &result.into_inner(), None)
}

pub async fn value_stream(context: &Context, command: ValueStreamCommand) -> anyhow::Result<()> {
    let mut trusts = context.trusts().await?;
    let options = Some(context.options());
    match command {
        ValueStreamCommand::Define {
            ods_code,
            definition,
            status,
        } => {
            let result = trusts
                .define_value_stream(api::DefineValueStreamRequest {
                    options,
                    ods_code,
                    definition: Some(definition_from(
                        definition,
                        ValueStreamDefinition::default(),
                    )),
                    status: enum_number::<_, ValueStreamStatus>(status),
                })
                .await?;
            print_result(
                context,
                &result.into_inner(),
                Some(("value-stream", streams::VALUE_STREAM)),
            )
        }
        ValueStreamCommand::Revise {
            value_stream_id,
            definition,
            rationale,
        } => {
            let current = trusts
                .get_value_stream(api::GetValueStreamRequest {
                    value_stream_id: value_stream_id.clone(),
                })
                .await?
                .into_inner()
                .revisions
                .pop()
                .and_then(|revision| revision.definition)
                .unwrap_or_default();
            let result = trusts
                .revise_value_stream(api::ReviseValueStreamRequest {
                    options,
                    value_stream_id,
                    definition: Some(definition_from(definition, current)),
                    rationale,
                })
                .await?;
            print_result(context, &result.into_inner(), None)
        }
        ValueStreamCommand::Status {
            value_stream_id,
            status,
        } => {
            let result = trusts
                .change_value_stream_status(api::ChangeValueStreamStatusRequest {
                    options,
                    value_stream_id,
                    status: ValueStreamStatus::from(status) as i32,
                })
                .await?;
            print_result(context, &result.into_inner(), None)
        }
        ValueStreamCommand::Close {
            value_stream_id,
            closed_on,
            reason,
        } => {
            let result = trusts
                .close_value_stream(api::CloseValueStreamRequest {
                    options,
                    value_stream_id,
                    closed_on: Some(closed_on),
                    reason,
                })
                .await?;
            print_result(context, &result.into_inner(), None)
        }
        ValueStreamCommand::List { scope, trust, page } => {
            lookups::value_streams(context, scope, trust, page).await
        }
        ValueStreamCommand::Get { value_stream_id } => {
            let value_stream = trusts
                .get_value_stream(api::GetValueStreamRequest { value_stream_id })
                .await?
                .into_inner();
            if context.json() {
                render::print_json(&value_stream)
            } else {
                print_value_stream(&value_stream)
            }
        }
    }
}

pub async fn training(context: &Context, command: TrainingCommand) -> anyhow::Result<()> {
    let mut trusts = context.trusts().await?;
    let options = Some(context.options());
    match command {
        TrainingCommand::Cohort {
            course,
            name,
            starts_on,
            ends_on,
            programme,
        } => {
            let result = trusts
                .register_training_cohort(api::RegisterTrainingCohortRequest {
                    options,
                    programme_id: programme.unwrap_or_default(),
                    course,
                    name,
                    starts_on: Some(starts_on),
                    ends_on: Some(ends_on),
                })
                .await?;
            print_result(
                context,
                &result.into_inner(),
                Some(("training-cohort", streams::TRAINING_COHORT)),
            )
        }
        TrainingCommand::Participation {
            cohort_id,
            ods_code,
            participants,
            completed,
            respondents,
            valued,
        } => {
            let result = trusts
                .record_training_participation(api::RecordTrainingParticipationRequest {
                    options,
                    cohort_id,
                    ods_code,
                    participants,
                    completed,
                    survey_respondents: respondents,
                    valued,
                })
                .await?;
            print_result(context, &result.into_inner(), None)
        }
    }
}

pub async fn programme(context: &Context, command: ProgrammeCommand) -> anyhow::Result<()> {
    let mut trusts = context.trusts().await?;
    let options = Some(context.options());
    let result = match command {
        ProgrammeCommand::Register {
            name,
            description,
            starts_on,
            ends_on,
        } => {
            let result = trusts
                .register_programme(api::RegisterProgrammeRequest {
                    options,
                    name,
                    description,
                    starts_on: Some(starts_on),
                    ends_on,
                })
                .await?;
            return print_result(
                context,
                &result.into_inner(),
                Some(("programme", streams::PROGRAMME)),
            );
        }
        ProgrammeCommand::Join {
            programme_id,
            ods_code,
            joined_on,
        } => {
            trusts
                .join_programme(api::JoinProgrammeRequest {
                    options,
                    programme_id,
                    ods_code,
                    joined_on: Some(joined_on),
                })
                .await?
        }
        ProgrammeCommand::BoardMember {
            programme_id,
            ods_code,
            person_name,
            role,
        } => {
            trusts
                .add_board_member(api::AddBoardMemberRequest {
                    options,
                    programme_id,
                    ods_code,
                    person_name,
                    role: enum_number::<_, BoardRole>(role),
                })
                .await?
        }
        ProgrammeCommand::Compact {
            programme_id,
            vision,
            behaviours,
            responsibilities,
            signatories,
            adopted_on,
        } => {
            trusts
                .adopt_compact(api::AdoptCompactRequest {
                    options,
                    programme_id,
                    vision,
                    behaviours,
                    responsibilities,
                    signatories,
                    adopted_on: Some(adopted_on),
                })
                .await?
        }
        ProgrammeCommand::Meeting {
            programme_id,
            held_on,
            attending,
            compact_version,
            notes,
        } => {
            trusts
                .record_board_meeting(api::RecordBoardMeetingRequest {
                    options,
                    programme_id,
                    held_on: Some(held_on),
                    attending_member_ids: attending,
                    compact_version_reviewed: compact_version,
                    notes,
                })
                .await?
        }
        ProgrammeCommand::List { scope, page } => {
            return lookups::programmes(context, scope, page).await;
        }
        ProgrammeCommand::Get { programme_id } => {
            let programme = trusts
                .get_programme(api::GetProgrammeRequest { programme_id })
                .await?
                .into_inner();
            return if context.json() {
                render::print_json(&programme)
            } else {
                print_programme(&programme)
            };
        }
    };
    print_result(context, &result.into_inner(), None)
}

fn current_parent(organisation: &api::Organisation) -> String {
    organisation
        .parents
        .iter()
        .rev()
        .find(|link| link.valid_to.is_none())
        .map(|link| link.parent_ods_code.clone())
        .unwrap_or_else(|| "-".to_owned())
}

fn ratings_text(ratings: Option<&CqcRatings>) -> String {
    let Some(ratings) = ratings else {
        return "-".to_owned();
    };
    format!(
        "overall {} (safe {}, effective {}, caring {}, responsive {}, well-led {})",
        rating_word(ratings.overall),
        rating_word(ratings.safe),
        rating_word(ratings.effective),
        rating_word(ratings.caring),
        rating_word(ratings.responsive),
        rating_word(ratings.well_led),
    )
}

fn print_organisation(organisation: &api::Organisation) -> anyhow::Result<()> {
    outln!(
        "{}  {}  ({})",
        organisation.ods_code,
        organisation.name,
        kind_word(organisation.kind)
    )?;
    outln!("version {}", organisation.version)?;
    if !organisation.parents.is_empty() {
        outln!("parents:")?;
        for link in &organisation.parents {
            let until = match &link.valid_to {
                Some(valid_to) => format!(" to {}", ics_proto::date::iso(valid_to)),
                None => String::new(),
            };
            outln!(
                "  {} from {}{until}",
                link.parent_ods_code,
                date_text(link.valid_from.as_ref())
            )?;
        }
    }
    if !organisation.cqc_ratings.is_empty() {
        outln!("CQC ratings:")?;
        for record in &organisation.cqc_ratings {
            outln!(
                "  {}  {}",
                date_text(record.published_on.as_ref()),
                ratings_text(record.ratings.as_ref())
            )?;
        }
    }
    if !organisation.executives.is_empty() {
        outln!("executives:")?;
        let mut table = Table::new(&[
            ("  role", Align::Left),
            ("name", Align::Left),
            ("started", Align::Left),
            ("left", Align::Left),
            ("appointment id", Align::Left),
        ]);
        for executive in &organisation.executives {
            table.row(vec![
                format!("  {}", executive_role_word(executive.role)),
                executive.person_name.clone(),
                date_text(executive.started_on.as_ref()),
                date_text(executive.left_on.as_ref()),
                executive.appointment_id.clone(),
            ]);
        }
        table.print()?;
    }
    Ok(())
}

fn print_organisations(list: &api::ListOrganisationsResponse) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        ("ods", Align::Left),
        ("kind", Align::Left),
        ("parent", Align::Left),
        ("name", Align::Left),
    ]);
    for organisation in &list.organisations {
        table.row(vec![
            organisation.ods_code.clone(),
            kind_word(organisation.kind),
            current_parent(organisation),
            organisation.name.clone(),
        ]);
    }
    table.print()?;
    outln!("{} organisations", list.organisations.len())?;
    Ok(())
}

fn print_definition(definition: &ValueStreamDefinition) -> anyhow::Result<()> {
    outln!("    name:     {}", definition.name)?;
    outln!("    pathway:  {}", definition.pathway)?;
    outln!("    sponsor:  {}", definition.sponsor)?;
    outln!("    lead:     {}", definition.lead)?;
    outln!("    origin:   {}", origin_word(definition.origin))?;
    if !definition.outcome_measures.is_empty() {
        outln!("    measures: {}", definition.outcome_measures.join("; "))?;
    }
    Ok(())
}

fn print_value_stream(value_stream: &api::ValueStream) -> anyhow::Result<()> {
    outln!(
        "value stream {} at {}: {} (version {})",
        value_stream.value_stream_id,
        value_stream.ods_code,
        status_word(value_stream.status),
        value_stream.version
    )?;
    if let Some(closed_on) = &value_stream.closed_on {
        outln!("closed on {}", ics_proto::date::iso(closed_on))?;
    }
    for revision in &value_stream.revisions {
        outln!("  revision {}", revision.revision)?;
        if !revision.rationale.is_empty() {
            outln!("    why:      {}", revision.rationale)?;
        }
        if let Some(definition) = &revision.definition {
            print_definition(definition)?;
        }
    }
    Ok(())
}

fn print_programme(programme: &api::Programme) -> anyhow::Result<()> {
    let ends = programme
        .ends_on
        .as_ref()
        .map(ics_proto::date::iso)
        .unwrap_or_else(|| "open-ended".to_owned());
    outln!("{}  ({})", programme.name, programme.programme_id)?;
    outln!(
        "{} to {ends}, version {}",
        date_text(programme.starts_on.as_ref()),
        programme.version
    )?;
    if !programme.description.is_empty() {
        outln!("{}", programme.description)?;
    }
    if !programme.trusts.is_empty() {
        outln!("trusts:")?;
        for trust in &programme.trusts {
            outln!(
                "  {} joined {}",
                trust.ods_code,
                date_text(trust.joined_on.as_ref())
            )?;
        }
    }
    if !programme.board_members.is_empty() {
        outln!("guiding board:")?;
        let mut table = Table::new(&[
            ("  member id", Align::Left),
            ("ods", Align::Left),
            ("role", Align::Left),
            ("name", Align::Left),
        ]);
        for member in &programme.board_members {
            table.row(vec![
                format!("  {}", member.member_id),
                member.ods_code.clone(),
                board_role_word(member.role),
                member.person_name.clone(),
            ]);
        }
        table.print()?;
    }
    for compact in &programme.compacts {
        outln!(
            "compact v{} adopted {}",
            compact.version,
            date_text(compact.adopted_on.as_ref())
        )?;
        outln!("  vision: {}", compact.vision)?;
        for behaviour in &compact.behaviours {
            outln!("  behaviour: {behaviour}")?;
        }
        for responsibility in &compact.responsibilities {
            outln!("  responsibility: {responsibility}")?;
        }
        outln!("  signed by: {}", compact.signatories.join("; "))?;
    }
    if !programme.meetings.is_empty() {
        outln!("meetings:")?;
        for meeting in &programme.meetings {
            let reviewed = match meeting.compact_version_reviewed {
                0 => "compact not reviewed".to_owned(),
                version => format!("compact v{version} reviewed"),
            };
            outln!(
                "  {}  {} attending, {reviewed}{}",
                date_text(meeting.held_on.as_ref()),
                meeting.attending_member_ids.len(),
                if meeting.notes.is_empty() {
                    String::new()
                } else {
                    format!(": {}", meeting.notes)
                }
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_keeps_what_the_command_line_leaves_out() {
        let current = ValueStreamDefinition {
            name: "Outpatients".to_owned(),
            pathway: "Outpatients".to_owned(),
            sponsor: "Sponsor".to_owned(),
            lead: "Lead".to_owned(),
            origin: ValueStreamOrigin::TopDown as i32,
            outcome_measures: vec!["Waiting time".to_owned()],
        };
        let args = DefinitionArgs {
            name: Some("Outpatient follow-up".to_owned()),
            pathway: None,
            sponsor: None,
            lead: None,
            origin: None,
            measures: vec![],
        };
        let revised = definition_from(args, current.clone());
        assert_eq!(revised.name, "Outpatient follow-up");
        assert_eq!(revised.pathway, current.pathway);
        assert_eq!(revised.origin, current.origin);
        assert_eq!(revised.outcome_measures, current.outcome_measures);
    }
}
