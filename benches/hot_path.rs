//! Hot code on the proxy path, each beside a baseline measured in the same run:
//! - request: the memory-field probe (every intercepted request) and the full rewrite (requests
//!   with memory), against copying the body (the least any proxy does with it);
//! - tee: assembling the answer from SSE (chat completions, Responses and Anthropic Messages
//!   events) and JSON responses, against passing the chunks on;
//! - scoring: exact top-k over a session's vectors, against scoring them with no ranking.
//!
//! cargo bench --bench hot_path

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use memgate::domain::Placement;
use memgate::memory::context_block;
use memgate::proxy::api::ApiShape;
use memgate::proxy::rewrite::{probe, RequestBody};
use memgate::proxy::tee::ResponseTee;
use serde_json::json;

const SIZES: [(usize, &str); 3] = [(1024, "1KB"), (32 * 1024, "32KB"), (256 * 1024, "256KB")];

/// A chat request of about `size` bytes: a system prompt, history, and the latest question.
fn chat_body(size: usize, with_memory: bool) -> Vec<u8> {
    let mut messages = vec![json!({"role": "system", "content": "You are a helpful assistant."})];
    let filler = "We discussed the quarterly numbers for the APAC region in some detail. ";
    let mut turn = 0;
    loop {
        let body = json!({"model": "gpt-4o-mini", "messages": messages, "stream": true});
        if body.to_string().len() >= size.saturating_sub(200) {
            break;
        }
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        let room = size.saturating_sub(body.to_string().len()).min(2048);
        let text: String = filler
            .chars()
            .cycle()
            .take(room.saturating_sub(60).max(10))
            .collect();
        messages.push(json!({"role": role, "content": text}));
        turn += 1;
    }
    messages.push(json!({"role": "user", "content": "Remind me where we left off."}));
    let mut body = json!({"model": "gpt-4o-mini", "messages": messages, "stream": true});
    if with_memory {
        body["memory_id"] = json!("user-alice");
        body["store_memory"] = json!(true);
    }
    serde_json::to_vec(&body).unwrap()
}

/// A streamed answer of about `size` bytes in `shape`'s events, one word of text each, cut
/// into the chunk sizes a gateway typically flushes.
fn sse_chunks(shape: ApiShape, size: usize) -> Vec<Bytes> {
    let event = |i: usize| {
        match shape {
        ApiShape::ChatCompletions => format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ),
        ApiShape::Responses => format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{i},\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"word{i} \",\"logprobs\":[]}}\n\n"
        ),
        ApiShape::Messages => format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{i} \"}}}}\n\n"
        ),
    }
    };
    let end = match shape {
        ApiShape::ChatCompletions => "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ApiShape::Responses => "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\"}}\n\n",
        ApiShape::Messages => "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    };
    let mut stream = String::new();
    let mut i = 0;
    while stream.len() < size {
        stream.push_str(&event(i));
        i += 1;
    }
    stream.push_str(end);
    stream
        .as_bytes()
        .chunks(1460)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn json_chunks(size: usize) -> Vec<Bytes> {
    let content: String = "The answer continues. "
        .chars()
        .cycle()
        .take(size)
        .collect();
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20}
    })
    .to_string();
    body.as_bytes()
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn request(c: &mut Criterion) {
    let facts = [
        "Prefers summaries under 200 words",
        "Working on Q3 APAC analysis",
        "Last session: discussed Bedrock pricing",
    ];
    let mut group = c.benchmark_group("request");
    for (size, label) in SIZES {
        let plain = chat_body(size, false);
        let with_memory = chat_body(size, true);
        group.throughput(Throughput::Bytes(plain.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("baseline_copy", label),
            &plain,
            |b, body| b.iter(|| black_box(Bytes::copy_from_slice(black_box(body)))),
        );
        group.bench_with_input(
            BenchmarkId::new("probe_no_memory", label),
            &plain,
            |b, body| b.iter(|| black_box(probe(black_box(body)).unwrap())),
        );
        group.bench_with_input(
            BenchmarkId::new("rewrite_with_memory", label),
            &with_memory,
            |b, body| {
                b.iter(|| {
                    let fields = probe(black_box(body)).unwrap();
                    let mut chat = RequestBody::parse(body, ApiShape::ChatCompletions).unwrap();
                    chat.strip_memory_fields();
                    let query = chat.latest_user_text();
                    let block =
                        context_block::render(fields.memory_id.as_deref().unwrap(), facts, 300)
                            .unwrap();
                    chat.inject_context(&block, Placement::System);
                    black_box((query, chat.to_bytes()))
                })
            },
        );
    }
    group.finish();
}

fn tee(c: &mut Criterion) {
    let mut group = c.benchmark_group("tee");
    for (size, label) in SIZES {
        let sse = "text/event-stream";
        for (kind, shape, chunks, content_type) in [
            (
                "sse",
                ApiShape::ChatCompletions,
                sse_chunks(ApiShape::ChatCompletions, size),
                sse,
            ),
            (
                "responses_sse",
                ApiShape::Responses,
                sse_chunks(ApiShape::Responses, size),
                sse,
            ),
            (
                "messages_sse",
                ApiShape::Messages,
                sse_chunks(ApiShape::Messages, size),
                sse,
            ),
            (
                "json",
                ApiShape::ChatCompletions,
                json_chunks(size),
                "application/json",
            ),
        ] {
            let total: usize = chunks.iter().map(Bytes::len).sum();
            group.throughput(Throughput::Bytes(total as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{kind}_baseline_pass_on"), label),
                &chunks,
                |b, chunks| {
                    b.iter(|| {
                        let mut sent = 0;
                        for chunk in chunks {
                            sent += black_box(chunk.clone()).len();
                        }
                        black_box(sent)
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{kind}_tee"), label),
                &chunks,
                |b, chunks| {
                    b.iter(|| {
                        let mut tee = ResponseTee::for_answer(shape, Some(content_type));
                        for chunk in chunks {
                            tee.feed(black_box(chunk));
                        }
                        black_box(tee.finish().unwrap())
                    })
                },
            );
        }
    }
    group.finish();
}

/// Scoring alone, with no ranking: the floor under top-k's selection and bookkeeping.
fn naive_cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / (na.sqrt() * nb.sqrt())
}

fn scoring(c: &mut Criterion) {
    let mut group = c.benchmark_group("scoring_1536d");
    let dims = 1536;
    let vector = |seed: usize| -> Vec<f32> {
        (0..dims)
            .map(|i| ((i * 31 + seed * 17) % 97) as f32 / 97.0 - 0.5)
            .collect()
    };
    let query = vector(0);
    for facts in [50usize, 1000] {
        let stored: Vec<Vec<f32>> = (1..=facts).map(vector).collect();
        group.throughput(Throughput::Elements(facts as u64));
        group.bench_with_input(
            BenchmarkId::new("baseline_naive_cosine", facts),
            &stored,
            |b, stored| {
                b.iter(|| {
                    let best = stored
                        .iter()
                        .map(|v| naive_cosine(black_box(&query), v))
                        .fold(f32::MIN, f32::max);
                    black_box(best)
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("top_k", facts), &stored, |b, stored| {
            b.iter(|| {
                black_box(memgate::vector::top_k(
                    black_box(&query),
                    stored.iter().map(Vec::as_slice),
                    3,
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request, tee, scoring);
criterion_main!(benches);
