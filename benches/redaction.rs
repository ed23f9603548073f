//! Cost of redaction per chat turn, read as a ratio against two baselines in
//! the same group: a single byte scan (`count '@'`, the floor for touching
//! every byte) and `to_lowercase` (a full allocate-and-copy pass).
//!
//! Texts are built deterministically from fixed sentences so runs compare.
//! "clean" texts contain digits, colons, `@`-free prose, versions and times
//! (so the prefilters cannot skip everything) but no PII: that is the common
//! case. "pii" texts make every third sentence sensitive: even the 1 KiB one
//! holds two emails, a phone, a card, an IP, an API key and a password.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memgate::config::RedactionConfig;
use memgate::domain::outbox::TurnPayload;
use memgate::domain::TurnMessage;
use memgate::redaction::{Detector, Redactor, Rules};

const PROSE: [&str; 12] = [
    "Thanks for the quick reply, that clears up most of my questions about the rollout.",
    "We tried 3 approaches last week and the second one was the least painful to maintain.",
    "The build on version 1.2.3 passed, but the integration suite still flakes at 10:30 sometimes.",
    "Could you summarise the trade-offs between caching at the edge and caching in the service?",
    "I think the café downstairs closes at 18:00 on Fridays, so let's meet before then.",
    "Remember to update the changelog, bump the minor version, and tag the release afterwards.",
    "The model answered in 2.4 seconds on average, which is fine for a chat but slow for autocomplete.",
    "Here is the plan: draft the RFC, collect feedback for 5 days, then schedule the migration.",
    "My flight lands around 7 pm, so I can review the pull request tomorrow morning instead.",
    "Naïve retries made it worse; exponential backoff with jitter fixed the thundering herd.",
    "Please keep the summary short, ideally under 200 words, and list open questions at the end.",
    "The dashboard shows p99 latency at 340 ms, up from 280 ms before the config change.",
];

const PII: [&str; 6] = [
    "You can reach me at maria.gonzalez@example.com or on +1 415 555 0132 after lunch.",
    "For the refund use card 4111 1111 1111 1111; the terminal sits at 10.20.30.40 behind the VPN.",
    "The staging key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z and jon.smith@example.net has password=hunter2.",
    "Or wire it to DE89 3704 0044 0532 0130 00; the host's v6 address is 2001:db8:85a3::8a2e:370:7334.",
    "Forward the invoice to billing-team@example.org and cc ops.lead@example.net please.",
    "Authorization: Bearer ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 is what the script sends.",
];

/// Sentences until `size` bytes; with `pii`, every third sentence is one
/// with personal data or a secret, so even 1 KiB holds several kinds.
fn build(size: usize, pii: bool) -> String {
    let mut text = String::with_capacity(size + 128);
    let (mut prose, mut sensitive) = (0, 0);
    for i in 0.. {
        let next = if pii && i % 3 == 2 {
            sensitive += 1;
            PII[(sensitive - 1) % PII.len()]
        } else {
            prose += 1;
            PROSE[(prose - 1) % PROSE.len()]
        };
        if text.len() + next.len() + 1 > size {
            break;
        }
        text.push_str(next);
        text.push(if i % 5 == 4 { '\n' } else { ' ' });
    }
    text
}

fn bench_redaction(c: &mut Criterion) {
    let secrets = Rules::new(&[Detector::Secret], vec![]);
    let everything = Rules::new(&Detector::ALL, vec![]);

    for (size, size_name) in [(1024, "1KiB"), (32 * 1024, "32KiB")] {
        for pii in [true, false] {
            let text = build(size, pii);
            // The benchmark is only meaningful if the texts are what they claim.
            assert_eq!(
                everything.redact(&text).is_some(),
                pii,
                "{size_name} pii={pii}"
            );
            assert_eq!(
                secrets.redact(&text).is_some(),
                pii,
                "{size_name} pii={pii}"
            );

            let mut group = c.benchmark_group(format!(
                "redact_{size_name}_{}",
                if pii { "pii" } else { "clean" }
            ));
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function("baseline_count_at", |b| {
                b.iter(|| black_box(&text).bytes().filter(|b| *b == b'@').count())
            });
            group.bench_function("baseline_to_lowercase", |b| {
                b.iter(|| black_box(&text).to_lowercase())
            });
            group.bench_function("secrets_only", |b| {
                b.iter(|| secrets.redact(black_box(&text)))
            });
            group.bench_function("all_detectors", |b| {
                b.iter(|| everything.redact(black_box(&text)))
            });
            group.finish();
        }
    }
}

/// A turn through the entry every turn takes before the outbox (`Redactor::redact_turn`, all
/// detectors on): inline up to 4 KiB, on the blocking pool above. Beside it, what each turn
/// costs anyway: copying its messages, and serialising it for the outbox row.
fn bench_turn(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = RedactionConfig {
        email: true,
        phone: true,
        card: true,
        iban: true,
        ip: true,
        secret: true,
        custom: Vec::new(),
    };
    let redactor = Redactor::new(&config).expect("redactor");
    let rules = redactor.rules(None);
    for (size, size_name) in [(1024, "1KiB"), (32 * 1024, "32KiB")] {
        let payload = TurnPayload {
            memory_id: "user-alice".into(),
            messages: vec![
                TurnMessage {
                    role: "user".into(),
                    content: build(size / 2, true),
                },
                TurnMessage {
                    role: "assistant".into(),
                    content: build(size / 2, false),
                },
            ],
            request_id: None,
            traceparent: None,
            redacted: false,
        };
        let mut group = c.benchmark_group(format!("turn_{size_name}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("baseline_clone", |b| {
            b.iter(|| black_box(&payload.messages).clone())
        });
        group.bench_function("baseline_outbox_json", |b| {
            b.iter(|| serde_json::to_vec(black_box(&payload)).expect("json"))
        });
        group.bench_function("redact_turn", |b| {
            b.iter(|| {
                let messages = black_box(&payload.messages).clone();
                runtime.block_on(redactor.redact_turn(rules.clone(), messages))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_redaction, bench_turn);
criterion_main!(benches);
