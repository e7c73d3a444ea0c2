//! Who is calling and what they may do, shared by the services and their clients.
//!
//! - [`Principal`]: a trust writer, a board reader (ICS and/or programme), an operator, or
//!   everyone in development mode, with the tenancy policy as `authorize_*` methods that
//!   answer [`Denied`] naming who, what and which resource (architecture decision 7: the tenant
//!   comes from the principal, never from the request).
//! - [`TokenVerifier`]: bearer JWTs verified with `jsonwebtoken` — RS256 or ES256 against the
//!   identity provider's published keys ([`KeySet`], chosen by `kid`, replaced when the provider
//!   rotates them), or HS256 with a shared secret for development and tests. The two never mix:
//!   a verifier of published keys refuses HS256 outright, so a token signed with a public key
//!   as an HMAC secret (algorithm confusion) cannot pass.
//! - [`mint_token`]: HS256 tokens for `icsctl`, the demo and tests.
//!
//! No I/O and no server code: fetching a key set is the service kit's job.

mod principal;
mod token;

pub use principal::{AUDIT_TARGET, Denied, Principal};
pub use token::{
    AuthError, CLOCK_LEEWAY, KeySet, KeySetError, TokenVerifier, claims_for, mint_token,
};
