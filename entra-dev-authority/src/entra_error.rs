//! Errors in Entra ID's JSON shape, with the real AADSTS codes.

use http::StatusCode;
use serde_json::json;

/// An error the token (or metadata) endpoint answers with, as Entra does:
/// `{"error","error_description":"AADSTSnnnn: …","error_codes":[n],"timestamp","trace_id",
/// "correlation_id","error_uri"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntraError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl EntraError {
    fn new(status: StatusCode, error: &'static str, code: u32, message: String) -> Self {
        Self {
            status,
            error,
            code,
            message,
        }
    }

    /// AADSTS90002: the tenant in the path is not this authority's.
    pub(crate) fn unknown_tenant(tenant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        )
    }

    /// AADSTS900144: a required parameter is missing.
    pub(crate) fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// AADSTS9002313: a `claims` parameter that is not a JSON object.
    pub(crate) fn malformed_claims(reason: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9002313,
            format!(
                "Invalid request. Request is malformed or invalid. The claims parameter {reason}."
            ),
        )
    }

    /// AADSTS70003: a grant type other than `client_credentials`.
    pub(crate) fn unsupported_grant_type(grant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        )
    }

    /// AADSTS1002012: a client-credentials scope without `/.default`.
    pub(crate) fn scope_without_default(scope: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    }

    /// AADSTS70011: more than one resource, or no resource, in the scope.
    pub(crate) fn invalid_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    }

    /// AADSTS500011: the resource (API) is not registered in the tenant.
    pub(crate) fn unknown_resource(resource: &str, tenant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// AADSTS700016: the client application is not registered in the tenant.
    pub(crate) fn unknown_client(client_id: &str, tenant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// AADSTS7000218: neither `client_assertion` nor `client_secret`.
    pub(crate) fn missing_credential() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
        )
    }

    /// AADSTS7000215: a wrong client secret.
    pub(crate) fn invalid_secret(client_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )
    }

    /// AADSTS50027: the client assertion is not a well-formed JWT (or is unusable as one).
    pub(crate) fn malformed_assertion(reason: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            format!("JWT token is invalid or malformed: {reason}."),
        )
    }

    /// AADSTS700027: the signature does not verify, or the key is not registered.
    pub(crate) fn invalid_signature(reason: &str, thumbprint: &str, client_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        )
    }

    /// AADSTS700023: `aud` is not the token endpoint.
    pub(crate) fn wrong_audience(aud: &str, expected: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Audience: '{aud}', expected: '{expected}'."
            ),
        )
    }

    /// AADSTS50048: `sub` differs from `iss`.
    pub(crate) fn subject_mismatch() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50048,
            "Subject mismatches Issuer claim in the client assertion.".into(),
        )
    }

    /// AADSTS700021: `iss`/`sub` differ from the `client_id` parameter.
    pub(crate) fn client_id_mismatch(iss: &str, client_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
            format!(
                "Client assertion application identifier doesn't match 'client_id' parameter. Issuer: '{iss}', client_id: '{client_id}'."
            ),
        )
    }

    /// AADSTS700024: outside the assertion's validity window, or an absurd lifetime.
    pub(crate) fn assertion_time(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            format!("Client assertion is not within its valid time range. {detail}"),
        )
    }

    /// A `jti` seen before (no public Entra code is documented for this; AADSTS50027 with
    /// a clear reason).
    pub(crate) fn replayed_assertion(jti: &str) -> Self {
        Self::malformed_assertion(&format!(
            "the client assertion with jti '{jti}' was already used (replay)"
        ))
    }

    /// With strict replay checks, no room to remember a new assertion: `capacity` unexpired
    /// ones are held, the earliest expires at `earliest_expiry` (Unix seconds). Entra has no
    /// such limit to document; this is the dev authority's own, transient.
    pub(crate) fn replay_cache_full(capacity: usize, earliest_expiry: i64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            90033,
            format!(
                "The dev authority remembers {capacity} unexpired client assertions (its replay-check limit) and accepts no new one until the earliest expires at {}. Retry then.",
                format_iso(earliest_expiry)
            ),
        )
    }

    /// A request body over the size limit.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            900144,
            format!("The request body is larger than {limit} bytes."),
        )
    }

    /// Client credentials on `common` or `organizations`: an app-only token needs a tenant.
    /// (Entra's exact code for this case is not documented; 90002, "tenant not found", is
    /// the closest.)
    pub(crate) fn tenant_required(tenant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' cannot issue app-only tokens: client credentials need the tenant id or domain in the token endpoint URL."
            ),
        )
    }

    /// The authority failed (it could not sign the token).
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.".into(),
        )
    }

    /// An injected fault.
    pub(crate) fn injected(status: StatusCode) -> Self {
        let error = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            "temporarily_unavailable"
        } else {
            "invalid_request"
        };
        Self::new(
            status,
            error,
            90033,
            "A transient error has occurred (injected by the DevAuthority fault hook).".into(),
        )
    }

    /// The JSON body, with the trace and correlation ids and the timestamp.
    pub(crate) fn body(&self, unix_now: u64, correlation_id: &str) -> serde_json::Value {
        let trace_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let timestamp = format_timestamp(unix_now);
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        })
    }
}

/// `2016-01-09 02:02:12Z`, Entra's timestamp format.
pub(crate) fn format_timestamp(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}Z")
}

/// `2016-01-09T02:02:12Z`, for assertion time messages.
pub(crate) fn format_iso(unix: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(u64::try_from(unix).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Unix seconds to (year, month, day, hour, minute, second), UTC (Howard Hinnant's
/// days-from-civil inverse).
fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        struct Case {
            name: &'static str,
            unix: u64,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "epoch",
                unix: 0,
                expected: "1970-01-01 00:00:00Z",
            },
            Case {
                name: "Entra doc example",
                unix: 1_452_304_932,
                expected: "2016-01-09 02:02:12Z",
            },
            Case {
                name: "leap day",
                unix: 1_709_210_096,
                expected: "2024-02-29 12:34:56Z",
            },
        ];
        for case in cases {
            assert_eq!(format_timestamp(case.unix), case.expected, "{}", case.name);
        }
    }

    #[test]
    fn body_shape() {
        let body = EntraError::unknown_client("abc", "tid").body(1_452_304_932, "corr");
        assert_eq!(body["error"], "unauthorized_client");
        assert_eq!(body["error_codes"], json!([700016]));
        assert_eq!(body["correlation_id"], "corr");
        assert_eq!(body["timestamp"], "2016-01-09 02:02:12Z");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with("AADSTS700016: Application with identifier 'abc'"));
        assert!(description.contains("\r\nCorrelation ID: corr\r\n"));
        assert_eq!(
            body["error_uri"],
            "https://login.microsoftonline.com/error?code=700016"
        );
    }
}
