//! The response tee on arbitrary bytes cut at arbitrary places: it must never panic, and
//! neither the answer it assembles nor where it says the answer's end starts may depend on
//! where the network split the stream.
//!
//! Input: one byte choosing SSE or JSON and the API shape, one byte seeding the chunk sizes, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memgate::proxy::api::ApiShape;
use memgate::proxy::tee::ResponseTee;

fuzz_target!(|data: &[u8]| {
    let [kind, seed, body @ ..] = data else {
        return;
    };
    let shape = ApiShape::ALL[usize::from(*kind / 2) % ApiShape::ALL.len()];
    let content_type = if kind % 2 == 0 {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut whole = ResponseTee::for_answer(shape, Some(content_type));
    whole.feed(body);
    let end_starts = whole.releasable();
    let expected = whole.finish();

    let mut split = ResponseTee::for_answer(shape, Some(content_type));
    let mut rest = body;
    let mut fed = 0u64;
    let mut step = usize::from(*seed % 7) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        split.feed(&rest[..n]);
        fed += n as u64;
        assert!(split.releasable() <= fed);
        rest = &rest[n..];
        step = step * 5 % 13 + 1;
    }
    if content_type == "text/event-stream" {
        assert_eq!(split.releasable(), end_starts);
    }
    assert_eq!(split.finish(), expected);
});
