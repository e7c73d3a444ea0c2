//! The improvement-event aggregate (an RPIW by default): charter, schedule, the workshop days,
//! the report-out, follow-ups at 30, 60, 90 and 365 days, and close — or cancel before the
//! report-out.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_proto::EventName;
use ics_proto::date::{from_naive, to_naive};
use ics_proto::events::v1::{
    FollowUpCheckpoint, FollowUpMissed, FollowUpRecorded, MetricKind, MetricUnit, MetricValue,
    ReportOutDelivered, TargetMetric, WorkshopCancelled, WorkshopChartered, WorkshopClosed,
    WorkshopHeld, WorkshopScheduled,
};
use ics_service_kit::error::{ServiceError, Violations};

/// What every workshop's stream id starts with.
pub const STREAM_PREFIX: &str = "workshop-";

pub fn stream_id(workshop_id: &str) -> String {
    format!("{STREAM_PREFIX}{workshop_id}")
}

/// Every follow-up, in order.
pub const CHECKPOINTS: [FollowUpCheckpoint; 4] = [
    FollowUpCheckpoint::Day30,
    FollowUpCheckpoint::Day60,
    FollowUpCheckpoint::Day90,
    FollowUpCheckpoint::Day365,
];

/// Days after the last workshop day at which a follow-up is due.
pub fn days_after(checkpoint: FollowUpCheckpoint) -> u64 {
    match checkpoint {
        FollowUpCheckpoint::Day30 => 30,
        FollowUpCheckpoint::Day60 => 60,
        FollowUpCheckpoint::Day90 => 90,
        FollowUpCheckpoint::Day365 | FollowUpCheckpoint::Unspecified => 365,
    }
}

pub fn due_on(held_to: NaiveDate, checkpoint: FollowUpCheckpoint) -> NaiveDate {
    held_to
        .checked_add_days(Days::new(days_after(checkpoint)))
        .unwrap_or(NaiveDate::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Chartered,
    Scheduled,
    Held,
    ReportedOut,
    Closed,
    Cancelled,
}

impl Status {
    fn describe(self) -> &'static str {
        match self {
            Status::Chartered => "chartered",
            Status::Scheduled => "scheduled",
            Status::Held => "held",
            Status::ReportedOut => "reported out",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    Recorded {
        measured_on: NaiveDate,
        values: Vec<MetricValue>,
    },
    Missed {
        due_on: NaiveDate,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workshop {
    pub chartered: WorkshopChartered,
    pub status: Status,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    pub held_from: Option<NaiveDate>,
    pub held_to: Option<NaiveDate>,
    pub after: Vec<MetricValue>,
    pub follow_ups: BTreeMap<i32, FollowUp>,
    /// Whether any scheduling gave a reason to run longer than the longest workshop: days
    /// held longer than scheduled keep it.
    pub scheduled_with_override: bool,
    /// When the report-out was recorded (not the day it was delivered): follow-ups are not
    /// declared missed until the grace has passed since.
    pub reported_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl Workshop {
    /// How the workshop's events fold into it: `None` until it exists.
    pub fn folding() -> Fold<Option<Self>, ServiceError> {
        Fold::new(None, Self::then)
    }

    /// Folds a whole history (see [`folding`](Self::folding)).
    pub fn fold(history: &[RecordedEvent]) -> Result<Option<Self>, ServiceError> {
        Self::folding().over(history)
    }

    /// The workshop after one more event of its stream.
    fn then(mut state: Option<Self>, event: &RecordedEvent) -> Result<Option<Self>, ServiceError> {
        let event_type = event.event_type.as_str();
        if event_type == WorkshopChartered::EVENT_TYPE {
            state = Some(Workshop {
                chartered: event.decode()?,
                status: Status::Chartered,
                starts_on: None,
                ends_on: None,
                held_from: None,
                held_to: None,
                after: Vec::new(),
                follow_ups: BTreeMap::new(),
                scheduled_with_override: false,
                reported_at: None,
                version: 0,
            });
        } else if let Some(workshop) = state.as_mut() {
            workshop.apply(event)?;
        }
        if let Some(workshop) = state.as_mut() {
            workshop.version = event.stream_version;
        }
        Ok(state)
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ServiceError> {
        let event_type = event.event_type.as_str();
        if event_type == WorkshopScheduled::EVENT_TYPE {
            let scheduled: WorkshopScheduled = event.decode()?;
            self.status = Status::Scheduled;
            self.starts_on = scheduled.starts_on.as_ref().and_then(to_naive);
            self.ends_on = scheduled.ends_on.as_ref().and_then(to_naive);
            self.scheduled_with_override |= !scheduled.duration_override_reason.is_empty();
        } else if event_type == WorkshopHeld::EVENT_TYPE {
            let held: WorkshopHeld = event.decode()?;
            self.status = Status::Held;
            self.held_from = held.held_from.as_ref().and_then(to_naive);
            self.held_to = held.held_to.as_ref().and_then(to_naive);
        } else if event_type == ReportOutDelivered::EVENT_TYPE {
            let delivered: ReportOutDelivered = event.decode()?;
            self.status = Status::ReportedOut;
            self.after = delivered.after;
            self.reported_at.get_or_insert(event.recorded_at);
        } else if event_type == FollowUpRecorded::EVENT_TYPE {
            let recorded: FollowUpRecorded = event.decode()?;
            if let Some(measured_on) = recorded.measured_on.as_ref().and_then(to_naive) {
                self.follow_ups.insert(
                    recorded.checkpoint,
                    FollowUp::Recorded {
                        measured_on,
                        values: recorded.values,
                    },
                );
            }
        } else if event_type == FollowUpMissed::EVENT_TYPE {
            let missed: FollowUpMissed = event.decode()?;
            if let Some(due_on) = missed.due_on.as_ref().and_then(to_naive) {
                self.follow_ups
                    .insert(missed.checkpoint, FollowUp::Missed { due_on });
            }
        } else if event_type == WorkshopCancelled::EVENT_TYPE {
            self.status = Status::Cancelled;
        } else if event_type == WorkshopClosed::EVENT_TYPE {
            self.status = Status::Closed;
        }
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.chartered.workshop_id
    }

    pub fn ods_code(&self) -> &str {
        &self.chartered.ods_code
    }

    fn refuse_unless(&self, allowed: &[Status], action: &str) -> Result<(), ServiceError> {
        if allowed.contains(&self.status) {
            return Ok(());
        }
        Err(ServiceError::FailedPrecondition(format!(
            "workshop {} is {}; it cannot be {action}",
            self.id(),
            self.status.describe()
        )))
    }

    fn metric(&self, metric_id: &str) -> Option<&TargetMetric> {
        self.chartered
            .target_sheet
            .iter()
            .find(|metric| metric.metric_id == metric_id)
    }

    /// Checks a set of measured values against the target sheet: one per metric, each within
    /// its metric's range.
    pub fn check_values(&self, field: &str, values: &[MetricValue]) -> Result<(), ServiceError> {
        let mut violations = Violations::default();
        for (index, value) in values.iter().enumerate() {
            let Some(metric) = self.metric(&value.metric_id) else {
                violations.add(
                    format!("{field}[{index}].metric_id"),
                    format!("{} is not on the target sheet", value.metric_id),
                );
                continue;
            };
            check_measure(
                &mut violations,
                &format!("{field}[{index}].value"),
                metric.kind(),
                value.value,
            );
            if values[..index]
                .iter()
                .any(|earlier| earlier.metric_id == value.metric_id)
            {
                violations.add(
                    format!("{field}[{index}].metric_id"),
                    "is given more than once",
                );
            }
        }
        for metric in &self.chartered.target_sheet {
            if !values
                .iter()
                .any(|value| value.metric_id == metric.metric_id)
            {
                violations.add(
                    field.to_string(),
                    format!("needs a value for metric {}", metric.metric_id),
                );
            }
        }
        ServiceError::check(violations)
    }

    /// Whether each metric's value is at or better than (no higher than) its target.
    pub fn sustained(&self, values: &[MetricValue]) -> Vec<bool> {
        self.chartered
            .target_sheet
            .iter()
            .map(|metric| {
                values
                    .iter()
                    .find(|value| value.metric_id == metric.metric_id)
                    .is_some_and(|value| value.value <= metric.target)
            })
            .collect()
    }
}

/// A measured value of a metric of `kind`: finite, not negative, and a rate at most 100%.
pub fn check_measure(violations: &mut Violations, field: &str, kind: MetricKind, value: f64) {
    let max = if kind == MetricKind::ErrorRate {
        100.0
    } else {
        f64::MAX
    };
    ics_service_kit::validate::number(violations, field, value, 0.0, max);
}

/// Whether `unit` measures a metric of `kind`.
pub fn unit_fits(kind: MetricKind, unit: MetricUnit) -> bool {
    match kind {
        MetricKind::ProcessTime => matches!(
            unit,
            MetricUnit::Minutes | MetricUnit::Hours | MetricUnit::Days
        ),
        MetricKind::ErrorCount => unit == MetricUnit::Count,
        MetricKind::ErrorRate => unit == MetricUnit::Percent,
        MetricKind::Unspecified => false,
    }
}

fn existing<'a>(
    state: &'a Option<Workshop>,
    workshop_id: &str,
) -> Result<&'a Workshop, ServiceError> {
    state.as_ref().ok_or_else(|| ServiceError::NotFound {
        resource: format!("workshop {workshop_id}"),
    })
}

fn inclusive_days(from: NaiveDate, to: NaiveDate) -> i64 {
    (to - from).num_days() + 1
}

pub fn charter(
    state: &Option<Workshop>,
    chartered: &WorkshopChartered,
) -> Result<Vec<NewEvent>, ServiceError> {
    if state.is_some() {
        return Err(ServiceError::FailedPrecondition(format!(
            "workshop {} already exists",
            chartered.workshop_id
        )));
    }
    Ok(vec![NewEvent::encode(&chartered.ods_code, chartered)])
}

/// The rules on a workshop's days: in order, after preparation began, and no longer than the
/// maximum unless an override reason is given.
fn check_days(
    workshop: &Workshop,
    fields: (&str, &str),
    from: NaiveDate,
    to: NaiveDate,
    max_days: u32,
    override_reason: &str,
) -> Result<(), ServiceError> {
    let (from_field, to_field) = fields;
    if to < from {
        return Err(ServiceError::invalid_field(
            to_field,
            format!("must not be before {from_field}"),
        ));
    }
    if let Some(preparation) = workshop
        .chartered
        .preparation_starts_on
        .as_ref()
        .and_then(to_naive)
        && from < preparation
    {
        return Err(ServiceError::invalid_field(
            from_field,
            format!("must not be before preparation started ({preparation})"),
        ));
    }
    let days = inclusive_days(from, to);
    if days > i64::from(max_days) && override_reason.trim().is_empty() {
        return Err(ServiceError::invalid_field(
            to_field,
            format!(
                "the workshop would last {days} days, more than the maximum of {max_days}; \
                 give duration_override_reason to allow it"
            ),
        ));
    }
    Ok(())
}

pub fn schedule(
    state: &Option<Workshop>,
    workshop_id: &str,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    max_days: u32,
    override_reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    // Rescheduling is allowed until the workshop has been held.
    workshop.refuse_unless(&[Status::Chartered, Status::Scheduled], "scheduled")?;
    check_days(
        workshop,
        ("starts_on", "ends_on"),
        starts_on,
        ends_on,
        max_days,
        override_reason,
    )?;
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &WorkshopScheduled {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            starts_on: Some(from_naive(starts_on)),
            ends_on: Some(from_naive(ends_on)),
            duration_override_reason: override_reason.to_string(),
        },
    )])
}

pub fn record_held(
    state: &Option<Workshop>,
    workshop_id: &str,
    held: Option<(NaiveDate, NaiveDate)>,
    max_days: u32,
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    workshop.refuse_unless(&[Status::Scheduled], "recorded as held")?;
    let (from, to) = match (held, workshop.starts_on, workshop.ends_on) {
        (Some(days), _, _) => days,
        (None, Some(starts_on), Some(ends_on)) => (starts_on, ends_on),
        (None, _, _) => {
            return Err(ServiceError::FailedPrecondition(
                "the workshop has no scheduled days".to_string(),
            ));
        }
    };
    if to > chrono::Utc::now().date_naive() {
        return Err(ServiceError::invalid_field(
            "held_to",
            "a workshop cannot be recorded as held before its last day",
        ));
    }
    // Days that ran longer than scheduled keep the override given when scheduling.
    let override_reason = if workshop.scheduled_with_override {
        "scheduled with an override"
    } else {
        ""
    };
    check_days(
        workshop,
        ("held_from", "held_to"),
        from,
        to,
        max_days,
        override_reason,
    )?;
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &WorkshopHeld {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            held_from: Some(from_naive(from)),
            held_to: Some(from_naive(to)),
        },
    )])
}

pub fn deliver_report_out(
    state: &Option<Workshop>,
    workshop_id: &str,
    delivered_on: NaiveDate,
    after: &[MetricValue],
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    workshop.refuse_unless(&[Status::Held], "reported out")?;
    if let Some(held_to) = workshop.held_to
        && delivered_on < held_to
    {
        return Err(ServiceError::invalid_field(
            "delivered_on",
            format!("must not be before the workshop's last day ({held_to})"),
        ));
    }
    workshop.check_values("after", after)?;
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &ReportOutDelivered {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            delivered_on: Some(from_naive(delivered_on)),
            after: after.to_vec(),
        },
    )])
}

fn refuse_follow_up_taken(
    workshop: &Workshop,
    checkpoint: FollowUpCheckpoint,
) -> Result<(), ServiceError> {
    match workshop.follow_ups.get(&(checkpoint as i32)) {
        None => Ok(()),
        Some(FollowUp::Recorded { .. }) => Err(ServiceError::FailedPrecondition(format!(
            "the {}-day follow-up of workshop {} is already recorded",
            days_after(checkpoint),
            workshop.id()
        ))),
        Some(FollowUp::Missed { due_on }) => Err(ServiceError::FailedPrecondition(format!(
            "the {}-day follow-up of workshop {} was missed (due {due_on})",
            days_after(checkpoint),
            workshop.id()
        ))),
    }
}

pub fn record_follow_up(
    state: &Option<Workshop>,
    workshop_id: &str,
    checkpoint: FollowUpCheckpoint,
    measured_on: NaiveDate,
    values: &[MetricValue],
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    if matches!(
        workshop.status,
        Status::Chartered | Status::Scheduled | Status::Held
    ) {
        return Err(ServiceError::FailedPrecondition(format!(
            "workshop {workshop_id} is {}: follow-ups come after the workshop was held and reported out",
            workshop.status.describe()
        )));
    }
    workshop.refuse_unless(&[Status::ReportedOut], "followed up")?;
    refuse_follow_up_taken(workshop, checkpoint)?;
    if let Some(held_to) = workshop.held_to
        && measured_on <= held_to
    {
        return Err(ServiceError::invalid_field(
            "measured_on",
            format!("must be after the workshop's last day ({held_to})"),
        ));
    }
    workshop.check_values("values", values)?;
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &FollowUpRecorded {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            checkpoint: checkpoint as i32,
            measured_on: Some(from_naive(measured_on)),
            values: values.to_vec(),
        },
    )])
}

/// Records a follow-up as missed once it is overdue (see [`overdue`]); otherwise decides
/// nothing. Safe to ask again and again.
pub fn mark_missed(
    state: &Option<Workshop>,
    workshop_id: &str,
    checkpoint: FollowUpCheckpoint,
    now: DateTime<Utc>,
    grace_days: u32,
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    let (Status::ReportedOut, Some(held_to)) = (workshop.status, workshop.held_to) else {
        return Ok(Vec::new());
    };
    if workshop.follow_ups.contains_key(&(checkpoint as i32)) {
        return Ok(Vec::new());
    }
    let due = due_on(held_to, checkpoint);
    let reported_at = workshop.reported_at.unwrap_or(now);
    if !overdue(due, reported_at, now, grace_days) {
        return Ok(Vec::new());
    }
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &FollowUpMissed {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            checkpoint: checkpoint as i32,
            due_on: Some(from_naive(due)),
        },
    )])
}

/// A follow-up due on `due` is overdue once its due date is more than `grace_days` behind and
/// the report-out was recorded at least `grace_days` ago. The second condition gives a trust
/// back-loading years of history time to load its measurements before they are declared missed.
pub fn overdue(
    due: NaiveDate,
    reported_at: DateTime<Utc>,
    now: DateTime<Utc>,
    grace_days: u32,
) -> bool {
    let grace = Days::new(u64::from(grace_days));
    let due_passed = due
        .checked_add_days(grace)
        .is_some_and(|last| now.date_naive() > last);
    let loaded_long_enough = reported_at
        .checked_add_days(grace)
        .is_some_and(|ready| now >= ready);
    due_passed && loaded_long_enough
}

pub fn cancel(
    state: &Option<Workshop>,
    workshop_id: &str,
    cancelled_on: NaiveDate,
    reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    workshop.refuse_unless(
        &[Status::Chartered, Status::Scheduled, Status::Held],
        "cancelled",
    )?;
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &WorkshopCancelled {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            cancelled_on: Some(from_naive(cancelled_on)),
            reason: reason.to_string(),
        },
    )])
}

/// Closes a workshop once every follow-up is recorded or missed.
pub fn close(
    state: &Option<Workshop>,
    workshop_id: &str,
    closed_on: NaiveDate,
) -> Result<Vec<NewEvent>, ServiceError> {
    let workshop = existing(state, workshop_id)?;
    workshop.refuse_unless(&[Status::ReportedOut], "closed")?;
    let outstanding: Vec<String> = CHECKPOINTS
        .iter()
        .filter(|checkpoint| !workshop.follow_ups.contains_key(&(**checkpoint as i32)))
        .map(|checkpoint| format!("{}-day", days_after(*checkpoint)))
        .collect();
    if !outstanding.is_empty() {
        return Err(ServiceError::FailedPrecondition(format!(
            "workshop {workshop_id} still has follow-ups outstanding: {}",
            outstanding.join(", ")
        )));
    }
    Ok(vec![NewEvent::encode(
        workshop.ods_code(),
        &WorkshopClosed {
            workshop_id: workshop_id.to_string(),
            ods_code: workshop.ods_code().to_string(),
            closed_on: Some(from_naive(closed_on)),
        },
    )])
}
