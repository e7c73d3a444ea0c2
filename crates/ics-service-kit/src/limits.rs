//! Caps on what one tenant holds open at once. Call rates are limited by the authenticator
//! ([`crate::auth::Authenticator::with_tenant_limit`]); a live watch costs little per second but
//! holds a task, a subscription and a connection slot for as long as it lasts, so its number is
//! capped too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::auth::Principal;
use crate::error::ServiceError;

/// At most `per_tenant` long-lived calls open at once per tenant (a trust writer's or a
/// board's token subject); operators are not limited.
#[derive(Debug, Clone)]
pub struct OpenCallLimit {
    per_tenant: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open call, counted until it is dropped.
#[derive(Debug)]
pub struct OpenCall {
    tenant: Option<String>,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl OpenCallLimit {
    pub fn new(per_tenant: u32) -> Self {
        Self {
            per_tenant: per_tenant.max(1) as usize,
            open: Arc::default(),
        }
    }

    /// Counts a call `principal` opens, or refuses it with RESOURCE_EXHAUSTED when the tenant
    /// already holds its share; `what` names the call in the refusal.
    pub fn open(&self, principal: &Principal, what: &str) -> Result<OpenCall, ServiceError> {
        if matches!(principal, Principal::Operator | Principal::Development) {
            return Ok(OpenCall {
                tenant: None,
                open: self.open.clone(),
            });
        }
        let tenant = principal.label();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(tenant.clone()).or_default();
        if *count >= self.per_tenant {
            tracing::info!(principal = %tenant, limit = self.per_tenant, call = what, "open call limit reached");
            return Err(ServiceError::ResourceExhausted(format!(
                "{tenant} already holds {} open {what} calls; close one first",
                self.per_tenant
            )));
        }
        *count += 1;
        Ok(OpenCall {
            tenant: Some(tenant),
            open: self.open.clone(),
        })
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        let Some(tenant) = &self.tenant else {
            return;
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(tenant);
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
