//! The local embedding provider: all-MiniLM-L6-v2 in process. Its vectors are checked against
//! an independent forward pass (tests/python/minilm_reference.py, numpy only) and against the
//! similarity matrix sentence-transformers publishes; the binary refuses to start without the
//! model; memory works end to end with no embedding call to the gateway, and its work is
//! reported as local usage.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use memgate::embed::local::LocalModel;
use serde_json::{json, Value};

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("MEMGATE_EMBEDDINGS__MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/memgate-model/all-minilm-l6-v2")
        });
    assert!(
        dir.join("model.safetensors").exists(),
        "{} has no model: run `bash scripts/install-model.sh` (scripts/test.sh does)",
        dir.display()
    );
    dir
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn sentences() -> Vec<String> {
    let long = "The quarterly review covered revenue, churn, hiring plans and the APAC launch. "
        .repeat(40);
    [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        "My sister moved to Lisbon last year.",
        "Where does my sister live now?",
        "I adopted a beagle named Max in 2021.",
        "What's my dog called?",
        "Prefers summaries under 200 words",
        "Working on Q3 APAC analysis",
        "beagle name",
        "I'm allergic to peanuts and shellfish.",
        "Priya's wedding is on June 14th in Jaipur.",
        "We ran the Berlin half marathon in 1:52:30.",
        "Can you suggest a recipe for dinner?",
        "Thanks, that was really helpful!",
        "The user's favourite programming language is Rust.",
        "Café déjà vu: naïve façade at the Zürich Straße.",
        "ÉCOLE NORMALE SUPÉRIEURE",
        "東京で寿司を食べました。",
        "我喜欢在周末读书。",
        "Привет, как дела?",
        "emoji 🎉🚀 and symbols © ® ™ ± ∞",
        "email me at alice@example.com or call +1 (555) 010-9999",
        "snake_case, camelCase, kebab-case and SCREAMING_CASE",
        "https://example.com/path?query=1&other=two#frag",
        "   leading and trailing whitespace   ",
        "tabs\tand\nnewlines\r\nmixed",
        "a",
        "!!!",
        "1234567890 3.14159 -42 1e10",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "The model truncates at 256 tokens, so this one is cut.",
        "[CLS] literal special tokens [SEP] [MASK] in text",
        "Don't, won't, can't, shouldn't've.",
        "GPT-4o-mini vs. text-embedding-3-small: which is cheaper?",
        long.trim(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn vectors_match_an_independent_forward_pass() {
    let dir = model_dir();
    let model = LocalModel::load(&dir).expect("model loads");
    let texts = sentences();
    let (ours, _) = model.embed(&texts).expect("embeds");
    let ids = model.tokenize(&texts).expect("tokenizes");

    let mut child = Command::new(python())
        .arg("tests/python/minilm_reference.py")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("reference runs");
    serde_json::to_writer(child.stdin.take().unwrap(), &texts).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "reference failed");
    let reference: Value = serde_json::from_slice(&output.stdout).unwrap();

    let mut worst = 1.0f64;
    for (i, text) in texts.iter().enumerate() {
        let want_ids: Vec<u32> = serde_json::from_value(reference["token_ids"][i].clone()).unwrap();
        assert_eq!(ids[i], want_ids, "token ids of {text:?}");
        let want: Vec<f64> = serde_json::from_value(reference["vectors"][i].clone()).unwrap();
        assert_eq!(ours[i].len(), 384);
        let similarity = cosine(&ours[i], &want);
        worst = worst.min(similarity);
        assert!(similarity >= 0.9999, "{text:?}: cosine {similarity}");
    }
    assert_eq!(
        ids.last().unwrap().len(),
        256,
        "the long text is cut at 256 tokens"
    );
    eprintln!(
        "worst cosine to the reference over {} texts: {worst:.7}",
        texts.len()
    );
}

#[test]
fn the_quickstart_similarity_matrix_is_reproduced() {
    // sentence-transformers' quickstart prints this matrix for all-MiniLM-L6-v2.
    let published = [
        [1.0000, 0.6660, 0.1046],
        [0.6660, 1.0000, 0.1411],
        [0.1046, 0.1411, 1.0000],
    ];
    let model = LocalModel::load(&model_dir()).unwrap();
    let texts: Vec<String> = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]
    .map(String::from)
    .to_vec();
    let (vectors, tokens) = model.embed(&texts).unwrap();
    assert_eq!(
        tokens,
        6 + 7 + 6,
        "text tokens, [CLS] and [SEP] not counted"
    );
    for (i, row) in published.iter().enumerate() {
        for (j, want) in row.iter().enumerate() {
            let got = memgate::vector::cosine(&vectors[i], &vectors[j]);
            assert!(
                (f64::from(got) - want).abs() <= 0.00006,
                "similarity ({i}, {j}): {got:.5}, published {want}"
            );
        }
    }
}

#[test]
fn a_batch_gives_each_text_the_vector_it_has_alone() {
    let model = LocalModel::load(&model_dir()).unwrap();
    let texts = sentences();
    let (together, _) = model.embed(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&together) {
        let (alone, _) = model.embed(std::slice::from_ref(text)).unwrap();
        let alone: Vec<f64> = alone[0].iter().map(|x| f64::from(*x)).collect();
        let similarity = cosine(batched, &alone);
        assert!(similarity > 0.99999, "{text:?}: {similarity}");
    }
}

#[test]
fn a_missing_model_stops_the_start_with_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("memgate.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n\
             [storage]\nurl = \"sqlite://{}\"\n[embeddings]\nprovider = \"local\"\n",
            free_port(),
            free_port(),
            dir.path().join("m.db").display()
        ),
    )
    .unwrap();
    let missing = dir.path().join("no-model-here");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_memgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("MEMGATE_EMBEDDINGS__MODEL_DIR", &missing)
        .output()
        .unwrap();
    assert!(!output.status.success(), "started without a model");
    assert!(started.elapsed() < Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bash scripts/install-model.sh"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("model.safetensors is missing"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_works_with_no_embedding_call_and_reports_local_usage() {
    let mock = mock_gateway::spawn().await;
    let dir = model_dir().display().to_string();
    let mg = Memgate::start_with(
        &mock.url(),
        &[
            ("MEMGATE_EMBEDDINGS__PROVIDER", "local"),
            ("MEMGATE_EMBEDDINGS__DIMENSIONS", "384"),
            ("MEMGATE_EMBEDDINGS__MODEL_DIR", &dir),
            ("MEMGATE_EXTRACTION__ENABLED", "false"),
        ],
    )
    .await;
    mg.create_session(ACME_ADMIN, "alice").await;
    let (status, body) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/add",
            Some(json!({"memory_id": "alice", "messages": [
                {"role": "user", "content": "We adopted a beagle and named him Max. My sister lives in Lisbon."}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, found) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/search",
            Some(json!({"memory_id": "alice", "query": "What is my dog called?", "limit": 1})),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Max"),
        "{found}"
    );

    let answer = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("alice"), "Where does my sister live?", false),
        )
        .await;
    assert_eq!(answer.status(), 200);
    let system = last_upstream_chat(&mock)["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("[Past Context for ID: alice]"), "{system}");
    assert!(system.contains("My sister lives in Lisbon"), "{system}");
    assert!(
        mock.internal_requests()
            .iter()
            .all(|r| !r.path.ends_with("/embeddings")),
        "no embedding call reached the gateway"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, report) = mg.api("GET", Some(ACME_ADMIN), "/memory/usage", None).await;
        assert_eq!(status, 200, "{report}");
        let rows: Vec<(String, String, String)> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["prompt_tokens"].as_i64() > Some(0))
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().into(),
                    r["provider"].as_str().unwrap().into(),
                    r["model"].as_str().unwrap().into(),
                )
            })
            .collect();
        let local = |kind: &str| (kind.into(), "local".into(), "all-MiniLM-L6-v2".into());
        if rows == [local("fact_embedding"), local("query_embedding")] {
            break;
        }
        assert!(Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
