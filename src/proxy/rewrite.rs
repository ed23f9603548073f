//! The chat-completions body: finding and checking the memory fields, taking the latest user
//! message, and rewriting the system message with the context block.
//!
//! The common case (no memory fields) is decided by [`probe`] in one pass that builds no tree,
//! so such bodies are forwarded as the exact bytes received.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::domain::is_valid_memory_id;
use crate::http_error::ApiError;

pub const MEMORY_ID_FIELD: &str = "memory_id";
pub const STORE_MEMORY_FIELD: &str = "store_memory";

/// The memory fields of a request, checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MemoryFields {
    pub memory_id: Option<String>,
    pub store_memory: Option<bool>,
    /// Either field is in the body (even as `null`), so it must be stripped before forwarding.
    pub present: bool,
}

/// A top-level field as found: absent, or present with any JSON value (`null` included).
#[derive(Debug, Default)]
enum Field {
    #[default]
    Absent,
    Present(Value),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Field::Present)
    }
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    memory_id: Field,
    #[serde(default)]
    store_memory: Field,
}

/// Checks that the body is a JSON object and reads its memory fields.
pub fn probe(body: &[u8]) -> Result<MemoryFields, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(invalid_json("the request body must be a JSON object"));
    }
    // serde_json skips the strings of fields it ignores without checking their UTF-8, so the
    // whole body is checked first: a body that is not UTF-8 is not JSON, and must not be
    // forwarded as if it were.
    let text = std::str::from_utf8(body)
        .map_err(|e| invalid_json(&format!("the request body is not valid UTF-8: {e}")))?;
    let probe: Probe = serde_json::from_str(text)
        .map_err(|e| invalid_json(&format!("the request body is not valid JSON: {e}")))?;
    let mut fields = MemoryFields::default();
    if let Field::Present(value) = probe.memory_id {
        fields.present = true;
        fields.memory_id = match value {
            Value::Null => None,
            Value::String(id) if is_valid_memory_id(&id) => Some(id),
            Value::String(_) => {
                return Err(ApiError::bad_request(
                    "invalid_memory_id",
                    "`memory_id` must match [A-Za-z0-9._:@-]{1,128}",
                ))
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_memory_id",
                    "`memory_id` must be a string",
                ))
            }
        };
    }
    if let Field::Present(value) = probe.store_memory {
        fields.present = true;
        fields.store_memory = match value {
            Value::Null => None,
            Value::Bool(b) => Some(b),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_store_memory",
                    "`store_memory` must be a boolean",
                ))
            }
        };
    }
    Ok(fields)
}

fn invalid_json(message: &str) -> ApiError {
    ApiError::bad_request("invalid_json", message)
}

/// A chat-completions body opened for rewriting. Key order is kept, so apart from the memory
/// fields and the system message the upstream sees the fields as the client sent them.
#[derive(Debug)]
pub struct ChatBody {
    map: Map<String, Value>,
}

impl ChatBody {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Self { map }),
            Ok(_) => Err(invalid_json("the request body must be a JSON object")),
            Err(e) => Err(invalid_json(&format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    pub fn strip_memory_fields(&mut self) {
        self.map.shift_remove(MEMORY_ID_FIELD);
        self.map.shift_remove(STORE_MEMORY_FIELD);
    }

    pub fn is_stream(&self) -> bool {
        self.map.get("stream").and_then(Value::as_bool) == Some(true)
    }

    fn messages(&self) -> Option<&Vec<Value>> {
        self.map.get("messages").and_then(Value::as_array)
    }

    /// Text of the last user message: a string, or the text parts of a content array.
    pub fn latest_user_text(&self) -> Option<String> {
        let message = self
            .messages()?
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
        let text = content_text(message.get("content")?)?;
        (!text.trim().is_empty()).then_some(text)
    }

    /// Appends the block to the first system message (after a blank line), or inserts a system
    /// message first when there is none.
    pub fn inject_context(&mut self, block: &str) {
        let Some(messages) = self.map.get_mut("messages").and_then(Value::as_array_mut) else {
            return;
        };
        let system = messages
            .iter_mut()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("system"));
        let Some(system) = system.and_then(Value::as_object_mut) else {
            messages.insert(0, serde_json::json!({"role": "system", "content": block}));
            return;
        };
        let content = system
            .entry("content")
            .or_insert_with(|| Value::String(String::new()));
        match content {
            Value::String(text) if text.is_empty() => text.push_str(block),
            Value::String(text) => {
                text.push_str("\n\n");
                text.push_str(block);
            }
            Value::Array(parts) => {
                parts.push(serde_json::json!({"type": "text", "text": block}));
            }
            other => *other = Value::String(block.to_string()),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.map).unwrap_or_default()
    }
}

pub fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probe_finds_and_checks_memory_fields() {
        let f = probe(br#"{"model":"m","memory_id":"user-alice","store_memory":false}"#).unwrap();
        assert_eq!(f.memory_id.as_deref(), Some("user-alice"));
        assert_eq!(f.store_memory, Some(false));
        assert!(f.present);
        let plain = probe(br#"{"model":"m","messages":[{"memory_id":1}]}"#).unwrap();
        assert_eq!(plain, MemoryFields::default());
        let null = probe(br#"{"memory_id":null}"#).unwrap();
        assert!(null.present && null.memory_id.is_none());
    }

    #[test]
    fn probe_refuses_bad_input() {
        let code = |b: &[u8]| probe(b).unwrap_err().code;
        assert_eq!(code(br#"{"memory_id":42}"#), "invalid_memory_id");
        assert_eq!(code(br#"{"memory_id":"a b"}"#), "invalid_memory_id");
        assert_eq!(
            code(br#"{"memory_id":"a","store_memory":"no"}"#),
            "invalid_store_memory"
        );
        assert_eq!(code(b"{not json"), "invalid_json");
        assert_eq!(code(b"[1,2]"), "invalid_json");
        assert_eq!(code(b""), "invalid_json");
        assert_eq!(
            code(br#"{"memory_id":"a","memory_id":"b"}"#),
            "invalid_json"
        );
        // Found by the fuzzer: invalid UTF-8 in a field the probe skips.
        assert_eq!(code(b"{\"messages\":\"Wh\xb1re\"}"), "invalid_json");
    }

    /// Found in review: without serde_json's `float_roundtrip`, some 17-digit numbers came
    /// out of a rewrite one unit in the last place off.
    #[test]
    fn rewritten_numbers_keep_their_value() {
        let body =
            br#"{"memory_id":"m","temperature":1.9000000000000002e25,"top_p":0.7,"messages":[]}"#;
        let mut chat = ChatBody::parse(body).unwrap();
        chat.strip_memory_fields();
        let out: Value = serde_json::from_slice(&chat.to_bytes()).unwrap();
        assert_eq!(out["temperature"].as_f64(), Some(1.9000000000000002e25));
        assert_eq!(out["top_p"].as_f64(), Some(0.7));
    }

    #[test]
    fn injects_into_the_first_system_message_string() {
        let mut b = ChatBody::parse(
            br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"memory_id":"u"}"#,
        )
        .unwrap();
        b.strip_memory_fields();
        b.inject_context("[Past Context for ID: u]\n- fact");
        let v: Value = serde_json::from_slice(&b.to_bytes()).unwrap();
        assert_eq!(
            v["messages"][0]["content"],
            "Be brief.\n\n[Past Context for ID: u]\n- fact"
        );
        assert!(v.get("memory_id").is_none());
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["model", "messages"], "key order is kept");
    }

    #[test]
    fn injects_into_content_parts_or_a_new_system_message() {
        let mut parts = ChatBody::parse(
            br#"{"messages":[{"role":"system","content":[{"type":"text","text":"S"}]},{"role":"user","content":"q"}]}"#,
        )
        .unwrap();
        parts.inject_context("BLOCK");
        let v: Value = serde_json::from_slice(&parts.to_bytes()).unwrap();
        assert_eq!(
            v["messages"][0]["content"][1],
            json!({"type":"text","text":"BLOCK"})
        );

        let mut none = ChatBody::parse(br#"{"messages":[{"role":"user","content":"q"}]}"#).unwrap();
        none.inject_context("BLOCK");
        let v: Value = serde_json::from_slice(&none.to_bytes()).unwrap();
        assert_eq!(v["messages"][0], json!({"role":"system","content":"BLOCK"}));
        assert_eq!(v["messages"][1]["role"], "user");
    }

    #[test]
    fn latest_user_text_reads_strings_and_parts() {
        let b = ChatBody::parse(
            br#"{"messages":[{"role":"user","content":"old"},{"role":"assistant","content":"a"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"new"}]}]}"#,
        )
        .unwrap();
        assert_eq!(b.latest_user_text().as_deref(), Some("new"));
        let none = ChatBody::parse(br#"{"messages":[{"role":"system","content":"s"}]}"#).unwrap();
        assert!(none.latest_user_text().is_none());
    }
}
