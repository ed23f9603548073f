//! Gateway key introspection: keys that are not in the static list are looked up at the
//! upstream LiteLLM proxy (`GET /key/info`, authorised by the key itself), and the answer is
//! cached by the key's digest for a while, refusals for a shorter while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{AuthError, KeyDigest, Principal};
use crate::config::{HttpUrl, IntrospectionConfig};
use crate::domain::Role;

pub struct Introspection {
    client: reqwest::Client,
    url: String,
    org_fields: Vec<String>,
    role_metadata_key: String,
    ttl: Duration,
    negative_ttl: Duration,
    max_cached: usize,
    cache: Mutex<HashMap<KeyDigest, Cached>>,
}

struct Cached {
    principal: Option<Principal>,
    until: Instant,
}

impl Introspection {
    pub fn new(config: &IntrospectionConfig, upstream_url: &str) -> Result<Self, String> {
        let base = config.url.as_ref().map_or(upstream_url, HttpUrl::as_str);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url: format!("{}{}", base.trim_end_matches('/'), config.path),
            org_fields: config.org_fields.clone(),
            role_metadata_key: config.role_metadata_key.clone(),
            ttl: Duration::from_secs(config.cache_ttl_seconds),
            negative_ttl: Duration::from_secs(config.negative_cache_ttl_seconds),
            max_cached: config.max_cached_keys.max(1),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub async fn resolve(
        &self,
        key: &str,
        digest: KeyDigest,
    ) -> Result<Option<Principal>, AuthError> {
        if let Some(hit) = self.cached(&digest) {
            return Ok(hit);
        }
        let principal = self.ask(key).await?;
        self.remember(digest, principal.clone());
        Ok(principal)
    }

    fn cached(&self, digest: &KeyDigest) -> Option<Option<Principal>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(digest)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.principal.clone())
    }

    fn remember(&self, digest: KeyDigest, principal: Option<Principal>) {
        let ttl = if principal.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.max_cached {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= self.max_cached {
                // Full of live entries: forgetting them all costs a lookup each, nothing more.
                cache.clear();
            }
        }
        cache.insert(
            digest,
            Cached {
                principal,
                until: now + ttl,
            },
        );
    }

    async fn ask(&self, key: &str) -> Result<Option<Principal>, AuthError> {
        let response = self
            .client
            .get(&self.url)
            .bearer_auth(key)
            .send()
            .await
            .map_err(|e| AuthError::Unavailable(format!("key introspection failed: {e}")))?;
        let status = response.status();
        if matches!(status.as_u16(), 400 | 401 | 403 | 404) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(AuthError::Unavailable(format!(
                "key introspection answered {status}"
            )));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| AuthError::Unavailable(format!("key introspection answer: {e}")))?;
        Ok(self.principal_of(&body))
    }

    /// LiteLLM answers `{"key": …, "info": {"org_id", "team_id", "metadata", …}}`.
    fn principal_of(&self, body: &Value) -> Option<Principal> {
        let info = body.get("info")?;
        let org = self.org_fields.iter().find_map(|field| {
            info.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        })?;
        let role = match info
            .get("metadata")
            .and_then(|m| m.get(&self.role_metadata_key))
            .and_then(Value::as_str)
        {
            Some(r) if r.eq_ignore_ascii_case("admin") => Role::Admin,
            _ => Role::Member,
        };
        Some(Principal {
            org: org.to_string(),
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn introspection() -> Introspection {
        Introspection::new(&IntrospectionConfig::default(), "http://127.0.0.1:9").unwrap()
    }

    #[test]
    fn org_from_the_first_field_present_and_role_from_metadata() {
        let i = introspection();
        let p = i
            .principal_of(&json!({"info": {"org_id": null, "team_id": "team-7"}}))
            .unwrap();
        assert_eq!((p.org.as_str(), p.role), ("team-7", Role::Member));
        let p = i
            .principal_of(&json!({"info": {"org_id": "acme", "team_id": "t", "metadata": {"memgate_role": "admin"}}}))
            .unwrap();
        assert_eq!((p.org.as_str(), p.role), ("acme", Role::Admin));
        assert!(i.principal_of(&json!({"info": {"user_id": "u"}})).is_none());
        assert!(i.principal_of(&json!({"error": "x"})).is_none());
    }

    #[test]
    fn cache_expires_and_stays_bounded() {
        let mut i = introspection();
        i.max_cached = 2;
        i.negative_ttl = Duration::ZERO;
        let p = Principal {
            org: "acme".into(),
            role: Role::Member,
        };
        i.remember(KeyDigest::of("a"), Some(p.clone()));
        assert_eq!(i.cached(&KeyDigest::of("a")), Some(Some(p)));
        i.remember(KeyDigest::of("b"), None);
        assert_eq!(i.cached(&KeyDigest::of("b")), None, "negative TTL of zero");
        i.remember(KeyDigest::of("c"), None);
        i.remember(KeyDigest::of("d"), None);
        assert!(i.cache.lock().unwrap().len() <= 2);
    }

    #[tokio::test]
    async fn unreachable_gateway_is_unavailable_not_unknown() {
        let i = introspection();
        let r = i.resolve("sk-x", KeyDigest::of("sk-x")).await;
        assert!(matches!(r, Err(AuthError::Unavailable(_))));
    }
}
