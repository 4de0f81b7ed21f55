//! What a requirement or a handler sees: the caller's claims and, when there is one, the
//! request (borrowed `http` 1 values, so any HTTP stack can provide them).

use http::{request::Parts, Extensions, HeaderMap, Method, Request, Uri};

use crate::claims::Claims;

/// The facts of the request being authorized, borrowed from it.
///
/// Built from a `http` 1 request ([`from_request`](Self::from_request)), its
/// [`Parts`](Self::from_parts), or from the four pieces ([`new`](Self::new)), which is what an
/// adapter for another HTTP stack (actix-web is on `http` 0.2) converts its request into.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RequestFacts<'a> {
    /// Facts from borrowed pieces.
    pub fn new(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        extensions: &'a Extensions,
    ) -> Self {
        Self {
            method,
            uri,
            headers,
            extensions,
        }
    }

    /// Facts from the parts of a request.
    pub fn from_parts(parts: &'a Parts) -> Self {
        Self::new(&parts.method, &parts.uri, &parts.headers, &parts.extensions)
    }

    /// Facts from a request (its body is not looked at).
    pub fn from_request<B>(request: &'a Request<B>) -> Self {
        Self::new(
            request.method(),
            request.uri(),
            request.headers(),
            request.extensions(),
        )
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The URI, as received (usually origin-form: path and query).
    #[must_use]
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The path of the URI.
    #[must_use]
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// The headers.
    #[must_use]
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions (where the Tower layers find [`Claims`], and where earlier
    /// middleware may have put anything a handler needs).
    #[must_use]
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

/// The input of an authorization decision: the authenticated caller's [`Claims`] and, when
/// authorizing an HTTP request, the [`RequestFacts`].
///
/// Without request facts (a queue message, a gRPC call authorized by hand), requirements that
/// look at the request see `None`.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationContext<'a> {
    claims: &'a Claims,
    request: Option<RequestFacts<'a>>,
}

impl<'a> AuthorizationContext<'a> {
    /// A context with claims only.
    #[must_use]
    pub fn new(claims: &'a Claims) -> Self {
        Self {
            claims,
            request: None,
        }
    }

    /// A context for an HTTP request.
    #[must_use]
    pub fn for_request(claims: &'a Claims, request: RequestFacts<'a>) -> Self {
        Self {
            claims,
            request: Some(request),
        }
    }

    /// The caller's verified claims.
    #[must_use]
    pub fn claims(&self) -> &'a Claims {
        self.claims
    }

    /// The request, if there is one.
    #[must_use]
    pub fn request(&self) -> Option<RequestFacts<'a>> {
        self.request
    }

    /// The request method, if there is a request.
    #[must_use]
    pub fn method(&self) -> Option<&'a Method> {
        self.request.map(|r| r.method)
    }

    /// The request URI, if there is a request.
    #[must_use]
    pub fn uri(&self) -> Option<&'a Uri> {
        self.request.map(|r| r.uri)
    }

    /// The request path, if there is a request.
    #[must_use]
    pub fn path(&self) -> Option<&'a str> {
        self.request.map(|r| r.path())
    }

    /// The request headers, if there is a request.
    #[must_use]
    pub fn headers(&self) -> Option<&'a HeaderMap> {
        self.request.map(|r| r.headers)
    }

    /// The request extensions, if there is a request.
    #[must_use]
    pub fn extensions(&self) -> Option<&'a Extensions> {
        self.request.map(|r| r.extensions)
    }
}
