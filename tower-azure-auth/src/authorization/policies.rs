//! [`Policies`]: the registry of named policies, the default and fallback policies and the
//! handlers; and the evaluation of a policy.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use super::context::AuthorizationContext;
use super::failure::{AuthorizationFailure, AuthorizationResult, FailedRequirement};
use super::handler::{AuthorizationHandler, Erased, ErasedHandler, HandlerOutcome};
use super::policy::Policy;
use super::requirement::{Decision, Requirement};
use super::LOG_TARGET;
use crate::error::ConfigError;
use crate::telemetry::Telemetry;

/// The authorization configuration of an application, like ASP.NET Core's
/// `AuthorizationOptions` plus the registered `IAuthorizationHandler`s. Cheap to clone.
///
/// ```
/// use tower_azure_auth::authorization::{AuthorizationContext, Policies, Policy};
/// use tower_azure_auth::claims::Claims;
///
/// let policies = Policies::builder()
///     .add_policy("Reader", Policy::builder().require_role("read").build())
///     .build();
/// let reader = policies.policy("Reader").unwrap();
///
/// let claims = Claims::from_json(serde_json::json!({ "roles": ["read"] })).unwrap();
/// let ctx = AuthorizationContext::new(&claims);
/// assert_eq!(policies.authorize_sync(&reader, &ctx), Some(Ok(())));
///
/// // a misspelt name is a configuration error, found at startup
/// assert!(policies.policy("Raeder").is_err());
/// ```
#[derive(Clone)]
pub struct Policies {
    inner: Arc<Inner>,
}

impl Default for Policies {
    /// No policies, no handlers; decisions recorded with the global meter provider (feature
    /// `opentelemetry`).
    fn default() -> Self {
        Self::builder().build()
    }
}

#[derive(Default)]
struct Inner {
    /// Keyed by the lowercase name: lookups ignore case, as in ASP.NET Core.
    policies: BTreeMap<String, Policy>,
    default: Option<Policy>,
    fallback: Option<Policy>,
    handlers: HashMap<TypeId, Vec<Arc<dyn ErasedHandler>>>,
    pii_logging: bool,
    /// Records decisions (policy name, outcome).
    telemetry: Telemetry,
}

/// Builds [`Policies`].
#[must_use]
#[derive(Default)]
pub struct PoliciesBuilder {
    inner: Inner,
    #[cfg(feature = "opentelemetry")]
    meter: Option<opentelemetry::metrics::Meter>,
}

impl PoliciesBuilder {
    /// Registers a policy under a name (`options.AddPolicy(name, …)`); names compare without
    /// regard to case, and a later policy with the same name replaces the earlier one.
    pub fn add_policy(mut self, name: impl Into<String>, policy: Policy) -> Self {
        let name = name.into();
        self.inner
            .policies
            .insert(name.to_lowercase(), policy.named(&name));
        self
    }

    /// The policy for endpoints that ask for authorization without naming a policy
    /// (`[Authorize]`): [`RequirePolicyLayer::default_policy`](crate::layers::RequirePolicyLayer::default_policy)
    /// and the routes listed with [`RoutePolicies::default_for`](super::RoutePolicies::default_for).
    /// Defaults to [`Policy::authenticated`].
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.inner.default = Some(policy);
        self
    }

    /// The policy for endpoints that declare none, applied by the router-wide
    /// [`AuthorizeLayer`](crate::layers::AuthorizeLayer) (and actix-web's `Authorize`) to every
    /// route not listed in its route table and to every path that matches no route. Defaults
    /// to none: such endpoints are left as they are (open unless something else protects
    /// them).
    ///
    /// Only a router-wide authorization layer applies it; per-route layers
    /// ([`RequirePolicyLayer`](crate::layers::RequirePolicyLayer)) apply their own policy.
    pub fn fallback_policy(mut self, policy: Policy) -> Self {
        self.inner.fallback = Some(policy);
        self
    }

    /// Registers a handler for the requirements of type `H::Requirement`. Several handlers may
    /// serve one requirement type.
    pub fn add_handler<H: AuthorizationHandler>(mut self, handler: H) -> Self {
        self.inner
            .handlers
            .entry(TypeId::of::<H::Requirement>())
            .or_default()
            .push(Arc::new(Erased(handler)));
        self
    }

    /// Whether failure messages (logs and the 403 body) may show the caller's claim values
    /// (`AzureAd:EnablePiiLogging`). Off by default.
    pub fn pii_logging(mut self, enabled: bool) -> Self {
        self.inner.pii_logging = enabled;
        self
    }

    /// Records authorization decisions with this meter (feature `opentelemetry`; default:
    /// the global meter provider's, taken at [`build`](Self::build)):
    /// `tower_azure_auth.authorization.decisions` by `policy` and `outcome`.
    #[cfg(feature = "opentelemetry")]
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The registry.
    #[must_use]
    pub fn build(self) -> Policies {
        let mut inner = self.inner;
        #[cfg(feature = "opentelemetry")]
        let telemetry = match &self.meter {
            Some(meter) => Telemetry::with_meter(meter),
            None => Telemetry::global(),
        };
        #[cfg(not(feature = "opentelemetry"))]
        let telemetry = Telemetry::global();
        inner.telemetry = telemetry;
        Policies {
            inner: Arc::new(inner),
        }
    }
}

impl Policies {
    /// A builder.
    pub fn builder() -> PoliciesBuilder {
        PoliciesBuilder::default()
    }

    /// The policy registered under `name` (case-insensitive).
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownPolicy`] when no policy has that name. Resolve names when the
    /// application is built, so that a typo fails at startup, not with a 500 per request.
    pub fn policy(&self, name: &str) -> Result<Policy, ConfigError> {
        match self.inner.policies.get(&name.to_lowercase()) {
            Some(policy) => Ok(policy.clone()),
            None => Err(ConfigError::UnknownPolicy {
                name: name.to_owned(),
                known: self.names().collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The names of the registered policies.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.policies.values().filter_map(Policy::name)
    }

    /// The default policy (for "authorize" without a policy name).
    pub fn default_policy(&self) -> Policy {
        self.inner
            .default
            .clone()
            .unwrap_or_else(Policy::authenticated)
    }

    /// The fallback policy (for endpoints that declare none); `None` leaves them open.
    #[must_use]
    pub fn fallback_policy(&self) -> Option<&Policy> {
        self.inner.fallback.as_ref()
    }

    /// Whether failure messages may show the caller's claim values.
    #[must_use]
    pub fn pii_logging(&self) -> bool {
        self.inner.pii_logging
    }

    fn handlers_for(&self, requirement: &dyn Requirement) -> &[Arc<dyn ErasedHandler>] {
        let type_id = (requirement as &dyn Any).type_id();
        self.inner.handlers.get(&type_id).map_or(&[], Vec::as_slice)
    }

    /// Evaluates `policy` synchronously, when every requirement decides itself or is served
    /// only by handlers that decide synchronously. This path does not allocate when the
    /// caller is authorized.
    ///
    /// Returns `None` when a handler must be awaited: call [`authorize`](Self::authorize).
    #[must_use]
    pub fn authorize_sync(
        &self,
        policy: &Policy,
        ctx: &AuthorizationContext<'_>,
    ) -> Option<AuthorizationResult> {
        let mut failed = Vec::new();
        for requirement in policy.requirements() {
            let handlers = self.handlers_for(requirement);
            let mut tally = Tally::new(requirement.decide(ctx));
            for handler in handlers {
                tally.add(handler.decide_sync(ctx, requirement)?);
            }
            tally.finish(
                requirement,
                ctx,
                handlers.len(),
                self.pii_logging(),
                &mut failed,
            );
        }
        let result = conclude(policy, failed);
        self.inner
            .telemetry
            .authorization(policy.name(), result.is_ok());
        Some(result)
    }

    /// Evaluates `policy`, awaiting asynchronous handlers (in registration order). Every
    /// handler runs even after a failure, so that the failure lists every unmet requirement.
    pub async fn authorize(
        &self,
        policy: &Policy,
        ctx: &AuthorizationContext<'_>,
    ) -> AuthorizationResult {
        let mut failed = Vec::new();
        for requirement in policy.requirements() {
            self.evaluate(requirement, ctx, self.pii_logging(), &mut failed)
                .await;
        }
        let result = conclude(policy, failed);
        self.inner
            .telemetry
            .authorization(policy.name(), result.is_ok());
        result
    }
}

impl Policies {
    /// Evaluates one requirement with its handlers (in registration order), pushing its
    /// failure, if any, onto `failed`: [`authorize`](Self::authorize)'s step, shared with the
    /// diagnosis ([`Policies::diagnose`]).
    pub(crate) async fn evaluate(
        &self,
        requirement: &dyn Requirement,
        ctx: &AuthorizationContext<'_>,
        pii: bool,
        failed: &mut Vec<FailedRequirement>,
    ) {
        let handlers = self.handlers_for(requirement);
        let mut tally = Tally::new(requirement.decide(ctx));
        for handler in handlers {
            let outcome = match handler.decide_sync(ctx, requirement) {
                Some(outcome) => outcome,
                None => handler.decide(ctx, requirement).await,
            };
            tally.add(outcome);
        }
        tally.finish(requirement, ctx, handlers.len(), pii, failed);
    }
}

/// Decides one self-deciding requirement alone (no handler, no PII), as an inline policy of
/// that one requirement does (what the single-requirement layers build); for the tests.
#[cfg(test)]
pub(crate) fn authorize_requirement(
    requirement: &dyn Requirement,
    ctx: &AuthorizationContext<'_>,
) -> AuthorizationResult {
    let mut failed = Vec::new();
    Tally::new(requirement.decide(ctx)).finish(requirement, ctx, 0, false, &mut failed);
    conclude_named(None, failed)
}

/// What the requirement and its handlers said about one requirement.
struct Tally {
    decision: Decision,
    succeeded: bool,
    failures: Vec<Cow<'static, str>>,
}

impl Tally {
    fn new(decision: Decision) -> Self {
        Self {
            decision,
            succeeded: decision == Decision::Satisfied,
            failures: Vec::new(),
        }
    }

    fn add(&mut self, outcome: HandlerOutcome) {
        match outcome {
            HandlerOutcome::Succeed => self.succeeded = true,
            HandlerOutcome::Fail(reason) => self.failures.push(reason),
            HandlerOutcome::Abstain => {}
        }
    }

    fn finish(
        self,
        requirement: &dyn Requirement,
        ctx: &AuthorizationContext<'_>,
        handlers: usize,
        pii: bool,
        failed: &mut Vec<FailedRequirement>,
    ) {
        let (reason, explicit) = if !self.failures.is_empty() {
            (Cow::Owned(self.failures.join("; ")), true)
        } else if self.succeeded {
            return;
        } else {
            let reason = match (self.decision, handlers) {
                (Decision::Deferred, 0) => Cow::Owned(format!(
                    "no authorization handler is registered for `{}`",
                    requirement.type_name()
                )),
                (Decision::Deferred, _) => Cow::Borrowed("no handler succeeded"),
                _ => requirement.unmet_reason(ctx, pii),
            };
            (reason, false)
        };
        failed.push(FailedRequirement::new(
            requirement.description().into_owned(),
            reason,
            explicit,
        ));
    }
}

fn conclude(policy: &Policy, failed: Vec<FailedRequirement>) -> AuthorizationResult {
    conclude_named(policy.name_arc(), failed)
}

fn conclude_named(
    policy: Option<&Arc<str>>,
    failed: Vec<FailedRequirement>,
) -> AuthorizationResult {
    if failed.is_empty() {
        return Ok(());
    }
    let failure = AuthorizationFailure::new(policy.cloned(), failed);
    tracing::debug!(
        target: LOG_TARGET,
        policy = failure.policy().unwrap_or("(inline)"),
        reason = %failure,
        "authorization denied"
    );
    Err(failure)
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handlers: Vec<&str> = self
            .inner
            .handlers
            .values()
            .flatten()
            .map(|h| h.name())
            .collect();
        f.debug_struct("Policies")
            .field(
                "policies",
                &self.inner.policies.values().collect::<Vec<_>>(),
            )
            .field("default", &self.inner.default)
            .field("fallback", &self.inner.fallback)
            .field("handlers", &handlers)
            .field("pii_logging", &self.inner.pii_logging)
            .finish()
    }
}

impl fmt::Debug for PoliciesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoliciesBuilder")
            .field(
                "policies",
                &self
                    .inner
                    .policies
                    .values()
                    .filter_map(Policy::name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
