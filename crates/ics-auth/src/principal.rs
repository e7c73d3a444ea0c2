use std::fmt;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A hospital trust's systems: may write only that trust's data.
    TrustWriter { ods_code: String },
    /// An ICS board or programme team: may read only its own ICS and/or programme.
    BoardReader {
        ics_ods_code: Option<String>,
        programme_id: Option<String>,
    },
    /// Platform operators: everything, including administrative RPCs.
    Operator,
    /// Every caller when authentication is switched off (development mode only).
    Development,
}

/// The log target of audit events, which services keep in their audit trail whatever the log
/// level.
pub const AUDIT_TARGET: &str = "audit";

/// A refusal: who asked, to do what, to which resource. Its text never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} may not {action} {resource}")]
pub struct Denied {
    pub principal: String,
    pub action: &'static str,
    pub resource: String,
}

impl Denied {
    /// Records the refusal in the audit trail and the log (who, what, on which resource), once for
    /// the call it answers.
    pub fn audit(&self) {
        tracing::info!(
            target: AUDIT_TARGET,
            kind = "denied",
            principal = %self.principal,
            action = self.action,
            resource = %self.resource,
            "permission denied"
        );
    }
}

/// A refusal answered as `PERMISSION_DENIED` by any handler, whatever its error type.
impl From<Denied> for tonic::Status {
    fn from(denied: Denied) -> Self {
        denied.audit();
        tonic::Status::permission_denied(denied.to_string())
    }
}

pub(crate) const ROLE_TRUST_WRITER: &str = "trust_writer";
pub(crate) const ROLE_BOARD_READER: &str = "board_reader";
pub(crate) const ROLE_OPERATOR: &str = "operator";
/// Minted for [`Principal::Development`] only so that `mint_token` stays total; the verifier
/// never accepts it, because development access must come from configuration, not a token.
pub(crate) const ROLE_DEVELOPMENT: &str = "development";

impl Principal {
    /// A short, log-safe description: `trust-writer:RTP`, `board-reader:ics:QWO`, `operator`.
    pub fn label(&self) -> String {
        match self {
            Principal::TrustWriter { ods_code } => format!("trust-writer:{ods_code}"),
            Principal::BoardReader {
                ics_ods_code,
                programme_id,
            } => {
                let mut label = String::from("board-reader");
                if let Some(ics_ods_code) = ics_ods_code {
                    label.push_str(":ics:");
                    label.push_str(ics_ods_code);
                }
                if let Some(programme_id) = programme_id {
                    label.push_str(":programme:");
                    label.push_str(programme_id);
                }
                label
            }
            Principal::Operator => "operator".to_owned(),
            Principal::Development => "development".to_owned(),
        }
    }

    fn is_unrestricted(&self) -> bool {
        matches!(self, Principal::Operator | Principal::Development)
    }

    /// Writing anything that belongs to the trust `ods_code`.
    pub fn authorize_trust_write(&self, ods_code: &str) -> Result<(), Denied> {
        let allowed = self.is_unrestricted()
            || matches!(self, Principal::TrustWriter { ods_code: own } if own == ods_code);
        self.decide(allowed, "write", format!("trust {ods_code}"))
    }

    /// Reading a single trust's own records (lookups of its aggregates).
    pub fn authorize_trust_read(&self, ods_code: &str) -> Result<(), Denied> {
        let allowed = self.is_unrestricted()
            || matches!(self, Principal::TrustWriter { ods_code: own } if own == ods_code);
        self.decide(allowed, "read", format!("trust {ods_code}"))
    }

    /// Administrative RPCs (rebuilds, dead letters, organisation registry).
    pub fn authorize_operator(&self) -> Result<(), Denied> {
        self.decide(
            self.is_unrestricted(),
            "administer",
            "the platform".to_owned(),
        )
    }

    /// Reading the cross-trust views of the ICS `ics_ods_code`.
    pub fn authorize_ics_read(&self, ics_ods_code: &str) -> Result<(), Denied> {
        let allowed = self.is_unrestricted()
            || matches!(
                self,
                Principal::BoardReader { ics_ods_code: Some(own), .. } if own == ics_ods_code
            );
        self.decide(allowed, "read", format!("ics {ics_ods_code}"))
    }

    /// Reading the outcomes of improvement programme `programme_id`.
    pub fn authorize_programme_read(&self, programme_id: &str) -> Result<(), Denied> {
        let allowed = self.is_unrestricted()
            || matches!(
                self,
                Principal::BoardReader { programme_id: Some(own), .. } if own == programme_id
            );
        self.decide(allowed, "read", format!("programme {programme_id}"))
    }

    fn decide(&self, allowed: bool, action: &'static str, resource: String) -> Result<(), Denied> {
        if allowed {
            return Ok(());
        }
        // Not logged here: a refusal is logged once where a call is answered with it, so a bulk
        // stream of refused rows writes one summary rather than a line per row.
        let principal = self.label();
        Err(Denied {
            principal,
            action,
            resource,
        })
    }

    pub(crate) fn role_claim(&self) -> &'static str {
        match self {
            Principal::TrustWriter { .. } => ROLE_TRUST_WRITER,
            Principal::BoardReader { .. } => ROLE_BOARD_READER,
            Principal::Operator => ROLE_OPERATOR,
            Principal::Development => ROLE_DEVELOPMENT,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust_writer(ods_code: &str) -> Principal {
        Principal::TrustWriter {
            ods_code: ods_code.to_owned(),
        }
    }

    fn board_of_ics(ics_ods_code: &str) -> Principal {
        Principal::BoardReader {
            ics_ods_code: Some(ics_ods_code.to_owned()),
            programme_id: None,
        }
    }

    #[test]
    fn trust_writer_writes_only_its_own_trust() {
        let writer = trust_writer("RTP");
        assert!(writer.authorize_trust_write("RTP").is_ok());
        assert!(writer.authorize_trust_read("RTP").is_ok());
        let denied = writer
            .authorize_trust_write("RR8")
            .expect_err("another trust");
        assert_eq!(
            denied.to_string(),
            "trust-writer:RTP may not write trust RR8"
        );
        assert!(writer.authorize_operator().is_err());
        assert!(writer.authorize_ics_read("QWO").is_err());
    }

    #[test]
    fn board_reader_reads_only_its_own_scope_and_never_writes() {
        let board = board_of_ics("QWO");
        assert!(board.authorize_ics_read("QWO").is_ok());
        assert!(board.authorize_ics_read("QYG").is_err());
        assert!(board.authorize_programme_read("p1").is_err());
        assert!(board.authorize_trust_write("RR8").is_err());
        assert!(board.authorize_operator().is_err());
        let programme_board = Principal::BoardReader {
            ics_ods_code: None,
            programme_id: Some("p1".to_owned()),
        };
        assert!(programme_board.authorize_programme_read("p1").is_ok());
        assert!(programme_board.authorize_programme_read("p2").is_err());
        assert!(programme_board.authorize_ics_read("QWO").is_err());
    }

    #[test]
    fn operator_and_development_may_do_everything() {
        for principal in [Principal::Operator, Principal::Development] {
            assert!(principal.authorize_operator().is_ok());
            assert!(principal.authorize_trust_write("RTP").is_ok());
            assert!(principal.authorize_ics_read("QWO").is_ok());
            assert!(principal.authorize_programme_read("p1").is_ok());
        }
    }

    #[test]
    fn labels_name_role_and_scope() {
        assert_eq!(trust_writer("RTP").label(), "trust-writer:RTP");
        assert_eq!(board_of_ics("QWO").label(), "board-reader:ics:QWO");
        assert_eq!(
            Principal::BoardReader {
                ics_ods_code: Some("QWO".to_owned()),
                programme_id: Some("p1".to_owned()),
            }
            .label(),
            "board-reader:ics:QWO:programme:p1"
        );
        assert_eq!(Principal::Operator.label(), "operator");
    }
}
