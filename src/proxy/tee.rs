//! The response tee: sees every chunk on its way to the client and assembles the assistant's
//! answer, for JSON and for SSE streams, of any API shape (which part of an answer or an event
//! is its text is the shape's to say, see [`ApiShape`]).
//!
//! SSE is parsed incrementally: an event may be split anywhere, even inside a UTF-8 sequence
//! or between `\r` and `\n`. An answer counts as complete only when the stream says so
//! (chat's `data: [DONE]` or a `finish_reason`, Responses' `response.completed`, Anthropic's
//! `message_stop`), so a cut stream is never stored as a turn.
//!
//! The tee also says how much of what it has seen may go to the client before the turn is
//! durable ([`ResponseTee::releasable`]): everything but the answer's end, which is the last
//! chunk of a JSON body, or an SSE stream from the start of its final event on. For chat, an
//! event that could still turn out to be `[DONE]` (`data: [DO` so far) is held until it is
//! known, so the marker is found however the upstream splits it; the other shapes end on a
//! typed event, so each event is held until it is whole and its type known.

use crate::proxy::api::ApiShape;

/// Answers longer than this are not kept as turns (the client still gets all of it).
pub const MAX_TEED_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub enum ResponseTee {
    Json(JsonTee),
    Sse(SseTee),
}

impl ResponseTee {
    pub fn for_answer(shape: ApiShape, content_type: Option<&str>) -> Self {
        let is_sse = content_type
            .map(|ct| {
                ct.trim()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            })
            .unwrap_or(false);
        if is_sse {
            ResponseTee::Sse(SseTee::new(shape))
        } else {
            ResponseTee::Json(JsonTee::new(shape))
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            ResponseTee::Json(t) => t.feed(chunk),
            ResponseTee::Sse(t) => t.feed(chunk),
        }
    }

    /// How many bytes of the stream, from its start, may be sent to the client before the
    /// turn is durable.
    pub fn releasable(&self) -> u64 {
        match self {
            ResponseTee::Json(t) => t.consumed - t.last_chunk,
            ResponseTee::Sse(t) => t.releasable(),
        }
    }

    /// Whether the stream has said its answer is over (its final event), so the turn can be
    /// stored before the upstream closes. A JSON body is over only at its end.
    pub fn is_complete(&self) -> bool {
        match self {
            ResponseTee::Json(_) => false,
            ResponseTee::Sse(t) => t.done_at.is_some(),
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

#[derive(Debug)]
pub struct JsonTee {
    shape: ApiShape,
    body: Vec<u8>,
    overflow: bool,
    consumed: u64,
    /// The latest chunk's length: it may be the body's end, which is held back.
    last_chunk: u64,
}

impl JsonTee {
    fn new(shape: ApiShape) -> Self {
        Self {
            shape,
            body: Vec::new(),
            overflow: false,
            consumed: 0,
            last_chunk: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.consumed += chunk.len() as u64;
        self.last_chunk = chunk.len() as u64;
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
        self.shape.answer_text(&self.body)
    }
}

#[derive(Debug)]
pub struct SseTee {
    shape: ApiShape,
    /// Bytes of the line being received (not yet ended by `\n`).
    line: Vec<u8>,
    /// `data:` lines of the event being received.
    data: Vec<u8>,
    text: String,
    /// The block the latest text belonged to: text of another block starts on a new line.
    block: Option<u64>,
    done: bool,
    finished: bool,
    failed: bool,
    /// Inside a line over the limit, being skipped: whether it is a `data:` line.
    overlong: Option<bool>,
    /// Bytes fed so far.
    consumed: u64,
    /// Stream offset of the first line of the event being received.
    event_start: u64,
    /// Stream offset where the `[DONE]` event starts, once it has been seen.
    done_at: Option<u64>,
}

impl SseTee {
    fn new(shape: ApiShape) -> Self {
        Self {
            shape,
            line: Vec::new(),
            data: Vec::new(),
            text: String::new(),
            block: None,
            done: false,
            finished: false,
            failed: false,
            overlong: None,
            consumed: 0,
            event_start: 0,
            done_at: None,
        }
    }

    /// Every limit is applied to whole lines and whole events, so the outcome does not depend
    /// on where the network cut the stream.
    fn feed(&mut self, chunk: &[u8]) {
        let base = self.consumed;
        self.consumed += chunk.len() as u64;
        if self.failed {
            return;
        }
        let mut rest = chunk;
        loop {
            let line_start = base + (chunk.len() - rest.len()) as u64;
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
                if let Some(pos) = end {
                    let line = std::mem::take(&mut self.line);
                    let next_line = line_start + pos as u64 + 1;
                    if self.on_line(&line) {
                        self.event_start = next_line;
                    }
                }
            }
            match end {
                Some(pos) if !self.failed => rest = &rest[pos + 1..],
                _ => return,
            }
        }
    }

    /// Takes one whole line; says whether it ended an event.
    fn on_line(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch();
            return true;
        }
        let Some(value) = line.strip_prefix(b"data:") else {
            return false; // comments, `event:`, `id:`, `retry:`
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if self.data.len() + value.len() + self.text.len() > MAX_TEED_BYTES {
            self.failed = true;
            return false;
        }
        if !self.data.is_empty() {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
        false
    }

    fn releasable(&self) -> u64 {
        if let Some(done_at) = self.done_at {
            return done_at;
        }
        if self.failed || self.overlong.is_some() {
            // No turn will be kept from this stream: nothing to hold for.
            return self.consumed;
        }
        if !self.shape.ends_with_done_marker() {
            // Any event may be the last: each waits until it is whole.
            return self.event_start;
        }
        // A line not (yet) known to be a data line adds no data.
        let partial = self.line.strip_prefix(b"data:");
        if could_still_be_done(&self.data, partial) {
            self.event_start
        } else {
            self.consumed
        }
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" && self.shape.ends_with_done_marker() {
            self.done = true;
            self.done_at.get_or_insert(self.event_start);
            return;
        }
        let step = self.shape.stream_step(data);
        if step.failed {
            self.failed = true;
            return;
        }
        if let Some((block, piece)) = step.text {
            if self.block.is_some_and(|b| b != block) && !self.text.is_empty() {
                self.text.push('\n');
            }
            self.block = Some(block);
            self.text.push_str(&piece);
        }
        self.finished |= step.finished;
        if step.end {
            self.done = true;
            self.done_at.get_or_insert(self.event_start);
        }
    }

    fn finish(mut self) -> Option<String> {
        if self.overlong == Some(true) {
            return None;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let _ = self.on_line(&line);
        }
        self.dispatch();
        (!self.failed && (self.done || self.finished)).then_some(self.text)
    }
}

/// Whether an event whose data so far is `data`, plus `partial` from a data line still being
/// received, can still turn out to be `[DONE]` (surrounding whitespace allowed). Stops at the
/// first byte that rules it out, so an ordinary JSON event costs one comparison.
fn could_still_be_done(data: &[u8], partial: Option<&[u8]>) -> bool {
    const DONE: &[u8] = b"[DONE]";
    let separator: &[u8] = if !data.is_empty() && partial.is_some() {
        b"\n"
    } else {
        b""
    };
    let mut matched = 0;
    for &b in data
        .iter()
        .chain(separator)
        .chain(partial.unwrap_or_default())
    {
        if b.is_ascii_whitespace() && (matched == 0 || matched == DONE.len()) {
            continue;
        }
        if matched == DONE.len() || b != DONE[matched] {
            return false;
        }
        matched += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(body: &[u8], chunk: usize) -> Option<String> {
        let mut tee = ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
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
            let mut tee = ResponseTee::for_answer(
                ApiShape::ChatCompletions,
                Some("text/event-stream; charset=utf-8"),
            );
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

    /// The `[DONE]` event is held back however the upstream splits it; ordinary events go
    /// out as they arrive, split or not.
    #[test]
    fn the_done_event_is_found_wherever_the_stream_is_cut() {
        let stream = sse_events(&["a", "b"]);
        let done_at = stream.find("data: [DONE]").unwrap() as u64;
        for size in 1..=stream.len() {
            let mut tee =
                ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
            let mut fed = 0u64;
            for chunk in stream.as_bytes().chunks(size) {
                tee.feed(chunk);
                fed += chunk.len() as u64;
                let releasable = tee.releasable();
                assert!(releasable <= done_at, "chunk size {size}: {releasable}");
                if fed <= done_at {
                    // Before the marker only an unfinished line that may become it waits.
                    let line_start = stream[..fed as usize].rfind('\n').map_or(0, |p| p + 1);
                    let pending = &stream[line_start..fed as usize];
                    if !"data: [DONE]".starts_with(pending) {
                        assert_eq!(releasable, fed, "chunk size {size}, pending {pending:?}");
                    }
                }
            }
            assert_eq!(tee.releasable(), done_at, "chunk size {size}");
            assert_eq!(tee.finish().as_deref(), Some("ab"));
        }
        let mut split =
            ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
        split.feed(b"data: {\"choices\":[]}\n\ndata: [DO");
        assert_eq!(split.releasable(), 22);
        split.feed(b"NE]\n\n");
        assert_eq!(split.releasable(), 22);
        let mut padded =
            ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
        padded.feed(b": keep-alive\n\nid: 7\ndata:   [DONE]  \r\n\r\n");
        assert_eq!(padded.releasable(), 14);
    }

    #[test]
    fn a_json_body_holds_back_its_last_chunk() {
        let mut tee = ResponseTee::for_answer(ApiShape::ChatCompletions, Some("application/json"));
        tee.feed(b"{\"choices\":");
        assert_eq!(tee.releasable(), 0);
        tee.feed(b"[]}");
        assert_eq!(tee.releasable(), 11);
    }

    #[test]
    fn sse_cut_before_the_end_is_incomplete() {
        let stream = sse_events(&["a", "b"]);
        let cut = &stream.as_bytes()[..stream.find("finish_reason\":\"stop").unwrap()];
        let mut tee = ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
        tee.feed(cut);
        assert!(tee.finish().is_none());
    }

    #[test]
    fn sse_other_choices_and_errors() {
        let mut tee = ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
        tee.feed(b"data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}},{\"index\":0,\"delta\":{\"content\":\"y\"}}]}\n\ndata: [DONE]\n\n");
        assert_eq!(tee.finish().as_deref(), Some("y"));
        let mut failed =
            ResponseTee::for_answer(ApiShape::ChatCompletions, Some("text/event-stream"));
        failed.feed(b"data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n");
        assert!(failed.finish().is_none());
    }

    #[test]
    fn json_answer_is_read_from_choice_zero() {
        let body = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}]}"#;
        let mut tee = ResponseTee::for_answer(ApiShape::ChatCompletions, Some("application/json"));
        for c in body.chunks(5) {
            tee.feed(c);
        }
        assert_eq!(tee.finish().as_deref(), Some("Hi there"));
        let mut cut = ResponseTee::for_answer(ApiShape::ChatCompletions, Some("application/json"));
        cut.feed(&body[..40]);
        assert!(cut.finish().is_none());
    }

    fn typed_events(events: &[(&str, String)]) -> String {
        events
            .iter()
            .map(|(kind, data)| format!("event: {kind}\ndata: {data}\n\n"))
            .collect()
    }

    fn responses_stream() -> String {
        let delta = |i: u64, d: &str| {
            format!(
                r#"{{"type":"response.output_text.delta","output_index":{i},"content_index":0,"delta":"{d}"}}"#
            )
        };
        typed_events(&[
            (
                "response.created",
                r#"{"type":"response.created","response":{}}"#.into(),
            ),
            ("response.output_text.delta", delta(0, "Hé")),
            ("response.output_text.delta", delta(0, "llo")),
            ("response.output_text.delta", delta(1, "again")),
            (
                "response.completed",
                r#"{"type":"response.completed","response":{"status":"completed"}}"#.into(),
            ),
        ])
    }

    fn messages_stream() -> String {
        let delta = |i: u64, t: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"text_delta","text":"{t}"}}}}"#
            )
        };
        typed_events(&[
            ("message_start", r#"{"type":"message_start","message":{"content":[]}}"#.into()),
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.into()),
            ("ping", r#"{"type":"ping"}"#.into()),
            ("content_block_delta", delta(0, "Hé")),
            ("content_block_delta", delta(0, "llo")),
            ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#.into()),
            ("content_block_delta", delta(2, "again")),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#.into()),
            ("message_stop", r#"{"type":"message_stop"}"#.into()),
        ])
    }

    /// The final event of a Responses or Messages stream is held back however the stream is
    /// cut, every event before it goes out once whole, and the text of separate blocks is
    /// joined by a newline.
    #[test]
    fn typed_streams_hold_back_their_final_event() {
        for (shape, stream, last) in [
            (
                ApiShape::Responses,
                responses_stream(),
                "event: response.completed",
            ),
            (ApiShape::Messages, messages_stream(), "event: message_stop"),
        ] {
            let end_at = stream.find(last).unwrap() as u64;
            for size in 1..=stream.len() {
                let mut tee = ResponseTee::for_answer(shape, Some("text/event-stream"));
                let mut fed = 0u64;
                for chunk in stream.as_bytes().chunks(size) {
                    tee.feed(chunk);
                    fed += chunk.len() as u64;
                    assert!(tee.releasable() <= end_at, "{shape:?} chunk size {size}");
                    // Everything up to the last whole event may go.
                    let whole = stream.as_bytes()[..fed as usize]
                        .windows(2)
                        .rposition(|w| w == b"\n\n")
                        .map_or(0, |p| p + 2) as u64;
                    assert_eq!(
                        tee.releasable(),
                        whole.min(end_at),
                        "{shape:?} chunk size {size}"
                    );
                }
                assert!(tee.is_complete(), "{shape:?} chunk size {size}");
                assert_eq!(tee.releasable(), end_at);
                assert_eq!(tee.finish().as_deref(), Some("Héllo\nagain"), "{shape:?}");
            }
            let cut = &stream[..end_at as usize];
            let mut tee = ResponseTee::for_answer(shape, Some("text/event-stream"));
            tee.feed(cut.as_bytes());
            assert!(!tee.is_complete());
            assert!(
                tee.finish().is_none(),
                "{shape:?}: a stream cut before its end is no answer"
            );
        }
    }

    #[test]
    fn typed_stream_errors_keep_no_turn() {
        let failed = typed_events(&[
            (
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta","output_index":0,"delta":"x"}"#.into(),
            ),
            (
                "response.failed",
                r#"{"type":"response.failed","response":{}}"#.into(),
            ),
        ]);
        let mut tee = ResponseTee::for_answer(ApiShape::Responses, Some("text/event-stream"));
        tee.feed(failed.as_bytes());
        assert_eq!(tee.releasable(), failed.len() as u64, "nothing to hold for");
        assert!(tee.finish().is_none());
        let error = typed_events(&[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.into(),
        )]);
        let mut tee = ResponseTee::for_answer(ApiShape::Messages, Some("text/event-stream"));
        tee.feed(error.as_bytes());
        assert!(tee.finish().is_none());
    }

    #[test]
    fn json_answers_of_each_shape() {
        for (shape, body, text) in [
            (
                ApiShape::Responses,
                r#"{"status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}]}"#,
                "Hi",
            ),
            (
                ApiShape::Messages,
                r#"{"type":"message","content":[{"type":"text","text":"Hi"}]}"#,
                "Hi",
            ),
        ] {
            let mut tee = ResponseTee::for_answer(shape, Some("application/json"));
            for c in body.as_bytes().chunks(7) {
                tee.feed(c);
            }
            assert!(!tee.is_complete());
            assert_eq!(tee.finish().as_deref(), Some(text), "{shape:?}");
        }
    }
}
