//! Platform spend: the tokens of memgate's own embedding and extraction calls, which go to the
//! gateway under the service-account key and are billed to the platform, reported for the
//! caller's org by day, kind and model.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query::QueryParams;
use super::responses::{AdminOnly, KeyErrors, StorageError, BAD_QUERY};
use super::views::ErrorBody;
use super::Caller;
use crate::app::AppState;
use crate::domain::now_ms;
use crate::domain::time::{date, parse_date};
use crate::domain::usage::UsageRow;
use crate::http_error::ApiError;
use crate::store::UsageStore;

const DAY_MS: i64 = 86_400_000;
const MAX_DAYS: i64 = 366;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day (UTC); 30 days before `to` when absent. At most 366 days before `to`, and
    /// not after it (400 otherwise).
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, included; today when absent.
    #[param(format = Date)]
    to: Option<String>,
    /// `session` to break the report down by memory session too.
    #[param(value_type = Option<UsageBreakdown>, inline)]
    by: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "only describes `UsageQuery::by`")]
enum UsageBreakdown {
    Session,
}

#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    pub org: String,
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    pub rows: Vec<UsageRow>,
    pub total_calls: i64,
    pub total_prompt_tokens: i64,
    pub total_completion_tokens: i64,
}

/// The org's platform spend by UTC day, kind of call and model (admin keys only).
#[utoipa::path(get, path = "/memory/usage", tag = "operations", operation_id = "usage_report",
    params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, description = BAD_QUERY, body = ErrorBody),
        KeyErrors, AdminOnly, StorageError))]
pub async fn report(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    caller.require_admin()?;
    let day = |name: &str, value: &Option<String>, default: i64| match value {
        None => Ok(default),
        Some(v) => parse_date(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("query parameter `{name}`: `{v}` is not a YYYY-MM-DD date"),
            )
            .with_param(name)
        }),
    };
    let today = now_ms().div_euclid(DAY_MS) * DAY_MS;
    let to = day("to", &query.to, today)?;
    let from = day("from", &query.from, to - 30 * DAY_MS)?;
    if from > to || (to - from) / DAY_MS >= MAX_DAYS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "query parameters `from`..`to`: must be in order and span at most {MAX_DAYS} days"
            ),
        )
        .with_param("from"));
    }
    let by_session = match query.by.as_deref() {
        None => false,
        Some("session") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("query parameter `by`: `{other}` is not `session`"),
            ))
        }
    };
    let rows = state
        .store
        .usage_report(&caller.0.org, from, to + DAY_MS, by_session)
        .await?;
    Ok(Json(UsageReport {
        org: caller.0.org,
        from: date(from),
        to: date(to),
        total_calls: rows.iter().map(|r| r.calls).sum(),
        total_prompt_tokens: rows.iter().map(|r| r.prompt_tokens).sum(),
        total_completion_tokens: rows.iter().map(|r| r.completion_tokens).sum(),
        rows,
    }))
}
