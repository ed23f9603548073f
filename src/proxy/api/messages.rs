//! Anthropic Messages: the block goes into `system`, or, as Anthropic has no system role
//! between turns, as a text block at the start of the latest user message; the answer is the
//! `text` blocks of `content`. Blocks memgate adds carry no `cache_control`, and the client's
//! blocks keep theirs.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{append_to_prompt, content_text, last_with_role, parts_text, StreamStep};
use crate::http_error::ApiError;

const TEXT_BLOCKS: &[&str] = &["text"];

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

pub fn latest_user_text(body: &Map<String, Value>) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let message = &messages[last_with_role(messages, "user")?];
    content_text(message.get("content")?, TEXT_BLOCKS)
}

/// A string `system` grows after a blank line, an array of blocks gets one more text block
/// at its end, an absent one is set.
pub fn inject_into_system(body: &mut Map<String, Value>, block: &str) {
    let system = body.entry("system").or_insert(Value::Null);
    append_to_prompt(system, block, text_block);
}

/// A text block at the start of the latest user message (whose string content becomes a text
/// block after it).
pub fn inject_into_last_user(body: &mut Map<String, Value>, block: &str) {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let Some(at) = last_with_role(messages, "user") else {
        return;
    };
    let Some(content) = messages[at].get_mut("content") else {
        return;
    };
    match content {
        Value::Array(blocks) => blocks.insert(0, text_block(block)),
        Value::String(text) => {
            let text = std::mem::take(text);
            *content = json!([text_block(block), text_block(&text)]);
        }
        _ => {}
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    content: Vec<Value>,
}

pub fn answer_text(body: &[u8]) -> Option<String> {
    let message: Message = serde_json::from_slice(body).ok()?;
    if message.kind != "message" {
        return None;
    }
    parts_text(&message.content, TEXT_BLOCKS)
}

#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// `content_block_delta` with a `text_delta` carries the text; `message_stop` ends it; an
/// `error` event means no answer.
pub fn stream_step(data: &[u8]) -> StreamStep<'_> {
    let Ok(event) = serde_json::from_slice::<StreamEvent>(data) else {
        return StreamStep::default();
    };
    match event.kind.as_ref() {
        "content_block_delta" => {
            let text = event
                .delta
                .filter(|d| d.kind == "text_delta")
                .and_then(|d| d.text);
            StreamStep {
                text: text.map(|text| (event.index, text)),
                ..StreamStep::default()
            }
        }
        "message_stop" => StreamStep::end(),
        "error" => StreamStep::failed(),
        _ => StreamStep::default(),
    }
}

/// Anthropic's error types, by status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

pub fn error_body(error: &ApiError) -> Bytes {
    let value = json!({
        "type": "error",
        "error": {"type": error_type(error.status), "message": error.message}
    });
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::api::object as body;

    #[test]
    fn system_grows_and_keeps_cache_control() {
        let mut string = body(json!({"system": "Be brief.", "messages": []}));
        inject_into_system(&mut string, "BLOCK");
        assert_eq!(string["system"], "Be brief.\n\nBLOCK");
        let cached = json!({"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}});
        let mut blocks = body(json!({"system": [cached.clone()], "messages": []}));
        inject_into_system(&mut blocks, "BLOCK");
        assert_eq!(
            blocks["system"],
            json!([cached, {"type": "text", "text": "BLOCK"}])
        );
        let mut absent = body(json!({"messages": []}));
        inject_into_system(&mut absent, "BLOCK");
        assert_eq!(absent["system"], "BLOCK");
    }

    #[test]
    fn before_last_user_is_the_first_block_of_the_latest_user_message() {
        let mut b = body(json!({"system": "S", "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"}
        ]}));
        inject_into_last_user(&mut b, "BLOCK");
        assert_eq!(b["system"], "S");
        assert_eq!(b["messages"][0]["content"], "one");
        assert_eq!(
            b["messages"][2]["content"],
            json!([{"type": "text", "text": "BLOCK"}, {"type": "text", "text": "three"}])
        );
        let result = json!({"type": "tool_result", "tool_use_id": "t", "content": "42"});
        let mut blocks = body(json!({"messages": [{"role": "user", "content": [result.clone()]}]}));
        inject_into_last_user(&mut blocks, "BLOCK");
        assert_eq!(
            blocks["messages"][0]["content"],
            json!([{"type": "text", "text": "BLOCK"}, result])
        );
    }

    #[test]
    fn the_latest_user_text_is_its_text_blocks() {
        let b = body(json!({"messages": [
            {"role": "user", "content": "old"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}},
                {"type": "text", "text": "new"}
            ]}
        ]}));
        assert_eq!(latest_user_text(&b).as_deref(), Some("new"));
        let tools_only = body(json!({"messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}]}
        ]}));
        assert!(latest_user_text(&tools_only).is_none());
    }

    #[test]
    fn answers_and_stream_events() {
        let body = br#"{"type":"message","role":"assistant","content":[{"type":"thinking","thinking":"x"},{"type":"text","text":"Hi"},{"type":"tool_use","id":"t","name":"f","input":{}}]}"#;
        assert_eq!(answer_text(body).as_deref(), Some("Hi"));
        assert!(
            answer_text(br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#)
                .is_none()
        );
        let delta = stream_step(br#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Hi"}}"#);
        assert_eq!(delta.text, Some((2, Cow::Borrowed("Hi"))));
        let json_delta = stream_step(br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#);
        assert_eq!(json_delta, StreamStep::default());
        assert!(stream_step(br#"{"type":"message_stop"}"#).end);
        assert!(
            stream_step(br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#)
                .failed
        );
    }

    #[test]
    fn errors_have_anthropics_shape() {
        let error = ApiError::bad_request("invalid_memory_id", "`memory_id` must be a string");
        let v: Value = serde_json::from_slice(&error_body(&error)).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "`memory_id` must be a string"}})
        );
        assert_eq!(error_type(404), "not_found_error");
        assert_eq!(error_type(502), "api_error");
    }
}
