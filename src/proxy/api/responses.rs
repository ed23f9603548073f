//! OpenAI Responses: the block goes into `instructions`, or as a `developer` input item right
//! before the latest user item; the answer is the `output_text` of the `message` output items.
//! Item types memgate does not know pass through untouched.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{append_to_prompt, content_text, last_with_role, parts_text, StreamStep};

/// The latest user text: `input` when it is a string, else the last user item's text (its
/// `content` string or `input_text` parts).
pub fn latest_user_text(body: &Map<String, Value>) -> Option<String> {
    match body.get("input")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => {
            let item = &items[last_with_role(items, "user")?];
            content_text(item.get("content")?, &["input_text"])
        }
        _ => None,
    }
}

/// Appends the block to `instructions` after a blank line, or sets them.
pub fn inject_into_instructions(body: &mut Map<String, Value>, block: &str) {
    let instructions = body.entry("instructions").or_insert(Value::Null);
    append_to_prompt(
        instructions,
        block,
        |text| json!({"type": "input_text", "text": text}),
    );
}

fn developer_item(block: &str) -> Value {
    json!({"role": "developer", "content": block})
}

/// Inserts the block as a `developer` item right before the latest user item. A string
/// `input` is that user item: it becomes the two items.
pub fn inject_before_last_user(body: &mut Map<String, Value>, block: &str) {
    match body.get_mut("input") {
        Some(Value::Array(items)) => {
            let at = last_with_role(items, "user").unwrap_or(items.len());
            items.insert(at, developer_item(block));
        }
        Some(input @ Value::String(_)) => {
            let text = input.take();
            *input = json!([developer_item(block), {"role": "user", "content": text}]);
        }
        _ => {}
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    output: Vec<OutputItem>,
}

#[derive(Deserialize)]
struct OutputItem {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    content: Vec<Value>,
}

/// The text of the `message` items; a failed response, or one with no message, has none.
pub fn answer_text(body: &[u8]) -> Option<String> {
    let response: Response = serde_json::from_slice(body).ok()?;
    if matches!(response.status.as_deref(), Some("failed" | "cancelled")) {
        return None;
    }
    let texts: Vec<String> = response
        .output
        .iter()
        .filter(|item| item.kind == "message")
        .filter_map(|item| parts_text(&item.content, &["output_text"]))
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    output_index: u64,
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
}

/// `response.output_text.delta` carries the text; `response.completed` (or
/// `response.incomplete`, an answer cut by its token limit, which chat completions also keep)
/// ends it; `response.failed` and `error` mean no answer.
pub fn stream_step(data: &[u8]) -> StreamStep<'_> {
    let Ok(event) = serde_json::from_slice::<StreamEvent>(data) else {
        return StreamStep::default();
    };
    match event.kind.as_ref() {
        "response.output_text.delta" => StreamStep {
            text: event.delta.map(|text| (event.output_index, text)),
            ..StreamStep::default()
        },
        "response.completed" | "response.incomplete" => StreamStep::end(),
        "response.failed" | "error" => StreamStep::failed(),
        _ => StreamStep::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::api::object as body;

    #[test]
    fn the_latest_user_text_is_the_input_string_or_the_last_user_item() {
        assert_eq!(
            latest_user_text(&body(json!({"input": "hello"}))).as_deref(),
            Some("hello")
        );
        let items = body(json!({"input": [
            {"role": "user", "content": "old"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
            {"type": "function_call_output", "call_id": "c", "output": "{}"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_image", "image_url": "x"},
                {"type": "input_text", "text": "new"}
            ]},
            {"type": "reasoning", "summary": []}
        ]}));
        assert_eq!(latest_user_text(&items).as_deref(), Some("new"));
        assert!(latest_user_text(&body(
            json!({"input": [{"type": "item_reference", "id": "x"}]})
        ))
        .is_none());
        assert!(latest_user_text(&body(json!({"model": "m"}))).is_none());
    }

    #[test]
    fn the_block_goes_into_instructions() {
        let mut set = body(json!({"input": "q", "instructions": "Be brief."}));
        inject_into_instructions(&mut set, "BLOCK");
        assert_eq!(set["instructions"], "Be brief.\n\nBLOCK");
        let mut absent = body(json!({"input": "q"}));
        inject_into_instructions(&mut absent, "BLOCK");
        assert_eq!(absent["instructions"], "BLOCK");
        let mut null = body(json!({"input": "q", "instructions": null}));
        inject_into_instructions(&mut null, "BLOCK");
        assert_eq!(null["instructions"], "BLOCK");
    }

    #[test]
    fn before_last_user_is_a_developer_item() {
        let unknown = json!({"type": "future_item", "payload": [1, 2]});
        let mut items = body(json!({"input": [
            {"role": "user", "content": "one"},
            unknown.clone(),
            {"role": "user", "content": "two"}
        ]}));
        inject_before_last_user(&mut items, "BLOCK");
        assert_eq!(items["input"][1], unknown);
        assert_eq!(
            items["input"][2],
            json!({"role": "developer", "content": "BLOCK"})
        );
        assert_eq!(items["input"][3]["content"], "two");

        let mut string = body(json!({"input": "hi"}));
        inject_before_last_user(&mut string, "BLOCK");
        assert_eq!(
            string["input"],
            json!([{"role": "developer", "content": "BLOCK"}, {"role": "user", "content": "hi"}])
        );
    }

    #[test]
    fn answers_are_the_message_items_text() {
        let body = br#"{"status":"completed","output":[
            {"type":"reasoning","summary":[]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]},
            {"type":"function_call","name":"f","arguments":"{}"},
            {"type":"message","role":"assistant","content":[{"type":"refusal","refusal":"no"},{"type":"output_text","text":"there"}]}
        ]}"#;
        assert_eq!(answer_text(body).as_deref(), Some("Hi\nthere"));
        assert!(answer_text(br#"{"status":"failed","output":[]}"#).is_none());
        assert!(
            answer_text(br#"{"status":"completed","output":[{"type":"function_call"}]}"#).is_none()
        );
    }

    #[test]
    fn stream_events() {
        let step = stream_step(
            br#"{"type":"response.output_text.delta","item_id":"m","output_index":1,"content_index":0,"delta":"Hi"}"#,
        );
        assert_eq!(step.text, Some((1, Cow::Borrowed("Hi"))));
        assert!(stream_step(br#"{"type":"response.completed","response":{}}"#).end);
        assert!(stream_step(br#"{"type":"response.incomplete","response":{}}"#).end);
        assert!(stream_step(br#"{"type":"response.failed","response":{}}"#).failed);
        assert!(stream_step(br#"{"type":"error","message":"boom"}"#).failed);
        assert_eq!(
            stream_step(br#"{"type":"response.output_item.added","item":{}}"#),
            StreamStep::default()
        );
    }
}
