//! Commands and lookups of the metrics service: measures, observations, SPC series, peer groups
//! and the bulk CSV import.

use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use ics_measures::reference;
use ics_proto::events::v1::{
    MeasureDefinition, MeasureFrequency, MeasureScoring, PartitionMarkKind, PeerGroupDefined,
    PeerGroupMethod, SeriesKey, SpcConflictRule, SpcRuleSet, SpcSeries,
};
use ics_proto::metrics::v1::{self as api, IngestObservationsRequest, IngestSummary, Measure};

use crate::cli::{
    ImportCommand, ImportObservationsArgs, MeasureCommand, MeasureDefineArgs, ObservationArgs,
    ObservationCommand, PeerGroupCommand, SeriesArgs, SeriesCommand, SetTargetArgs,
};
use crate::commands::lookups;
use crate::commands::trusts::print_result;
use crate::connect::{Context, Metrics};
use crate::csv_import::{self, ParsedFile, Rejection};
use crate::progress::Progress;
use crate::render::{
    self, Align, PrintTable, Table, assurance_word, classification_word, conflict_rule_word,
    date_text, direction_word, display_scale, frequency_word, optional_scaled_text, outln,
    peer_method_word, rule_set_text, rule_set_word, scaled_text, scoring_word, spc_rule_word,
    variation_word,
};

pub fn series_key(args: SeriesArgs) -> SeriesKey {
    SeriesKey {
        measure_code: args.measure,
        ods_code: args.ods,
        value_stream_id: args.value_stream.unwrap_or_default(),
    }
}

fn definition_from(args: MeasureDefineArgs) -> MeasureDefinition {
    MeasureDefinition {
        code: args.code,
        name: args.name,
        description: args.description,
        unit: args.unit,
        direction: ics_measures::improvement_direction(args.direction) as i32,
        scoring: MeasureScoring::from(args.scoring) as i32,
        frequency: MeasureFrequency::from(args.frequency) as i32,
        target: args.target,
        rule_set: SpcRuleSet::from(args.rule_set) as i32,
        conflict_rule: SpcConflictRule::from(args.conflict_rule) as i32,
        // Zero is "unset", which the server reads as 1.
        display_scale: args.display_scale.unwrap_or(0.0),
    }
}

fn observation_from(args: ObservationArgs) -> api::ObservationInput {
    let series = series_key(args.series);
    api::ObservationInput {
        measure_code: series.measure_code,
        ods_code: series.ods_code,
        value_stream_id: series.value_stream_id,
        period_start: Some(args.period_start),
        period_end: Some(args.period_end),
        value: args.value,
        numerator: args.numerator,
        denominator: args.denominator,
        source: args.source,
    }
}

pub async fn measure(context: &Context, command: MeasureCommand) -> anyhow::Result<()> {
    let mut metrics = context.metrics().await?;
    match command {
        MeasureCommand::Define(args) => {
            let result = metrics
                .define_measure(api::DefineMeasureRequest {
                    options: Some(context.options()),
                    definition: Some(definition_from(args)),
                })
                .await?
                .into_inner();
            print_result(context, &result, None)
        }
        MeasureCommand::Get { code } => {
            let measure = metrics
                .get_measure(api::GetMeasureRequest { code })
                .await?
                .into_inner();
            if context.json() {
                return render::print_json(&measure);
            }
            for line in measure_lines(&measure) {
                outln!("{line}")?;
            }
            Ok(())
        }
        MeasureCommand::List => {
            let list = metrics
                .list_measures(api::ListMeasuresRequest {})
                .await?
                .into_inner();
            if context.json() {
                return render::print_json(&list);
            }
            measures_table(&list.measures).print()?;
            outln!("{} measures", list.measures.len())?;
            Ok(())
        }
        MeasureCommand::InstallReference => install_reference(context, &mut metrics).await,
    }
}

/// Defines every reference measure in order, each under its own deterministic request id (so
/// that installing again writes nothing): the same requests the demo sends.
async fn install_reference(context: &Context, metrics: &mut Metrics) -> anyhow::Result<()> {
    let requests = reference::install_requests();
    let width = requests
        .iter()
        .filter_map(|request| request.definition.as_ref())
        .map(|definition| definition.code.len())
        .max()
        .unwrap_or(0);
    let count = requests.len();
    let mut written = 0;
    for request in requests {
        let code = request
            .definition
            .as_ref()
            .map(|definition| definition.code.clone())
            .unwrap_or_default();
        let result = metrics
            .define_measure(request)
            .await
            .with_context(|| format!("defining the reference measure {code}"))?
            .into_inner();
        let installed = reference::Installed::of(&result);
        if installed == reference::Installed::Defined {
            written += 1;
        }
        if context.json() {
            render::print_json_line(&result)?;
        } else {
            outln!(
                "{code:<width$}  {:<17}  {} at version {}",
                installed.word(),
                result.stream_id,
                result.version
            )?;
        }
    }
    if !context.json() {
        outln!(
            "{count} reference measures ({}): {written} written",
            reference::REFERENCE_VERSION
        )?;
    }
    Ok(())
}

/// One measure's definition, a line per property.
pub fn measure_lines(measure: &Measure) -> Vec<String> {
    let Some(definition) = &measure.definition else {
        return vec!["(no definition)".to_owned()];
    };
    let scale = display_scale(definition.display_scale);
    let target = match definition.target {
        Some(target) => format!(
            "{} {} (stored as {target})",
            scaled_text(target, scale),
            definition.unit
        ),
        None => "-".to_owned(),
    };
    let properties = [
        ("description", definition.description.clone()),
        ("unit", definition.unit.clone()),
        (
            "scoring",
            format!("{}, shown × {scale}", scoring_word(definition.scoring)),
        ),
        ("better", direction_word(definition.direction)),
        ("frequency", frequency_word(definition.frequency)),
        ("target", target),
        (
            "rule set",
            format!(
                "{}, conflicts resolved as {}",
                rule_set_word(definition.rule_set),
                conflict_rule_word(definition.conflict_rule)
            ),
        ),
    ];
    let mut lines = vec![format!(
        "{}  {} (revision {})",
        definition.code, definition.name, measure.revision
    )];
    lines.extend(
        properties
            .iter()
            .map(|(key, value)| format!("  {:<12}{value}", format!("{key}:"))),
    );
    lines
}

fn measures_table(measures: &[Measure]) -> Table {
    let mut table = Table::new(&[
        ("code", Align::Left),
        ("name", Align::Left),
        ("scoring", Align::Left),
        ("better", Align::Left),
        ("frequency", Align::Left),
        ("target", Align::Right),
        ("unit", Align::Left),
        ("revision", Align::Right),
    ]);
    for measure in measures {
        let Some(definition) = &measure.definition else {
            continue;
        };
        table.row(vec![
            definition.code.clone(),
            definition.name.clone(),
            scoring_word(definition.scoring),
            direction_word(definition.direction),
            frequency_word(definition.frequency),
            optional_scaled_text(definition.target, definition.display_scale),
            definition.unit.clone(),
            measure.revision.to_string(),
        ]);
    }
    table
}

pub async fn observation(context: &Context, command: ObservationCommand) -> anyhow::Result<()> {
    let mut metrics = context.metrics().await?;
    let options = Some(context.options());
    let result = match command {
        ObservationCommand::Record(args) => {
            metrics
                .record_observation(api::RecordObservationRequest {
                    options,
                    observation: Some(observation_from(args)),
                })
                .await?
        }
        ObservationCommand::Correct {
            observation,
            reason,
        } => {
            metrics
                .correct_observation(api::CorrectObservationRequest {
                    options,
                    observation: Some(observation_from(observation)),
                    reason,
                })
                .await?
        }
        ObservationCommand::Ghost {
            series,
            period_start,
            restore,
            reason,
        } => {
            metrics
                .ghost_observation(api::GhostObservationRequest {
                    options,
                    series: Some(series_key(series)),
                    period_start: Some(period_start),
                    ghosted: !restore,
                    reason,
                })
                .await?
        }
        ObservationCommand::MarkPartition {
            series,
            period_start,
            kind,
            baseline_points,
            remove,
            reason,
        } => {
            metrics
                .mark_partition(api::MarkPartitionRequest {
                    options,
                    series: Some(series_key(series)),
                    period_start: Some(period_start),
                    kind: PartitionMarkKind::from(kind) as i32,
                    baseline_points: baseline_points.unwrap_or(0),
                    remove,
                    reason,
                })
                .await?
        }
        ObservationCommand::SetTarget(SetTargetArgs {
            series,
            target,
            clear: _,
            reason,
        }) => {
            metrics
                .set_series_target(api::SetSeriesTargetRequest {
                    options,
                    series: Some(series_key(series)),
                    // clap makes --target and --clear exclusive, one of them required.
                    target,
                    reason,
                })
                .await?
        }
    };
    print_result(context, &result.into_inner(), None)
}

pub async fn series(context: &Context, command: SeriesCommand) -> anyhow::Result<()> {
    let args = match command {
        SeriesCommand::Get(args) => args,
        SeriesCommand::List {
            scope,
            trust,
            measure,
            page,
        } => return lookups::series(context, scope, trust, measure, page).await,
    };
    let mut metrics = context.metrics().await?;
    let series = metrics
        .get_series(api::GetSeriesRequest {
            series: Some(series_key(args)),
        })
        .await?
        .into_inner();
    print_series(context, &series)
}

pub fn print_series(context: &Context, series: &SpcSeries) -> anyhow::Result<()> {
    if context.json() {
        return render::print_json(series);
    }
    for line in series_lines(series) {
        outln!("{line}")?;
    }
    Ok(())
}

/// A series as a heading (what, icons, target, rule set), then a row per point.
pub fn series_lines(series: &SpcSeries) -> Vec<String> {
    let key = series.series.clone().unwrap_or_default();
    let measure = series.measure.clone().unwrap_or_default();
    let scale = display_scale(measure.display_scale);
    let mut title = format!("{} at {}", key.measure_code, key.ods_code);
    if !key.value_stream_id.is_empty() {
        title.push_str(&format!(" (value stream {})", key.value_stream_id));
    }
    if !measure.name.is_empty() {
        title.push_str(&format!(": {}", measure.name));
    }
    let unit = if measure.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", measure.unit)
    };
    let target = match series.target {
        Some(target) => format!("{}{unit}", scaled_text(target, scale)),
        None => "-".to_owned(),
    };
    let mut lines = vec![
        title,
        format!(
            "variation: {}  assurance: {}  target: {target}  better: {}  rule set: {}",
            variation_word(series.variation),
            assurance_word(series.assurance),
            direction_word(measure.direction),
            rule_set_text(series.rule_set.as_ref()),
        ),
    ];
    if series.run_chart {
        lines.push(
            "run chart: too few points for process limits, special-cause flags or icons".to_owned(),
        );
    }
    lines.extend(
        series
            .warnings
            .iter()
            .map(|warning| format!("warning: {warning}")),
    );
    let value_heading = if measure.unit.is_empty() {
        "value".to_owned()
    } else {
        format!("value ({})", measure.unit)
    };
    let mut table = Table::new(&[
        ("period", Align::Left),
        (&value_heading, Align::Right),
        ("mean", Align::Right),
        ("lower limit", Align::Right),
        ("upper limit", Align::Right),
        ("classification", Align::Left),
        ("rules", Align::Left),
        ("notes", Align::Left),
    ]);
    for point in &series.points {
        let rules: Vec<String> = point
            .rules
            .iter()
            .map(|rule| spc_rule_word(*rule))
            .collect();
        let mut notes = Vec::new();
        if point.ghosted {
            notes.push("ghosted".to_owned());
        }
        if point.recalculate_from {
            notes.push("recalculated from here".to_owned());
        }
        if point.baseline_points > 0 {
            notes.push(format!("baseline of {} points", point.baseline_points));
        }
        if point.revision > 1 {
            notes.push(format!("revision {}", point.revision));
        }
        table.row(vec![
            date_text(point.period_start.as_ref()),
            scaled_text(point.value, scale),
            optional_scaled_text(point.mean, scale),
            optional_scaled_text(point.lower_process_limit, scale),
            optional_scaled_text(point.upper_process_limit, scale),
            classification_word(point.classification),
            if rules.is_empty() {
                "-".to_owned()
            } else {
                rules.join(",")
            },
            notes.join(", "),
        ]);
    }
    lines.extend(table.lines());
    lines.push(match series.points.len() {
        1 => "1 point".to_owned(),
        count => format!("{count} points"),
    });
    lines
}

pub async fn peer_group(context: &Context, command: PeerGroupCommand) -> anyhow::Result<()> {
    let mut metrics = context.metrics().await?;
    match command {
        PeerGroupCommand::Define {
            id,
            name,
            method,
            anchor,
            members,
        } => {
            let peer_group_id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let result = metrics
                .define_peer_group(api::DefinePeerGroupRequest {
                    options: Some(context.options()),
                    peer_group_id: peer_group_id.clone(),
                    name,
                    method: PeerGroupMethod::from(method) as i32,
                    anchor_ods_code: anchor.unwrap_or_default(),
                    members,
                })
                .await?
                .into_inner();
            if !context.json() {
                outln!("peer-group {peer_group_id}")?;
            }
            print_result(context, &result, None)
        }
        PeerGroupCommand::List { ics, page } => lookups::peer_groups(context, ics, page).await,
        PeerGroupCommand::Get { peer_group_id } => {
            let group = metrics
                .get_peer_group(api::GetPeerGroupRequest { peer_group_id })
                .await?
                .into_inner();
            if context.json() {
                return render::print_json(&group);
            }
            for line in peer_group_lines(&group) {
                outln!("{line}")?;
            }
            Ok(())
        }
    }
}

pub fn peer_group_lines(group: &PeerGroupDefined) -> Vec<String> {
    let anchor = if group.anchor_ods_code.is_empty() {
        String::new()
    } else {
        format!(" of {}", group.anchor_ods_code)
    };
    vec![
        format!(
            "peer group {} (version {}): {}",
            group.peer_group_id, group.version, group.name
        ),
        format!("  method:  {}{anchor}", peer_method_word(group.method)),
        format!(
            "  members: {}",
            if group.members.is_empty() {
                "- (found on the day of comparison)".to_owned()
            } else {
                group.members.join(", ")
            }
        ),
    ]
}

pub async fn import(context: &Context, command: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Observations(args) = command;
    import_observations(context, args).await
}

/// Feeds the ingest call one chunk at a time, cloning only the chunk being sent, and moves the
/// progress bar as the transport takes each chunk.
struct ChunkFeed {
    file: Arc<ParsedFile>,
    next: usize,
    chunk: usize,
    progress: Progress,
}

impl Iterator for ChunkFeed {
    type Item = IngestObservationsRequest;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = &self.file.rows;
        if self.next >= rows.len() {
            self.progress.finish();
            return None;
        }
        let end = self.next.saturating_add(self.chunk).min(rows.len());
        let observations = rows[self.next..end]
            .iter()
            .map(|row| row.observation.clone())
            .collect();
        self.progress.advance(end - self.next);
        self.next = end;
        Some(IngestObservationsRequest { observations })
    }
}

/// `N messages` for `rows` observations sent at most `chunk` a message.
pub fn messages(rows: usize, chunk: usize) -> String {
    match rows.div_ceil(chunk.max(1)) {
        1 => "1 message".to_owned(),
        count => format!("{count} messages"),
    }
}

async fn import_observations(
    context: &Context,
    args: ImportObservationsArgs,
) -> anyhow::Result<()> {
    let path = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {path}"))?;
    let source = args.source.unwrap_or_else(|| {
        args.file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone())
    });
    let file = csv_import::parse(&bytes, &source)
        .map_err(|error| anyhow!("{path}: {error}; nothing was sent"))?;
    drop(bytes);
    let file = Arc::new(file);
    let chunk = usize::try_from(args.chunk).unwrap_or(5000);
    let to_send = file.rows.len();

    if args.dry_run {
        let report = ImportReport::new(&path, &file, None);
        report.print(context, chunk)?;
        return report.outcome();
    }

    let summary = if to_send == 0 {
        None
    } else {
        let mut metrics = context.metrics().await?;
        let feed = ChunkFeed {
            file: Arc::clone(&file),
            next: 0,
            chunk,
            progress: Progress::new("rows", to_send),
        };
        let summary = metrics
            .ingest_observations(tokio_stream::iter(feed))
            .await
            .with_context(|| {
                format!(
                    "sending {to_send} observations from {path} (running the import again is \
                     safe: observations already recorded are left unchanged)"
                )
            })?
            .into_inner();
        Some(summary)
    };
    let report = ImportReport::new(&path, &file, summary.as_ref());
    report.print(context, chunk)?;
    report.outcome()
}

/// What an import did, local checks and the server's answer together.
#[derive(Debug)]
struct ImportReport<'a> {
    path: &'a str,
    rows_read: usize,
    sent: usize,
    locally_rejected: usize,
    summary: Option<&'a IngestSummary>,
    /// Local and server rejections, by line.
    rejections: Vec<Rejection>,
}

impl<'a> ImportReport<'a> {
    fn new(path: &'a str, file: &ParsedFile, summary: Option<&'a IngestSummary>) -> Self {
        let mut rejections = file.rejections.clone();
        if let Some(summary) = summary {
            rejections.extend(file.map_server_rejections(&summary.rejections));
        }
        rejections.sort_by_key(|rejection| rejection.line);
        Self {
            path,
            rows_read: file.rows_read,
            sent: file.rows.len(),
            locally_rejected: file.rejected_rows(),
            summary,
            rejections,
        }
    }

    fn server_rejected(&self) -> u64 {
        self.summary.map(|summary| summary.rejected).unwrap_or(0)
    }

    fn rejected(&self) -> u64 {
        self.locally_rejected as u64 + self.server_rejected()
    }

    /// Rejections the server counted but did not list.
    fn unlisted(&self) -> u64 {
        self.summary
            .map(|summary| {
                summary
                    .rejected
                    .saturating_sub(summary.rejections.len() as u64)
            })
            .unwrap_or(0)
    }

    fn lines(&self, chunk: usize) -> Vec<String> {
        let mut lines = Vec::new();
        match self.summary {
            None if self.sent > 0 => lines.push(format!(
                "{}: {} rows read; {} would be sent in {} of up to {chunk}; {} rejected \
                 (dry run: nothing was sent)",
                self.path,
                self.rows_read,
                self.sent,
                messages(self.sent, chunk),
                self.locally_rejected
            )),
            None => lines.push(format!(
                "{}: {} rows read; nothing to send; {} rejected",
                self.path, self.rows_read, self.locally_rejected
            )),
            Some(summary) => {
                lines.push(format!(
                    "{}: {} rows read; {} sent in {}; {} rejected before sending",
                    self.path,
                    self.rows_read,
                    self.sent,
                    messages(self.sent, chunk),
                    self.locally_rejected
                ));
                lines.push(format!("received:  {}", summary.received));
                lines.push(format!("recorded:  {}", summary.recorded));
                lines.push(format!("unchanged: {}", summary.unchanged));
                lines.push(format!(
                    "rejected:  {} ({} before sending, {} by the server)",
                    self.rejected(),
                    self.locally_rejected,
                    summary.rejected
                ));
                lines.push(format!(
                    "series:    {} ({} special-cause and icon events)",
                    summary.series, summary.spc_events
                ));
            }
        }
        lines.extend(self.rejections.iter().map(ToString::to_string));
        if self.unlisted() > 0 {
            lines.push(format!(
                "… and {} more rejected by the server, not listed (it lists the first {})",
                self.unlisted(),
                self.summary
                    .map(|summary| summary.rejections.len())
                    .unwrap_or(0)
            ));
        }
        lines
    }

    fn json(&self) -> serde_json::Value {
        let summary = self.summary.cloned().unwrap_or_default();
        serde_json::json!({
            "file": self.path,
            "dryRun": self.summary.is_none(),
            "rowsRead": self.rows_read,
            "sent": if self.summary.is_some() { self.sent } else { 0 },
            "received": summary.received,
            "recorded": summary.recorded,
            "unchanged": summary.unchanged,
            "rejected": self.rejected(),
            "rejectedBeforeSending": self.locally_rejected,
            "rejectedByServer": summary.rejected,
            "series": summary.series,
            "spcEvents": summary.spc_events,
            "rejections": self.rejections.iter().map(|rejection| serde_json::json!({
                "line": rejection.line,
                "field": rejection.field,
                "reason": rejection.reason,
                "code": rejection.code,
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self, context: &Context, chunk: usize) -> anyhow::Result<()> {
        if context.json() {
            outln!("{}", serde_json::to_string_pretty(&self.json())?)?;
            return Ok(());
        }
        for line in self.lines(chunk) {
            outln!("{line}")?;
        }
        Ok(())
    }

    /// A failure (exit 1) when any row was rejected, once everything is reported.
    fn outcome(&self) -> anyhow::Result<()> {
        let rejected = self.rejected();
        if rejected == 0 {
            return Ok(());
        }
        match self.summary {
            Some(summary) => bail!(
                "{rejected} of {} rows of {} were rejected; the other {} were sent ({} recorded, \
                 {} unchanged)",
                self.rows_read,
                self.path,
                summary.received.saturating_sub(summary.rejected),
                summary.recorded,
                summary.unchanged
            ),
            None => bail!(
                "{rejected} of {} rows of {} were rejected; nothing was sent",
                self.rows_read,
                self.path
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::{
        Date, SpcClassification, SpcPoint, SpcRule, SpcRuleSetVersion, VariationIcon,
    };
    use ics_proto::metrics::v1::IngestRejection;

    fn date(year: i32, month: u32, day: u32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    fn file() -> ParsedFile {
        csv_import::parse(
            b"ods_code,measure_code,period_start,period_end,value\n\
              RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.9\n\
              RXX,FFT_POSITIVE,2024-05-01,bad,0.9\n\
              RXX,FFT_POSITIVE,2024-06-01,2024-06-30,0.9\n",
            "t.csv",
        )
        .expect("parses")
    }

    #[test]
    fn chunks_cover_every_row_once_in_order() {
        let mut file = file();
        let row = file.rows[0].clone();
        file.rows = vec![row; 7];
        let feed = ChunkFeed {
            file: Arc::new(file),
            next: 0,
            chunk: 3,
            progress: Progress::with_output("rows", 7, false),
        };
        let sizes: Vec<usize> = feed.map(|message| message.observations.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(messages(7, 3), "3 messages");
        assert_eq!(messages(4000, 5000), "1 message");
    }

    #[test]
    fn the_import_report_lists_local_and_server_rejections_by_line() {
        let file = file();
        let summary = IngestSummary {
            received: 2,
            recorded: 1,
            unchanged: 0,
            rejected: 1,
            rejections: vec![IngestRejection {
                index: 1,
                field: "ods_code".to_owned(),
                reason: "not yours".to_owned(),
                code: "PERMISSION_DENIED".to_owned(),
            }],
            series: 1,
            spc_events: 0,
        };
        let report = ImportReport::new("t.csv", &file, Some(&summary));
        let lines = report.lines(5000);
        assert_eq!(
            lines[0],
            "t.csv: 3 rows read; 2 sent in 1 message; 1 rejected before sending"
        );
        assert_eq!(lines[4], "rejected:  2 (1 before sending, 1 by the server)");
        assert_eq!(
            &lines[6..],
            [
                "line 3: period_end: 'bad' is not a date: write it as YYYY-MM-DD, e.g. 2015-07-01",
                "line 4: ods_code: not yours",
            ]
        );
        let error = report.outcome().expect_err("rows were rejected");
        assert!(
            error
                .to_string()
                .starts_with("2 of 3 rows of t.csv were rejected")
        );
        assert_eq!(report.json()["rejections"][1]["line"], 4);
    }

    #[test]
    fn a_clean_import_succeeds() {
        let file = csv_import::parse(
            b"ods_code,measure_code,period_start,period_end,value\n\
              RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.9\n",
            "t.csv",
        )
        .expect("parses");
        let summary = IngestSummary {
            received: 1,
            unchanged: 1,
            ..IngestSummary::default()
        };
        assert!(
            ImportReport::new("t.csv", &file, Some(&summary))
                .outcome()
                .is_ok()
        );
        let dry = ImportReport::new("t.csv", &file, None);
        assert!(dry.outcome().is_ok());
        assert!(dry.lines(5000)[0].contains("dry run: nothing was sent"));
    }

    #[test]
    fn series_render_scaled_with_icons_and_rules() {
        let series = SpcSeries {
            series: Some(SeriesKey {
                measure_code: "FFT_POSITIVE".to_owned(),
                ods_code: "RR8".to_owned(),
                value_stream_id: String::new(),
            }),
            measure: reference::definitions().into_iter().next(),
            target: Some(0.95),
            points: vec![SpcPoint {
                period_start: date(2024, 4, 1),
                period_end: date(2024, 4, 30),
                value: 0.9712,
                mean: Some(0.93),
                upper_process_limit: Some(0.965),
                lower_process_limit: Some(0.895),
                classification: SpcClassification::Improvement as i32,
                rules: vec![SpcRule::Astronomical as i32, SpcRule::Shift as i32],
                ghosted: true,
                ..SpcPoint::default()
            }],
            variation: VariationIcon::ImprovementHigh as i32,
            assurance: 0,
            run_chart: false,
            rule_set: Some(SpcRuleSetVersion {
                name: "MDC".to_owned(),
                version: "2.5".to_owned(),
            }),
            warnings: vec![],
        };
        let lines = series_lines(&series);
        assert_eq!(
            lines[0],
            "FFT_POSITIVE at RR8: Friends and Family Test: % positive"
        );
        assert_eq!(
            lines[1],
            "variation: improvement-high  assurance: -  target: 95.00 %  better: increase  \
             rule set: MDC 2.5"
        );
        assert!(
            lines[2].starts_with("period      value (%)   mean  lower limit"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("2024-04-01      97.12  93.00        89.50        96.50  improvement     astronomical,shift  ghosted"),
            "{}",
            lines[3]
        );
        assert_eq!(lines[4], "1 point");
    }

    #[test]
    fn measures_show_their_definition() {
        let measure = Measure {
            definition: reference::definitions().into_iter().next(),
            revision: 2,
        };
        let lines = measure_lines(&measure);
        assert_eq!(
            lines[0],
            "FFT_POSITIVE  Friends and Family Test: % positive (revision 2)"
        );
        assert!(lines.contains(&"  target:     95.00 % (stored as 0.95)".to_owned()));
        assert!(lines.contains(&"  scoring:    proportion, shown × 100".to_owned()));
    }
}
