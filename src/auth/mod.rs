//! Who is calling: the caller's credentials → (org, role). Three sources, tried in order:
//! an authenticator's trusted headers (only from its networks), the static keys, and the
//! gateway's key introspection. Keys are never logged.

pub mod introspection;
pub mod key_ring;
pub mod trusted_header;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, ConfigError, UpstreamConfig};
use crate::domain::Role;
use introspection::Introspection;
use key_ring::KeyRing;
use trusted_header::TrustedHeader;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub org: String,
    pub role: Role,
}

/// The SHA-256 of a key: what is stored and compared, never the key. Equality runs in
/// constant time, so a lookup's timing says nothing about how close a guess came.
#[derive(Clone, Copy, Debug, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key could not be checked (the gateway's introspection is down): not the caller's
    /// fault, so not a 401.
    #[error("cannot verify the API key right now: {0}")]
    Unavailable(String),
}

pub struct Authenticator {
    trusted: Option<TrustedHeader>,
    keys: KeyRing,
    introspection: Option<Introspection>,
}

impl Authenticator {
    pub fn from_config(auth: &AuthConfig, upstream: &UpstreamConfig) -> Result<Self, ConfigError> {
        let keys = KeyRing::from_config(auth)?;
        let trusted = auth
            .trusted_header
            .enabled
            .then(|| TrustedHeader::new(&auth.trusted_header));
        let introspection = auth
            .introspection
            .enabled
            .then(|| Introspection::new(&auth.introspection, upstream.url.as_str()))
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                path: "auth.introspection".into(),
                reason,
            })?;
        if keys.is_empty() && trusted.is_none() && introspection.is_none() {
            tracing::warn!("no API keys configured: every memory request will be refused with 401");
        }
        Ok(Self {
            trusted,
            keys,
            introspection,
        })
    }

    /// The caller of a request, `None` when its credentials resolve to no one.
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<Principal>, AuthError> {
        if let Some(trusted) = &self.trusted {
            if let Some(found) = trusted.resolve(headers, peer) {
                return Ok(found);
            }
        }
        let Some(key) = caller_key(headers) else {
            return Ok(None);
        };
        let digest = KeyDigest::of(key);
        if let Some(p) = self.keys.resolve(&digest) {
            return Ok(Some(p.clone()));
        }
        match &self.introspection {
            Some(i) => i.resolve(key, digest).await,
            None => Ok(None),
        }
    }
}

/// Anthropic's clients send their key as `x-api-key` (Claude Code with `ANTHROPIC_API_KEY`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The caller's key: an `Authorization: Bearer <key>` header's, else an `x-api-key` header's.
pub fn caller_key(headers: &HeaderMap) -> Option<&str> {
    match headers.get(http::header::AUTHORIZATION) {
        Some(authorization) => bearer_key(Some(authorization.as_bytes())),
        None => {
            let key = headers.get(API_KEY_HEADER)?.to_str().ok()?.trim();
            (!key.is_empty()).then_some(key)
        }
    }
}

/// The key of an `Authorization: Bearer <key>` header.
pub fn bearer_key(header: Option<&[u8]>) -> Option<&str> {
    let value = std::str::from_utf8(header?).ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let key = key.trim();
    (!key.is_empty()).then_some(key)
}
