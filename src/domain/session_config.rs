//! A session's own settings, set at creation and changed by PATCH. The proxy and the engines
//! read them on every request; unset values fall back to the server's `[memory]` section.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::redaction::SessionRedaction;
use crate::domain::{EngineKind, FieldError, Placement};

pub const MAX_TOP_K: usize = 50;
pub const MAX_FACTS_CAP: u64 = 1_000_000;
/// The longest fact TTL: its milliseconds still fit the i64 timestamps it is compared with.
pub const MAX_FACT_TTL_SECONDS: u64 = (i64::MAX / 1000) as u64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Facts injected into a chat request; the server's `memory.top_k` when null.
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<usize>,
    /// Whether chat requests naming this session get context injected.
    pub retrieval: bool,
    /// What `store_memory` means when a request leaves it out.
    pub store_memory: bool,
    /// Facts not written for this long are neither injected nor listed, and are purged.
    #[schema(minimum = 1, maximum = 9223372036854775_u64)]
    pub fact_ttl_seconds: Option<u64>,
    /// Facts kept at most; the least recently written go first.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_facts: Option<u64>,
    /// Where the context block goes: `system` or `before_last_user`; the server's
    /// `memory.placement` when null.
    pub placement: Option<Placement>,
    /// What is redacted from this session's turns before they are kept or sent to a model;
    /// each detector left null (or the whole object) follows the server's
    /// `[memory.redaction]`.
    pub redaction: Option<SessionRedaction>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            top_k: None,
            retrieval: true,
            store_memory: true,
            fact_ttl_seconds: None,
            max_facts: None,
            placement: None,
            redaction: None,
        }
    }
}

impl SessionConfig {
    /// Reads a `config` object from a request, naming the offending field on error.
    pub fn from_request(value: Value) -> Result<Self, FieldError> {
        if !value.is_object() {
            return Err(FieldError::invalid("config", "must be an object"));
        }
        check_nested_objects(&value)?;
        let config: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                FieldError::invalid("config", inner)
            } else {
                FieldError::invalid(format!("config.{path}"), inner)
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// This config with `patch` merged in the JSON merge-patch way (RFC 7396): a key set to
    /// null goes back to its default, an absent key keeps its value, and an object (such as
    /// `redaction`) is merged key by key.
    pub fn merged(&self, patch: Value) -> Result<Self, FieldError> {
        if !patch.is_object() {
            return Err(FieldError::invalid("config", "must be an object"));
        }
        let mut current = match serde_json::to_value(self) {
            Ok(map @ Value::Object(_)) => map,
            _ => Value::Object(Map::new()),
        };
        merge_patch(&mut current, patch);
        Self::from_request(current)
    }

    fn validate(&self) -> Result<(), FieldError> {
        let field =
            |name: &str, rule: &str| Err(FieldError::invalid(format!("config.{name}"), rule));
        if self.top_k.is_some_and(|k| k == 0 || k > MAX_TOP_K) {
            return field("top_k", &format!("must be between 1 and {MAX_TOP_K}"));
        }
        if self
            .fact_ttl_seconds
            .is_some_and(|t| t == 0 || t > MAX_FACT_TTL_SECONDS)
        {
            return field(
                "fact_ttl_seconds",
                &format!("must be between 1 and {MAX_FACT_TTL_SECONDS}"),
            );
        }
        if self.max_facts.is_some_and(|n| n == 0 || n > MAX_FACTS_CAP) {
            return field(
                "max_facts",
                &format!("must be between 1 and {MAX_FACTS_CAP}"),
            );
        }
        if let Some(redaction) = &self.redaction {
            redaction.validate("config.redaction")?;
        }
        Ok(())
    }

    /// Refuses settings the session's engine does not implement: the cognee engine keeps a
    /// graph, whose relationships have no TTL or cap.
    pub fn check_engine(&self, engine: EngineKind) -> Result<(), FieldError> {
        if engine != EngineKind::Cognee {
            return Ok(());
        }
        for (name, set) in [
            ("fact_ttl_seconds", self.fact_ttl_seconds.is_some()),
            ("max_facts", self.max_facts.is_some()),
        ] {
            if set {
                return Err(FieldError::unsupported(
                    format!("config.{name}"),
                    "not supported by the cognee engine",
                ));
            }
        }
        Ok(())
    }

    /// The oldest `updated_at` (ms) a fact may have and still count, when a TTL is set. A
    /// TTL too long for the clock (stored before it was capped) keeps every fact.
    pub fn fresh_since(&self, now_ms: i64) -> Option<i64> {
        self.fact_ttl_seconds.map(|ttl| {
            let ttl_ms = i64::try_from(ttl).unwrap_or(i64::MAX).saturating_mul(1000);
            now_ms.saturating_sub(ttl_ms)
        })
    }
}

/// serde fills a struct from an array of its fields in order, which no client means: the
/// nested settings must be objects too, as the config itself must.
fn check_nested_objects(config: &Value) -> Result<(), FieldError> {
    let Some(redaction) = config.get("redaction").filter(|r| !r.is_null()) else {
        return Ok(());
    };
    if !redaction.is_object() {
        return Err(FieldError::invalid(
            "config.redaction",
            "must be an object or null",
        ));
    }
    if let Some(Value::Array(rules)) = redaction.get("custom") {
        if let Some(i) = rules.iter().position(|rule| !rule.is_object()) {
            return Err(FieldError::invalid(
                format!("config.redaction.custom[{i}]"),
                "must be an object {label, pattern}",
            ));
        }
    }
    Ok(())
}

/// RFC 7396: `patch` applied to `target`.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(&key);
        } else {
            merge_patch(map.entry(key).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_field_errors() {
        let c = SessionConfig::from_request(json!({})).unwrap();
        assert_eq!(c, SessionConfig::default());
        let e = SessionConfig::from_request(json!({"top_k": "three"})).unwrap_err();
        assert!(e.message.contains("config.top_k"), "{}", e.message);
        let e = SessionConfig::from_request(json!({"top_k": 0})).unwrap_err();
        assert!(e.message.contains("config.top_k"), "{}", e.message);
        let e = SessionConfig::from_request(json!({"ttl": 5})).unwrap_err();
        assert!(e.message.contains("ttl"), "{}", e.message);
        let e = SessionConfig::from_request(json!([1])).unwrap_err();
        assert_eq!(e.code, "invalid_field");
    }

    #[test]
    fn merge_patch_sets_keeps_and_resets() {
        let c = SessionConfig::from_request(json!({"top_k": 5, "retrieval": false})).unwrap();
        let m = c.merged(json!({"max_facts": 10})).unwrap();
        assert_eq!(
            (m.top_k, m.retrieval, m.max_facts),
            (Some(5), false, Some(10))
        );
        let m = m.merged(json!({"top_k": null, "retrieval": null})).unwrap();
        assert_eq!((m.top_k, m.retrieval, m.max_facts), (None, true, Some(10)));
        assert!(c.merged(json!({"max_facts": -1})).is_err());
    }

    #[test]
    fn redaction_is_merged_key_by_key_and_checked() {
        let c = SessionConfig::from_request(json!({"redaction": {"email": true}})).unwrap();
        let m = c.merged(json!({"redaction": {"phone": true}})).unwrap();
        let r = m.redaction.clone().unwrap();
        assert_eq!((r.email, r.phone, r.secret), (Some(true), Some(true), None));
        let m = m.merged(json!({"redaction": {"email": null}})).unwrap();
        assert_eq!(m.redaction.clone().unwrap().email, None);
        assert_eq!(
            m.merged(json!({"redaction": null})).unwrap().redaction,
            None
        );
        let e = c
            .merged(json!({"redaction": {"custom": [{"label": "x y", "pattern": "a"}]}}))
            .unwrap_err();
        assert_eq!(e.param, "config.redaction.custom[0].label");
        let e = SessionConfig::from_request(json!({"redaction": {"mail": true}})).unwrap_err();
        assert!(e.param.starts_with("config.redaction"), "{e:?}");
        // The array forms serde would read as the structs' fields in order.
        let e = SessionConfig::from_request(json!({"redaction": [null, null]})).unwrap_err();
        assert_eq!(e.param, "config.redaction");
        let e = SessionConfig::from_request(json!({"redaction": {"custom": [["t", "x"]]}}))
            .unwrap_err();
        assert_eq!(e.param, "config.redaction.custom[0]");
        // In a patch, null resets a nested key.
        let m = c
            .merged(json!({"redaction": {"custom": [{"label": "t", "pattern": "x"}]}}))
            .unwrap();
        let m = m.merged(json!({"redaction": {"custom": null}})).unwrap();
        assert!(m.redaction.unwrap().custom.is_empty());
    }

    #[test]
    fn documented_ranges_are_the_checked_ones() {
        let schema =
            serde_json::to_value(<SessionConfig as utoipa::PartialSchema>::schema()).unwrap();
        let field = |name: &str| &schema["properties"][name];
        assert_eq!(field("top_k")["maximum"], json!(MAX_TOP_K));
        assert_eq!(field("max_facts")["maximum"], json!(MAX_FACTS_CAP));
        assert_eq!(
            field("fact_ttl_seconds")["maximum"],
            json!(MAX_FACT_TTL_SECONDS)
        );
    }

    #[test]
    fn ttl_cutoff() {
        let c = SessionConfig {
            fact_ttl_seconds: Some(2),
            ..Default::default()
        };
        assert_eq!(c.fresh_since(10_000), Some(8_000));
        assert_eq!(SessionConfig::default().fresh_since(10_000), None);
        // A TTL past i64 once wrapped to a negative one: every fact expired, and was purged.
        for ttl in [MAX_FACT_TTL_SECONDS, 1 << 63, u64::MAX] {
            let c = SessionConfig {
                fact_ttl_seconds: Some(ttl),
                ..Default::default()
            };
            assert!(
                c.fresh_since(10_000).unwrap() < -9_000_000_000_000_000,
                "{ttl}"
            );
        }
        assert!(
            SessionConfig::from_request(json!({"fact_ttl_seconds": MAX_FACT_TTL_SECONDS})).is_ok()
        );
        let e = SessionConfig::from_request(json!({"fact_ttl_seconds": 1u64 << 63})).unwrap_err();
        assert!(
            e.message.contains("config.fact_ttl_seconds"),
            "{}",
            e.message
        );
    }
}
