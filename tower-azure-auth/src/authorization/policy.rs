//! [`Policy`]: a list of requirements, all of which must succeed, and its builder.

use std::borrow::Cow;
use std::sync::Arc;

use super::context::AuthorizationContext;
use super::requirement::{
    AssertionRequirement, ClaimRequirement, ClientAuthenticationRequirement, ClientIdRequirement,
    Requirement, RolesRequirement, ScopeOrAppPermissionRequirement, ScopesRequirement,
};
use crate::claims::ClientAuthentication;

/// Requirements that must all succeed, like ASP.NET Core's `AuthorizationPolicy`. Cheap to
/// clone.
///
/// A policy with no requirement accepts every authenticated caller (the presence of verified
/// claims is the authentication); see [`Policy::authenticated`].
///
/// ```
/// use tower_azure_auth::authorization::Policy;
/// use tower_azure_auth::claims::ClientAuthentication;
///
/// let policy = Policy::builder()
///     .require_role("service-api")
///     .require_client_id("11111111-1111-1111-1111-111111111111")
///     .require_client_authentication(ClientAuthentication::Certificate)
///     .build();
/// assert_eq!(policy.requirements().count(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    name: Option<Arc<str>>,
    requirements: Arc<[Arc<dyn Requirement>]>,
}

impl Policy {
    /// A builder.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// The policy without requirements: any authenticated caller.
    #[must_use]
    pub fn authenticated() -> Self {
        Self::builder().build()
    }

    /// The name under which the policy is registered, if it is.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The requirements, in order.
    #[must_use]
    pub fn requirements(&self) -> impl ExactSizeIterator<Item = &dyn Requirement> {
        self.requirements.iter().map(|r| &**r)
    }

    pub(crate) fn named(mut self, name: &str) -> Self {
        self.name = Some(Arc::from(name));
        self
    }

    pub(crate) fn name_arc(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }
}

/// Builds a [`Policy`]; the method names follow ASP.NET Core's `AuthorizationPolicyBuilder`.
#[derive(Debug, Default)]
#[must_use]
pub struct PolicyBuilder {
    requirements: Vec<Arc<dyn Requirement>>,
}

impl PolicyBuilder {
    /// Adds any requirement (`policy.Requirements.Add(...)`).
    pub fn requirement(mut self, requirement: impl Requirement) -> Self {
        self.requirements.push(Arc::new(requirement));
        self
    }

    /// The `roles` claim must contain `role` (`RequireRole`).
    pub fn require_role(self, role: impl Into<Cow<'static, str>>) -> Self {
        self.requirement(RolesRequirement::new([role]))
    }

    /// The `roles` claim must contain one of `roles`.
    pub fn require_any_role<I>(self, roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.requirement(RolesRequirement::new(roles))
    }

    /// The claim must hold one of `values` (`RequireClaim(type, values)`). An empty list
    /// accepts nobody; use [`require_claim_present`](Self::require_claim_present) to accept
    /// any value.
    pub fn require_claim<I>(self, claim: impl Into<Cow<'static, str>>, values: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.requirement(ClaimRequirement::equals(claim, values))
    }

    /// The claim must be present (`RequireClaim(type)`).
    pub fn require_claim_present(self, claim: impl Into<Cow<'static, str>>) -> Self {
        self.requirement(ClaimRequirement::present(claim))
    }

    /// The `scp` claim must contain `scope`.
    pub fn require_scope(self, scope: impl Into<Cow<'static, str>>) -> Self {
        self.requirement(ScopesRequirement::new([scope]))
    }

    /// The `scp` claim must contain one of `scopes` (Microsoft.Identity.Web's `RequireScope`).
    pub fn require_any_scope<I>(self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.requirement(ScopesRequirement::new(scopes))
    }

    /// One of `scopes` in `scp` or one of `app_permissions` in `roles`
    /// (Microsoft.Identity.Web's `RequireScopeOrAppPermission`).
    pub fn require_scope_or_app_permission<S, P>(self, scopes: S, app_permissions: P) -> Self
    where
        S: IntoIterator,
        S::Item: Into<Cow<'static, str>>,
        P: IntoIterator,
        P::Item: Into<Cow<'static, str>>,
    {
        self.requirement(ScopeOrAppPermissionRequirement::new(
            scopes,
            app_permissions,
        ))
    }

    /// The calling client must be `client_id` (`azp` in v2 tokens, `appid` in v1 tokens).
    pub fn require_client_id(self, client_id: impl Into<Cow<'static, str>>) -> Self {
        self.requirement(ClientIdRequirement::new([client_id]))
    }

    /// The calling client must have authenticated this way (`azpacr` in v2 tokens,
    /// `appidacr` in v1 tokens).
    pub fn require_client_authentication(self, how: ClientAuthentication) -> Self {
        self.requirement(ClientAuthenticationRequirement::new(how))
    }

    /// A closure over the context must return true (`RequireAssertion`). To describe it in
    /// failure messages, add an [`AssertionRequirement`] with
    /// [`requirement`](Self::requirement) instead.
    pub fn require_assertion<F>(self, assertion: F) -> Self
    where
        F: Fn(&AuthorizationContext<'_>) -> bool + Send + Sync + 'static,
    {
        self.requirement(AssertionRequirement::new(
            "the policy's assertion must hold",
            assertion,
        ))
    }

    /// The policy.
    #[must_use]
    pub fn build(self) -> Policy {
        Policy {
            name: None,
            requirements: self.requirements.into(),
        }
    }
}
