//! [`RoutePolicies`]: which policy applies to which route, like ASP.NET Core's endpoint
//! metadata (`[Authorize]`, `[Authorize(Policy = …)]`, `[AllowAnonymous]`) plus the default and
//! fallback policies of [`Policies`]. HTTP-stack-agnostic: the Tower
//! [`AuthorizeLayer`](crate::layers::AuthorizeLayer) and the actix-web `Authorize` middleware
//! look routes up here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use super::policies::Policies;
use super::policy::Policy;
use super::LOG_TARGET;
use crate::error::ConfigError;

/// How many distinct unlisted route patterns are remembered to warn about each once (the set
/// starts over beyond that; a router has far fewer routes).
const MAX_WARNED: usize = 256;

/// What a route declares.
#[derive(Debug, Clone)]
enum Rule {
    /// Its own policy (`[Authorize(Policy = "…")]`).
    Policy(Policy),
    /// Authorization without a policy name (`[Authorize]`): the default policy.
    Default,
    /// No authorization (`[AllowAnonymous]`).
    Anonymous,
}

/// The authorization a route gets, as [`RoutePolicies::for_route`] decides it.
///
/// Not `#[non_exhaustive]` on purpose: an adapter must handle every case, so that a new one
/// cannot fall through a wildcard arm into "open".
#[derive(Debug, Clone, Copy)]
pub enum RouteAuthorization<'a> {
    /// The route is declared anonymous: no policy, and a missing or refused token is ignored
    /// (as ASP.NET Core's `[AllowAnonymous]`).
    Anonymous,
    /// The caller must be authenticated and satisfy this policy: the route's own, the default
    /// policy (a route declared with [`RoutePolicies::default_for`]) or the fallback policy (a
    /// route not listed, or a path that matches no route).
    Policy(&'a Policy),
    /// The route is not listed and no fallback policy is configured: it is left as it is
    /// (ASP.NET Core's default), open unless something else protects it.
    Unprotected,
}

/// The route table of a router-wide authorization layer: each route, by its pattern, to its own
/// policy, the default policy or none (anonymous); every other route and every unmatched path
/// to the fallback policy of [`Policies`] ([`PoliciesBuilder::fallback_policy`]), or left as
/// it is when there is no fallback. Cheap to clone.
///
/// Routes are keyed by the pattern the router matched (axum's `MatchedPath`, e.g.
/// `/users/{id}`; actix-web's `match_pattern()`, e.g. `/users/{id}`), or by the exact path
/// where the router gives no pattern. A later entry for the same pattern replaces the earlier
/// one.
///
/// ```
/// use tower_azure_auth::authorization::{Policies, Policy, RouteAuthorization, RoutePolicies};
///
/// let policies = Policies::builder()
///     .add_policy("ValidateAccessTokenPolicy", Policy::builder().require_role("service-api").build())
///     .fallback_policy(Policy::builder().require_role("reader").build())
///     .build();
/// let routes = RoutePolicies::new(&policies)
///     .route("/weatherforecast", "ValidateAccessTokenPolicy")?
///     .anonymous("/healthz");
///
/// let own = routes.for_route(Some("/weatherforecast"), "/weatherforecast");
/// assert!(matches!(own, RouteAuthorization::Policy(p) if p.name() == Some("ValidateAccessTokenPolicy")));
/// assert!(matches!(routes.for_route(Some("/healthz"), "/healthz"), RouteAuthorization::Anonymous));
/// // not listed, or no route at all: the fallback policy
/// assert!(matches!(routes.for_route(Some("/other"), "/other"), RouteAuthorization::Policy(p) if p.name().is_none()));
/// assert!(matches!(routes.for_route(None, "/nothing-here"), RouteAuthorization::Policy(_)));
/// # Ok::<(), tower_azure_auth::ConfigError>(())
/// ```
///
/// [`PoliciesBuilder::fallback_policy`]: super::PoliciesBuilder::fallback_policy
#[derive(Clone)]
pub struct RoutePolicies {
    policies: Policies,
    routes: Arc<HashMap<Box<str>, Rule>>,
    default: Policy,
    fallback: Option<Policy>,
    warned: Arc<RwLock<HashSet<Box<str>>>>,
}

impl RoutePolicies {
    /// An empty table over the named, default and fallback policies (and the handlers) of
    /// `policies`: until routes are listed, every route gets the fallback policy, or is left as
    /// it is when `policies` has none.
    #[must_use]
    pub fn new(policies: &Policies) -> Self {
        Self {
            policies: policies.clone(),
            routes: Arc::default(),
            default: policies.default_policy(),
            fallback: policies.fallback_policy().cloned(),
            warned: Arc::default(),
        }
    }

    fn with(mut self, pattern: impl Into<String>, rule: Rule) -> Self {
        Arc::make_mut(&mut self.routes).insert(pattern.into().into_boxed_str(), rule);
        self
    }

    /// The route `pattern` requires the policy registered under `name`
    /// (`[Authorize(Policy = name)]`), and only that one: the fallback does not apply to it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name, so that a typo fails when
    /// the application is built.
    pub fn route(self, pattern: impl Into<String>, name: &str) -> Result<Self, ConfigError> {
        let policy = self.policies.policy(name)?;
        Ok(self.with(pattern, Rule::Policy(policy)))
    }

    /// The route `pattern` requires `policy`, an inline policy decided with the handlers of
    /// the registry.
    #[must_use]
    pub fn route_policy(self, pattern: impl Into<String>, policy: Policy) -> Self {
        self.with(pattern, Rule::Policy(policy))
    }

    /// The route `pattern` requires the default policy (`[Authorize]` without a policy name;
    /// [`Policy::authenticated`] unless the registry sets another).
    #[must_use]
    pub fn default_for(self, pattern: impl Into<String>) -> Self {
        self.with(pattern, Rule::Default)
    }

    /// The route `pattern` is open (`[AllowAnonymous]`): no policy, not even the fallback,
    /// and an authentication failure is ignored there.
    #[must_use]
    pub fn anonymous(self, pattern: impl Into<String>) -> Self {
        self.with(pattern, Rule::Anonymous)
    }

    /// The registry the policies are decided with (its handlers and PII setting).
    #[must_use]
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The fallback policy, if the registry has one.
    #[must_use]
    pub fn fallback_policy(&self) -> Option<&Policy> {
        self.fallback.as_ref()
    }

    /// The authorization of a request: by `matched_pattern`, the pattern of the route the
    /// router matched, or by the exact `path` when the router gives none (no route matched,
    /// or a router without patterns).
    ///
    /// A matched route that is not listed while no fallback policy is configured is open;
    /// that is logged once per pattern with `tracing::warn!`, as it is usually a typo in the
    /// table.
    #[must_use]
    pub fn for_route(&self, matched_pattern: Option<&str>, path: &str) -> RouteAuthorization<'_> {
        let key = matched_pattern.unwrap_or(path);
        match self.routes.get(key) {
            Some(Rule::Policy(policy)) => RouteAuthorization::Policy(policy),
            Some(Rule::Default) => RouteAuthorization::Policy(&self.default),
            Some(Rule::Anonymous) => RouteAuthorization::Anonymous,
            None => {
                if let Some(fallback) = &self.fallback {
                    RouteAuthorization::Policy(fallback)
                } else {
                    if let Some(pattern) = matched_pattern {
                        self.warn_unlisted(pattern);
                    }
                    RouteAuthorization::Unprotected
                }
            }
        }
    }

    /// What `key` itself declares, without the fallback: `None` when it is not listed.
    pub(crate) fn declared(&self, key: &str) -> Option<RouteAuthorization<'_>> {
        self.routes.get(key).map(|rule| match rule {
            Rule::Policy(policy) => RouteAuthorization::Policy(policy),
            Rule::Default => RouteAuthorization::Policy(&self.default),
            Rule::Anonymous => RouteAuthorization::Anonymous,
        })
    }

    fn warn_unlisted(&self, pattern: &str) {
        // A poisoned lock only loses the "once": warn again rather than panic.
        if self
            .warned
            .read()
            .is_ok_and(|warned| warned.contains(pattern))
        {
            return;
        }
        if let Ok(mut warned) = self.warned.write() {
            if !warned.insert(pattern.into()) {
                return;
            }
            if warned.len() > MAX_WARNED {
                warned.clear();
            }
        }
        tracing::warn!(
            target: LOG_TARGET,
            route = pattern,
            "route not listed in the authorization route table and no fallback policy is set: it is open (list it with `anonymous` to say so)"
        );
    }
}

impl fmt::Debug for RoutePolicies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes: Vec<(&str, String)> = self
            .routes
            .iter()
            .map(|(pattern, rule)| {
                let rule = match rule {
                    Rule::Policy(policy) => policy.name().unwrap_or("(inline policy)").to_owned(),
                    Rule::Default => String::from("(default policy)"),
                    Rule::Anonymous => String::from("(anonymous)"),
                };
                (&**pattern, rule)
            })
            .collect();
        routes.sort();
        f.debug_struct("RoutePolicies")
            .field("routes", &routes)
            .field("default", &self.default)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// The route-table builder methods of a router-wide authorization layer, written once: the
/// Tower [`AuthorizeLayer`](crate::layers::AuthorizeLayer) and the actix-web `AuthorizeLayer`
/// expand it in an `impl` block of a type with a `routes: RoutePolicies` field, so both
/// offer the same methods with the same documentation, each delegating to [`RoutePolicies`].
/// Not part of the public API (hidden, for the actix crate).
#[doc(hidden)]
#[macro_export]
macro_rules! __route_table_builder_methods {
    () => {
        /// The route `pattern` requires the policy registered under `name`, and only that
        /// one (`[Authorize(Policy = name)]`).
        ///
        /// # Errors
        ///
        /// [`ConfigError::UnknownPolicy`](crate::ConfigError::UnknownPolicy) when no policy
        /// has that name.
        pub fn route(
            self,
            pattern: impl Into<String>,
            name: &str,
        ) -> Result<Self, $crate::ConfigError> {
            Ok(Self {
                routes: self.routes.route(pattern, name)?,
                ..self
            })
        }

        /// The route `pattern` requires an inline `policy`, decided with the registry's
        /// handlers.
        #[must_use]
        pub fn route_policy(
            self,
            pattern: impl Into<String>,
            policy: $crate::authorization::Policy,
        ) -> Self {
            Self {
                routes: self.routes.route_policy(pattern, policy),
                ..self
            }
        }

        /// The route `pattern` requires the default policy (`[Authorize]`).
        #[must_use]
        pub fn default_for(self, pattern: impl Into<String>) -> Self {
            Self {
                routes: self.routes.default_for(pattern),
                ..self
            }
        }

        /// The route `pattern` is anonymous (`[AllowAnonymous]`): no policy, and
        /// authentication failures are ignored there.
        #[must_use]
        pub fn anonymous(self, pattern: impl Into<String>) -> Self {
            Self {
                routes: self.routes.anonymous(pattern),
                ..self
            }
        }

        /// The route table.
        #[must_use]
        pub fn routes(&self) -> &$crate::authorization::RoutePolicies {
            &self.routes
        }
    };
}
