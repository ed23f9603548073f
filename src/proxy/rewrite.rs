//! An intercepted request's body: finding and checking the memory fields (in the body or in
//! headers), and rewriting the body with the context block where its API shape keeps it.
//!
//! The common case (no memory fields) is decided by [`probe`] in one pass that builds no tree,
//! so such bodies are forwarded as the exact bytes received.

use http::HeaderMap;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::domain::{is_valid_memory_id, Placement, MEMORY_ID_HEADER, STORE_MEMORY_HEADER};
use crate::http_error::ApiError;
use crate::proxy::api::ApiShape;

pub const MEMORY_ID_FIELD: &str = "memory_id";
pub const STORE_MEMORY_FIELD: &str = "store_memory";

/// The memory fields of a request, checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MemoryFields {
    pub memory_id: Option<String>,
    pub store_memory: Option<bool>,
    /// Either field is in the body (even as `null`), so it must be stripped before forwarding.
    pub in_body: bool,
    /// Either field came as a header.
    pub in_headers: bool,
}

impl MemoryFields {
    /// Whether the request says anything to memory at all.
    pub fn asked(&self) -> bool {
        self.in_body || self.in_headers
    }

    /// Adds the header fields to the body's. A field given both ways must say the same
    /// thing: which of two different sessions the client meant cannot be guessed.
    pub fn with_headers(mut self, headers: &HeaderMap) -> Result<Self, ApiError> {
        if let Some(value) = single_header(headers, MEMORY_ID_HEADER)? {
            if !is_valid_memory_id(value) {
                return Err(ApiError::bad_request(
                    "invalid_memory_id",
                    format!("`{MEMORY_ID_HEADER}` must match [A-Za-z0-9._:@-]{{1,128}}"),
                ));
            }
            match &self.memory_id {
                Some(body) if body != value => {
                    return Err(ApiError::bad_request(
                        "conflicting_memory_fields",
                        format!("`memory_id` in the body and `{MEMORY_ID_HEADER}` differ"),
                    ))
                }
                _ => self.memory_id = Some(value.to_string()),
            }
            self.in_headers = true;
        }
        if let Some(value) = single_header(headers, STORE_MEMORY_HEADER)? {
            let store = match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_store_memory",
                        format!("`{STORE_MEMORY_HEADER}` must be `true` or `false`"),
                    ))
                }
            };
            match self.store_memory {
                Some(body) if body != store => {
                    return Err(ApiError::bad_request(
                        "conflicting_memory_fields",
                        format!("`store_memory` in the body and `{STORE_MEMORY_HEADER}` differ"),
                    ))
                }
                _ => self.store_memory = Some(store),
            }
            self.in_headers = true;
        }
        Ok(self)
    }
}

/// A header sent at most once, as text.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(name) {
            true => Err(ApiError::bad_request(
                "conflicting_memory_fields",
                format!("`{name}` may be sent once"),
            )),
            false => Ok(None),
        };
    };
    value.to_str().map(|v| Some(v.trim())).map_err(|_| {
        ApiError::bad_request("invalid_memory_header", format!("`{name}` must be ASCII"))
    })
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
        fields.in_body = true;
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
        fields.in_body = true;
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

/// An intercepted body opened for rewriting. Key order is kept, so apart from the memory
/// fields and the context block the upstream sees the fields as the client sent them.
#[derive(Debug)]
pub struct RequestBody {
    map: Map<String, Value>,
    shape: ApiShape,
}

impl RequestBody {
    pub fn parse(body: &[u8], shape: ApiShape) -> Result<Self, ApiError> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Self { map, shape }),
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

    /// The latest user message's text (see [`ApiShape::latest_user_text`]).
    pub fn latest_user_text(&self) -> Option<String> {
        self.shape.latest_user_text(&self.map)
    }

    pub fn inject_context(&mut self, block: &str, placement: Placement) {
        self.shape.inject_context(&mut self.map, block, placement);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.map).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_finds_and_checks_memory_fields() {
        let f = probe(br#"{"model":"m","memory_id":"user-alice","store_memory":false}"#).unwrap();
        assert_eq!(f.memory_id.as_deref(), Some("user-alice"));
        assert_eq!(f.store_memory, Some(false));
        assert!(f.in_body && f.asked());
        let plain = probe(br#"{"model":"m","messages":[{"memory_id":1}]}"#).unwrap();
        assert_eq!(plain, MemoryFields::default());
        assert!(!plain.asked());
        let null = probe(br#"{"memory_id":null}"#).unwrap();
        assert!(null.in_body && null.memory_id.is_none());
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn header_fields_add_to_the_body_and_may_not_contradict_it() {
        let from_headers = probe(br#"{"model":"m"}"#)
            .unwrap()
            .with_headers(&headers(&[
                (MEMORY_ID_HEADER, "user-alice"),
                (STORE_MEMORY_HEADER, "False"),
            ]))
            .unwrap();
        assert_eq!(from_headers.memory_id.as_deref(), Some("user-alice"));
        assert_eq!(from_headers.store_memory, Some(false));
        assert!(from_headers.in_headers && !from_headers.in_body && from_headers.asked());

        let agreeing = probe(br#"{"memory_id":"a","store_memory":true}"#)
            .unwrap()
            .with_headers(&headers(&[
                (MEMORY_ID_HEADER, "a"),
                (STORE_MEMORY_HEADER, "true"),
            ]))
            .unwrap();
        assert_eq!(
            (agreeing.memory_id.as_deref(), agreeing.store_memory),
            (Some("a"), Some(true))
        );

        let code = |body: &[u8], h: &[(&'static str, &'static str)]| {
            probe(body)
                .unwrap()
                .with_headers(&headers(h))
                .unwrap_err()
                .code
        };
        assert_eq!(
            code(br#"{"memory_id":"a"}"#, &[(MEMORY_ID_HEADER, "b")]),
            "conflicting_memory_fields"
        );
        assert_eq!(
            code(
                br#"{"store_memory":false}"#,
                &[(STORE_MEMORY_HEADER, "true")]
            ),
            "conflicting_memory_fields"
        );
        assert_eq!(
            code(b"{}", &[(MEMORY_ID_HEADER, "a"), (MEMORY_ID_HEADER, "a")]),
            "conflicting_memory_fields"
        );
        assert_eq!(
            code(b"{}", &[(MEMORY_ID_HEADER, "a b")]),
            "invalid_memory_id"
        );
        assert_eq!(
            code(b"{}", &[(STORE_MEMORY_HEADER, "yes")]),
            "invalid_store_memory"
        );
        let none = probe(b"{}")
            .unwrap()
            .with_headers(&HeaderMap::new())
            .unwrap();
        assert!(!none.asked());
    }

    /// Found in review: without serde_json's `float_roundtrip`, some 17-digit numbers came
    /// out of a rewrite one unit in the last place off.
    #[test]
    fn rewritten_numbers_keep_their_value() {
        let body =
            br#"{"memory_id":"m","temperature":1.9000000000000002e25,"top_p":0.7,"messages":[]}"#;
        let mut chat = RequestBody::parse(body, ApiShape::ChatCompletions).unwrap();
        chat.strip_memory_fields();
        let out: Value = serde_json::from_slice(&chat.to_bytes()).unwrap();
        assert_eq!(out["temperature"].as_f64(), Some(1.9000000000000002e25));
        assert_eq!(out["top_p"].as_f64(), Some(0.7));
    }

    #[test]
    fn a_rewrite_strips_the_fields_and_keeps_the_key_order() {
        let mut b = RequestBody::parse(
            br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"memory_id":"u"}"#,
            ApiShape::ChatCompletions,
        )
        .unwrap();
        b.strip_memory_fields();
        b.inject_context("[Past Context for ID: u]\n- fact", Placement::System);
        let v: Value = serde_json::from_slice(&b.to_bytes()).unwrap();
        assert_eq!(
            v["messages"][0]["content"],
            "Be brief.\n\n[Past Context for ID: u]\n- fact"
        );
        assert!(v.get("memory_id").is_none());
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["model", "messages"], "key order is kept");
    }
}
