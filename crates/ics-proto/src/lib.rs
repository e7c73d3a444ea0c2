//! Protobuf contracts of the ICS improvement platform: the event envelope and payloads
//! (`ics.events.v1`) and one API package per service.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod codec;

pub mod events {
    pub mod v1 {
        tonic::include_proto!("ics.events.v1");
    }
}

pub mod trusts {
    pub mod v1 {
        tonic::include_proto!("ics.trusts.v1");
    }
}

pub mod workshops {
    pub mod v1 {
        tonic::include_proto!("ics.workshops.v1");
    }
}

pub mod metrics {
    pub mod v1 {
        tonic::include_proto!("ics.metrics.v1");
    }
}

pub mod reporting {
    pub mod v1 {
        tonic::include_proto!("ics.reporting.v1");
    }
}

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("ics.admin.v1");
    }
}

impl admin::v1::ProjectionCheck {
    /// Events sent to the projection and not yet applied: those its consumer has not been
    /// delivered or has not acknowledged, and those of streams its versions have not reached.
    pub fn behind(&self) -> u64 {
        self.consumer_pending + self.streams_behind
    }
}

impl admin::v1::VerifyResponse {
    /// Whether the service has published its whole log and every projection has applied what
    /// it was sent: a write is then seen by every read model behind this admin service.
    pub fn caught_up(&self) -> bool {
        self.log
            .as_ref()
            .is_none_or(|log| log.unpublished_events == 0)
            && self.projections.iter().all(|check| check.behind() == 0)
    }
}

/// The encoded `FileDescriptorSet` of every package, for gRPC reflection and for rendering
/// stored events as JSON.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ics_descriptor.bin"));

/// A descriptor pool over [`FILE_DESCRIPTOR_SET`].
pub fn descriptor_pool() -> prost_reflect::DescriptorPool {
    // The bytes were produced by this crate's build script from the same protox output, so they
    // always decode; a failure here is a build defect, not a runtime condition.
    #[allow(clippy::expect_used)]
    prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .expect("embedded descriptor set decodes")
}

/// [`descriptor_pool`], decoded once per process: clients word enum values and render JSON
/// through it line by line.
pub fn shared_descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::LazyLock<prost_reflect::DescriptorPool> =
        std::sync::LazyLock::new(descriptor_pool);
    &POOL
}

/// The fully-qualified protobuf name of an event message, e.g. `ics.events.v1.OrganisationRegistered`.
pub trait EventName {
    const EVENT_TYPE: &'static str;
}

macro_rules! event_names {
    ($($message:ident),* $(,)?) => {
        $(
            impl EventName for events::v1::$message {
                const EVENT_TYPE: &'static str = concat!("ics.events.v1.", stringify!($message));
            }
        )*
    };
}

event_names!(
    OrganisationRegistered,
    OrganisationRenamed,
    OrganisationLinked,
    OrganisationUnlinked,
    CqcRatingPublished,
    ExecutiveAppointed,
    ExecutiveDeparted,
    ValueStreamDefined,
    ValueStreamRevised,
    ValueStreamStatusChanged,
    ValueStreamClosed,
    TrainingCohortRegistered,
    TrainingParticipationRecorded,
    ProgrammeRegistered,
    ProgrammeTrustJoined,
    BoardMemberAdded,
    BoardMemberRemoved,
    CompactAdopted,
    BoardMeetingHeld,
    WorkshopChartered,
    WorkshopScheduled,
    WorkshopHeld,
    ReportOutDelivered,
    FollowUpRecorded,
    FollowUpMissed,
    WorkshopCancelled,
    WorkshopClosed,
    MeasureDefined,
    ObservationsRecorded,
    ObservationCorrected,
    ObservationGhosted,
    PartitionMarked,
    SeriesTargetSet,
    SpecialCauseDetected,
    VariationIconChanged,
    AssuranceIconChanged,
    PeerGroupDefined,
);

/// The stream ids creation commands answer with: an aggregate's prefix, then the new
/// aggregate's id (`programme-0190a1b2-…`).
pub mod streams {
    use std::fmt;

    use crate::events::v1::CommandResult;

    pub const PROGRAMME: &str = "programme-";
    pub const VALUE_STREAM: &str = "value-stream-";
    pub const TRAINING_COHORT: &str = "training-cohort-";
    pub const WORKSHOP: &str = "workshop-";

    /// A creation command answered with a stream id of another kind of aggregate.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NotCreated {
        pub stream_id: String,
        pub prefix: String,
    }

    impl fmt::Display for NotCreated {
        fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                formatter,
                "the server answered with stream '{}', not a {}<id> stream",
                self.stream_id, self.prefix
            )
        }
    }

    impl std::error::Error for NotCreated {}

    /// The id of the aggregate a creation command made, from the stream id it answered with.
    pub fn created_id(result: &CommandResult, prefix: &str) -> Result<String, NotCreated> {
        result
            .stream_id
            .strip_prefix(prefix)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| NotCreated {
                stream_id: result.stream_id.clone(),
                prefix: prefix.to_owned(),
            })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn created_ids_come_from_the_stream_id() {
            let result = CommandResult {
                stream_id: "value-stream-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned(),
                version: 1,
                event_ids: vec![],
                replayed: false,
            };
            assert_eq!(
                created_id(&result, VALUE_STREAM).as_deref(),
                Ok("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            );
            let error = created_id(&result, PROGRAMME).expect_err("another aggregate");
            assert!(error.to_string().contains("not a programme-<id> stream"));
        }
    }
}

/// Conversions between the API's calendar [`Date`](events::v1::Date) and `chrono`.
pub mod date {
    use chrono::{Datelike, NaiveDate};

    use crate::events::v1::Date;

    /// The calendar date, or `None` when the fields do not name a real day.
    pub fn to_naive(date: &Date) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(date.year, date.month, date.day)
    }

    pub fn from_naive(date: NaiveDate) -> Date {
        Date {
            year: date.year(),
            month: date.month(),
            day: date.day(),
        }
    }

    /// ISO 8601 (`2015-07-01`), for people and CSV.
    pub fn iso(date: &Date) -> String {
        format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
    }
}

#[cfg(test)]
mod tests {
    use crate::admin::v1::{LogCheck, ProjectionCheck, VerifyResponse};

    fn verified(
        unpublished_events: u64,
        consumer_pending: u64,
        streams_behind: u64,
    ) -> VerifyResponse {
        VerifyResponse {
            log: Some(LogCheck {
                unpublished_events,
                ..Default::default()
            }),
            projections: vec![
                ProjectionCheck::default(),
                ProjectionCheck {
                    consumer_pending,
                    streams_behind,
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn caught_up_means_nothing_left_to_publish_and_nothing_left_to_apply() {
        assert!(verified(0, 0, 0).caught_up());
        assert!(!verified(1, 0, 0).caught_up(), "an event not yet published");
        assert!(
            !verified(0, 1, 0).caught_up(),
            "a message not yet acknowledged"
        );
        assert!(
            !verified(0, 0, 1).caught_up(),
            "a stream not yet applied to its head"
        );
        let without_log = VerifyResponse {
            log: None,
            ..verified(0, 0, 0)
        };
        assert!(without_log.caught_up(), "a service that records no events");
        assert_eq!(verified(0, 2, 3).projections[1].behind(), 5);
    }
}
