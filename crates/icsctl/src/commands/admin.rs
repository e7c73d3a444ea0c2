//! Operator functions: the event log, re-publishing, dead letters, rebuilds, tokens.

use std::time::Duration;

use ics_auth::{Principal, mint_token};
use ics_proto::admin::v1 as api;

use crate::cli::{AdminCommand, EventsCommand, GlobalArgs, ServiceName, TokenCommand};
use crate::connect::Context;
use crate::render::{self, Align, PrintTable, Table, outln};

pub async fn events(context: &Context, command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Tail {
        service,
        from,
        follow,
    } = command;
    let mut admin = context.admin(service).await?;
    let mut events = admin
        .tail_events(api::TailEventsRequest {
            from_position: from,
            follow,
        })
        .await?
        .into_inner();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            signal = &mut interrupted => {
                signal?;
                return Ok(());
            }
            envelope = events.message() => match envelope? {
                Some(envelope) => outln!("{}", render::envelope_line(&envelope)?)?,
                None => return Ok(()),
            },
        }
    }
}

pub async fn admin(context: &Context, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Republish { service, from } => {
            let mut admin = context.admin(service).await?;
            let response = admin
                .republish(api::RepublishRequest {
                    from_position: from,
                })
                .await?
                .into_inner();
            if context.json() {
                return render::print_json(&response);
            }
            outln!(
                "re-published {} events from position {from}",
                response.published
            )?;
            Ok(())
        }
        AdminCommand::DeadLetters { projection } => {
            let projection = projection.unwrap_or_default();
            // Every service with projections keeps its own dead letters: the reporting views,
            // the workshops' and metrics' read models of the trusts service, and the trusts'
            // and workshops' lists.
            let mut dead_letters = Vec::new();
            let mut unknown = Vec::new();
            for service in PROJECTING_SERVICES {
                let mut admin = context.admin(service).await?;
                match admin
                    .list_dead_letters(api::ListDeadLettersRequest {
                        projection: projection.clone(),
                    })
                    .await
                {
                    Ok(response) => dead_letters.extend(response.into_inner().dead_letters),
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        unknown.push(status.message().to_owned());
                    }
                    Err(status) => return Err(status.into()),
                }
            }
            if unknown.len() == PROJECTING_SERVICES.len() {
                anyhow::bail!("no service has that projection: {}", unknown.join("; "));
            }
            let response = api::ListDeadLettersResponse { dead_letters };
            if context.json() {
                return render::print_json(&response);
            }
            let mut table = Table::new(&[
                ("projection", Align::Left),
                ("recorded at", Align::Left),
                ("event type", Align::Left),
                ("event id", Align::Left),
                ("deliveries", Align::Right),
                ("subject", Align::Left),
                ("error", Align::Left),
            ]);
            for letter in &response.dead_letters {
                table.row(vec![
                    letter.projection.clone(),
                    letter.recorded_at.clone(),
                    letter.event_type.clone(),
                    letter.event_id.clone(),
                    letter.deliveries.to_string(),
                    letter.subject.clone(),
                    letter.error.clone(),
                ]);
            }
            table.print()?;
            outln!("{} dead letters", response.dead_letters.len())?;
            Ok(())
        }
        AdminCommand::Verify => verify(context).await,
        AdminCommand::Audit {
            service,
            limit,
            before,
        } => audit(context, service, limit, before).await,
        AdminCommand::Rebuild { projection } => {
            // The service that runs the projection rebuilds it; the others answer NOT_FOUND
            // naming their own, which together list every valid name.
            let mut unknown = Vec::new();
            let mut rebuilt = None;
            for service in PROJECTING_SERVICES {
                let mut admin = context.admin(service).await?;
                match admin
                    .rebuild_projection(api::RebuildProjectionRequest {
                        projection: projection.clone(),
                    })
                    .await
                {
                    Ok(response) => {
                        rebuilt = Some(response.into_inner());
                        break;
                    }
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        unknown.push(status.message().to_owned());
                    }
                    Err(status) => return Err(status.into()),
                }
            }
            let Some(response) = rebuilt else {
                anyhow::bail!("no service has that projection: {}", unknown.join("; "));
            };
            if context.json() {
                return render::print_json(&response);
            }
            outln!(
                "rebuilt projection {projection}: {} events applied",
                response.events_applied
            )?;
            Ok(())
        }
    }
}

/// The services that run projections: all of them (trusts and workshops keep read models of
/// their own lists).
const PROJECTING_SERVICES: [ServiceName; 4] = [
    ServiceName::Reporting,
    ServiceName::Workshops,
    ServiceName::Metrics,
    ServiceName::Trusts,
];

const ALL_SERVICES: [ServiceName; 4] = [
    ServiceName::Trusts,
    ServiceName::Workshops,
    ServiceName::Metrics,
    ServiceName::Reporting,
];

/// Prints the audit trail of one service, or of all merged by time.
async fn audit(
    context: &Context,
    service: Option<ServiceName>,
    limit: u32,
    before: Option<u64>,
) -> anyhow::Result<()> {
    let services = match service {
        Some(service) => vec![service],
        None => ALL_SERVICES.to_vec(),
    };
    let asked = services.into_iter().map(|service| async move {
        let mut admin = context.admin(service).await?;
        let response = admin
            .list_audit_records(api::ListAuditRecordsRequest {
                limit,
                before_id: before.unwrap_or_default(),
            })
            .await?
            .into_inner();
        anyhow::Ok(response.records)
    });
    let mut records: Vec<api::AuditRecord> = futures_util::future::try_join_all(asked)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let time = |record: &api::AuditRecord| {
        record
            .recorded_at
            .as_ref()
            .map(|at| (at.seconds, at.nanos))
            .unwrap_or_default()
    };
    records.sort_by_key(|record| std::cmp::Reverse(time(record)));
    if context.json() {
        for record in &records {
            render::print_json(record)?;
        }
        return Ok(());
    }
    let mut table = Table::new(&[
        ("id", Align::Right),
        ("recorded at", Align::Left),
        ("service", Align::Left),
        ("kind", Align::Left),
        ("principal", Align::Left),
        ("action", Align::Left),
        ("resource", Align::Left),
        ("rpc", Align::Left),
        ("request id", Align::Left),
        ("trace id", Align::Left),
        ("peer", Align::Left),
    ]);
    for record in &records {
        let (seconds, nanos) = time(record);
        let recorded_at = chrono::DateTime::from_timestamp(seconds, nanos.max(0) as u32)
            .map(|at| at.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        table.row(vec![
            record.id.to_string(),
            recorded_at,
            record.service.clone(),
            record.kind.clone(),
            record.principal.clone(),
            record.action.clone(),
            record.resource.clone(),
            record.rpc.clone(),
            record.request_id.clone(),
            record.trace_id.clone(),
            record.peer.clone(),
        ]);
    }
    table.print()?;
    outln!("{} audit records", records.len())?;
    Ok(())
}

/// Asks every service for its checks, prints them, and fails when any found a gap.
async fn verify(context: &Context) -> anyhow::Result<()> {
    // The services answer independently; asked together, a slow one (NATS away) delays the
    // report once, not four times.
    let asked = ALL_SERVICES.map(|service| async move {
        let mut admin = context.admin(service).await?;
        anyhow::Ok(admin.verify(api::VerifyRequest {}).await?.into_inner())
    });
    let responses = futures_util::future::try_join_all(asked).await?;
    let gaps: usize = responses
        .iter()
        .map(|response| {
            response.log.as_ref().map_or(0, |log| log.gaps.len())
                + response
                    .projections
                    .iter()
                    .map(|check| check.gaps.len())
                    .sum::<usize>()
        })
        .sum();
    if context.json() {
        for response in &responses {
            render::print_json(response)?;
        }
    } else {
        let mut logs = Table::new(&[
            ("log", Align::Left),
            ("stream", Align::Left),
            ("events", Align::Right),
            ("stream messages", Align::Right),
            ("unpublished", Align::Right),
            ("oldest unpublished", Align::Right),
        ]);
        let mut projections = Table::new(&[
            ("projection", Align::Left),
            ("source", Align::Left),
            ("log events", Align::Right),
            ("applied", Align::Right),
            ("streams behind", Align::Right),
            ("parked", Align::Right),
            ("dead letters", Align::Right),
            ("pending", Align::Right),
        ]);
        let mut descriptions = Vec::new();
        for response in &responses {
            if let Some(log) = &response.log {
                logs.row(vec![
                    log.service.clone(),
                    log.stream.clone(),
                    log.log_events.to_string(),
                    log.stream_messages.to_string(),
                    log.unpublished_events.to_string(),
                    if log.oldest_unpublished_age_ms == 0 {
                        "-".to_owned()
                    } else {
                        format!("{:.1} s", log.oldest_unpublished_age_ms as f64 / 1000.0)
                    },
                ]);
                descriptions.extend(log.gaps.iter().map(|gap| format!("{}: {gap}", log.service)));
            }
            for check in &response.projections {
                projections.row(vec![
                    check.projection.clone(),
                    check.source_service.clone(),
                    check.log_events.to_string(),
                    check.applied_events.to_string(),
                    check.streams_behind.to_string(),
                    check.parked_events.to_string(),
                    check.dead_letters.to_string(),
                    check.consumer_pending.to_string(),
                ]);
                descriptions.extend(
                    check.gaps.iter().map(|gap| {
                        format!("{} ← {}: {gap}", check.projection, check.source_service)
                    }),
                );
            }
        }
        logs.print()?;
        outln!()?;
        projections.print()?;
        outln!()?;
        for description in &descriptions {
            outln!("gap: {description}")?;
        }
    }
    if gaps > 0 {
        anyhow::bail!("{gaps} gaps found");
    }
    outln!("no gaps: every log is in its stream and every projection has applied its logs")?;
    Ok(())
}

/// Needs no server, so it runs without a [`Context`] (and without resolving `--token`).
pub fn token(global: &GlobalArgs, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Mint { secret, ttl_hours } = command;
    let secret = match secret {
        Some(secret) if secret.is_empty() => anyhow::bail!("--secret must not be empty"),
        Some(secret) => secret,
        None => crate::connect::signing_secret(global)?.ok_or_else(|| {
            anyhow::anyhow!(
                "token mint needs the signing secret: --secret, --token-secret \
                 (ICS_TOKEN_SECRET) or --token-secret-file (ICS_TOKEN_SECRET_FILE)"
            )
        })?,
    };
    let principal = global.as_principal.clone().unwrap_or(Principal::Operator);
    let token = mint_token(
        &secret,
        &global.token_issuer,
        &global.token_audience,
        &principal,
        Duration::from_secs(ttl_hours.saturating_mul(3600)),
    )?;
    outln!("{token}")?;
    Ok(())
}
