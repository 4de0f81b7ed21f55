//! [`Claims`]: the verified claims of an access token, with typed accessors for the
//! claims Entra ID puts in app-only tokens.
//!
//! ```
//! use tower_azure_auth::claims::{Claims, ClientAuthentication, TokenVersion};
//!
//! let claims = Claims::from_json(serde_json::json!({
//!     "ver": "2.0",
//!     "azp": "11111111-1111-1111-1111-111111111111",
//!     "azpacr": "2",
//!     "roles": ["service-api"],
//!     "tid": "22222222-2222-2222-2222-222222222222",
//! }))
//! .unwrap();
//! assert_eq!(claims.client_id(), Some("11111111-1111-1111-1111-111111111111"));
//! assert_eq!(claims.client_authentication(), Some(ClientAuthentication::Certificate));
//! assert!(claims.has_role("service-api"));
//! assert_eq!(claims.version(), Some(TokenVersion::V2));
//! ```

mod payload;

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

pub(crate) use self::payload::{Date, PayloadError};
use self::payload::{Fields, Text, Texts};

/// The verified claims of an access token. Cheap to clone.
///
/// Built from a token, it keeps the decoded payload and the positions of the claims the
/// validator and the typed accessors read; the full map of claims ([`get`](Self::get),
/// [`raw`](Self::raw)) is parsed from that text the first time it is asked for, once.
///
/// `Debug` shows the identifying claims (issuer, audience, client, tenant, roles, expiry),
/// never a signature or the token.
#[derive(Clone)]
pub struct Claims {
    inner: Arc<Inner>,
}

struct Inner {
    /// The payload's JSON text (as decoded: no copy, its capacity kept).
    payload: String,
    fields: Fields,
    roles: Vec<String>,
    /// Every claim, parsed from `payload` on first use.
    map: OnceLock<Map<String, Value>>,
}

/// Entra token versions (`ver` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenVersion {
    /// `ver: "1.0"`: issuer `https://sts.windows.net/{tid}/`, client in `appid`.
    V1,
    /// `ver: "2.0"`: issuer `https://login.microsoftonline.com/{tid}/v2.0`, client in `azp`.
    V2,
}

/// How the client application authenticated to the authority (`azpacr` in v2 tokens,
/// `appidacr` in v1 tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthentication {
    /// `"0"`: a public client, no credential.
    Public,
    /// `"1"`: a client secret.
    Secret,
    /// `"2"`: a client certificate (or another asymmetric credential, such as a federated
    /// assertion).
    Certificate,
}

impl ClientAuthentication {
    /// The claim value: `"0"`, `"1"` or `"2"`.
    #[must_use]
    pub fn as_claim_value(self) -> &'static str {
        match self {
            Self::Public => "0",
            Self::Secret => "1",
            Self::Certificate => "2",
        }
    }
}

/// Why a claims set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// The payload is not a JSON object.
    #[error("the token's claims are not a JSON object")]
    NotAnObject,
    /// A claim has the wrong JSON type.
    #[error("claim `{claim}` must be {expected}")]
    WrongType {
        /// The claim name.
        claim: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

impl Claims {
    /// Builds claims from a JSON value (the token's payload).
    ///
    /// # Errors
    ///
    /// When the value is not an object, or `roles` is neither a string nor an array of strings.
    pub fn from_json(value: Value) -> Result<Self, ClaimsError> {
        match value {
            Value::Object(map) => Self::from_map(map),
            _ => Err(ClaimsError::NotAnObject),
        }
    }

    /// Builds claims from a JSON object.
    ///
    /// # Errors
    ///
    /// When `roles` is neither a string nor an array of strings.
    pub fn from_map(raw: Map<String, Value>) -> Result<Self, ClaimsError> {
        let payload = serde_json::to_string(&raw).map_err(|_| ClaimsError::NotAnObject)?;
        let claims = Self::from_payload(payload).map_err(|error| match error {
            PayloadError::Claims(error) => error,
            PayloadError::NotAnObject => ClaimsError::NotAnObject,
        })?;
        // The map given is the one `get` would build from the text: keep it.
        let _ = claims.inner.map.set(raw);
        Ok(claims)
    }

    /// Builds claims from a token's decoded payload, which must be one JSON object: the
    /// claims the rules read are found in one pass, the rest is checked and left as text.
    pub(crate) fn from_payload(payload: String) -> Result<Self, PayloadError> {
        let fields = payload::parse(&payload)?;
        let roles = fields
            .roles
            .as_slice()
            .iter()
            .map(|role| role.get(&payload).to_owned())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                payload,
                fields,
                roles,
                map: OnceLock::new(),
            }),
        })
    }

    fn text<'a>(&'a self, text: Option<&'a Text>) -> Option<&'a str> {
        text.map(|text| text.get(&self.inner.payload))
    }

    fn texts<'a>(&'a self, texts: &'a Texts) -> impl Iterator<Item = &'a str> + 'a {
        texts
            .as_slice()
            .iter()
            .map(|text| text.get(&self.inner.payload))
    }

    /// The map of every claim, parsed from the payload on first use. The payload was checked
    /// as strictly as this parse when the claims were built, so it does not fail; were it to,
    /// the map would be empty.
    fn map(&self) -> &Map<String, Value> {
        self.inner
            .map
            .get_or_init(|| serde_json::from_str(&self.inner.payload).unwrap_or_default())
    }

    /// A copy of these claims in an allocation of their own (not sharing the reference
    /// count), without the claims map, which the copy builds again if asked.
    pub(crate) fn deep_copy(&self) -> Self {
        let inner = &*self.inner;
        Self {
            inner: Arc::new(Inner {
                payload: inner.payload.clone(),
                fields: inner.fields.clone(),
                roles: inner.roles.clone(),
                map: OnceLock::new(),
            }),
        }
    }

    /// Whether the full claims map has been built (by [`get`](Self::get) or
    /// [`raw`](Self::raw)): the verified-token cache weighs it then.
    pub(crate) fn map_built(&self) -> bool {
        self.inner.map.get().is_some()
    }

    /// `exp`, `nbf` or `iat` as read from the token (any other name: absent).
    pub(crate) fn date(&self, name: &str) -> Date {
        let fields = &self.inner.fields;
        match name {
            "exp" => fields.exp,
            "nbf" => fields.nbf,
            "iat" => fields.iat,
            _ => Date::Absent,
        }
    }

    /// Whether the token has an `scp` claim at all (of any type, `null` included).
    pub(crate) fn has_scp_claim(&self) -> bool {
        self.inner.fields.has_scp
    }

    /// All claims, as sent.
    #[must_use]
    pub fn raw(&self) -> &Map<String, Value> {
        self.map()
    }

    /// One claim, as sent.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map().get(name)
    }

    /// One claim if it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.inner.fields.text(name) {
            Some(text) => self.text(text.as_ref()),
            None => self.get(name).and_then(Value::as_str),
        }
    }

    /// The values of a claim as strings: a string claim gives one value, an array of strings
    /// gives each; numbers and booleans are not converted.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let fields = &self.inner.fields;
        let (single, texts, many): (Option<&str>, &[Text], &[Value]) = match name {
            "aud" => (None, fields.aud.as_slice(), &[]),
            "roles" => (None, fields.roles.as_slice(), &[]),
            _ => match fields.text(name) {
                Some(text) => (self.text(text.as_ref()), &[], &[]),
                None => match self.get(name) {
                    Some(Value::String(s)) => (Some(s.as_str()), &[], &[]),
                    Some(Value::Array(items)) => (None, &[], items.as_slice()),
                    _ => (None, &[], &[]),
                },
            },
        };
        let payload = &self.inner.payload;
        single
            .into_iter()
            .chain(texts.iter().map(move |text| text.get(payload)))
            .chain(many.iter().filter_map(Value::as_str))
    }

    /// Whether a claim has exactly this string value (or holds it, if it is an array).
    #[must_use]
    pub fn has_value(&self, name: &str, value: &str) -> bool {
        self.values(name).any(|v| v == value)
    }

    /// The client application's id: `azp` (v2) or `appid` (v1).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.text(self.inner.fields.azp.as_ref())
            .or_else(|| self.text(self.inner.fields.appid.as_ref()))
    }

    /// How the client authenticated: `azpacr` (v2) or `appidacr` (v1).
    #[must_use]
    pub fn client_authentication(&self) -> Option<ClientAuthentication> {
        match self
            .get_str("azpacr")
            .or_else(|| self.text(self.inner.fields.appidacr.as_ref()))?
        {
            "0" => Some(ClientAuthentication::Public),
            "1" => Some(ClientAuthentication::Secret),
            "2" => Some(ClientAuthentication::Certificate),
            _ => None,
        }
    }

    /// The application roles (`roles`): for client-credentials tokens, the application
    /// permissions granted to the caller.
    #[must_use]
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// Whether `roles` holds this role.
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.texts(&self.inner.fields.roles).any(|r| r == role)
    }

    /// The delegated scopes (`scp`, space separated). Empty for app-only tokens.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.text(self.inner.fields.scp.as_ref())
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether `scp` holds this scope.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The tenant (`tid`).
    #[must_use]
    pub fn tenant_id(&self) -> Option<&str> {
        self.text(self.inner.fields.tid.as_ref())
    }

    /// The object id of the caller's service principal (`oid`).
    #[must_use]
    pub fn object_id(&self) -> Option<&str> {
        self.text(self.inner.fields.oid.as_ref())
    }

    /// The subject (`sub`).
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.text(self.inner.fields.sub.as_ref())
    }

    /// The issuer (`iss`).
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.text(self.inner.fields.iss.as_ref())
    }

    /// The audiences (`aud`, a string or an array).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.texts(&self.inner.fields.aud)
    }

    /// The expiry (`exp`), in seconds since the Unix epoch.
    #[must_use]
    pub fn expires_at(&self) -> Option<u64> {
        self.inner.fields.exp.at()
    }

    /// Not before (`nbf`), in seconds since the Unix epoch.
    #[must_use]
    pub fn not_before(&self) -> Option<u64> {
        self.inner.fields.nbf.at()
    }

    /// The token version from `ver`.
    #[must_use]
    pub fn version(&self) -> Option<TokenVersion> {
        match self.text(self.inner.fields.ver.as_ref())? {
            "1.0" => Some(TokenVersion::V1),
            "2.0" => Some(TokenVersion::V2),
            _ => None,
        }
    }

    /// Whether this is an app-only token: `idtyp` is `app` when that optional claim is
    /// configured; otherwise a token without `scp` whose `sub` equals `oid`.
    #[must_use]
    pub fn is_app_only(&self) -> bool {
        match self.text(self.inner.fields.idtyp.as_ref()) {
            Some(kind) => kind == "app",
            None => {
                !self.inner.fields.has_scp
                    && self.subject().is_some()
                    && self.subject() == self.object_id()
            }
        }
    }
}

impl Claims {
    /// The heap this claims set holds, in bytes as requested from the allocator (its
    /// allocator's own overhead aside): the `Arc`, the payload's text, the copies of escaped
    /// strings and the arrays of the fields, the parsed roles and, once built, the claims
    /// map's nodes, every key, string and array, nested ones included. The map's nodes are
    /// estimated from its length, as `serde_json`'s default map (a `BTreeMap`) lays them out.
    pub(crate) fn heap_bytes(&self) -> usize {
        let inner = &*self.inner;
        let arc = 2 * size_of::<usize>() + size_of::<Inner>();
        let roles = inner.roles.capacity() * size_of::<String>()
            + inner.roles.iter().map(String::capacity).sum::<usize>();
        arc + inner.payload.capacity()
            + inner.fields.heap_bytes()
            + roles
            + inner.map.get().map_or(0, map_heap_bytes)
    }
}

/// The heap held by a JSON object: its nodes, keys and values.
fn map_heap_bytes(map: &Map<String, Value>) -> usize {
    // A B-tree node holds up to 11 entries: one leaf up to 11 entries, then (nodes split
    // half full, then fill up) one leaf per 7 entries, and one internal node (a leaf plus
    // 12 edges) per 6 leaves; measured against the allocator, this errs on the high side.
    const CAPACITY: usize = 11;
    let leaf = (size_of::<usize>() + 4 + CAPACITY * (size_of::<String>() + size_of::<Value>()))
        .next_multiple_of(size_of::<usize>());
    let internal = leaf + (CAPACITY + 1) * size_of::<usize>();
    let nodes = match map.len() {
        0 => 0,
        1..=CAPACITY => leaf,
        len => {
            let leaves = len.div_ceil(7);
            leaves * leaf + leaves.div_ceil(6) * internal
        }
    };
    nodes
        + map
            .iter()
            .map(|(key, value)| key.capacity() + value_heap_bytes(value))
            .sum::<usize>()
}

/// The heap held by a JSON value beyond its own slot.
fn value_heap_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(text) => text.capacity(),
        Value::Array(items) => {
            items.capacity() * size_of::<Value>()
                + items.iter().map(value_heap_bytes).sum::<usize>()
        }
        Value::Object(map) => map_heap_bytes(map),
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.issuer())
            .field("aud", &self.audiences().collect::<Vec<_>>())
            .field("client_id", &self.client_id())
            .field("client_authentication", &self.client_authentication())
            .field("tid", &self.tenant_id())
            .field("roles", &self.roles())
            .field("exp", &self.expires_at())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors() {
        struct Case {
            name: &'static str,
            claims: Value,
            client_id: Option<&'static str>,
            auth: Option<ClientAuthentication>,
            roles: &'static [&'static str],
            version: Option<TokenVersion>,
        }
        let cases = [
            Case {
                name: "v2 app token",
                claims: json!({"ver":"2.0","azp":"c","azpacr":"2","roles":["a","b"]}),
                client_id: Some("c"),
                auth: Some(ClientAuthentication::Certificate),
                roles: &["a", "b"],
                version: Some(TokenVersion::V2),
            },
            Case {
                name: "v1 app token with a secret",
                claims: json!({"ver":"1.0","appid":"c1","appidacr":"1","roles":"x"}),
                client_id: Some("c1"),
                auth: Some(ClientAuthentication::Secret),
                roles: &["x"],
                version: Some(TokenVersion::V1),
            },
            Case {
                name: "nothing",
                claims: json!({}),
                client_id: None,
                auth: None,
                roles: &[],
                version: None,
            },
            Case {
                name: "unknown acr value",
                claims: json!({"azpacr":"9", "ver": "3.0"}),
                client_id: None,
                auth: None,
                roles: &[],
                version: None,
            },
        ];
        for case in cases {
            let claims = Claims::from_json(case.claims).unwrap();
            assert_eq!(claims.client_id(), case.client_id, "{}", case.name);
            assert_eq!(claims.client_authentication(), case.auth, "{}", case.name);
            assert_eq!(claims.roles(), case.roles, "{}", case.name);
            assert_eq!(claims.version(), case.version, "{}", case.name);
        }
    }

    #[test]
    fn the_claims_map_is_built_on_first_use_only() {
        let claims = Claims::from_payload(
            r#"{"aud":"a","roles":["r"],"azp":"c","exp":5,"x":{"y":[1]}}"#.to_owned(),
        )
        .unwrap();
        assert!(!claims.map_built());
        assert!(claims.has_role("r"));
        assert_eq!(claims.audiences().collect::<Vec<_>>(), ["a"]);
        assert_eq!(claims.client_id(), Some("c"));
        assert_eq!(claims.get_str("azp"), Some("c"));
        assert_eq!(claims.expires_at(), Some(5));
        assert!(claims.has_value("aud", "a"));
        assert!(!claims.map_built(), "the typed accessors read no map");
        let before = claims.heap_bytes();
        assert_eq!(claims.get("x"), Some(&json!({"y": [1]})));
        assert!(claims.map_built());
        assert!(
            claims.heap_bytes() > before,
            "the map is weighed once built"
        );

        let copy = claims.deep_copy();
        assert!(!Arc::ptr_eq(&copy.inner, &claims.inner));
        assert!(!copy.map_built());
        assert_eq!(copy.client_id(), Some("c"));
        assert_eq!(copy.raw(), claims.raw());
    }

    #[test]
    fn roles_of_the_wrong_type_are_refused() {
        assert!(Claims::from_json(json!({"roles": [1]})).is_err());
        assert!(Claims::from_json(json!({"roles": {"a": 1}})).is_err());
        assert!(Claims::from_json(json!([1])).is_err());
    }

    #[test]
    fn scopes_and_audiences() {
        let claims =
            Claims::from_json(json!({"scp":"read  write","aud":["a","b"],"exp":1.5e9})).unwrap();
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["read", "write"]);
        assert!(claims.has_scope("write"));
        assert_eq!(claims.audiences().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(claims.expires_at(), Some(1_500_000_000));
        assert!(claims.has_value("aud", "b"));
        assert!(!claims.has_value("aud", "c"));
    }
}
