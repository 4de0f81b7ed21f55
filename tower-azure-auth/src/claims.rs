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

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The verified claims of an access token. Cheap to clone.
///
/// `Debug` shows the identifying claims (issuer, audience, client, tenant, roles, expiry),
/// never a signature or the token.
#[derive(Clone)]
pub struct Claims {
    inner: Arc<Inner>,
}

struct Inner {
    raw: Map<String, Value>,
    roles: Vec<String>,
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
        let roles = match raw.get("roles") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(role)) => vec![role.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(role) => Ok(role.clone()),
                    _ => Err(ClaimsError::WrongType {
                        claim: "roles",
                        expected: "an array of strings",
                    }),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ClaimsError::WrongType {
                    claim: "roles",
                    expected: "an array of strings",
                })
            }
        };
        Ok(Self {
            inner: Arc::new(Inner { raw, roles }),
        })
    }

    /// All claims, as sent.
    #[must_use]
    pub fn raw(&self) -> &Map<String, Value> {
        &self.inner.raw
    }

    /// One claim, as sent.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.inner.raw.get(name)
    }

    /// One claim if it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The values of a claim as strings: a string claim gives one value, an array of strings
    /// gives each; numbers and booleans are not converted.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let (single, many) = match self.get(name) {
            Some(Value::String(s)) => (Some(s.as_str()), None),
            Some(Value::Array(items)) => (None, Some(items.iter().filter_map(Value::as_str))),
            _ => (None, None),
        };
        single.into_iter().chain(many.into_iter().flatten())
    }

    /// Whether a claim has exactly this string value (or holds it, if it is an array).
    #[must_use]
    pub fn has_value(&self, name: &str, value: &str) -> bool {
        match self.get(name) {
            Some(Value::String(s)) => s == value,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
            _ => false,
        }
    }

    /// The client application's id: `azp` (v2) or `appid` (v1).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.get_str("azp").or_else(|| self.get_str("appid"))
    }

    /// How the client authenticated: `azpacr` (v2) or `appidacr` (v1).
    #[must_use]
    pub fn client_authentication(&self) -> Option<ClientAuthentication> {
        match self
            .get_str("azpacr")
            .or_else(|| self.get_str("appidacr"))?
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
        self.inner.roles.iter().any(|r| r == role)
    }

    /// The delegated scopes (`scp`, space separated). Empty for app-only tokens.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.get_str("scp")
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
        self.get_str("tid")
    }

    /// The object id of the caller's service principal (`oid`).
    #[must_use]
    pub fn object_id(&self) -> Option<&str> {
        self.get_str("oid")
    }

    /// The subject (`sub`).
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.get_str("sub")
    }

    /// The issuer (`iss`).
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.get_str("iss")
    }

    /// The audiences (`aud`, a string or an array).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.values("aud")
    }

    /// The expiry (`exp`), in seconds since the Unix epoch.
    #[must_use]
    pub fn expires_at(&self) -> Option<u64> {
        numeric_date(self.get("exp")?)
    }

    /// Not before (`nbf`), in seconds since the Unix epoch.
    #[must_use]
    pub fn not_before(&self) -> Option<u64> {
        numeric_date(self.get("nbf")?)
    }

    /// The token version from `ver`.
    #[must_use]
    pub fn version(&self) -> Option<TokenVersion> {
        match self.get_str("ver")? {
            "1.0" => Some(TokenVersion::V1),
            "2.0" => Some(TokenVersion::V2),
            _ => None,
        }
    }

    /// Whether this is an app-only token: `idtyp` is `app` when that optional claim is
    /// configured; otherwise a token without `scp` whose `sub` equals `oid`.
    #[must_use]
    pub fn is_app_only(&self) -> bool {
        match self.get_str("idtyp") {
            Some(kind) => kind == "app",
            None => {
                self.get("scp").is_none()
                    && self.subject().is_some()
                    && self.subject() == self.object_id()
            }
        }
    }
}

impl Claims {
    /// The heap this claims set holds, in bytes as requested from the allocator (its
    /// allocator's own overhead aside): the `Arc`, the claims map's nodes, every key,
    /// string and array, nested ones included, and the parsed roles. Computed from the
    /// values' capacities in one walk; the map's nodes are estimated from its length, as
    /// `serde_json`'s default map (a `BTreeMap`) lays them out.
    pub(crate) fn heap_bytes(&self) -> usize {
        let arc = 2 * size_of::<usize>() + size_of::<Inner>();
        let roles = self.inner.roles.capacity() * size_of::<String>()
            + self.inner.roles.iter().map(String::capacity).sum::<usize>();
        arc + roles + map_heap_bytes(&self.inner.raw)
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

/// A JWT NumericDate: an integer or a float (truncated); negative or non-numeric is `None`.
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
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
