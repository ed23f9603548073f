//! The response tee: sees every chunk on its way to the client (it never holds one back) and
//! assembles the assistant's answer from choice 0, for JSON and for SSE streams.
//!
//! SSE is parsed incrementally: an event may be split anywhere, even inside a UTF-8 sequence
//! or between `\r` and `\n`. An answer counts as complete only when the stream says so
//! (`data: [DONE]` or a `finish_reason`), so a cut stream is never stored as a turn.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// Answers longer than this are not kept as turns (the client still gets all of it).
pub const MAX_TEED_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub enum ResponseTee {
    Json(JsonTee),
    Sse(SseTee),
}

impl ResponseTee {
    pub fn for_content_type(content_type: Option<&str>) -> Self {
        let is_sse = content_type
            .map(|ct| {
                ct.trim()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            })
            .unwrap_or(false);
        if is_sse {
            ResponseTee::Sse(SseTee::default())
        } else {
            ResponseTee::Json(JsonTee::default())
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            ResponseTee::Json(t) => t.feed(chunk),
            ResponseTee::Sse(t) => t.feed(chunk),
        }
    }

    /// The assistant text, when the answer is complete and well formed.
    pub fn finish(self) -> Option<String> {
        match self {
            ResponseTee::Json(t) => t.finish(),
            ResponseTee::Sse(t) => t.finish(),
        }
    }
}

#[derive(Debug, Default)]
pub struct JsonTee {
    body: Vec<u8>,
    overflow: bool,
}

impl JsonTee {
    fn feed(&mut self, chunk: &[u8]) {
        if self.overflow || self.body.len() + chunk.len() > MAX_TEED_BYTES {
            self.overflow = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    fn finish(self) -> Option<String> {
        if self.overflow {
            return None;
        }
        let completion: Completion = serde_json::from_slice(&self.body).ok()?;
        let choice = completion.choices.into_iter().find(|c| c.index == 0)?;
        crate::proxy::rewrite::content_text(&choice.message?.content?)
    }
}

#[derive(Debug, Default)]
pub struct SseTee {
    /// Bytes of the line being received (not yet ended by `\n`).
    line: Vec<u8>,
    /// `data:` lines of the event being received.
    data: Vec<u8>,
    text: String,
    done: bool,
    finished: bool,
    failed: bool,
    /// Inside a line over the limit, being skipped: whether it is a `data:` line.
    overlong: Option<bool>,
}

impl SseTee {
    /// Every limit is applied to whole lines and whole events, so the outcome does not depend
    /// on where the network cut the stream.
    fn feed(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        let mut rest = chunk;
        loop {
            let end = rest.iter().position(|&b| b == b'\n');
            let piece = &rest[..end.unwrap_or(rest.len())];
            if let Some(is_data) = self.overlong {
                // Inside a line already too long: skip to its end.
                if end.is_some() {
                    self.overlong = None;
                    self.failed |= is_data;
                }
            } else if self.line.len() + piece.len() > MAX_TEED_BYTES {
                // A line longer than any answer kept: a data line means an answer too large
                // to keep; anything else (a comment, say) is skipped without buffering it.
                let mut head = self.line.clone();
                head.extend_from_slice(&piece[..piece.len().min(5)]);
                let is_data = head.starts_with(b"data:");
                self.line.clear();
                match end {
                    Some(_) => self.failed |= is_data,
                    None => self.overlong = Some(is_data),
                }
            } else {
                self.line.extend_from_slice(piece);
                if end.is_some() {
                    let line = std::mem::take(&mut self.line);
                    self.on_line(&line);
                }
            }
            match end {
                Some(pos) if !self.failed => rest = &rest[pos + 1..],
                _ => return,
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        let Some(value) = line.strip_prefix(b"data:") else {
            return; // comments, `event:`, `id:`, `retry:`
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if self.data.len() + value.len() + self.text.len() > MAX_TEED_BYTES {
            self.failed = true;
            return;
        }
        if !self.data.is_empty() {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        // Typed and borrowed: only the fields the tee needs are materialised.
        let Ok(event) = serde_json::from_slice::<StreamEvent>(data) else {
            return;
        };
        if event.error.is_some() {
            self.failed = true;
            return;
        }
        for choice in event.choices.iter().filter(|c| c.index == 0) {
            if let Some(piece) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
                self.text.push_str(piece);
            }
            if choice.finish_reason.is_some() {
                self.finished = true;
            }
        }
    }

    fn finish(mut self) -> Option<String> {
        if self.overlong == Some(true) {
            return None;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line);
        }
        self.dispatch();
        (!self.failed && (self.done || self.finished)).then_some(self.text)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(body: &[u8], chunk: usize) -> Option<String> {
        let mut tee = ResponseTee::for_content_type(Some("text/event-stream"));
        for piece in body.chunks(chunk) {
            tee.feed(piece);
        }
        tee.finish()
    }

    /// Found by a review of the fuzz target: a long line used to count against the limit only
    /// when it arrived in pieces.
    #[test]
    fn limits_do_not_depend_on_how_the_stream_is_cut() {
        let long = "x".repeat(MAX_TEED_BYTES + 1024);
        let comment = format!(": {long}\n{}", sse_events(&["Hi"]));
        let other_choice = format!(
            "data: {{\"choices\":[{{\"index\":1,\"delta\":{{\"content\":\"{long}\"}}}}]}}\n\n{}",
            sse_events(&["Hi"])
        );
        for chunk in [usize::MAX, 64 * 1024, 1000] {
            assert_eq!(
                fed(comment.as_bytes(), chunk).as_deref(),
                Some("Hi"),
                "{chunk}"
            );
            // A data line over the limit: an answer too large to keep, however it arrives.
            assert_eq!(fed(other_choice.as_bytes(), chunk), None, "{chunk}");
        }
    }

    fn sse_events(words: &[&str]) -> String {
        let mut s = String::from(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        );
        for w in words {
            s.push_str(&format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"finish_reason\":null}}]}}\n\n"
            ));
        }
        s.push_str(
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        );
        s.push_str("data: [DONE]\n\n");
        s
    }

    #[test]
    fn sse_assembles_across_any_chunking() {
        let stream = sse_events(&["Héllo", " wörld", "!"]).replace("\n", "\r\n");
        let bytes = stream.as_bytes();
        for size in [1, 2, 3, 7, 64, bytes.len()] {
            let mut tee = ResponseTee::for_content_type(Some("text/event-stream; charset=utf-8"));
            for chunk in bytes.chunks(size) {
                tee.feed(chunk);
            }
            assert_eq!(
                tee.finish().as_deref(),
                Some("Héllo wörld!"),
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn sse_cut_before_the_end_is_incomplete() {
        let stream = sse_events(&["a", "b"]);
        let cut = &stream.as_bytes()[..stream.find("finish_reason\":\"stop").unwrap()];
        let mut tee = ResponseTee::for_content_type(Some("text/event-stream"));
        tee.feed(cut);
        assert!(tee.finish().is_none());
    }

    #[test]
    fn sse_other_choices_and_errors() {
        let mut tee = ResponseTee::for_content_type(Some("text/event-stream"));
        tee.feed(b"data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}},{\"index\":0,\"delta\":{\"content\":\"y\"}}]}\n\ndata: [DONE]\n\n");
        assert_eq!(tee.finish().as_deref(), Some("y"));
        let mut failed = ResponseTee::for_content_type(Some("text/event-stream"));
        failed.feed(b"data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n");
        assert!(failed.finish().is_none());
    }

    #[test]
    fn json_answer_is_read_from_choice_zero() {
        let body = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}]}"#;
        let mut tee = ResponseTee::for_content_type(Some("application/json"));
        for c in body.chunks(5) {
            tee.feed(c);
        }
        assert_eq!(tee.finish().as_deref(), Some("Hi there"));
        let mut cut = ResponseTee::for_content_type(Some("application/json"));
        cut.feed(&body[..40]);
        assert!(cut.finish().is_none());
    }
}
