//! [`Environment`]: where credential sources read environment variables (the process
//! environment, or a map in tests).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A view of environment variables, read by [`ManagedIdentityCredential`](crate::credentials::ManagedIdentityCredential),
/// [`WorkloadIdentity`](crate::credentials::WorkloadIdentity) and
/// [`CredentialDescriptions`](crate::credentials::CredentialDescriptions) (`IDENTITY_ENDPOINT`,
/// `AZURE_FEDERATED_TOKEN_FILE`…). The process environment by default; a fixed map lets a
/// test run sources side by side without touching the process's variables.
///
/// ```
/// use tower_azure_auth::credentials::Environment;
///
/// let env = Environment::from_pairs([("AZURE_CLIENT_ID", "0b7c5d2e-0000-4000-8000-000000000002")]);
/// assert_eq!(env.get("AZURE_CLIENT_ID").as_deref(), Some("0b7c5d2e-0000-4000-8000-000000000002"));
/// assert_eq!(env.get("AZURE_TENANT_ID"), None);
/// ```
#[derive(Clone)]
pub struct Environment {
    lookup: Arc<Lookup>,
    process: bool,
}

impl Environment {
    /// The process environment (`std::env::var`).
    #[must_use]
    pub fn process() -> Self {
        Self {
            lookup: Arc::new(|name| std::env::var(name).ok()),
            process: true,
        }
    }

    /// Only these variables.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            lookup: Arc::new(move |name| map.get(name).cloned()),
            process: false,
        }
    }

    /// Variables from a function.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
            process: false,
        }
    }

    /// A variable's value; empty values count as unset.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }
}

impl Default for Environment {
    fn default() -> Self {
        Self::process()
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.process {
            "Environment(process)"
        } else {
            "Environment(custom)"
        })
    }
}
