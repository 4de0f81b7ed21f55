//! How every endpoint answers: JSON with its cache header, Entra's error shape with the
//! caller's correlation id, and the request counters and injected faults.

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use crate::entra_error::EntraError;
use crate::options::Endpoint;
use crate::state::State;

/// The `tracing` target of the dev authority's logs.
pub(crate) const LOG_TARGET: &str = "entra_dev_authority";

pub(crate) fn json_response(status: StatusCode, body: &Value, cache: &'static str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .hyphenated()
        .to_string()
}

pub(crate) fn error_response(state: &State, error: &EntraError, headers: &HeaderMap) -> Response {
    let body = error.body(
        u64::try_from(state.now()).unwrap_or(0),
        &correlation_id(headers),
    );
    json_response(error.status, &body, "no-store, no-cache")
}

/// Counts the request and applies an injected fault (delay, then failure) if one is due.
pub(crate) async fn enter(
    state: &State,
    endpoint: Endpoint,
    headers: &HeaderMap,
) -> Option<Response> {
    let fault = state.enter(endpoint)?;
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    let status = fault.status?;
    tracing::debug!(target: LOG_TARGET, ?endpoint, %status, "injected fault");
    let mut response = error_response(state, &EntraError::injected(status), headers);
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    Some(response)
}
