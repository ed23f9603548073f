//! The API shapes memgate remembers on, and the one place that dispatches on them: where a
//! request's latest user text is, where the context block goes, where an answer's text is,
//! and how an error is shaped. Each shape has its file; the flow of an intercepted request
//! (`chat.rs`), the body handling (`rewrite.rs`) and the tee (`tee.rs`) are shared.

mod chat_completions;
mod messages;
mod responses;

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::domain::Placement;
use crate::http_error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiShape {
    /// OpenAI chat completions: `/v1/chat/completions`.
    ChatCompletions,
    /// OpenAI Responses: `/v1/responses`.
    Responses,
    /// Anthropic Messages: `/v1/messages`.
    Messages,
}

/// What one event of a streamed answer says about the answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StreamStep<'a> {
    /// Text of the answer, and the block it belongs to: the text of separate blocks (output
    /// items, content blocks) is joined by a newline, as in a non-streamed answer.
    pub text: Option<(u64, Cow<'a, str>)>,
    /// The answer is whole once the stream ends (chat's `finish_reason`).
    pub finished: bool,
    /// This event ends the answer: from its start on, the stream is held back until the turn
    /// is durable.
    pub end: bool,
    /// The upstream reported an error in the stream: no turn.
    pub failed: bool,
}

impl StreamStep<'_> {
    fn failed() -> Self {
        Self {
            failed: true,
            ..Self::default()
        }
    }

    fn end() -> Self {
        Self {
            end: true,
            ..Self::default()
        }
    }
}

impl ApiShape {
    pub const ALL: [ApiShape; 3] = [
        ApiShape::ChatCompletions,
        ApiShape::Responses,
        ApiShape::Messages,
    ];

    /// The paths it is served on, as the upstream serves them: with `/v1` and without.
    pub fn paths(self) -> [&'static str; 2] {
        match self {
            ApiShape::ChatCompletions => ["/v1/chat/completions", "/chat/completions"],
            ApiShape::Responses => ["/v1/responses", "/responses"],
            ApiShape::Messages => ["/v1/messages", "/messages"],
        }
    }

    /// The request's latest user text, which is what memory is searched with and what the
    /// turn stores as the user's part.
    pub fn latest_user_text(self, body: &Map<String, Value>) -> Option<String> {
        let text = match self {
            ApiShape::ChatCompletions => chat_completions::latest_user_text(body),
            ApiShape::Responses => responses::latest_user_text(body),
            ApiShape::Messages => messages::latest_user_text(body),
        }?;
        (!text.trim().is_empty()).then_some(text)
    }

    /// Puts the context block where `placement` says. Everything else in the body, the
    /// clients' own cache markers included, stays as it is.
    pub fn inject_context(self, body: &mut Map<String, Value>, block: &str, placement: Placement) {
        match (self, placement) {
            (ApiShape::ChatCompletions, Placement::System) => {
                chat_completions::inject_into_system(body, block)
            }
            (ApiShape::ChatCompletions, Placement::BeforeLastUser) => {
                chat_completions::inject_before_last_user(body, block)
            }
            (ApiShape::Responses, Placement::System) => {
                responses::inject_into_instructions(body, block)
            }
            (ApiShape::Responses, Placement::BeforeLastUser) => {
                responses::inject_before_last_user(body, block)
            }
            (ApiShape::Messages, Placement::System) => messages::inject_into_system(body, block),
            (ApiShape::Messages, Placement::BeforeLastUser) => {
                messages::inject_into_last_user(body, block)
            }
        }
    }

    /// The answer's text in a non-streamed answer body, when it is a complete one.
    pub fn answer_text(self, body: &[u8]) -> Option<String> {
        match self {
            ApiShape::ChatCompletions => chat_completions::answer_text(body),
            ApiShape::Responses => responses::answer_text(body),
            ApiShape::Messages => messages::answer_text(body),
        }
    }

    /// Reads one event of a streamed answer (its `data`, the `[DONE]` marker aside).
    pub fn stream_step(self, data: &[u8]) -> StreamStep<'_> {
        match self {
            ApiShape::ChatCompletions => chat_completions::stream_step(data),
            ApiShape::Responses => responses::stream_step(data),
            ApiShape::Messages => messages::stream_step(data),
        }
    }

    /// Whether the stream ends with chat completions' `data: [DONE]`, which is then the part
    /// held back. The other shapes end on a typed event.
    pub fn ends_with_done_marker(self) -> bool {
        self == ApiShape::ChatCompletions
    }

    /// An error as this API's clients read errors: Anthropic's SDKs look for
    /// `{"type":"error","error":{"type","message"}}`, OpenAI's (chat and Responses) for
    /// `{"error":{"message","type","code"}}`.
    pub fn error_body(self, error: &ApiError) -> Bytes {
        match self {
            ApiShape::ChatCompletions | ApiShape::Responses => error.body(),
            ApiShape::Messages => messages::error_body(error),
        }
    }
}

/// Text of a content array's parts whose type is one of `types`, joined by newlines; `None`
/// when it has none. Used for chat's `text` parts, Responses' `input_text` / `output_text` and
/// Anthropic's `text` blocks.
fn parts_text(parts: &[Value], types: &[&str]) -> Option<String> {
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| {
            p.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| types.contains(&t))
        })
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// A chat message's content as text: a string, or its `text` parts.
pub fn message_text(content: &Value) -> Option<String> {
    content_text(content, &["text"])
}

/// A string, or the text of a content array's parts of the given types.
fn content_text(content: &Value, types: &[&str]) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts_text(parts, types),
        _ => None,
    }
}

/// Appends `block` to a system prompt after a blank line: a string grows, an array of parts
/// gets one more text part at its end, anything else (absent, null) becomes the block.
fn append_to_prompt(prompt: &mut Value, block: &str, text_part: impl FnOnce(&str) -> Value) {
    match prompt {
        Value::String(text) if text.is_empty() => text.push_str(block),
        Value::String(text) => {
            text.push_str("\n\n");
            text.push_str(block);
        }
        Value::Array(parts) => parts.push(text_part(block)),
        other => *other = Value::String(block.to_string()),
    }
}

/// Index of the last element of `items` whose `role` is `role`.
fn last_with_role(items: &[Value], role: &str) -> Option<usize> {
    items
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some(role))
}

/// A JSON object literal as the map a body is (for the shapes' tests).
#[cfg(test)]
pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_prompt_part_goes_after_the_existing_ones() {
        let part = |t: &str| json!({"type": "text", "text": t});
        let mut s = json!("Be brief.");
        append_to_prompt(&mut s, "B", part);
        assert_eq!(s, "Be brief.\n\nB");
        let mut empty = json!("");
        append_to_prompt(&mut empty, "B", part);
        assert_eq!(empty, "B");
        let mut parts =
            json!([{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]);
        append_to_prompt(&mut parts, "B", part);
        assert_eq!(
            parts,
            json!([{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "B"}])
        );
        let mut null = Value::Null;
        append_to_prompt(&mut null, "B", part);
        assert_eq!(null, "B");
    }

    #[test]
    fn every_shape_has_its_own_paths() {
        let mut all: Vec<&str> = ApiShape::ALL.iter().flat_map(|s| s.paths()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6);
    }
}
