//! `tracing` spans with OpenTelemetry semantic-convention field names (HTTP client spans:
//! `http.request.method`, `server.address`, `server.port`, `url.full`,
//! `http.response.status_code`, `error.type`), and `otel.name` / `otel.kind` /
//! `otel.status_code` as `tracing-opentelemetry` reads them. Nothing secret is recorded:
//! URLs lose their query, fragment and credentials.

use tracing::field::Empty;
use tracing::Span;

/// The span of one call to the authority (metadata, keys, token endpoint, credential sources).
pub(crate) fn http_client(method: &str, url: &url::Url) -> Span {
    let method = match method {
        "GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "PATCH" | "OPTIONS" => method,
        _ => "_OTHER",
    };
    tracing::info_span!(
        target: "tower_azure_auth::http",
        "HTTP",
        otel.name = method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default(),
        url.full = %redacted(url),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Records the response's status on the current HTTP span (4xx and 5xx are errors on a
/// client span).
pub(crate) fn http_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 400 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
}

/// Records a failure before any response (connection, TLS, timeout, redirect).
pub(crate) fn http_error(span: &Span, kind: &'static str) {
    span.record("error.type", kind);
    span.record("otel.status_code", "ERROR");
}

/// The URL without credentials, query or fragment.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// The span of one validation (debug: it is on every request's path).
pub(crate) fn validation() -> Span {
    tracing::debug_span!(
        target: "tower_azure_auth::validation",
        "validate_access_token",
        otel.kind = "internal",
        otel.status_code = Empty,
        tower_azure_auth.outcome = Empty,
        tower_azure_auth.cached = Empty,
        error.type = Empty,
    )
}

/// Records a validation's outcome on its span.
pub(crate) fn validation_outcome(
    span: &Span,
    outcome: Result<(), crate::error::AuthErrorKind>,
    cached: bool,
) {
    if span.is_disabled() {
        return;
    }
    span.record("tower_azure_auth.cached", cached);
    match outcome {
        Ok(()) => {
            span.record("tower_azure_auth.outcome", "accepted");
        }
        Err(kind) => {
            span.record("tower_azure_auth.outcome", "rejected");
            span.record("error.type", kind.as_str());
        }
    }
}

/// The span of one key refresh (discovery and JWKS): the parent of their HTTP spans.
pub(crate) fn key_refresh(trigger: super::RefreshTrigger) -> Span {
    tracing::info_span!(
        target: "tower_azure_auth::validation",
        "refresh_signing_keys",
        otel.kind = "internal",
        otel.status_code = Empty,
        tower_azure_auth.trigger = trigger.as_str(),
        error.type = Empty,
    )
}

/// Records a failed key refresh on its span.
pub(crate) fn key_refresh_failed(span: &Span) {
    span.record("error.type", "fetch_failed");
    span.record("otel.status_code", "ERROR");
}

/// The span of one token acquisition.
pub(crate) fn acquisition() -> Span {
    tracing::info_span!(
        target: "tower_azure_auth::credentials",
        "acquire_token",
        otel.name = "acquire_token_for_client",
        otel.kind = "internal",
        otel.status_code = Empty,
        tower_azure_auth.token_source = Empty,
        error.type = Empty,
        error.code = Empty,
    )
}

/// Records an acquisition's outcome on its span.
pub(crate) fn acquisition_outcome(span: &Span, outcome: Result<&'static str, (&str, Option<u32>)>) {
    match outcome {
        Ok(source) => {
            span.record("tower_azure_auth.token_source", source);
        }
        Err((kind, code)) => {
            span.record("error.type", kind);
            if let Some(code) = code {
                span.record("error.code", format!("AADSTS{code}"));
            }
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        struct Case {
            name: &'static str,
            url: &'static str,
            shown: &'static str,
        }
        let cases = [
            Case {
                name: "credentials and a signed query",
                url: "https://user:secret@vault.example.net/secrets/cert?api-version=7.4&sig=abc#x",
                shown: "https://vault.example.net/secrets/cert",
            },
            Case {
                name: "a plain metadata URL",
                url: "http://127.0.0.1:8080/tenant/v2.0/.well-known/openid-configuration",
                shown: "http://127.0.0.1:8080/tenant/v2.0/.well-known/openid-configuration",
            },
        ];
        for case in cases {
            let url = url::Url::parse(case.url).unwrap();
            assert_eq!(super::redacted(&url), case.shown, "{}", case.name);
        }
    }
}
