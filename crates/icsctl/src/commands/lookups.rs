//! Lists a board can look things up in, a page at a time, from the reporting service.

use std::future::Future;

use ics_proto::reporting::v1::{
    self as api, ListPeerGroupsResponse, ListProgrammesResponse, ListSeriesResponse,
    ListValueStreamsResponse,
};

use crate::cli::{PageArgs, ScopeArgs};
use crate::commands::metrics::peer_group_lines;
use crate::commands::report::scope_of;
use crate::connect::Context;
use crate::render::{self, Align, PrintTable, Table, date_text, outln, status_word};

/// Every page in turn, or only the page after `--page-token`. Returns the entries and, for a
/// single page, the token of the next (empty on the last page).
pub(crate) async fn read_pages<T, F, Fut>(
    page: PageArgs,
    mut fetch: F,
) -> anyhow::Result<(Vec<T>, Option<String>)>
where
    F: FnMut(u32, String) -> Fut,
    Fut: Future<Output = anyhow::Result<(Vec<T>, String)>>,
{
    if let Some(token) = page.page_token {
        let (entries, next) = fetch(page.page_size, token).await?;
        return Ok((entries, Some(next)));
    }
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (entries, next) = fetch(page.page_size, token).await?;
        all.extend(entries);
        if next.is_empty() {
            return Ok((all, None));
        }
        token = next;
    }
}

/// The line that tells how to read on after a single page.
pub(crate) fn print_next(next: Option<&str>) -> anyhow::Result<()> {
    match next {
        Some("") => outln!("last page")?,
        Some(next) => outln!("next page: --page-token {next}")?,
        None => {}
    }
    Ok(())
}

pub async fn programmes(context: &Context, scope: ScopeArgs, page: PageArgs) -> anyhow::Result<()> {
    let reporting = context.reporting().await?;
    let scope = scope_of(scope);
    let (programmes, next) = read_pages(page, |page_size, page_token| {
        let request = api::ListProgrammesRequest {
            scope: Some(scope.clone()),
            page_size,
            page_token,
        };
        let mut reporting = reporting.clone();
        async move {
            let page = reporting.list_programmes(request).await?.into_inner();
            Ok((page.programmes, page.next_page_token))
        }
    })
    .await?;
    if context.json() {
        return render::print_json(&ListProgrammesResponse {
            programmes,
            next_page_token: next.unwrap_or_default(),
        });
    }
    let mut table = Table::new(&[
        ("programme id", Align::Left),
        ("starts", Align::Left),
        ("ends", Align::Left),
        ("trusts", Align::Right),
        ("name", Align::Left),
    ]);
    for programme in &programmes {
        table.row(vec![
            programme.programme_id.clone(),
            date_text(programme.starts_on.as_ref()),
            date_text(programme.ends_on.as_ref()),
            programme.trusts.to_string(),
            programme.name.clone(),
        ]);
    }
    table.print()?;
    outln!("{} programmes", programmes.len())?;
    print_next(next.as_deref())
}

pub async fn value_streams(
    context: &Context,
    scope: ScopeArgs,
    trust: Option<String>,
    page: PageArgs,
) -> anyhow::Result<()> {
    let reporting = context.reporting().await?;
    let scope = scope_of(scope);
    let (value_streams, next) = read_pages(page, |page_size, page_token| {
        let request = api::ListValueStreamsRequest {
            scope: Some(scope.clone()),
            ods_code: trust.clone().unwrap_or_default(),
            page_size,
            page_token,
        };
        let mut reporting = reporting.clone();
        async move {
            let page = reporting.list_value_streams(request).await?.into_inner();
            Ok((page.value_streams, page.next_page_token))
        }
    })
    .await?;
    if context.json() {
        return render::print_json(&ListValueStreamsResponse {
            value_streams,
            next_page_token: next.unwrap_or_default(),
        });
    }
    let mut table = Table::new(&[
        ("trust", Align::Left),
        ("value stream id", Align::Left),
        ("status", Align::Left),
        ("name", Align::Left),
    ]);
    for value_stream in &value_streams {
        table.row(vec![
            value_stream.ods_code.clone(),
            value_stream.value_stream_id.clone(),
            status_word(value_stream.status),
            value_stream.name.clone(),
        ]);
    }
    table.print()?;
    outln!("{} value streams", value_streams.len())?;
    print_next(next.as_deref())
}

pub async fn series(
    context: &Context,
    scope: ScopeArgs,
    trust: Option<String>,
    measure: Option<String>,
    page: PageArgs,
) -> anyhow::Result<()> {
    let reporting = context.reporting().await?;
    let scope = scope_of(scope);
    let (series, next) = read_pages(page, |page_size, page_token| {
        let request = api::ListSeriesRequest {
            scope: Some(scope.clone()),
            ods_code: trust.clone().unwrap_or_default(),
            measure_code: measure.clone().unwrap_or_default(),
            page_size,
            page_token,
        };
        let mut reporting = reporting.clone();
        async move {
            let page = reporting.list_series(request).await?.into_inner();
            Ok((page.series, page.next_page_token))
        }
    })
    .await?;
    if context.json() {
        return render::print_json(&ListSeriesResponse {
            series,
            next_page_token: next.unwrap_or_default(),
        });
    }
    let mut table = Table::new(&[
        ("measure", Align::Left),
        ("trust", Align::Left),
        ("value stream", Align::Left),
        ("points", Align::Right),
        ("latest period", Align::Left),
    ]);
    for entry in &series {
        let key = entry.series.clone().unwrap_or_default();
        table.row(vec![
            key.measure_code,
            key.ods_code,
            if key.value_stream_id.is_empty() {
                "-".to_owned()
            } else {
                key.value_stream_id
            },
            entry.points.to_string(),
            date_text(entry.latest_period_start.as_ref()),
        ]);
    }
    table.print()?;
    outln!("{} series", series.len())?;
    print_next(next.as_deref())
}

pub async fn peer_groups(context: &Context, ics: String, page: PageArgs) -> anyhow::Result<()> {
    let reporting = context.reporting().await?;
    let (peer_groups, next) = read_pages(page, |page_size, page_token| {
        let request = api::ListPeerGroupsRequest {
            ics_ods_code: ics.clone(),
            page_size,
            page_token,
        };
        let mut reporting = reporting.clone();
        async move {
            let page = reporting.list_peer_groups(request).await?.into_inner();
            Ok((page.peer_groups, page.next_page_token))
        }
    })
    .await?;
    if context.json() {
        return render::print_json(&ListPeerGroupsResponse {
            peer_groups,
            next_page_token: next.unwrap_or_default(),
        });
    }
    for group in &peer_groups {
        for line in peer_group_lines(group) {
            outln!("{line}")?;
        }
    }
    outln!("{} peer groups", peer_groups.len())?;
    print_next(next.as_deref())
}
