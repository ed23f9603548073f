//! `GET /memory/session/{id}/export` and `POST /memory/session/import`: a session out as JSON
//! Lines, streamed page by page, and back in, in one transaction.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::query::{MemoryId, PathParams, QueryParams};
use super::responses::{AdminOnly, KeyErrors, StorageError, NO_SESSION, UPSTREAM_FAILED};
use super::sessions::owned_session;
use super::views::ErrorBody;
use super::Caller;
use crate::app::AppState;
use crate::domain::transfer::{ExportEnd, ExportLine, ExportedHistory, ImportReceipt};
use crate::domain::{EngineKind, Session};
use crate::http_error::ApiError;
use crate::memory::transfer::{read_dump, ImportError};
use crate::store::FactStore;

/// Records per page read from the store while streaming an export.
const EXPORT_PAGE: i64 = 200;

pub const NDJSON: &str = "application/x-ndjson";

/// A session as JSON Lines (admin keys only): a `session` line (engine, config, the embedding
/// model), its `fact`s (mem0) or `graph_item`s (cognee) with their vectors, its `history`, and
/// an `end` line with the counts. Streamed as it is read: it is not a snapshot of one instant.
#[utoipa::path(get, path = "/memory/session/{memory_id}/export", operation_id = "export_session", tag = "sessions",
    params(("memory_id" = MemoryId, Path)),
    responses((status = 200, description = "The session as JSON Lines.", content_type = "application/x-ndjson", body = String),
        (status = 404, description = NO_SESSION, body = ErrorBody), KeyErrors, AdminOnly, StorageError))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    let header = state.engine.export_header(&session);
    let disposition = format!("attachment; filename=\"{}.jsonl\"", session.memory_id);
    let lines = futures_util::stream::unfold(
        Export {
            state,
            session,
            stage: Stage::Header(Box::new(header)),
            counts: ExportEnd {
                facts: 0,
                graph_items: 0,
                history: 0,
            },
        },
        Export::next_chunk,
    );
    Ok((
        [
            (http::header::CONTENT_TYPE, NDJSON.to_string()),
            (http::header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Where a streamed export is.
enum Stage {
    Header(Box<ExportLine>),
    Records { after: Option<String> },
    History { offset: i64 },
    End,
    Done,
}

struct Export {
    state: Arc<AppState>,
    session: Session,
    stage: Stage,
    counts: ExportEnd,
}

impl Export {
    /// The next lines of the export, or `None` once the `end` line is out. A store failure
    /// ends the stream with an error, so the client sees a cut body without an `end` line.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        let lines = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Done => return None,
            Stage::Header(line) => {
                self.stage = Stage::Records { after: None };
                vec![*line]
            }
            Stage::Records { after } => {
                let page = self
                    .state
                    .engine
                    .export_page(&self.session, after.as_deref(), EXPORT_PAGE)
                    .await;
                match page {
                    Ok((lines, Some(last))) => {
                        match self.session.engine {
                            EngineKind::Mem0 => self.counts.facts += lines.len() as u64,
                            EngineKind::Cognee => self.counts.graph_items += lines.len() as u64,
                        }
                        self.stage = Stage::Records { after: Some(last) };
                        lines
                    }
                    Ok((_, None)) => {
                        self.stage = Stage::History { offset: 0 };
                        Vec::new()
                    }
                    Err(e) => return Some((Err(self.failed(&e)), self)),
                }
            }
            Stage::History { offset } => {
                let page = self
                    .state
                    .store
                    .fact_history(&self.session, None, EXPORT_PAGE, offset)
                    .await;
                match page {
                    Ok((events, _)) if events.is_empty() => {
                        self.stage = Stage::End;
                        Vec::new()
                    }
                    Ok((events, _)) => {
                        self.counts.history += events.len() as u64;
                        self.stage = Stage::History {
                            offset: offset + events.len() as i64,
                        };
                        events
                            .into_iter()
                            .map(|e| {
                                ExportLine::History(ExportedHistory {
                                    fact_id: e.fact_id,
                                    event: e.event,
                                    old_text: e.old_text,
                                    new_text: e.new_text,
                                    reason: e.reason,
                                    redacted: e.redacted,
                                    created_at: e.created_at,
                                })
                            })
                            .collect()
                    }
                    Err(e) => return Some((Err(self.failed(&e)), self)),
                }
            }
            Stage::End => vec![ExportLine::End(self.counts.clone())],
        };
        let mut chunk = Vec::new();
        for line in &lines {
            if let Err(e) = serde_json::to_writer(&mut chunk, line) {
                return Some((Err(self.failed(&e)), self));
            }
            chunk.push(b'\n');
        }
        Some((Ok(Bytes::from(chunk)), self))
    }

    fn failed(&mut self, error: &dyn std::fmt::Display) -> std::io::Error {
        tracing::error!(error = %error, memory_id = %self.session.memory_id, "export cut short");
        self.stage = Stage::Done;
        std::io::Error::other("the export failed; it is incomplete")
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportTarget {
    /// The name to restore the session under; the exported one when absent.
    #[param(value_type = Option<MemoryId>)]
    memory_id: Option<String>,
}

/// Restores an export into the caller's org as a new session (admin keys only), in one
/// transaction: its facts keep their ids, its history its events. Texts are redacted as the
/// session's config says; vectors are kept when they come from the model configured here,
/// else every text is embedded again.
#[utoipa::path(post, path = "/memory/session/import", operation_id = "import_session", tag = "sessions",
    params(ImportTarget),
    request_body(content = String, content_type = "application/x-ndjson", description = "An export, as `GET /memory/session/{memory_id}/export` gives it."),
    responses((status = 201, body = ImportReceipt),
        (status = 400, description = "The body is not UTF-8 (`invalid_body`), or a query parameter is malformed (`invalid_query`).", body = ErrorBody),
        (status = 403, description = "The export belongs to another org (`foreign_export`), or the key is a member key (`forbidden`).", body = ErrorBody),
        (status = 409, description = "The org has a session of that name, or an id in the export is taken (`already_exists`).", body = ErrorBody),
        (status = 413, description = "The export is over `admin.max_import_bytes` (`request_too_large`).", body = ErrorBody),
        (status = 422, description = "A line is not what the format says, or the export was cut short (`invalid_export`); or the name is invalid (`invalid_field`).", body = ErrorBody),
        (status = 502, description = UPSTREAM_FAILED, body = ErrorBody),
        KeyErrors, StorageError))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(target): QueryParams<ImportTarget>,
    request: Request,
) -> Result<(StatusCode, Json<ImportReceipt>), ApiError> {
    caller.require_admin()?;
    let limit = state.config.admin.max_import_bytes;
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|e| {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::body_too_large()
            } else {
                ApiError::bad_request("invalid_body", e.to_string())
            }
        })?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("not UTF-8: {e}")))?;
    let dump =
        read_dump(text).map_err(|e| ApiError::unprocessable("invalid_export", e.to_string()))?;
    let receipt = state
        .engine
        .import(&caller.0.org, dump, target.memory_id, &state.redactor)
        .await
        .map_err(|e| match e {
            ImportError::ForeignOrg(_) => ApiError::refused("foreign_export", e.to_string()),
            ImportError::Field(field) => field.into(),
            ImportError::Memory(memory) => memory.into(),
        })?;
    tracing::info!(memory_id = %receipt.memory_id, org = %caller.0.org, facts = receipt.facts, graph_items = receipt.graph_items, "memory session imported");
    Ok((StatusCode::CREATED, Json(receipt)))
}
