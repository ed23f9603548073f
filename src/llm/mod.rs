//! memgate's own calls to the gateway: embeddings and JSON chat completions, under the
//! service-account key, with the token usage of each reported as platform spend of the org
//! it was made for.

pub mod prompts;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::usage::{CallScope, Provider, Purpose, UsageEvent};
use crate::error::LlmError;
use crate::upstream::Upstream;
use crate::usage::UsageSink;

/// An internal call that has not answered in this long has failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// An answer larger than any embeddings answer memgate asks for.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    /// For query embeddings, which are asked for on the proxy's threads: Pingora's client, as
    /// for the proxied requests, with a pool of its own. Its connections stay on the runtime
    /// that opened them (sharing a pool with the worker put them on the background runtime,
    /// and every query's embedding crossed threads there and back: 67 µs of CPU a request),
    /// and a request is one write and a read on the caller's task, where reqwest's goes
    /// through a connection task (about 30 µs of CPU a query, measured).
    query_upstream: Arc<Upstream>,
    base: String,
    headers: HeaderMap,
    embedding_model: String,
    dimensions: usize,
    extraction_model: String,
    max_retries: u32,
    usage: UsageSink,
    /// Set once the gateway has refused a base64 embeddings request and taken a float one;
    /// shared by the clones.
    floats_only: Arc<AtomicBool>,
}

impl LlmClient {
    pub fn new(config: &Config, usage: UsageSink) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.internal.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| "internal.api_key contains characters not allowed in a header")?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        for (name, value) in &config.internal.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("internal.headers: `{name}` is not a header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("internal.headers: bad value for `{name}`"))?;
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.upstream.connect_timeout_ms))
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            query_upstream: Arc::new(Upstream::from_config(&config.upstream)?),
            base: config
                .upstream
                .url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            headers,
            embedding_model: config.embeddings.model().to_string(),
            dimensions: config.embeddings.dimensions(),
            extraction_model: config.extraction.model.clone(),
            max_retries: config.extraction.max_retries,
            usage,
            floats_only: Arc::default(),
        })
    }

    pub async fn embed(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let request = |encoding: &str| {
            json!({
                "model": self.embedding_model,
                "input": texts,
                "dimensions": self.dimensions,
                "encoding_format": encoding,
            })
        };
        let answer: EmbeddingAnswer = if self.floats_only.load(Ordering::Relaxed) {
            self.post(scope, purpose, "/v1/embeddings", &request("float"))
                .await?
        } else {
            let asked = self
                .post(scope, purpose, "/v1/embeddings", &request("base64"))
                .await;
            match asked {
                Err(LlmError::Status { status, body }) if matches!(status, 400 | 422) => {
                    let floats = self
                        .post(scope, purpose, "/v1/embeddings", &request("float"))
                        .await
                        .map_err(|_| LlmError::Status { status, body })?;
                    tracing::warn!(
                        "the gateway refuses base64 embeddings; asking for floats from now on"
                    );
                    self.floats_only.store(true, Ordering::Relaxed);
                    floats
                }
                other => other?,
            }
        };
        self.record_usage(
            scope,
            purpose,
            answer.model.as_deref().unwrap_or(&self.embedding_model),
            &answer.usage,
        );
        let mut rows: Vec<(usize, Vec<f32>)> = answer
            .data
            .into_iter()
            .enumerate()
            .map(|(i, row)| (row.index.unwrap_or(i), row.embedding.0))
            .collect();
        rows.sort_by_key(|r| r.0);
        if rows.len() != texts.len() {
            return Err(LlmError::Decode(format!(
                "asked for {} embeddings, got {}",
                texts.len(),
                rows.len()
            )));
        }
        if let Some((_, bad)) = rows.iter().find(|(_, v)| v.len() != self.dimensions) {
            return Err(LlmError::Decode(format!(
                "embedding has {} dimensions, embeddings.dimensions is {}",
                bad.len(),
                self.dimensions
            )));
        }
        Ok(rows.into_iter().map(|r| r.1).collect())
    }

    /// A chat completion that must answer a JSON object; retried with backoff on any failure
    /// (transport, status, or an answer that is not JSON).
    pub async fn chat_json(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        system: &str,
        user: &str,
    ) -> Result<Value, LlmError> {
        let body = json!({
            "model": self.extraction_model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "response_format": {"type": "json_object"},
            "temperature": 0,
        });
        let mut attempt = 0;
        loop {
            match self.chat_json_once(scope, purpose, &body).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt >= self.max_retries => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "internal chat call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt.min(6))).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn chat_json_once(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        body: &Value,
    ) -> Result<Value, LlmError> {
        let answer: Value = self
            .post(scope, purpose, "/v1/chat/completions", body)
            .await?;
        let usage = serde_json::from_value(answer["usage"].clone()).unwrap_or_default();
        let model = answer["model"].as_str().unwrap_or(&self.extraction_model);
        self.record_usage(scope, purpose, model, &usage);
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| LlmError::Decode("chat answer has no message content".into()))?;
        serde_json::from_str(strip_code_fence(content))
            .map_err(|e| LlmError::Decode(format!("chat answer is not JSON: {e}")))
    }

    async fn post<T: DeserializeOwned>(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        path: &str,
        body: &Value,
    ) -> Result<T, LlmError> {
        if purpose == Purpose::QueryEmbedding {
            return self.post_on_upstream(scope, purpose, path, body).await;
        }
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .headers(self.call_headers(scope, purpose)?)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        read_answer(status, &bytes)
    }

    /// [`Self::post`] over Pingora's client: the same request, headers and error answers.
    async fn post_on_upstream<T: DeserializeOwned>(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        path: &str,
        body: &Value,
    ) -> Result<T, LlmError> {
        let body = serde_json::to_vec(body).map_err(|e| LlmError::Decode(e.to_string()))?;
        let request = self
            .upstream_request(scope, purpose, path, body.len())
            .map_err(|e| LlmError::Connection(e.to_string()))?;
        let exchange = async {
            let mut response = self.query_upstream.send(&request, &body).await?;
            let status = response.header().status;
            let mut answer = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Error::e_explain(ErrorType::ReadError, "answer over 16 MiB");
                }
                answer.extend_from_slice(&chunk);
            }
            response.finish().await;
            Ok((status, answer))
        };
        let (status, answer) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| LlmError::Connection(format!("no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| LlmError::Connection(e.to_string()))?;
        read_answer(status, &answer)
    }

    fn upstream_request(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        path: &str,
        length: usize,
    ) -> pingora::Result<RequestHeader> {
        let path = self.query_upstream.path_for(path);
        let mut request = RequestHeader::build(
            http::Method::POST,
            path.as_bytes(),
            Some(self.headers.len() + 6),
        )?;
        request.insert_header(http::header::HOST, &self.query_upstream.authority)?;
        request.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        request.insert_header(http::header::CONTENT_LENGTH, length)?;
        let headers = self
            .call_headers(scope, purpose)
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "internal call", e))?;
        for (name, value) in &headers {
            request.append_header(name.clone(), value.clone())?;
        }
        Ok(request)
    }

    /// The headers of every internal call, whichever client sends it: the service key and
    /// configured extras, whose org and purpose it is, and the trace it belongs to.
    fn call_headers(&self, scope: CallScope<'_>, purpose: Purpose) -> Result<HeaderMap, LlmError> {
        let mut headers = self.headers.clone();
        let org = HeaderValue::from_str(scope.org).map_err(|_| {
            LlmError::Connection(format!("org `{}` cannot be sent in a header", scope.org))
        })?;
        headers.insert("x-memgate-org", org);
        headers.insert(
            "x-memgate-purpose",
            HeaderValue::from_static(purpose.as_str()),
        );
        if let Some(traceparent) = crate::telemetry::current_traceparent() {
            headers.insert("traceparent", traceparent);
        }
        Ok(headers)
    }

    fn record_usage(&self, scope: CallScope<'_>, purpose: Purpose, model: &str, usage: &Usage) {
        self.usage.record(UsageEvent::new(
            scope,
            purpose,
            Provider::Gateway,
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
        ));
    }
}

/// A gateway's answer: the JSON asked for, or its error status with the start of its body.
fn read_answer<T: DeserializeOwned>(status: http::StatusCode, body: &[u8]) -> Result<T, LlmError> {
    if !status.is_success() {
        return Err(LlmError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        });
    }
    serde_json::from_slice(body).map_err(|e| LlmError::Decode(e.to_string()))
}

/// The embeddings answer, read straight into floats: it is on the retrieval path and a
/// 1536-dimension vector as a JSON tree costs more than the rest of retrieval.
#[derive(Deserialize)]
struct EmbeddingAnswer {
    data: Vec<EmbeddingRow>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct EmbeddingRow {
    #[serde(default)]
    index: Option<usize>,
    embedding: Embedding,
}

/// A vector as a JSON array of numbers, or as base64 of its little-endian f32s, which is what
/// memgate asks for (as OpenAI's own SDKs do): a quarter of the bytes, and no decimal numbers
/// to parse on the retrieval path. Gateways that answer floats anyway are read as well.
struct Embedding(Vec<f32>);

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Vec<f32>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of numbers or a base64 string of little-endian f32s")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut vector = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(x) = seq.next_element::<f32>()? {
                    vector.push(x);
                }
                Ok(vector)
            }

            fn visit_str<E: serde::de::Error>(self, encoded: &str) -> Result<Self::Value, E> {
                decode_base64_f32(encoded).map_err(E::custom)
            }
        }
        d.deserialize_any(Either).map(Embedding)
    }
}

fn decode_base64_f32(encoded: &str) -> Result<Vec<f32>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("embedding is not base64: {e}"))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "base64 embedding of {} bytes is not a whole number of f32s",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
}

/// Some models wrap JSON in a Markdown fence even when asked for a JSON object.
fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map_or(trimmed, str::trim)
}

#[cfg(test)]
mod tests {
    use super::{strip_code_fence, EmbeddingRow};

    #[test]
    fn embeddings_are_read_as_floats_or_base64() {
        let floats: EmbeddingRow =
            serde_json::from_str(r#"{"index":0,"embedding":[0.5,-1.25,3e-2]}"#).unwrap();
        // The same three f32s, little-endian, base64.
        let bytes: Vec<u8> = [0.5f32, -1.25, 3e-2]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        let base64: EmbeddingRow =
            serde_json::from_str(&format!(r#"{{"embedding":"{encoded}"}}"#)).unwrap();
        assert_eq!(floats.embedding.0, vec![0.5, -1.25, 3e-2]);
        assert_eq!(base64.embedding.0, floats.embedding.0);
        for bad in [
            r#"{"embedding":"not base64!"}"#,
            r#"{"embedding":"AAAA"}"#,
            r#"{"embedding":7}"#,
        ] {
            assert!(serde_json::from_str::<EmbeddingRow>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn code_fences_are_stripped() {
        assert_eq!(strip_code_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_code_fence(" {\"a\":1} "), "{\"a\":1}");
    }
}
