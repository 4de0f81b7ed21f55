//! The gRPC form of a [`Rejection`] (documented in the parent module).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::{Cause, Rejection};
use crate::error::AuthErrorKind;

/// `grpc-status`.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// What gRPC leaves unencoded in `grpc-message` is `%x20-%x24 / %x26-%x7E`: everything else
/// (controls, `%`, DEL and every non-ASCII byte of the UTF-8) is `%XX`.
const GRPC_MESSAGE_ENCODE: &AsciiSet = &CONTROLS.add(b'%');

/// The gRPC status codes the refusals use ([gRPC status codes]).
///
/// [gRPC status codes]: https://grpc.github.io/grpc/core/md_doc_statuscodes.html
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// `2`: a refusal of another kind (a [`Rejection::json`] with an unusual status).
    Unknown,
    /// `3`: a `400` refusal made with [`Rejection::json`].
    InvalidArgument,
    /// `7`: the caller is authenticated but not authorized.
    PermissionDenied,
    /// `14`: the signing keys could not be obtained yet; retry with a backoff.
    Unavailable,
    /// `16`: no valid credentials (no token, a refused token, a malformed header).
    Unauthenticated,
}

impl GrpcCode {
    /// The number sent in `grpc-status`.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        match self {
            Self::Unknown => 2,
            Self::InvalidArgument => 3,
            Self::PermissionDenied => 7,
            Self::Unavailable => 14,
            Self::Unauthenticated => 16,
        }
    }

    /// The code for an HTTP refusal status: `401` → `UNAUTHENTICATED`, `403` →
    /// `PERMISSION_DENIED`, `429`/`503` → `UNAVAILABLE`, `400` → `INVALID_ARGUMENT`, others
    /// `UNKNOWN`.
    #[must_use]
    pub fn from_http(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::InvalidArgument,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            429 | 503 => Self::Unavailable,
            _ => Self::Unknown,
        }
    }
}

/// Whether a request is a gRPC call: its `content-type` is `application/grpc` or
/// `application/grpc+…` / `application/grpc-web…` (case-insensitive). The layers answer such
/// requests with gRPC refusals.
#[must_use]
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= 16 && value[..16].eq_ignore_ascii_case(b"application/grpc")
    })
}

/// `message` percent-encoded for `grpc-message`.
pub(crate) fn encode_grpc_message(message: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(message, GRPC_MESSAGE_ENCODE).to_string();
    // Only visible ASCII and space remain, which a header value always accepts.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl Rejection {
    /// The gRPC status this refusal is answered with (see the [module docs](super)).
    #[must_use]
    pub fn grpc_code(&self) -> GrpcCode {
        match &self.cause {
            Some(Cause::Unauthenticated(error))
                if error.kind() == AuthErrorKind::KeysUnavailable =>
            {
                GrpcCode::Unavailable
            }
            Some(Cause::Unauthenticated(_)) => GrpcCode::Unauthenticated,
            Some(Cause::Forbidden(_)) => GrpcCode::PermissionDenied,
            None => GrpcCode::from_http(self.status),
        }
    }

    /// The text of `grpc-message` (before percent-encoding): the `error_description` of the
    /// HTTP form; for a policy denial, followed by the failed requirements.
    #[must_use]
    pub fn grpc_message(&self) -> String {
        match &self.cause {
            Some(Cause::Unauthenticated(error)) => error.description().into_owned(),
            Some(Cause::Forbidden(failure)) => failure.to_string(),
            None => serde_json::from_slice::<serde_json::Value>(&self.body)
                .ok()
                .and_then(|body| body["error_description"].as_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }

    /// The gRPC trailers-only response (HTTP `200`, `grpc-status`, `grpc-message`, the
    /// refusal's other headers as metadata, an empty body), with the cause in its extensions
    /// as [`into_response`](Self::into_response) does.
    ///
    /// ```
    /// use http::Response;
    /// use tower_azure_auth::rejection::Rejection;
    /// use tower_azure_auth::{AuthError, AuthErrorKind};
    ///
    /// let error = AuthError::new(AuthErrorKind::Expired, "the token expired at 2026-12-01T10:00:00Z");
    /// let response: Response<String> = Rejection::unauthenticated(&error).into_grpc_response();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.headers()["content-type"], "application/grpc");
    /// assert_eq!(response.headers()["grpc-status"], "16");
    /// assert_eq!(response.headers()["grpc-message"], "the token expired at 2026-12-01T10:00:00Z");
    /// assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
    /// assert!(response.body().is_empty());
    /// assert_eq!(response.extensions().get::<AuthError>().unwrap().kind(), AuthErrorKind::Expired);
    /// ```
    pub fn into_grpc_response<B: Default>(self) -> Response<B> {
        let code = self.grpc_code();
        let message = self.grpc_message();
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_STATUS, HeaderValue::from(code.as_u16()));
        if !message.is_empty() {
            headers.insert(GRPC_MESSAGE, encode_grpc_message(&message));
        }
        for (name, value) in &self.headers {
            if name != CONTENT_TYPE {
                headers.append(name, value.clone());
            }
        }
        self.insert_cause(response.extensions_mut());
        response
    }
}

/// A body-less gRPC response is also what [`Rejection::into_response`] callers get through
/// `B::from(Bytes::new())` (for bodies that are `From<Bytes>` but not `Default`).
pub(crate) fn into_grpc_response_from_bytes<B: From<Bytes>>(rejection: Rejection) -> Response<B> {
    rejection
        .into_grpc_response::<EmptyBody>()
        .map(|EmptyBody| B::from(Bytes::new()))
}

/// An empty body, to build a response once and then map it to the caller's body type.
#[derive(Default)]
struct EmptyBody;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorization::{AuthorizationFailure, FailedRequirement};
    use crate::error::AuthError;

    #[test]
    fn grpc_message_is_percent_encoded_as_grpc_requires() {
        struct Case {
            name: &'static str,
            message: &'static str,
            encoded: &'static str,
        }
        let cases = [
            Case {
                name: "visible ASCII and space stay",
                message: "the audience 'api://x' is not accepted (expected \"y\")",
                encoded: "the audience 'api://x' is not accepted (expected \"y\")",
            },
            Case {
                name: "percent",
                message: "100% wrong",
                encoded: "100%25 wrong",
            },
            Case {
                name: "controls",
                message: "line\nbreak\ttab\u{7f}",
                encoded: "line%0Abreak%09tab%7F",
            },
            Case {
                name: "non-ASCII as UTF-8",
                message: "caf\u{e9} \u{2192}",
                encoded: "caf%C3%A9 %E2%86%92",
            },
        ];
        for case in cases {
            assert_eq!(
                encode_grpc_message(case.message),
                case.encoded,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn grpc_request_detection() {
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC", true),
            ("application/grpc-web+proto", true),
            ("application/json", false),
            ("application/gr", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            assert_eq!(is_grpc_request(&headers), grpc, "{content_type}");
        }
        assert!(!is_grpc_request(&HeaderMap::new()));
    }

    #[test]
    fn codes_and_metadata_per_refusal() {
        let failure = AuthorizationFailure::new(
            Some("ValidateAccessTokenPolicy".into()),
            vec![FailedRequirement::new(
                "the caller must have the `service-api` application role".into(),
                "the token has roles [reader]".into(),
                false,
            )],
        );
        struct Case {
            name: &'static str,
            rejection: Rejection,
            status: &'static str,
            message: Option<&'static str>,
            challenge: Option<&'static str>,
            retry_after: bool,
        }
        let cases = [
            Case {
                name: "no token",
                rejection: Rejection::unauthenticated(&AuthError::missing_token()),
                status: "16",
                message: Some("no bearer token"),
                challenge: Some("Bearer"),
                retry_after: false,
            },
            Case {
                name: "refused token",
                rejection: Rejection::unauthenticated(&AuthError::new(
                    AuthErrorKind::InvalidSignature,
                    "the signature does not verify",
                )),
                status: "16",
                message: Some("the signature does not verify"),
                challenge: Some(
                    "Bearer error=\"invalid_token\", error_description=\"the signature does not verify\"",
                ),
                retry_after: false,
            },
            Case {
                name: "keys unavailable",
                rejection: Rejection::unauthenticated(&AuthError::new(
                    AuthErrorKind::KeysUnavailable,
                    "the signing keys could not be fetched",
                )),
                status: "14",
                message: Some("the signing keys could not be fetched"),
                challenge: None,
                retry_after: true,
            },
            Case {
                name: "policy denial",
                rejection: Rejection::forbidden(&failure),
                status: "7",
                message: Some("the caller does not satisfy the authorization policy `ValidateAccessTokenPolicy`: the caller must have the `service-api` application role; the token has roles [reader]"),
                challenge: None,
                retry_after: false,
            },
        ];
        for case in cases {
            let response: Response<Bytes> = case.rejection.into_grpc_response();
            assert_eq!(response.status(), StatusCode::OK, "{}", case.name);
            let headers = response.headers();
            assert_eq!(headers[CONTENT_TYPE], "application/grpc", "{}", case.name);
            assert_eq!(headers[GRPC_STATUS], case.status, "{}", case.name);
            let message = headers.get(GRPC_MESSAGE).map(|v| {
                percent_encoding::percent_decode(v.as_bytes())
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            });
            assert_eq!(message.as_deref(), case.message, "{}", case.name);
            assert_eq!(
                headers
                    .get(http::header::WWW_AUTHENTICATE)
                    .map(|v| v.to_str().unwrap()),
                case.challenge,
                "{}",
                case.name
            );
            assert_eq!(
                headers.contains_key(http::header::RETRY_AFTER),
                case.retry_after,
                "{}",
                case.name
            );
            assert!(response.body().is_empty(), "{}", case.name);
            assert!(
                response.extensions().get::<AuthError>().is_some()
                    || response
                        .extensions()
                        .get::<AuthorizationFailure>()
                        .is_some(),
                "{}: the cause is in the extensions",
                case.name
            );
        }
    }
}
