//! OpenAI chat completions: the block goes into the first system message (or a new one
//! first), or as a system message right before the latest user message; the answer is
//! choice 0's content.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{append_to_prompt, content_text, last_with_role, StreamStep};

const TEXT_PARTS: &[&str] = &["text"];

fn messages(body: &Map<String, Value>) -> Option<&Vec<Value>> {
    body.get("messages").and_then(Value::as_array)
}

/// Text of the last user message: a string, or the text parts of a content array.
pub fn latest_user_text(body: &Map<String, Value>) -> Option<String> {
    let messages = messages(body)?;
    let message = &messages[last_with_role(messages, "user")?];
    content_text(message.get("content")?, TEXT_PARTS)
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// Appends the block to the first system message (after a blank line), or inserts a system
/// message first when there is none.
pub fn inject_into_system(body: &mut Map<String, Value>, block: &str) {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let system = messages
        .iter_mut()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .and_then(Value::as_object_mut);
    match system {
        Some(system) => append_to_prompt(
            system
                .entry("content")
                .or_insert_with(|| Value::String(String::new())),
            block,
            text_part,
        ),
        None => messages.insert(0, json!({"role": "system", "content": block})),
    }
}

/// Inserts the block as a system message right before the latest user message (at the end
/// when there is none).
pub fn inject_before_last_user(body: &mut Map<String, Value>, block: &str) {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let at = last_with_role(messages, "user").unwrap_or(messages.len());
    messages.insert(at, json!({"role": "system", "content": block}));
}

/// A non-streamed answer, read for choice 0's content only (a string or text parts).
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<CompletionChoice>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    message: Option<CompletionMessage>,
}

#[derive(Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<Value>,
}

pub fn answer_text(body: &[u8]) -> Option<String> {
    let completion: Completion = serde_json::from_slice(body).ok()?;
    let choice = completion.choices.into_iter().find(|c| c.index == 0)?;
    content_text(&choice.message?.content?, TEXT_PARTS)
}

/// Typed and borrowed: only the fields the tee needs are materialised.
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(default, borrow)]
    choices: Vec<StreamChoice<'a>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct StreamChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: Option<StreamDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

/// A `chat.completion.chunk`: choice 0's delta content; its `finish_reason` makes the answer
/// whole, the end being the `[DONE]` marker that follows.
pub fn stream_step(data: &[u8]) -> StreamStep<'_> {
    let Ok(event) = serde_json::from_slice::<StreamEvent>(data) else {
        return StreamStep::default();
    };
    if event.error.is_some() {
        return StreamStep::failed();
    }
    let mut step = StreamStep::default();
    for choice in event.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(text) = choice.delta.and_then(|d| d.content) {
            step.text = Some((0, text));
        }
        step.finished |= choice.finish_reason.is_some();
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::api::object as body;

    #[test]
    fn injects_into_the_first_system_message_or_a_new_one() {
        let mut b = body(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}
        ]}));
        inject_into_system(&mut b, "BLOCK");
        assert_eq!(b["messages"][0]["content"], "Be brief.\n\nBLOCK");

        let mut parts = body(json!({"messages": [
            {"role": "system", "content": [{"type": "text", "text": "S"}]},
            {"role": "user", "content": "q"}
        ]}));
        inject_into_system(&mut parts, "BLOCK");
        assert_eq!(
            parts["messages"][0]["content"][1],
            json!({"type": "text", "text": "BLOCK"})
        );

        let mut none = body(json!({"messages": [{"role": "user", "content": "q"}]}));
        inject_into_system(&mut none, "BLOCK");
        assert_eq!(
            none["messages"][0],
            json!({"role": "system", "content": "BLOCK"})
        );
        assert_eq!(none["messages"][1]["role"], "user");
    }

    #[test]
    fn before_last_user_leaves_the_earlier_messages_alone() {
        let history = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
        ]);
        let mut b = body(json!({"messages": history.clone()}));
        b["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "user", "content": "three"}));
        inject_before_last_user(&mut b, "BLOCK");
        let messages = b["messages"].as_array().unwrap();
        assert_eq!(&messages[..3], history.as_array().unwrap().as_slice());
        assert_eq!(messages[3], json!({"role": "system", "content": "BLOCK"}));
        assert_eq!(messages[4]["content"], "three");
    }

    #[test]
    fn latest_user_text_reads_strings_and_parts() {
        let b = body(json!({"messages": [
            {"role": "user", "content": "old"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "new"}]}
        ]}));
        assert_eq!(latest_user_text(&b).as_deref(), Some("new"));
        let none = body(json!({"messages": [{"role": "system", "content": "s"}]}));
        assert!(latest_user_text(&none).is_none());
    }

    #[test]
    fn answers_are_choice_zero() {
        let body = br#"{"choices":[{"index":1,"message":{"content":"no"}},{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}]}"#;
        assert_eq!(answer_text(body).as_deref(), Some("Hi there"));
        let step = stream_step(
            br#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#,
        );
        assert_eq!(step.text, Some((0, Cow::Borrowed("x"))));
        assert!(step.finished && !step.end);
        assert!(stream_step(br#"{"error":{"message":"boom"}}"#).failed);
    }
}
