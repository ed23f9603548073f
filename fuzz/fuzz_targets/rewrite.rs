//! The chat-completions body rewriter on arbitrary input: `probe` must never panic, and whatever it
//! accepts must come out of strip + inject as valid JSON without the memory fields and with
//! exactly one more context-block header, whatever the stored facts say.
//!
//! Input: the request body, then (after a 0x00 byte) facts separated by 0x01 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memgate::memory::context_block::{render, HEADER_PREFIX};
use memgate::domain::Placement;
use memgate::proxy::api::ApiShape;
use memgate::proxy::rewrite::{probe, RequestBody};
use serde_json::Value;

fn headers(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with(HEADER_PREFIX)).count()
}

fn system_text(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fuzz_target!(|data: &[u8]| {
    let (body, facts) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(fields) = probe(body) else {
        return;
    };
    // The probe skips the values it does not read, so a number beyond f64 (valid JSON, which
    // a body without memory fields is forwarded with as it is) is only refused here, as 400.
    let mut chat = match RequestBody::parse(body, ApiShape::ChatCompletions) {
        Ok(chat) => chat,
        Err(e) => {
            assert_eq!((e.status, e.code), (400, "invalid_json"), "{e:?}");
            assert!(e.message.contains("number out of range"), "{e:?}");
            return;
        }
    };
    chat.strip_memory_fields();
    let _ = chat.latest_user_text();
    let before: Value = serde_json::from_slice(&chat.to_bytes()).expect("stripped body is JSON");
    assert!(before.get("memory_id").is_none() && before.get("store_memory").is_none());

    let facts: Vec<String> = facts
        .split(|&b| b == 1)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let memory_id = fields.memory_id.unwrap_or_else(|| "fuzz".to_string());
    let Some(block) = render(&memory_id, facts.iter().map(String::as_str), 300) else {
        return;
    };
    // The block: its header, then one "- " item per line.
    let mut lines = block.lines();
    assert_eq!(lines.next(), Some(format!("{HEADER_PREFIX}{memory_id}]").as_str()));
    for line in lines {
        assert!(line.starts_with("- "), "{line:?}");
    }
    let had = headers(&system_text(&before));
    chat.inject_context(&block, Placement::System);
    let after: Value = serde_json::from_slice(&chat.to_bytes()).expect("rewritten body is JSON");
    assert!(after.get("memory_id").is_none() && after.get("store_memory").is_none());
    if after.get("messages").and_then(Value::as_array).is_some() {
        let text = system_text(&after);
        assert!(text.contains(&block), "block missing from {text:?}");
        assert!(headers(&text) <= had + 1, "a fact forged a header: {text:?}");
    }
});
