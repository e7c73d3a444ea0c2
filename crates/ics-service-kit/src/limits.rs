//! Caps on what one tenant holds at once, counted by [`TenantSlots`]: its calls in flight (which
//! queue, in [`crate::auth::Authenticator::admit_call`]) and its live watches (refused beyond the
//! cap, [`OpenCallLimit`]: a watch costs little per second but holds a task, a subscription and a
//! connection slot for as long as it lasts). Call rates are limited by the authenticator's token
//! bucket ([`crate::auth::Authenticator::with_tenant_limit`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Principal;
use crate::error::ServiceError;

/// Trust writers and boards: the principals whose calls are limited. Operators (and everyone in
/// development mode) are not.
pub fn is_tenant(principal: &Principal) -> bool {
    matches!(
        principal,
        Principal::TrustWriter { .. } | Principal::BoardReader { .. }
    )
}

/// Every place of the tenant is taken (and, when waiting, none was given back in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotsTaken;

/// At most `per_tenant` places taken at once per tenant (a trust writer's or a board's token
/// subject): a semaphore per tenant, created on its first use. Operators take no place.
#[derive(Debug, Clone)]
pub struct TenantSlots {
    per_tenant: usize,
    semaphores: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl TenantSlots {
    pub fn new(per_tenant: u32) -> Self {
        Self {
            per_tenant: per_tenant.max(1) as usize,
            semaphores: Arc::default(),
        }
    }

    /// How many places each tenant has.
    pub fn per_tenant(&self) -> usize {
        self.per_tenant
    }

    fn semaphore(&self, tenant: String) -> Arc<Semaphore> {
        self.semaphores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone()
    }

    /// A place now, or `Err` when the tenant holds all of its places; `Ok(None)` for a principal
    /// that is not a tenant.
    pub fn try_enter(
        &self,
        principal: &Principal,
    ) -> Result<Option<OwnedSemaphorePermit>, SlotsTaken> {
        if !is_tenant(principal) {
            return Ok(None);
        }
        self.semaphore(principal.label())
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| SlotsTaken)
    }

    /// A place, waiting up to `wait` for one of the tenant's to be given back; `Err` when none
    /// was; `Ok(None)` for a principal that is not a tenant.
    pub async fn enter(
        &self,
        principal: &Principal,
        wait: Duration,
    ) -> Result<Option<OwnedSemaphorePermit>, SlotsTaken> {
        if !is_tenant(principal) {
            return Ok(None);
        }
        let semaphore = self.semaphore(principal.label());
        match tokio::time::timeout(wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(SlotsTaken),
        }
    }
}

/// At most `per_tenant` long-lived calls open at once per tenant; operators are not limited.
#[derive(Debug, Clone)]
pub struct OpenCallLimit {
    slots: TenantSlots,
}

/// One open call, counted until it is dropped.
#[derive(Debug)]
pub struct OpenCall {
    _slot: Option<OwnedSemaphorePermit>,
}

impl OpenCallLimit {
    pub fn new(per_tenant: u32) -> Self {
        Self {
            slots: TenantSlots::new(per_tenant),
        }
    }

    /// Counts a call `principal` opens, or refuses it with RESOURCE_EXHAUSTED when the tenant
    /// already holds its share; `what` names the call in the refusal.
    pub fn open(&self, principal: &Principal, what: &str) -> Result<OpenCall, ServiceError> {
        match self.slots.try_enter(principal) {
            Ok(slot) => Ok(OpenCall { _slot: slot }),
            Err(SlotsTaken) => {
                let tenant = principal.label();
                let limit = self.slots.per_tenant();
                tracing::info!(principal = %tenant, limit, call = what, "open call limit reached");
                Err(ServiceError::ResourceExhausted(format!(
                    "{tenant} already holds {limit} open {what} calls; close one first"
                )))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn board(ics: &str) -> Principal {
        Principal::BoardReader {
            ics_ods_code: Some(ics.to_owned()),
            programme_id: None,
        }
    }

    #[test]
    fn each_tenant_holds_at_most_its_share_until_one_closes() {
        let limit = OpenCallLimit::new(2);
        let first = limit.open(&board("QWO"), "watch").unwrap();
        let _second = limit.open(&board("QWO"), "watch").unwrap();
        let refused = limit.open(&board("QWO"), "watch").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // Another tenant is unaffected, and so are operators.
        let _other = limit.open(&board("QYG"), "watch").unwrap();
        let _operators: Vec<_> = (0..5)
            .map(|_| limit.open(&Principal::Operator, "watch").unwrap())
            .collect();
        drop(first);
        assert!(limit.open(&board("QWO"), "watch").is_ok());
    }
}
