//! Board packs, rendered here from the service's own views by `ics-board-pack`: a scope's
//! workshop outcomes (as `GetOutcomes`) and, for an ICS, its measures (as `GetMeasureView`), an
//! XmR chart of every series with data and a funnel plot of every proportion measure with data
//! from at least two trusts for one period. A chart draws the analysis of the series' stored
//! points that `GetSeriesChart` answers with, and a funnel plot the funnel `GetPeerComparison`
//! reads its bands from, so the pack can never disagree with the API.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use ics_board_pack::{MeasurePack, PeerFunnel, SeriesChart};
use ics_measures::Series;
use ics_proto::date::from_naive;
use ics_proto::reporting::v1::{BoardPack, BoardPackFormat, MeasureView, Scope};
use ics_service_kit::error::ServiceError;
use sqlx::{PgPool, Row};

use crate::outcome_records::OutcomeRecords;
use crate::{measures, views};

/// What a request asks for: the format, and for CSV the one table wanted (every table when
/// `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Html,
    Csv(Option<String>),
}

impl Wanted {
    /// The request's format and table, checked against the scope: a programme's pack has no
    /// measures table.
    pub fn of(format: i32, table: &str, scope: &Scope) -> Result<Wanted, ServiceError> {
        match BoardPackFormat::try_from(format) {
            Ok(BoardPackFormat::Html) => Ok(Wanted::Html),
            Ok(BoardPackFormat::Csv) if table.is_empty() => Ok(Wanted::Csv(None)),
            Ok(BoardPackFormat::Csv) => {
                let tables = ics_board_pack::csv_tables(Some(scope));
                if tables.contains(&table) {
                    Ok(Wanted::Csv(Some(table.to_owned())))
                } else {
                    Err(ServiceError::invalid_field(
                        "table",
                        format!(
                            "must be empty (every table) or one of this scope's tables: {}",
                            tables.join(", ")
                        ),
                    ))
                }
            }
            _ => Err(ServiceError::invalid_field(
                "format",
                "is required: BOARD_PACK_FORMAT_HTML or BOARD_PACK_FORMAT_CSV",
            )),
        }
    }
}

/// The scope's board pack on `as_of`. `generated_at` is printed in the HTML page's footer, and
/// `notice` (`ICS_DATA_LABEL`) at its top.
pub async fn board_pack(
    pool: &PgPool,
    outcome_records: &OutcomeRecords,
    scope: &Scope,
    as_of: NaiveDate,
    wanted: &Wanted,
    generated_at: &str,
    notice: Option<&str>,
) -> Result<BoardPack, ServiceError> {
    let outcomes = views::outcomes(pool, outcome_records, scope, as_of).await?;
    let measures = match ics_board_pack::measures_ics(Some(scope)) {
        Some(ics) => Some(measure_pack(pool, ics, as_of, *wanted == Wanted::Html).await?),
        None => None,
    };
    let files = match wanted {
        Wanted::Html => vec![ics_board_pack::html_file(
            &outcomes,
            measures.as_ref(),
            generated_at,
            notice,
        )],
        Wanted::Csv(table) => ics_board_pack::csv_files(&outcomes, measures.as_ref())
            .into_iter()
            .filter(|file| table.as_ref().is_none_or(|table| file.table == *table))
            .collect(),
    };
    let count = |count: usize| u32::try_from(count).unwrap_or(u32::MAX);
    Ok(BoardPack {
        scope: Some(scope.clone()),
        name: outcomes.name.clone(),
        as_of: Some(from_naive(as_of)),
        files,
        measure_rows: count(measures.as_ref().map_or(0, |pack| pack.view.rows.len())),
        xmr_charts: count(measures.as_ref().map_or(0, |pack| pack.charts.len())),
        funnel_plots: count(measures.as_ref().map_or(0, |pack| pack.comparisons.len())),
    })
}

/// The ICS's measure view and, `with_charts`, the charts of its series with data and the
/// funnel plots of its proportion measures.
async fn measure_pack(
    pool: &PgPool,
    ics_ods_code: &str,
    as_of: NaiveDate,
    with_charts: bool,
) -> Result<MeasurePack, ServiceError> {
    let view = measures::measure_view(pool, ics_ods_code, "", as_of).await?;
    if !with_charts {
        return Ok(MeasurePack {
            view,
            ..MeasurePack::default()
        });
    }
    let charts = series_charts(pool, &view).await?;
    let proportions: BTreeSet<&str> = charts
        .iter()
        .filter(|chart| ics_board_pack::is_proportion(&chart.series))
        .filter_map(|chart| chart.series.series.as_ref())
        .map(|key| key.measure_code.as_str())
        .collect();
    let mut comparisons = Vec::new();
    for measure_code in proportions {
        match measures::peer_funnel(pool, ics_ods_code, measure_code, "", None, as_of).await {
            Ok((comparison, funnel)) => comparisons.push(PeerFunnel { comparison, funnel }),
            // Fewer than two trusts with data for any one period: no funnel to draw.
            Err(ServiceError::FailedPrecondition(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(MeasurePack {
        view,
        charts,
        comparisons,
    })
}

/// The series behind the view's rows that have data, in the view's order, each with the
/// analysis of its stored points.
async fn series_charts(
    pool: &PgPool,
    view: &MeasureView,
) -> Result<Vec<SeriesChart>, ServiceError> {
    let ods_codes: Vec<String> = view
        .rows
        .iter()
        .map(|row| row.ods_code.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut records: HashMap<(String, String), Series> = HashMap::new();
    for row in sqlx::query(
        "SELECT measure_code, ods_code, record FROM measure_series
         WHERE ods_code = ANY($1) AND value_stream_id = '' AND points > 0",
    )
    .bind(&ods_codes)
    .fetch_all(pool)
    .await?
    {
        let bytes: Vec<u8> = row.try_get("record")?;
        let series = Series::decode(&bytes).map_err(ServiceError::internal)?;
        records.insert(
            (row.try_get("measure_code")?, row.try_get("ods_code")?),
            series,
        );
    }
    let definitions = measures::definitions(pool).await?;
    Ok(view
        .rows
        .iter()
        .filter(|row| row.points > 0)
        .filter_map(|row| {
            let series = records.get(&(row.measure_code.clone(), row.ods_code.clone()))?;
            let measure = definitions.get(&row.measure_code)?;
            let (series, analysis) = series.chart(measure);
            Some(SeriesChart { series, analysis })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::reporting::v1::scope;

    fn ics() -> Scope {
        Scope {
            scope: Some(scope::Scope::IcsOdsCode("QWO".to_owned())),
        }
    }

    fn programme() -> Scope {
        Scope {
            scope: Some(scope::Scope::ProgrammeId(
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned(),
            )),
        }
    }

    fn field_of(error: ServiceError) -> String {
        match error {
            ServiceError::InvalidArgument(violations) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect::<Vec<_>>()
                .join(","),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_format_is_required_and_a_table_must_be_the_scopes() {
        let html = BoardPackFormat::Html as i32;
        let csv = BoardPackFormat::Csv as i32;
        assert_eq!(Wanted::of(html, "", &ics()).ok(), Some(Wanted::Html));
        // HTML is one page whatever table is named.
        assert_eq!(
            Wanted::of(html, "anything", &ics()).ok(),
            Some(Wanted::Html)
        );
        assert_eq!(
            Wanted::of(csv, "", &programme()).ok(),
            Some(Wanted::Csv(None))
        );
        assert_eq!(
            Wanted::of(csv, "measures", &ics()).ok(),
            Some(Wanted::Csv(Some("measures".to_owned())))
        );
        assert_eq!(
            field_of(Wanted::of(csv, "measures", &programme()).expect_err("no measures")),
            "table"
        );
        assert_eq!(
            field_of(Wanted::of(csv, "everything", &ics()).expect_err("no such table")),
            "table"
        );
        assert_eq!(
            field_of(Wanted::of(0, "", &ics()).expect_err("no format")),
            "format"
        );
        assert_eq!(
            field_of(Wanted::of(99, "", &ics()).expect_err("unknown")),
            "format"
        );
    }
}
