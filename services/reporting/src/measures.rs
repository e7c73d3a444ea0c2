//! Reads of the measures projection: the ICS measure view, SPC charts, and peer comparison.
//!
//! - **Peer group**: the ICS's own member trusts on the day when none is named; otherwise the
//!   named group's latest version — an ICB's trusts or a region's (trusts of the ICBs belonging
//!   to the region) on the day, or its custom list. The trusts shown are always compared: the
//!   funnel's units are the group's members together with them.
//! - **Peer band** (proportion measures with a direction): the latest period start for which at
//!   least two units have a non-ghosted point with a numerator and denominator; each trust with
//!   data for that period is better / as expected / worse by the funnel's 95% limits, widened
//!   for over-dispersion. Others have no band.
//! - **Change against peers**: each unit's value at the two period starts (points must exist
//!   and not be ghosted); the trust's change is judged against the distribution of its peers'.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use ics_measures::Series;
use ics_peers::{ChangeUnit, Funnel, FunnelUnit, Performance, compare_change, funnel};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    MeasureDefinition, MeasureScoring, PeerGroupDefined, PeerGroupMethod, SeriesKey,
    SpcRuleSetVersion, SpcSeries,
};
use ics_proto::reporting::v1::{
    FunnelUnit as FunnelUnitView, MeasureRow, MeasureView, PeerBand, PeerChange, PeerComparison,
    PeerUnitChange,
};
use ics_service_kit::error::ServiceError;
use prost::Message;
use sqlx::{PgPool, Row};

use crate::views::ics_members;

/// Who a comparison is made among.
#[derive(Debug, Clone, PartialEq)]
pub struct Peers {
    pub peer_group_id: String,
    pub version: u32,
    pub members: BTreeSet<String>,
}

fn band(performance: Option<Performance>) -> PeerBand {
    match performance {
        Some(Performance::Better) => PeerBand::Better,
        Some(Performance::Same) => PeerBand::AsExpected,
        Some(Performance::Worse) => PeerBand::Worse,
        None => PeerBand::Unspecified,
    }
}

async fn trusts_of_icb(
    pool: &PgPool,
    icb: &str,
    as_of: NaiveDate,
) -> Result<Vec<String>, ServiceError> {
    Ok(sqlx::query_scalar(
        "SELECT ods_code FROM organisation_links
         WHERE parent_ods_code = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to >= $2)",
    )
    .bind(icb)
    .bind(as_of)
    .fetch_all(pool)
    .await?)
}

/// A peer group's current definition, as the projection stored it.
async fn peer_group(
    pool: &PgPool,
    peer_group_id: &str,
) -> Result<Option<PeerGroupDefined>, ServiceError> {
    let definition: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT definition FROM peer_groups WHERE peer_group_id = $1")
            .bind(peer_group_id.to_ascii_lowercase())
            .fetch_optional(pool)
            .await?;
    definition
        .map(|bytes| PeerGroupDefined::decode(bytes.as_slice()).map_err(ServiceError::internal))
        .transpose()
}

/// Whether a board of `ics_ods_code` may compare against the peer group: one of its own ICS
/// (`IcsMembers` anchored at it), of its region on `as_of` (`Region` anchored there), or a
/// custom list whose members all belong, on `as_of`, to its ICS or its region. Another ICS's
/// custom list is that ICS's choice of peers, not this board's to read. Unknown groups are
/// `false` as well, so the caller answers both alike.
pub async fn peer_group_fits_ics(
    pool: &PgPool,
    peer_group_id: &str,
    ics_ods_code: &str,
    as_of: NaiveDate,
) -> Result<bool, ServiceError> {
    let Some(group) = peer_group(pool, peer_group_id).await? else {
        return Ok(false);
    };
    let region: Option<String> = sqlx::query_scalar(
        "SELECT parent_ods_code FROM organisation_links
         WHERE ods_code = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to >= $2)
         LIMIT 1",
    )
    .bind(ics_ods_code)
    .bind(as_of)
    .fetch_optional(pool)
    .await?;
    Ok(match PeerGroupMethod::try_from(group.method) {
        Ok(PeerGroupMethod::IcsMembers) => group.anchor_ods_code == ics_ods_code,
        Ok(PeerGroupMethod::Region) => region.as_deref() == Some(group.anchor_ods_code.as_str()),
        _ => {
            let mut neighbourhood: BTreeSet<String> = trusts_of_icb(pool, ics_ods_code, as_of)
                .await?
                .into_iter()
                .collect();
            if let Some(region) = &region {
                for icb in trusts_of_icb(pool, region, as_of).await? {
                    neighbourhood.extend(trusts_of_icb(pool, &icb, as_of).await?);
                }
            }
            group
                .members
                .iter()
                .all(|member| neighbourhood.contains(member))
        }
    })
}

/// The peer group's members on `as_of` (see the module docs), plus `shown`.
pub async fn peers(
    pool: &PgPool,
    peer_group_id: &str,
    shown: &[String],
    as_of: NaiveDate,
) -> Result<Peers, ServiceError> {
    let mut members: BTreeSet<String> = shown.iter().cloned().collect();
    if peer_group_id.is_empty() {
        return Ok(Peers {
            peer_group_id: String::new(),
            version: 0,
            members,
        });
    }
    let group = peer_group(pool, peer_group_id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("peer group {peer_group_id}")))?;
    match PeerGroupMethod::try_from(group.method) {
        Ok(PeerGroupMethod::IcsMembers) => {
            members.extend(trusts_of_icb(pool, &group.anchor_ods_code, as_of).await?);
        }
        Ok(PeerGroupMethod::Region) => {
            for icb in trusts_of_icb(pool, &group.anchor_ods_code, as_of).await? {
                members.extend(trusts_of_icb(pool, &icb, as_of).await?);
            }
        }
        _ => members.extend(group.members.iter().cloned()),
    }
    Ok(Peers {
        peer_group_id: group.peer_group_id,
        version: group.version,
        members,
    })
}

/// A unit's recent points: period start → (numerator, denominator).
type Recent = BTreeMap<NaiveDate, (f64, f64)>;

/// The latest period with data from at least two units, and the funnel units of that period.
fn latest_common_period(recent: &HashMap<String, Recent>) -> Option<(NaiveDate, Vec<FunnelUnit>)> {
    let mut counts: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    for points in recent.values() {
        for start in points.keys() {
            *counts.entry(*start).or_default() += 1;
        }
    }
    let (period, _) = counts.iter().rev().find(|(_, count)| **count >= 2)?;
    let mut units: Vec<FunnelUnit> = recent
        .iter()
        .filter_map(|(ods_code, points)| {
            points
                .get(period)
                .map(|(numerator, denominator)| FunnelUnit::new(ods_code, *numerator, *denominator))
        })
        .collect();
    units.sort_by(|a, b| a.id.cmp(&b.id));
    Some((*period, units))
}

/// Each unit's band on the measure's latest common period.
fn bands(
    measure: &MeasureDefinition,
    recent: &HashMap<String, Recent>,
) -> Option<(NaiveDate, HashMap<String, PeerBand>)> {
    if measure.scoring != MeasureScoring::Proportion as i32 {
        return None;
    }
    let (period, units) = latest_common_period(recent)?;
    let plot = funnel(&units, ics_measures::direction(measure)).ok()?;
    Some((
        period,
        plot.units
            .iter()
            .map(|unit| (unit.id.clone(), band(unit.label.performance)))
            .collect(),
    ))
}

pub(crate) async fn definitions(
    pool: &PgPool,
) -> Result<HashMap<String, MeasureDefinition>, ServiceError> {
    let mut definitions = HashMap::new();
    for row in sqlx::query("SELECT code, definition FROM measure_definitions")
        .fetch_all(pool)
        .await?
    {
        let bytes: Vec<u8> = row.try_get("definition")?;
        definitions.insert(
            row.try_get("code")?,
            MeasureDefinition::decode(bytes.as_slice()).map_err(ServiceError::internal)?,
        );
    }
    Ok(definitions)
}

/// Recent numerator/denominator points of `measure` for `units` (organisation-level series).
async fn recent_points(
    pool: &PgPool,
    measure_codes: &[String],
    units: &[String],
) -> Result<HashMap<String, HashMap<String, Recent>>, ServiceError> {
    let mut by_measure: HashMap<String, HashMap<String, Recent>> = HashMap::new();
    for row in sqlx::query(
        "SELECT measure_code, ods_code, recent_starts, recent_numerators, recent_denominators
         FROM measure_series
         WHERE measure_code = ANY($1) AND ods_code = ANY($2) AND value_stream_id = ''",
    )
    .bind(measure_codes)
    .bind(units)
    .fetch_all(pool)
    .await?
    {
        let starts: Vec<NaiveDate> = row.try_get("recent_starts")?;
        let numerators: Vec<f64> = row.try_get("recent_numerators")?;
        let denominators: Vec<f64> = row.try_get("recent_denominators")?;
        let points: Recent = starts
            .into_iter()
            .zip(numerators.into_iter().zip(denominators))
            .collect();
        by_measure
            .entry(row.try_get("measure_code")?)
            .or_default()
            .insert(row.try_get("ods_code")?, points);
    }
    Ok(by_measure)
}

/// Each member trust × measure of the ICS on `as_of`.
pub async fn measure_view(
    pool: &PgPool,
    ics_ods_code: &str,
    peer_group_id: &str,
    as_of: NaiveDate,
) -> Result<MeasureView, ServiceError> {
    let (name, members) = ics_members(pool, ics_ods_code, as_of).await?;
    let codes: Vec<String> = members.iter().map(|m| m.ods_code.clone()).collect();
    let names: HashMap<&str, &str> = members
        .iter()
        .map(|m| (m.ods_code.as_str(), m.name.as_str()))
        .collect();
    let peers = peers(pool, peer_group_id, &codes, as_of).await?;
    let definitions = definitions(pool).await?;
    let rows = sqlx::query(
        "SELECT measure_code, ods_code, points, latest_start, latest_end, latest_value,
                variation, assurance, target, rule_set, rule_set_version
         FROM measure_series
         WHERE ods_code = ANY($1) AND value_stream_id = ''
         ORDER BY ods_code, measure_code",
    )
    .bind(&codes)
    .fetch_all(pool)
    .await?;
    // Read after the rows, so the count covers at least the points they show: the statements
    // run on separate snapshots while the projection applies new observations.
    let observations: Option<i64> = sqlx::query_scalar(
        "SELECT sum(points)::bigint FROM measure_series WHERE ods_code = ANY($1)",
    )
    .bind(&codes)
    .fetch_one(pool)
    .await?;
    let measure_codes: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String, _>("measure_code"))
        .collect::<Result<BTreeSet<_>, _>>()?
        .into_iter()
        .collect();
    let units: Vec<String> = peers.members.iter().cloned().collect();
    let recent = recent_points(pool, &measure_codes, &units).await?;
    let bands: HashMap<&str, (NaiveDate, HashMap<String, PeerBand>)> = measure_codes
        .iter()
        .filter_map(|code| {
            let measure = definitions.get(code)?;
            let recent = recent.get(code)?;
            Some((code.as_str(), bands(measure, recent)?))
        })
        .collect();

    let mut view_rows = Vec::with_capacity(rows.len());
    for row in rows {
        let measure_code: String = row.try_get("measure_code")?;
        let ods_code: String = row.try_get("ods_code")?;
        let measure = definitions.get(&measure_code).cloned().unwrap_or_default();
        let (peer_period, peer_band) = bands
            .get(measure_code.as_str())
            .map(|(period, bands)| {
                (
                    Some(from_naive(*period)),
                    bands
                        .get(&ods_code)
                        .copied()
                        .unwrap_or(PeerBand::Unspecified),
                )
            })
            .unwrap_or((None, PeerBand::Unspecified));
        let latest_start: Option<NaiveDate> = row.try_get("latest_start")?;
        let latest_end: Option<NaiveDate> = row.try_get("latest_end")?;
        view_rows.push(MeasureRow {
            organisation_name: names
                .get(ods_code.as_str())
                .copied()
                .unwrap_or_default()
                .to_string(),
            ods_code,
            measure_code,
            measure_name: measure.name.clone(),
            unit: measure.unit.clone(),
            direction: measure.direction,
            latest_period_start: latest_start.map(from_naive),
            latest_period_end: latest_end.map(from_naive),
            latest_value: row
                .try_get::<Option<f64>, _>("latest_value")?
                .unwrap_or_default(),
            points: u32::try_from(row.try_get::<i32, _>("points")?).unwrap_or_default(),
            variation: row.try_get("variation")?,
            assurance: row.try_get("assurance")?,
            target: row.try_get("target")?,
            peer_band: peer_band as i32,
            peer_period_start: if peer_band == PeerBand::Unspecified {
                None
            } else {
                peer_period
            },
            rule_set: Some(SpcRuleSetVersion {
                name: row.try_get("rule_set")?,
                version: row.try_get("rule_set_version")?,
            }),
            display_scale: measure.display_scale,
        });
    }
    Ok(MeasureView {
        ics_ods_code: ics_ods_code.to_string(),
        name,
        as_of: Some(from_naive(as_of)),
        rows: view_rows,
        observations: u64::try_from(observations.unwrap_or_default()).unwrap_or_default(),
        peer_group_id: peers.peer_group_id,
        peer_group_version: peers.version,
    })
}

async fn measure(pool: &PgPool, code: &str) -> Result<MeasureDefinition, ServiceError> {
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT definition FROM measure_definitions WHERE code = $1")
            .bind(code)
            .fetch_optional(pool)
            .await?;
    let bytes = bytes.ok_or_else(|| ServiceError::not_found(format!("measure {code}")))?;
    MeasureDefinition::decode(bytes.as_slice()).map_err(ServiceError::internal)
}

/// Organisation-level series of `measure_code` for `units`, by ODS code.
async fn series_of(
    pool: &PgPool,
    measure_code: &str,
    units: &[String],
) -> Result<HashMap<String, Series>, ServiceError> {
    let mut series = HashMap::new();
    for row in sqlx::query(
        "SELECT ods_code, record FROM measure_series
         WHERE measure_code = $1 AND ods_code = ANY($2) AND value_stream_id = ''",
    )
    .bind(measure_code)
    .bind(units)
    .fetch_all(pool)
    .await?
    {
        let bytes: Vec<u8> = row.try_get("record")?;
        let decoded = Series::decode(&bytes).map_err(ServiceError::internal)?;
        series.insert(row.try_get("ods_code")?, decoded);
    }
    Ok(series)
}

/// One series of a member trust of the ICS, with its SPC.
pub async fn series_chart(
    pool: &PgPool,
    ics_ods_code: &str,
    key: &SeriesKey,
    as_of: NaiveDate,
) -> Result<SpcSeries, ServiceError> {
    let (measure, series) = ics_series(pool, ics_ods_code, key, as_of).await?;
    Ok(series.spc_series(&measure))
}

/// A series of one of the ICS's member trusts (as of `as_of`) and its measure's definition;
/// NOT_FOUND, as for an unknown series, when the trust is not a member.
pub async fn ics_series(
    pool: &PgPool,
    ics_ods_code: &str,
    key: &SeriesKey,
    as_of: NaiveDate,
) -> Result<(MeasureDefinition, Series), ServiceError> {
    let (_, members) = ics_members(pool, ics_ods_code, as_of).await?;
    let not_found = || {
        ServiceError::not_found(format!(
            "series of {} for {} in ics {ics_ods_code}",
            key.measure_code, key.ods_code
        ))
    };
    if !members.iter().any(|member| member.ods_code == key.ods_code) {
        return Err(not_found());
    }
    let measure = measure(pool, &key.measure_code).await?;
    let bytes: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT record FROM measure_series
         WHERE measure_code = $1 AND ods_code = $2 AND value_stream_id = $3",
    )
    .bind(&key.measure_code)
    .bind(&key.ods_code)
    .bind(key.value_stream_id.to_ascii_lowercase())
    .fetch_optional(pool)
    .await?;
    let bytes = bytes.ok_or_else(not_found)?;
    let series = Series::decode(&bytes).map_err(ServiceError::internal)?;
    Ok((measure, series))
}

fn values_at(series: &Series, start: NaiveDate) -> Option<(f64, Option<f64>, Option<f64>)> {
    series
        .point(start)
        .filter(|point| !point.ghosted)
        .map(|point| {
            (
                point.observation.value,
                point.observation.numerator,
                point.observation.denominator,
            )
        })
}

/// The funnel plot of a proportion measure across the peers for one period.
pub async fn peer_comparison(
    pool: &PgPool,
    ics_ods_code: &str,
    measure_code: &str,
    peer_group_id: &str,
    period: Option<NaiveDate>,
    as_of: NaiveDate,
) -> Result<PeerComparison, ServiceError> {
    let (comparison, _) = peer_funnel(
        pool,
        ics_ods_code,
        measure_code,
        peer_group_id,
        period,
        as_of,
    )
    .await?;
    Ok(comparison)
}

/// As [`peer_comparison`], with the funnel it was read from, which a board pack draws.
pub async fn peer_funnel(
    pool: &PgPool,
    ics_ods_code: &str,
    measure_code: &str,
    peer_group_id: &str,
    period: Option<NaiveDate>,
    as_of: NaiveDate,
) -> Result<(PeerComparison, Funnel), ServiceError> {
    let (_, members) = ics_members(pool, ics_ods_code, as_of).await?;
    let codes: Vec<String> = members.iter().map(|m| m.ods_code.clone()).collect();
    let measure = measure(pool, measure_code).await?;
    if measure.scoring != MeasureScoring::Proportion as i32 {
        return Err(ServiceError::invalid_field(
            "measure_code",
            format!("{measure_code} is not a proportion; funnel plots compare proportions"),
        ));
    }
    let peers = peers(pool, peer_group_id, &codes, as_of).await?;
    let units: Vec<String> = peers.members.iter().cloned().collect();
    let series = series_of(pool, measure_code, &units).await?;
    let recent: HashMap<String, Recent> = series
        .iter()
        .map(|(ods_code, series)| {
            let points = series
                .counts()
                .filter(|(start, ..)| period.is_none_or(|period| *start == period))
                .map(|(start, numerator, denominator)| (start, (numerator, denominator)))
                .collect();
            (ods_code.clone(), points)
        })
        .collect();
    let (period, funnel_units) = latest_common_period(&recent).ok_or_else(|| {
        ServiceError::FailedPrecondition(format!(
            "fewer than two peers have a numerator and denominator of {measure_code} for {}",
            period.map_or("any period".to_string(), |period| period.to_string())
        ))
    })?;
    let plot = funnel(&funnel_units, ics_measures::direction(&measure))
        .map_err(|error| ServiceError::FailedPrecondition(error.to_string()))?;
    let comparison = PeerComparison {
        measure_code: measure_code.to_string(),
        peer_group_id: peers.peer_group_id,
        peer_group_version: peers.version,
        members: units,
        period_start: Some(from_naive(period)),
        target: plot.target,
        phi: plot.phi,
        tau2: plot.tau2,
        overdispersion_applied: plot.overdispersion_applied,
        units: plot
            .units
            .iter()
            .map(|unit| FunnelUnitView {
                ods_code: unit.id.clone(),
                numerator: unit.numerator,
                denominator: unit.denominator,
                proportion: unit.proportion,
                z_adjusted: unit.z_adjusted,
                lower_95: unit.limits.lower_95,
                upper_95: unit.limits.upper_95,
                lower_998: unit.limits.lower_998,
                upper_998: unit.limits.upper_998,
                position: unit.label.position.text().to_string(),
                band: band(unit.label.performance) as i32,
            })
            .collect(),
    };
    Ok((comparison, plot))
}

/// A trust's change between two periods against its peers' changes.
pub async fn peer_change(
    pool: &PgPool,
    ics_ods_code: &str,
    measure_code: &str,
    peer_group_id: &str,
    ods_code: &str,
    (from, to): (NaiveDate, NaiveDate),
    as_of: NaiveDate,
) -> Result<PeerChange, ServiceError> {
    let (_, members) = ics_members(pool, ics_ods_code, as_of).await?;
    let codes: Vec<String> = members.iter().map(|m| m.ods_code.clone()).collect();
    if !codes.iter().any(|code| code == ods_code) {
        return Err(ServiceError::not_found(format!(
            "trust {ods_code} in ics {ics_ods_code}"
        )));
    }
    let measure = measure(pool, measure_code).await?;
    let peers = peers(pool, peer_group_id, &codes, as_of).await?;
    let units: Vec<String> = peers.members.iter().cloned().collect();
    let series = series_of(pool, measure_code, &units).await?;
    let change_units: Vec<ChangeUnit> = units
        .iter()
        .filter_map(|unit| {
            let series = series.get(unit)?;
            let (start, ..) = values_at(series, from)?;
            let (end, ..) = values_at(series, to)?;
            Some(ChangeUnit::new(unit, start, end))
        })
        .collect();
    if !change_units.iter().any(|unit| unit.id == ods_code) {
        return Err(ServiceError::FailedPrecondition(format!(
            "{ods_code} has no {measure_code} observation starting on both {from} and {to}"
        )));
    }
    let comparison = compare_change(&change_units, ics_measures::direction(&measure), ods_code)
        .map_err(|error| ServiceError::FailedPrecondition(error.to_string()))?;
    let unit_change = |change: &ics_peers::UnitChange| PeerUnitChange {
        ods_code: change.id.clone(),
        start: change.start,
        end: change.end,
        change: change.change,
    };
    let mut all = vec![unit_change(&comparison.unit)];
    all.extend(comparison.peers.iter().map(unit_change));
    Ok(PeerChange {
        measure_code: measure_code.to_string(),
        ods_code: ods_code.to_string(),
        peer_group_id: peers.peer_group_id,
        peer_group_version: peers.version,
        units: all,
        change: comparison.unit.change,
        peer_mean_change: comparison.peer_mean,
        z: comparison.z,
        label: comparison.label.text().to_string(),
    })
}
