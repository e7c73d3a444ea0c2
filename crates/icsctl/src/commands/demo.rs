//! `icsctl demo`: loads the demo data set through the services ([`ics_demo::run`]), then
//! prints the programme overview, the West Yorkshire ICS overview, the programme's workshop
//! outcomes and the ICS's measure view — or, with `--output json`, those four as JSON Lines,
//! the progress going to standard error.

use std::time::Duration;

use ics_board_pack::outcomes::{DEFINITIONS_LINE, headline_table};
use ics_demo::{Services, Shown, Waited, Waits, data, measures};

use crate::cli::DemoArgs;
use crate::commands::measure_report::measure_view_lines;
use crate::commands::report::overview_lines;
use crate::connect::Context;
use crate::render::{self, outln};

pub async fn run(context: &Context, arguments: &DemoArgs) -> anyhow::Result<()> {
    let services = Services {
        trusts: context.trusts().await?,
        trusts_url: context.trusts_url.clone(),
        workshops: context.workshops().await?,
        workshops_url: context.workshops_url.clone(),
        metrics: context.metrics().await?,
        metrics_url: context.metrics_url.clone(),
        reporting: context.reporting().await?,
    };
    let waits = Waits {
        overviews: Duration::from_secs(arguments.wait),
        outcomes: Duration::from_secs(arguments.outcomes_wait),
    };
    // With `--output json`, stdout carries only the views.
    let json = context.json();
    let mut say = |line: &str| -> anyhow::Result<()> {
        if json {
            eprintln!("{line}");
        } else {
            outln!("{line}")?;
        }
        Ok(())
    };
    let shown = ics_demo::run(services, &waits, &mut say).await?;
    if json {
        print_json(&shown)?;
    } else {
        print_text(&shown)?;
    }
    shown.complete(&waits)
}

/// JSON Lines: the programme overview, the ICS overview, the programme's outcomes, then the
/// ICS's measure view.
fn print_json(shown: &Shown) -> anyhow::Result<()> {
    for waited in [&shown.programme_overview, &shown.ics_overview] {
        if let Some(overview) = &waited.overview {
            render::print_json_line(overview)?;
        }
    }
    render::print_json_line(&shown.outcomes.outcomes)?;
    if let Some(view) = &shown.measure_view {
        render::print_json_line(view)?;
    }
    Ok(())
}

fn print_text(shown: &Shown) -> anyhow::Result<()> {
    outln!()?;
    outln!(
        "Programme overview as of {}, the partnership's last day (ICBs were only established on \
         {}):",
        data::PROGRAMME_OVERVIEW_AS_OF,
        data::LINKED_FROM
    )?;
    print_waited(&shown.programme_overview)?;
    outln!()?;
    outln!("West Yorkshire ICS ({}) overview today:", data::ICS)?;
    print_waited(&shown.ics_overview)?;
    outln!()?;
    outln!(
        "SYNTHETIC workshop outcomes of the programme as of {} (generated workshops that add up \
         to the published headline, not the programme's own records):",
        data::PROGRAMME_OVERVIEW_AS_OF
    )?;
    for line in headline_table(&shown.outcomes.outcomes.headline).lines() {
        outln!("{line}")?;
    }
    outln!("{DEFINITIONS_LINE}")?;
    outln!()?;
    let (first, _) = measures::month(0);
    let (last, _) = measures::month(measures::MONTHS - 1);
    outln!(
        "West Yorkshire ICS ({}) measures today: SYNTHETIC monthly figures from {} to {} ({} \
         stands out on the Friends and Family Test; leaver rates fall everywhere):",
        data::ICS,
        first.format("%B %Y"),
        last.format("%B %Y"),
        measures::CONCERN_TRUST
    )?;
    if let Some(view) = &shown.measure_view {
        for line in measure_view_lines(view) {
            outln!("{line}")?;
        }
    }
    outln!()?;
    outln!("{}", data::SAMPLE_REMINDER)?;
    outln!("{}", data::SYNTHETIC_REMINDER)?;
    outln!("{}", measures::REMINDER)?;
    Ok(())
}

fn print_waited(waited: &Waited) -> anyhow::Result<()> {
    if let Some(overview) = &waited.overview {
        for line in overview_lines(overview) {
            outln!("{line}")?;
        }
    }
    Ok(())
}
