//! The response tee on arbitrary bytes cut at arbitrary places: it must never panic, and the
//! answer it assembles must not depend on where the network split the stream.
//!
//! Input: one byte choosing SSE or JSON, one byte seeding the chunk sizes, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memgate::proxy::tee::ResponseTee;

fuzz_target!(|data: &[u8]| {
    let [kind, seed, body @ ..] = data else {
        return;
    };
    let content_type = if kind % 2 == 0 {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut whole = ResponseTee::for_content_type(Some(content_type));
    whole.feed(body);
    let expected = whole.finish();

    let mut split = ResponseTee::for_content_type(Some(content_type));
    let mut rest = body;
    let mut step = usize::from(*seed % 7) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        split.feed(&rest[..n]);
        rest = &rest[n..];
        step = step * 5 % 13 + 1;
    }
    assert_eq!(split.finish(), expected);
});
