//! Cross-trust views from the reporting service.

use std::path::Path;

use anyhow::Context as _;
use ics_board_pack::outcomes;
use ics_proto::events::v1::Date;
use ics_proto::reporting::v1::{
    self as api, CqcHistory, Outcomes, Overview, OverviewUpdate, Scope, TrainingParticipation,
    ValueStreamCounts, scope,
};

use crate::cli::{BoardPackFormat, ReportCommand, ScopeArgs};
use crate::commands::measure_report;
use crate::commands::metrics::series_key;
use crate::connect::{Context, Reporting};
use crate::render::{
    self, Align, PrintTable, Table, date_text, outln, rating_word, scope_text, share_text,
};

pub fn scope_of(args: ScopeArgs) -> Scope {
    let scope = match (args.ics, args.programme) {
        (Some(ics), _) => Some(scope::Scope::IcsOdsCode(ics)),
        (None, Some(programme)) => Some(scope::Scope::ProgrammeId(programme)),
        // clap's argument group makes one of the two required.
        (None, None) => None,
    };
    Scope { scope }
}

/// Prints each update of a watch, as a JSON line or as `line` gives it, until the server ends
/// the stream or the user presses Ctrl-C.
pub(crate) async fn follow<U: render::Described>(
    context: &Context,
    mut updates: tonic::Streaming<U>,
    line: fn(&U) -> String,
) -> anyhow::Result<()> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            signal = &mut interrupted => {
                signal?;
                return Ok(());
            }
            update = updates.message() => match update? {
                Some(update) if context.json() => render::print_json_line(&update)?,
                Some(update) => outln!("{}", line(&update))?,
                None => return Ok(()),
            },
        }
    }
}

pub async fn report(context: &Context, command: ReportCommand) -> anyhow::Result<()> {
    let mut reporting = context.reporting().await?;
    match command {
        ReportCommand::Overview { scope, as_of } => {
            let overview = get_overview(&mut reporting, scope_of(scope), as_of).await?;
            print_overview(context, &overview)
        }
        ReportCommand::CqcHistory {
            scope,
            trust,
            as_of,
        } => {
            let history = reporting
                .get_cqc_history(api::GetCqcHistoryRequest {
                    scope: Some(scope_of(scope)),
                    ods_code: trust,
                    as_of,
                })
                .await?
                .into_inner();
            if context.json() {
                render::print_json(&history)
            } else {
                print_cqc_history(&history)
            }
        }
        ReportCommand::Watch { scope } => {
            let updates = reporting
                .watch_overview(api::WatchOverviewRequest {
                    scope: Some(scope_of(scope)),
                })
                .await?
                .into_inner();
            follow(context, updates, update_line).await
        }
        ReportCommand::Outcomes { scope, as_of } => {
            let outcomes = get_outcomes(&mut reporting, scope_of(scope), as_of).await?;
            if context.json() {
                return render::print_json(&outcomes);
            }
            for line in outcomes::outcomes_lines(&outcomes) {
                outln!("{line}")?;
            }
            Ok(())
        }
        ReportCommand::WatchOutcomes { scope } => {
            let updates = reporting
                .watch_outcomes(api::WatchOutcomesRequest {
                    scope: Some(scope_of(scope)),
                })
                .await?
                .into_inner();
            follow(context, updates, outcomes::update_line).await
        }
        ReportCommand::BoardPack {
            scope,
            format,
            out,
            table,
            as_of,
        } => {
            let request = api::GetBoardPackRequest {
                scope: Some(scope_of(scope)),
                as_of,
                format: api::BoardPackFormat::from(format) as i32,
                table: table.clone().unwrap_or_default(),
            };
            let pack = reporting
                .max_decoding_message_size(BOARD_PACK_MAX_BYTES)
                .get_board_pack(request)
                .await?
                .into_inner();
            write_board_pack(&pack, format, &out, table.is_some())
        }
        ReportCommand::Measures {
            ics,
            peer_group,
            as_of,
            watch,
        } => measure_report::measures(context, &mut reporting, ics, peer_group, as_of, watch).await,
        ReportCommand::Series { ics, series } => {
            measure_report::series(context, &mut reporting, ics, series_key(series)).await
        }
        ReportCommand::Peers {
            ics,
            measure,
            peer_group,
            period,
        } => {
            let request = api::GetPeerComparisonRequest {
                ics_ods_code: ics,
                measure_code: measure,
                peer_group_id: peer_group.unwrap_or_default(),
                period_start: period,
            };
            measure_report::peers(context, &mut reporting, request).await
        }
        ReportCommand::PeerChange {
            ics,
            measure,
            ods,
            peer_group,
            from,
            to,
        } => {
            let request = api::GetPeerChangeRequest {
                ics_ods_code: ics,
                measure_code: measure,
                peer_group_id: peer_group.unwrap_or_default(),
                ods_code: ods,
                from_period_start: Some(from),
                to_period_start: Some(to),
            };
            measure_report::peer_change(context, &mut reporting, request).await
        }
    }
}

/// The largest board pack taken: an ICS's every chart inline can outgrow gRPC's default of
/// 4 MiB for a response.
const BOARD_PACK_MAX_BYTES: usize = 64 * 1024 * 1024;

/// A file name the server gave, if it is a plain name: written into the directory the user
/// chose, it must not lead anywhere else.
fn plain_file_name(name: &str) -> Option<&str> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.');
    plain.then_some(name)
}

/// Writes the pack's one file to `out`, or with CSV and no `--table` each of its files into the
/// directory `out`, and says what was written.
fn write_board_pack(
    pack: &api::BoardPack,
    format: BoardPackFormat,
    out: &Path,
    one_table: bool,
) -> anyhow::Result<()> {
    let format_name = match format {
        BoardPackFormat::Csv => "CSV",
        BoardPackFormat::Html => "HTML",
    };
    let rows = counted(pack.measure_rows as usize, "measure row", "measure rows");
    let has_measures_table = pack
        .files
        .iter()
        .any(|file| file.table == ics_board_pack::MEASURES_TABLE);
    let contents = if ics_board_pack::measures_ics(pack.scope.as_ref()).is_none() {
        String::new()
    } else if format == BoardPackFormat::Csv {
        if has_measures_table {
            format!(", with {rows}")
        } else {
            String::new()
        }
    } else {
        format!(
            ", with {rows}, {} and {}",
            counted(pack.xmr_charts as usize, "XmR chart", "XmR charts"),
            counted(pack.funnel_plots as usize, "funnel plot", "funnel plots")
        )
    };
    let what = format!(
        "the {format_name} board pack of {} as of {}",
        outcomes::named_scope(&pack.name, pack.scope.as_ref()),
        date_text(pack.as_of.as_ref())
    );
    if format == BoardPackFormat::Html || one_table {
        let [file] = pack.files.as_slice() else {
            anyhow::bail!(
                "the reporting service sent {} files for {what}, not one",
                pack.files.len()
            );
        };
        std::fs::write(out, &file.content)
            .with_context(|| format!("writing the board pack to {}", out.display()))?;
        outln!(
            "wrote {what} to {} ({} bytes{contents})",
            out.display(),
            file.content.len()
        )?;
        return Ok(());
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the directory {}", out.display()))?;
    let mut written = Vec::new();
    for file in &pack.files {
        let name = plain_file_name(&file.file_name).with_context(|| {
            format!(
                "the reporting service named a board pack file '{}', which is not a plain file \
                 name",
                file.file_name
            )
        })?;
        let path = out.join(name);
        std::fs::write(&path, &file.content)
            .with_context(|| format!("writing the board pack to {}", path.display()))?;
        written.push((path, file.content.len()));
    }
    outln!(
        "wrote {what} to {} ({}{contents})",
        out.display(),
        counted(written.len(), "file", "files")
    )?;
    for (path, bytes) in written {
        outln!("  {} ({bytes} bytes)", path.display())?;
    }
    Ok(())
}

/// `1 funnel plot`, `12 XmR charts`.
fn counted(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

pub async fn get_outcomes(
    reporting: &mut Reporting,
    scope: Scope,
    as_of: Option<Date>,
) -> Result<Outcomes, tonic::Status> {
    let outcomes = reporting
        .get_outcomes(api::GetOutcomesRequest {
            scope: Some(scope),
            as_of,
        })
        .await?
        .into_inner();
    Ok(outcomes)
}

pub async fn get_overview(
    reporting: &mut Reporting,
    scope: Scope,
    as_of: Option<Date>,
) -> Result<Overview, tonic::Status> {
    let overview = reporting
        .get_overview(api::GetOverviewRequest {
            scope: Some(scope),
            as_of,
        })
        .await?
        .into_inner();
    Ok(overview)
}

pub fn print_overview(context: &Context, overview: &Overview) -> anyhow::Result<()> {
    if context.json() {
        return render::print_json(overview);
    }
    for line in overview_lines(overview) {
        outln!("{line}")?;
    }
    Ok(())
}

fn counts(value_streams: Option<&ValueStreamCounts>) -> [String; 4] {
    let counts = value_streams.copied().unwrap_or_default();
    [
        counts.proposed.to_string(),
        counts.active.to_string(),
        counts.sustaining.to_string(),
        counts.closed.to_string(),
    ]
}

fn training_cells(training: Option<&TrainingParticipation>) -> [String; 3] {
    let training = training.copied().unwrap_or_default();
    [
        training.participants.to_string(),
        training.completed.to_string(),
        share_text(training.share_valued, training.survey_respondents),
    ]
}

/// The overview as a heading, one row per trust and a totals line.
pub fn overview_lines(overview: &Overview) -> Vec<String> {
    let mut table = Table::new(&[
        ("trust", Align::Left),
        ("name", Align::Left),
        ("ICB", Align::Left),
        ("CQC overall", Align::Left),
        ("rated on", Align::Left),
        ("proposed", Align::Right),
        ("active", Align::Right),
        ("sustaining", Align::Right),
        ("closed", Align::Right),
        ("exec departures 24m", Align::Right),
        ("trained", Align::Right),
        ("completed", Align::Right),
        ("valued", Align::Right),
    ]);
    for trust in &overview.trusts {
        let (rating, rated_on) = match &trust.current_cqc {
            Some(record) => (
                rating_word(record.ratings.map(|ratings| ratings.overall).unwrap_or(0)),
                date_text(record.published_on.as_ref()),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let icb = if trust.icb_ods_code.is_empty() {
            "-".to_owned()
        } else {
            trust.icb_ods_code.clone()
        };
        let mut row = vec![
            trust.ods_code.clone(),
            trust.name.clone(),
            icb,
            rating,
            rated_on,
        ];
        row.extend(counts(trust.value_streams.as_ref()));
        row.push(trust.executive_departures_24_months.to_string());
        row.extend(training_cells(trust.training.as_ref()));
        table.row(row);
    }
    let mut totals = vec![
        "total".to_owned(),
        match overview.trusts.len() {
            1 => "1 trust".to_owned(),
            count => format!("{count} trusts"),
        },
        String::new(),
        String::new(),
        String::new(),
    ];
    totals.extend(counts(overview.value_streams.as_ref()));
    totals.push(overview.executive_departures_24_months.to_string());
    totals.extend(training_cells(overview.training.as_ref()));
    table.row(totals);

    let mut lines = vec![format!(
        "{} ({}) as of {}",
        if overview.name.is_empty() {
            "Overview"
        } else {
            &overview.name
        },
        scope_text(overview.scope.as_ref()),
        date_text(overview.as_of.as_ref())
    )];
    lines.extend(table.lines());
    lines
}

fn print_cqc_history(history: &CqcHistory) -> anyhow::Result<()> {
    outln!("CQC ratings of {}", history.ods_code)?;
    let mut table = Table::new(&[
        ("published", Align::Left),
        ("overall", Align::Left),
        ("safe", Align::Left),
        ("effective", Align::Left),
        ("caring", Align::Left),
        ("responsive", Align::Left),
        ("well-led", Align::Left),
    ]);
    for record in &history.ratings {
        let ratings = record.ratings.unwrap_or_default();
        table.row(vec![
            date_text(record.published_on.as_ref()),
            rating_word(ratings.overall),
            rating_word(ratings.safe),
            rating_word(ratings.effective),
            rating_word(ratings.caring),
            rating_word(ratings.responsive),
            rating_word(ratings.well_led),
        ]);
    }
    table.print()
}

/// One line per watched update: what happened, then the headline numbers after it.
pub fn update_line(update: &OverviewUpdate) -> String {
    let event = if update.event_type.is_empty() {
        "initial"
    } else {
        update
            .event_type
            .strip_prefix("ics.events.v1.")
            .unwrap_or(&update.event_type)
    };
    let Some(overview) = &update.overview else {
        return format!("{event}: (no overview)");
    };
    let streams = overview.value_streams.unwrap_or_default();
    let training = overview.training.unwrap_or_default();
    format!(
        "{event}: {} {} trusts; value streams {} proposed, {} active, {} sustaining, {} closed; \
         {} exec departures in 24m; {} trained, {} valued",
        if overview.name.is_empty() {
            scope_text(overview.scope.as_ref())
        } else {
            overview.name.clone()
        },
        overview.trusts.len(),
        streams.proposed,
        streams.active,
        streams.sustaining,
        streams.closed,
        overview.executive_departures_24_months,
        training.participants,
        share_text(training.share_valued, training.survey_respondents),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::{CqcRating, CqcRatings};
    use ics_proto::reporting::v1::{CqcRatingRecord, TrustSummary};

    fn overview() -> Overview {
        Overview {
            scope: Some(Scope {
                scope: Some(scope::Scope::IcsOdsCode("QWO".to_owned())),
            }),
            name: "NHS West Yorkshire ICB".to_owned(),
            as_of: Some(Date {
                year: 2025,
                month: 1,
                day: 31,
            }),
            trusts: vec![TrustSummary {
                ods_code: "RR8".to_owned(),
                name: "The Leeds Teaching Hospitals NHS Trust".to_owned(),
                icb_ods_code: "QWO".to_owned(),
                current_cqc: Some(CqcRatingRecord {
                    published_on: Some(Date {
                        year: 2018,
                        month: 5,
                        day: 10,
                    }),
                    ratings: Some(CqcRatings {
                        overall: CqcRating::Good as i32,
                        ..CqcRatings::default()
                    }),
                }),
                value_streams: Some(ValueStreamCounts {
                    proposed: 1,
                    active: 1,
                    sustaining: 0,
                    closed: 0,
                }),
                executive_departures_24_months: 0,
                training: Some(TrainingParticipation {
                    participants: 260,
                    completed: 238,
                    survey_respondents: 200,
                    valued: 168,
                    share_valued: 0.84,
                }),
            }],
            value_streams: Some(ValueStreamCounts {
                proposed: 1,
                active: 1,
                sustaining: 0,
                closed: 0,
            }),
            training: Some(TrainingParticipation {
                participants: 260,
                completed: 238,
                survey_respondents: 200,
                valued: 168,
                share_valued: 0.84,
            }),
            executive_departures_24_months: 0,
        }
    }

    #[test]
    fn only_plain_file_names_from_the_server_are_written() {
        assert_eq!(
            plain_file_name("board-pack-QWO-2025-01-31-outcomes.csv"),
            Some("board-pack-QWO-2025-01-31-outcomes.csv")
        );
        for name in [
            "", ".", "..", "../x.csv", "a/b.csv", "a\\b.csv", ".hidden", "a\0b",
        ] {
            assert_eq!(plain_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn the_overview_table_has_a_row_per_trust_and_totals() {
        let lines = overview_lines(&overview());
        assert_eq!(
            lines[0],
            "NHS West Yorkshire ICB (ICS QWO) as of 2025-01-31"
        );
        assert!(lines[1].starts_with("trust  name"));
        assert!(lines[2].starts_with("RR8    The Leeds Teaching Hospitals NHS Trust  QWO  good"));
        assert!(lines[2].contains("2018-05-10"));
        assert!(lines[2].ends_with("84%"));
        assert!(lines[3].starts_with("total  1 trust"));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn watch_lines_name_the_event_and_the_headline() {
        let update = OverviewUpdate {
            overview: Some(overview()),
            event_type: "ics.events.v1.CqcRatingPublished".to_owned(),
            event_id: "e-1".to_owned(),
        };
        let line = update_line(&update);
        assert!(line.starts_with("CqcRatingPublished: NHS West Yorkshire ICB 1 trusts"));
        assert!(line.contains("260 trained, 84% valued"));
        let first = OverviewUpdate {
            event_type: String::new(),
            ..update
        };
        assert!(update_line(&first).starts_with("initial: "));
    }
}
