//! [`TokenSource`]: what the outbound layer and middleware ask for tokens.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderMap, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode, Uri};
use url::{Origin, Url};

use super::credential::BoxFuture;
use super::token::{AccessToken, TokenError};
use crate::authority::is_loopback;
use crate::error::ConfigError;

const TARGET: &str = "tower_azure_auth::credentials";

/// The configuration key named in errors about the API's origins.
const ORIGIN_KEY: &str = "CallApi:ApiBaseAddress";

/// The configuration key named in errors about the scopes.
const SCOPES_KEY: &str = "CallApi:ScopeForAccessToken";

/// A source of access tokens, shared by
/// [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer) and the reqwest
/// middleware. [`ConfidentialClient`](crate::credentials::ConfidentialClient) implements it; so can a test double or another flow.
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// A token for `scopes`; `force_refresh` asks for a new token instead of the cached one
    /// (used once after the called API answers 401 `invalid_token`). A source may rate-limit
    /// forced refreshes: [`ConfidentialClient`](crate::credentials::ConfidentialClient) and
    /// [`ManagedIdentityCredential`](crate::credentials::ManagedIdentityCredential) make at most one per
    /// cache entry per interval (30 s by default) and otherwise answer with the cached token,
    /// so an API that refuses every token cannot make them hammer the authority.
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>>;

    /// A new token for `scopes` carrying `claims` (the decoded JSON of a resource's
    /// `insufficient_claims` challenge), asked for once when the called API sends one.
    /// [`ConfidentialClient`](crate::credentials::ConfidentialClient) sends them as the
    /// `claims` parameter, merged with its client capabilities, bypassing its cache. The
    /// default is a forced refresh (`token(scopes, true)`), for sources that cannot send
    /// claims (managed identities do not support CAE).
    fn token_with_claims<'a>(
        &'a self,
        scopes: &'a [String],
        claims: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        let _ = claims;
        self.token(scopes, true)
    }

    /// Whether every scope must end with `/.default` (the client credentials flow against
    /// Entra): the layer and the middleware then refuse other scopes when they are built.
    /// Default false.
    fn requires_default_scope(&self) -> bool {
        false
    }

    /// The token for `scopes` when the source has it at hand (a cache hit that needs no
    /// refresh), without a future; `None` (the default) means "ask [`token`](Self::token)".
    /// The layer and the middleware try this first, so a cache hit boxes no future.
    /// [`ConfidentialClient`](crate::credentials::ConfidentialClient) answers from its cache.
    fn cached_token(&self, scopes: &[String]) -> Option<AccessToken> {
        let _ = scopes;
        None
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn token<'a>(
        &'a self,
        scopes: &'a [String],
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        (**self).token(scopes, force_refresh)
    }

    fn token_with_claims<'a>(
        &'a self,
        scopes: &'a [String],
        claims: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        (**self).token_with_claims(scopes, claims)
    }

    fn requires_default_scope(&self) -> bool {
        (**self).requires_default_scope()
    }

    fn cached_token(&self, scopes: &[String]) -> Option<AccessToken> {
        (**self).cached_token(scopes)
    }
}

/// The constructors and the builder of something that attaches tokens (the Tower
/// [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer) and the reqwest middleware),
/// written once: `$target` must be a struct with one field, `auth: BearerAuth`; `$builder`
/// is the builder type this defines; `$what` names the target in the docs.
macro_rules! bearer_auth_builder {
    ($target:ident, $builder:ident, $what:literal) => {
        impl $target {
            /// Tokens for `scopes` (e.g. `["api://{api client id}/.default"]`) from `source`,
            /// sent only to the origin of `api_base_address` (e.g. the
            /// `CallApi:ApiBaseAddress` value `https://weather.example.com/api/`; only its
            /// scheme, host and port count).
            ///
            /// # Errors
            ///
            /// [`ConfigError::Invalid`](crate::error::ConfigError::Invalid) when `api_base_address`
            /// is not an http(s) URL with a host, or when the source requires `/.default`
            /// scopes ([`TokenSource::requires_default_scope`](crate::credentials::TokenSource::requires_default_scope),
            /// an Entra [`ConfidentialClient`](crate::credentials::ConfidentialClient)) and a
            /// scope does not end with it ([`ConfigError::Missing`](crate::error::ConfigError::Missing)
            /// for no scope);
            /// [`ConfigError::InsecureUrl`](crate::error::ConfigError::InsecureUrl) for plain http to
            /// a host other than loopback (see
            #[doc = concat!("[`", stringify!($builder), "::allow_http`]).")]
            pub fn new<T, I, S>(
                source: T,
                scopes: I,
                api_base_address: &str,
            ) -> Result<Self, crate::error::ConfigError>
            where
                T: crate::credentials::TokenSource,
                I: IntoIterator<Item = S>,
                S: Into<String>,
            {
                Self::from_shared(std::sync::Arc::new(source), scopes, api_base_address)
            }

            /// Like [`new`](Self::new), for a source already shared with others (the Tower
            /// layer and the reqwest middleware can share one).
            ///
            /// # Errors
            ///
            /// As [`new`](Self::new).
            pub fn from_shared<I, S>(
                source: std::sync::Arc<dyn crate::credentials::TokenSource>,
                scopes: I,
                api_base_address: &str,
            ) -> Result<Self, crate::error::ConfigError>
            where
                I: IntoIterator<Item = S>,
                S: Into<String>,
            {
                Self::builder(source, scopes)
                    .add_origin(api_base_address)
                    .build()
            }

            /// A builder, for several origins or plain http beyond loopback; at least one
            /// origin must be added.
            pub fn builder<I, S>(
                source: std::sync::Arc<dyn crate::credentials::TokenSource>,
                scopes: I,
            ) -> $builder
            where
                I: IntoIterator<Item = S>,
                S: Into<String>,
            {
                $builder {
                    auth: crate::credentials::BearerAuthBuilder::new(source, scopes),
                }
            }
        }

        #[doc = concat!("Builds the ", $what, " [`", stringify!($target), "`]; from [`", stringify!($target), "::builder`].")]
        #[derive(Debug)]
        #[must_use]
        pub struct $builder {
            auth: crate::credentials::BearerAuthBuilder,
        }

        impl $builder {
            /// Adds an origin the token is sent to, given as a URL
            /// (`https://weather.example.com`, an `ApiBaseAddress`); only its scheme, host and
            /// port count.
            pub fn add_origin(mut self, url: impl Into<String>) -> Self {
                self.auth.add_origin(url.into());
                self
            }

            /// Allows origins on plain http to hosts other than loopback (default false: the
            /// token would cross the network unencrypted). Loopback http is always allowed.
            pub fn allow_http(mut self, allow: bool) -> Self {
                self.auth.allow_http(allow);
                self
            }

            #[doc = concat!("Builds the ", $what, ".")]
            ///
            /// # Errors
            ///
            /// [`ConfigError::Missing`](crate::error::ConfigError::Missing) without an origin;
            /// [`ConfigError::Invalid`](crate::error::ConfigError::Invalid) for an origin that is not
            /// an http(s) URL with a host;
            /// [`ConfigError::InsecureUrl`](crate::error::ConfigError::InsecureUrl) for a plain-http
            /// origin other than loopback unless [`allow_http`](Self::allow_http).
            pub fn build(self) -> Result<$target, crate::error::ConfigError> {
                Ok($target {
                    auth: self.auth.build()?,
                })
            }
        }
    };
}
pub(crate) use bearer_auth_builder;

/// What the tower layer's and the reqwest middleware's builders collect.
#[derive(Debug)]
pub(crate) struct BearerAuthBuilder {
    source: Arc<dyn TokenSource>,
    scopes: Vec<String>,
    origins: Vec<String>,
    allow_http: bool,
}

impl BearerAuthBuilder {
    pub(crate) fn new<I, S>(source: Arc<dyn TokenSource>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            source,
            scopes: scopes.into_iter().map(Into::into).collect(),
            origins: Vec::new(),
            allow_http: false,
        }
    }

    pub(crate) fn add_origin(&mut self, origin: String) {
        self.origins.push(origin);
    }

    pub(crate) fn allow_http(&mut self, allow: bool) {
        self.allow_http = allow;
    }

    pub(crate) fn build(self) -> Result<BearerAuth, ConfigError> {
        if self.origins.is_empty() {
            return Err(ConfigError::Missing {
                key: ORIGIN_KEY,
                hint: "name the API origin (scheme, host and port) the token may be sent to",
            });
        }
        if self.source.requires_default_scope() {
            if self.scopes.is_empty() {
                return Err(ConfigError::Missing {
                    key: SCOPES_KEY,
                    hint: "name the API's scope, e.g. api://{api client id}/.default",
                });
            }
            if let Some(scope) = self
                .scopes
                .iter()
                .find(|s| !s.trim().ends_with("/.default"))
            {
                return Err(ConfigError::Invalid {
                    key: SCOPES_KEY.to_owned(),
                    reason: format!(
                        "`{scope}`: client credential scopes must end with `/.default` (e.g. api://{{api client id}}/.default; IDW10404)"
                    ),
                });
            }
        }
        let origins = self
            .origins
            .iter()
            .map(|origin| parse_origin(origin, self.allow_http))
            .collect::<Result<Vec<_>, _>>()?;
        let spelled = origins.iter().flat_map(spellings).collect();
        Ok(BearerAuth {
            source: self.source,
            scopes: self.scopes.into(),
            origins: origins.into(),
            spelled,
        })
    }
}

/// The origin of an API base URL: http(s) with a host; plain http only to loopback unless
/// `allow_http`. A path, query or fragment is ignored.
fn parse_origin(value: &str, allow_http: bool) -> Result<Origin, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| ConfigError::Invalid {
        key: ORIGIN_KEY.to_owned(),
        reason: format!("`{value}` is not a URL: {e}"),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(ConfigError::InsecureUrl {
                url: url.to_string(),
            })
        }
        other => {
            return Err(ConfigError::Invalid {
                key: ORIGIN_KEY.to_owned(),
                reason: format!("`{value}`: tokens are sent over https (or http), not `{other}`"),
            })
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::Invalid {
            key: ORIGIN_KEY.to_owned(),
            reason: format!("`{value}` has no host"),
        });
    }
    Ok(url.origin())
}

/// The origin of an absolute request URI; `None` for a relative one.
/// How a request URI spells `origin`: its scheme and `host:port`, and `host` alone when the
/// port is the scheme's default.
fn spellings(origin: &Origin) -> Vec<(String, String)> {
    let Origin::Tuple(scheme, host, port) = origin else {
        return Vec::new();
    };
    let mut spelled = vec![(scheme.clone(), format!("{host}:{port}"))];
    if matches!((scheme.as_str(), port), ("https", 443) | ("http", 80)) {
        spelled.push((scheme.clone(), host.to_string()));
    }
    spelled
}

fn uri_origin(uri: &Uri) -> Option<Origin> {
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    Url::parse(&format!("{scheme}://{authority}/"))
        .ok()
        .map(|url| url.origin())
}

/// A token source with the scopes to ask for and the origins the token may go to: the part
/// shared by the tower layer and the reqwest middleware.
#[derive(Clone, Debug)]
pub(crate) struct BearerAuth {
    source: Arc<dyn TokenSource>,
    scopes: Arc<[String]>,
    origins: Arc<[Origin]>,
    /// The origins as a request URI spells them (scheme, `host[:port]`): a URI that matches
    /// one, ignoring ASCII case, is allowed without parsing it.
    spelled: Arc<[(String, String)]>,
}

impl BearerAuth {
    /// Whether a request to `url` gets the token; logs the refusal at debug.
    #[cfg(feature = "reqwest")]
    pub(crate) fn allows_url(&self, url: &Url) -> bool {
        self.allows(Some(url.origin()))
    }

    /// Whether a request to `uri` gets the token (a relative URI never does); logs the
    /// refusal at debug.
    pub(crate) fn allows_uri(&self, uri: &Uri) -> bool {
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            if self.spelled.iter().any(|(s, a)| {
                s.eq_ignore_ascii_case(scheme) && a.eq_ignore_ascii_case(authority.as_str())
            }) {
                return true;
            }
        }
        self.allows(uri_origin(uri))
    }

    fn allows(&self, origin: Option<Origin>) -> bool {
        let allowed = origin
            .as_ref()
            .is_some_and(|origin| self.origins.contains(origin));
        if !allowed {
            tracing::debug!(target: TARGET,
                origin = %origin.map_or_else(|| "<relative URI>".to_owned(), |o| o.ascii_serialization()),
                "the request goes to an origin the access token is not for; sent without the token");
        }
        allowed
    }

    /// The header to retry with after the API's answer, when it refused the token: a
    /// claims challenge (`insufficient_claims`) gets a token with those claims, an
    /// `invalid_token` refusal a (rate-limited) forced refresh. `None` when the answer is
    /// not such a refusal. The caller retries at most once, so a second challenge in a row
    /// goes back to its caller.
    pub(crate) async fn header_after(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Result<HeaderValue, TokenError>> {
        if let Some(claims) = super::claims::claims_challenge(status, headers) {
            tracing::debug!(target: TARGET,
                "the API sent a claims challenge (insufficient_claims); asking for a token with those claims");
            let token = self.source.token_with_claims(&self.scopes, &claims).await;
            return Some(token.and_then(|token| bearer_header(&token)));
        }
        if is_invalid_token(status, headers) {
            return Some(self.header(true).await);
        }
        None
    }

    /// `Bearer …`, marked sensitive.
    pub(crate) async fn header(&self, force_refresh: bool) -> Result<HeaderValue, TokenError> {
        if !force_refresh {
            if let Some(token) = self.source.cached_token(&self.scopes) {
                return bearer_header(&token);
            }
        }
        let token = self.source.token(&self.scopes, force_refresh).await?;
        bearer_header(&token)
    }
}

/// `Bearer …`, marked sensitive; built once per token (a clone after that).
pub(crate) fn bearer_header(token: &AccessToken) -> Result<HeaderValue, TokenError> {
    token.bearer_header(|| {
        let mut value =
            HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| {
                TokenError::BadResponse {
                    reason: "the access token cannot be sent in a header".into(),
                }
            })?;
        value.set_sensitive(true);
        Ok(value)
    })
}

/// Whether a response says the token was refused as invalid (401, or gRPC's `UNAUTHENTICATED`
/// in a trailers-only `200`, with a `Bearer` challenge carrying `error="invalid_token"`):
/// worth one forced refresh and retry.
pub(crate) fn is_invalid_token(status: StatusCode, headers: &HeaderMap) -> bool {
    let refused = status == StatusCode::UNAUTHORIZED
        || (status == StatusCode::OK
            && headers
                .get("grpc-status")
                .is_some_and(|code| code.as_bytes() == b"16"));
    refused
        && headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
            let Ok(value) = value.to_str() else {
                return false;
            };
            let lower = value.to_ascii_lowercase();
            lower.trim_start().starts_with("bearer")
                && (lower.contains("error=\"invalid_token\"")
                    || lower.contains("error=invalid_token"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoTokens;

    impl TokenSource for NoTokens {
        fn token<'a>(
            &'a self,
            _scopes: &'a [String],
            _force_refresh: bool,
        ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
            Box::pin(async {
                Err(TokenError::BadResponse {
                    reason: "none".into(),
                })
            })
        }
    }

    #[test]
    fn request_uris_are_matched_to_the_origins_with_and_without_parsing() {
        let mut builder = BearerAuthBuilder::new(Arc::new(NoTokens), ["api://x/.default"]);
        builder.add_origin("https://Weather.Example.com/api/".to_owned());
        builder.add_origin("http://127.0.0.1:8080".to_owned());
        builder.add_origin("https://[::1]:8443".to_owned());
        let auth = builder.build().unwrap();
        for (uri, allowed) in [
            ("https://weather.example.com/weatherforecast", true),
            ("https://WEATHER.example.com/weatherforecast", true),
            ("HTTPS://weather.example.com:443/x", true),
            ("https://user@weather.example.com/x", true),
            ("http://127.0.0.1:8080/x", true),
            ("https://[::1]:8443/x", true),
            ("https://weather.example.com:444/x", false),
            ("http://weather.example.com/x", false),
            ("https://weather.example.com.evil.org/x", false),
            ("http://127.0.0.1/x", false),
            ("http://127.0.0.1:8081/x", false),
            ("/weatherforecast", false),
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(auth.allows_uri(&uri), allowed, "{uri}");
            // The answer is the one the parsed origin gives.
            let parsed = uri_origin(&uri).is_some_and(|o| auth.origins.contains(&o));
            assert_eq!(parsed, allowed, "{uri} (parsed)");
        }
    }

    #[test]
    fn invalid_token_challenges() {
        struct Case {
            name: &'static str,
            status: u16,
            header: Option<&'static str>,
            expected: bool,
        }
        let cases = [
            Case {
                name: "rfc 6750 invalid_token",
                status: 401,
                header: Some(r#"Bearer error="invalid_token", error_description="expired""#),
                expected: true,
            },
            Case {
                name: "unquoted",
                status: 401,
                header: Some("Bearer error=invalid_token"),
                expected: true,
            },
            Case {
                name: "bare challenge (no token sent)",
                status: 401,
                header: Some("Bearer"),
                expected: false,
            },
            Case {
                name: "insufficient scope",
                status: 401,
                header: Some(r#"Bearer error="insufficient_scope""#),
                expected: false,
            },
            Case {
                name: "no header",
                status: 401,
                header: None,
                expected: false,
            },
            Case {
                name: "403",
                status: 403,
                header: Some(r#"Bearer error="invalid_token""#),
                expected: false,
            },
            Case {
                name: "other scheme",
                status: 401,
                header: Some(r#"Basic realm="x", error="invalid_token""#),
                expected: false,
            },
        ];
        for case in cases {
            let mut headers = HeaderMap::new();
            if let Some(h) = case.header {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(h));
            }
            let status = StatusCode::from_u16(case.status).unwrap();
            assert_eq!(
                is_invalid_token(status, &headers),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    /// gRPC's trailers-only refusal: `200` + `grpc-status: 16` + the challenge; a `200` without
    /// the status, or with another status, is not a refusal.
    #[test]
    fn grpc_unauthenticated_with_invalid_token() {
        let challenge = r#"Bearer error="invalid_token", error_description="expired""#;
        for (grpc_status, expected) in [(Some("16"), true), (Some("7"), false), (None, false)] {
            let mut headers = HeaderMap::new();
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            if let Some(code) = grpc_status {
                headers.insert("grpc-status", HeaderValue::from_static(code));
            }
            assert_eq!(
                is_invalid_token(StatusCode::OK, &headers),
                expected,
                "{grpc_status:?}"
            );
        }
    }
}
