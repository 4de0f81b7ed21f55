//! [`Requirement`]: one condition of a policy, and the built-in requirements, which decide
//! themselves synchronously and without allocating.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde_json::Value;

use super::context::AuthorizationContext;
use crate::claims::ClientAuthentication;

/// A condition a caller must meet: data, like ASP.NET Core's `IAuthorizationRequirement`.
///
/// A requirement either decides itself ([`decide`](Self::decide), as the built-in ones do) or
/// leaves the decision to the [`AuthorizationHandler`](super::AuthorizationHandler)s registered
/// for its type (the default, [`Decision::Deferred`]). Handlers registered for a
/// self-deciding requirement take part too, with the same rules as for any other handler.
///
/// ```
/// use std::borrow::Cow;
/// use tower_azure_auth::authorization::Requirement;
///
/// /// A custom requirement: the `roles` claim must contain `service-api`.
/// #[derive(Debug)]
/// struct HasServiceApiRoleRequirement;
///
/// impl Requirement for HasServiceApiRoleRequirement {
///     fn description(&self) -> Cow<'_, str> {
///         "the caller must have the `service-api` role".into()
///     }
/// }
///
/// let requirement: &dyn Requirement = &HasServiceApiRoleRequirement;
/// assert!(requirement.downcast_ref::<HasServiceApiRoleRequirement>().is_some());
/// ```
pub trait Requirement: Any + Send + Sync + fmt::Debug {
    /// What the requirement asks for, in words, for failure messages and logs
    /// (e.g. ``claim `azpacr` must be one of [2]``). Must not depend on the caller's claims.
    fn description(&self) -> Cow<'_, str>;

    /// Decides the requirement from the context alone, synchronously. The default defers to
    /// the registered handlers.
    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        let _ = ctx;
        Decision::Deferred
    }

    /// Why [`decide`](Self::decide) found the requirement unsatisfied, appended to the
    /// description in failure messages. Called only on failure. Must not show the caller's
    /// claim values unless `show_values` is true (PII logging turned on).
    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        let _ = (ctx, show_values);
        Cow::Borrowed("it is not satisfied")
    }

    /// The requirement's Rust type name, for messages about missing handlers.
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

impl dyn Requirement {
    /// Whether the requirement is a `T`.
    pub fn is<T: Requirement>(&self) -> bool {
        (self as &dyn Any).is::<T>()
    }

    /// The requirement as a `T`, if it is one.
    pub fn downcast_ref<T: Requirement>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref::<T>()
    }
}

/// What a requirement decided about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// The caller meets the requirement.
    Satisfied,
    /// The caller does not meet it (not an explicit failure: a handler may still satisfy it).
    Unsatisfied,
    /// The requirement does not decide; its handlers do.
    Deferred,
}

impl From<bool> for Decision {
    fn from(satisfied: bool) -> Self {
        if satisfied {
            Self::Satisfied
        } else {
            Self::Unsatisfied
        }
    }
}

type Values = Box<[Cow<'static, str>]>;

fn collect<I>(values: I) -> Values
where
    I: IntoIterator,
    I::Item: Into<Cow<'static, str>>,
{
    values.into_iter().map(Into::into).collect()
}

/// `[a, b]`.
fn list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(value);
    }
    out.push(']');
    out
}

/// Longest caller value shown in a message (PII logging only).
const MAX_SHOWN: usize = 200;

/// A caller's claim value for a message: strings bare, others as JSON, truncated.
fn show(value: &Value) -> String {
    let mut out = match value {
        Value::String(s) => format!("`{s}`"),
        Value::Array(items) => {
            let mut out = String::from("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item {
                    Value::String(s) => out.push_str(s),
                    other => {
                        let _ = write!(out, "{other}");
                    }
                }
            }
            out.push(']');
            out
        }
        other => other.to_string(),
    };
    if out.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

fn shown_claim(ctx: &AuthorizationContext<'_>, claim: &str) -> Cow<'static, str> {
    match ctx.claims().get(claim) {
        None | Some(Value::Null) => format!("the token has no `{claim}` claim").into(),
        Some(value) => format!("the token has {}", show(value)).into(),
    }
}

fn contains(allowed: &[Cow<'static, str>], value: &str) -> bool {
    allowed.iter().any(|a| a == value)
}

/// Whether one JSON scalar equals one of the allowed texts. Numbers and booleans compare by
/// their canonical text, as .NET turns them into string claims.
fn scalar_matches(value: &Value, allowed: &[Cow<'static, str>]) -> bool {
    match value {
        Value::String(s) => contains(allowed, s),
        Value::Bool(b) => contains(allowed, if *b { "true" } else { "false" }),
        Value::Number(n) => allowed.iter().any(|text| number_is(n, text)),
        _ => false,
    }
}

/// `n` is an integer and `text` is its canonical decimal form (no sign, no leading zero).
fn number_is(n: &serde_json::Number, text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let non_canonical =
        text.starts_with('+') || text == "-0" || (digits.len() > 1 && digits.starts_with('0'));
    if non_canonical {
        return false;
    }
    if let Some(i) = n.as_i64() {
        text.parse::<i64>() == Ok(i)
    } else if let Some(u) = n.as_u64() {
        text.parse::<u64>() == Ok(u)
    } else {
        false
    }
}

/// The caller must have at least one of these application roles (`roles` claim), like
/// ASP.NET Core's `RolesAuthorizationRequirement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolesRequirement {
    roles: Values,
}

impl RolesRequirement {
    /// Any of `roles`. With no role at all, nobody is accepted.
    pub fn new<I>(roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        Self {
            roles: collect(roles),
        }
    }

    /// The accepted roles.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.as_ref())
    }
}

impl Requirement for RolesRequirement {
    fn description(&self) -> Cow<'_, str> {
        format!("claim `roles` must contain one of {}", list(self.roles())).into()
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        Decision::from(
            ctx.claims()
                .roles()
                .iter()
                .any(|r| contains(&self.roles, r)),
        )
    }

    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        if show_values {
            shown_claim(ctx, "roles")
        } else {
            Cow::Borrowed("the token has none of them")
        }
    }
}

/// A claim must be present, or hold one of the allowed values, like ASP.NET Core's
/// `ClaimsAuthorizationRequirement`.
///
/// A string claim matches when it equals an allowed value; an array claim when one of its
/// items does; numbers and booleans compare by their canonical text (`2`, `true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequirement {
    claim: Cow<'static, str>,
    allowed: Option<Values>,
}

impl ClaimRequirement {
    /// The claim must hold one of `values`. With no value at all, nobody is accepted (unlike
    /// ASP.NET Core, where an empty list means "present": use [`present`](Self::present)).
    pub fn equals<I>(claim: impl Into<Cow<'static, str>>, values: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        Self {
            claim: claim.into(),
            allowed: Some(collect(values)),
        }
    }

    /// The claim must be present, with any value other than `null` or an empty array.
    pub fn present(claim: impl Into<Cow<'static, str>>) -> Self {
        Self {
            claim: claim.into(),
            allowed: None,
        }
    }

    /// The claim's name.
    #[must_use]
    pub fn claim(&self) -> &str {
        &self.claim
    }

    /// The allowed values; `None` when any value is accepted.
    #[must_use]
    pub fn allowed_values(&self) -> Option<impl Iterator<Item = &str>> {
        self.allowed.as_ref().map(|v| v.iter().map(|v| v.as_ref()))
    }
}

impl Requirement for ClaimRequirement {
    fn description(&self) -> Cow<'_, str> {
        match &self.allowed {
            Some(values) => format!(
                "claim `{}` must be one of {}",
                self.claim,
                list(values.iter().map(|v| v.as_ref()))
            )
            .into(),
            None => format!("claim `{}` must be present", self.claim).into(),
        }
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        let value = ctx.claims().get(&self.claim);
        Decision::from(match (&self.allowed, value) {
            (_, None | Some(Value::Null)) => false,
            (None, Some(Value::Array(items))) => !items.is_empty(),
            (None, Some(_)) => true,
            (Some(allowed), Some(Value::Array(items))) => {
                items.iter().any(|item| scalar_matches(item, allowed))
            }
            (Some(allowed), Some(scalar)) => scalar_matches(scalar, allowed),
        })
    }

    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        if let Some(hint) = v1_hint(&self.claim) {
            if matches!(ctx.claims().get(&self.claim), None | Some(Value::Null)) {
                // The presence of a claim is not the caller's data: said with or without PII.
                return format!("the token has no `{}` claim ({hint})", self.claim).into();
            }
        }
        match (show_values, &self.allowed) {
            (true, _) => shown_claim(ctx, &self.claim),
            (false, Some(_)) => Cow::Borrowed("the token has a different value or none"),
            (false, None) => Cow::Borrowed("the token has none"),
        }
    }
}

/// For the v2-only claims about the calling client, where v1 tokens carry them: the hint
/// added when a token lacks one.
fn v1_hint(claim: &str) -> Option<&'static str> {
    match claim {
        "azpacr" => Some(
            "v1 tokens carry `appidacr` instead; `require_client_authentication` and \
             `RequireClientAuthentication` read either",
        ),
        "azp" => Some("v1 tokens carry `appid` instead; `require_client_id` reads either"),
        _ => None,
    }
}

/// The caller must have at least one of these delegated scopes (space-separated `scp` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopesRequirement {
    scopes: Values,
}

impl ScopesRequirement {
    /// Any of `scopes`. With no scope at all, nobody is accepted.
    pub fn new<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        Self {
            scopes: collect(scopes),
        }
    }

    /// The accepted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| s.as_ref())
    }
}

impl Requirement for ScopesRequirement {
    fn description(&self) -> Cow<'_, str> {
        format!("claim `scp` must contain one of {}", list(self.scopes())).into()
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        Decision::from(ctx.claims().scopes().any(|s| contains(&self.scopes, s)))
    }

    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        if show_values {
            shown_claim(ctx, "scp")
        } else {
            Cow::Borrowed("the token has none of them")
        }
    }
}

/// Microsoft.Identity.Web's `RequiredScopeOrAppPermission`: satisfied when a delegated scope
/// (`scp`, space separated) is one of the accepted scopes **or** an application permission
/// (`roles`) is one of the accepted app permissions. A token with neither claim does not
/// satisfy it.
///
/// Unlike Microsoft.Identity.Web, which lets everyone through when no accepted value is
/// configured at all, a requirement that accepts nothing is never satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeOrAppPermissionRequirement {
    scopes: Values,
    app_permissions: Values,
}

impl ScopeOrAppPermissionRequirement {
    /// Accepts any of `scopes` (delegated) or any of `app_permissions` (application roles).
    pub fn new<S, P>(scopes: S, app_permissions: P) -> Self
    where
        S: IntoIterator,
        S::Item: Into<Cow<'static, str>>,
        P: IntoIterator,
        P::Item: Into<Cow<'static, str>>,
    {
        Self {
            scopes: collect(scopes),
            app_permissions: collect(app_permissions),
        }
    }

    /// The accepted delegated scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| s.as_ref())
    }

    /// The accepted application permissions.
    pub fn app_permissions(&self) -> impl Iterator<Item = &str> {
        self.app_permissions.iter().map(|s| s.as_ref())
    }
}

impl Requirement for ScopeOrAppPermissionRequirement {
    fn description(&self) -> Cow<'_, str> {
        format!(
            "claim `scp` must contain one of {} or claim `roles` one of {}",
            list(self.scopes()),
            list(self.app_permissions())
        )
        .into()
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        let claims = ctx.claims();
        Decision::from(
            claims.scopes().any(|s| contains(&self.scopes, s))
                || claims
                    .roles()
                    .iter()
                    .any(|r| contains(&self.app_permissions, r)),
        )
    }

    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        let claims = ctx.claims();
        let has_either = claims.has_scp_claim() || !claims.roles().is_empty();
        match (show_values, has_either) {
            (_, false) => Cow::Borrowed("the token has neither `scp` nor `roles`"),
            (false, true) => Cow::Borrowed("the token has none of them"),
            (true, true) => {
                format!("{}; {}", shown_claim(ctx, "scp"), shown_claim(ctx, "roles")).into()
            }
        }
    }
}

/// The calling application must be one of these clients: `azp` in v2 tokens, `appid` in v1
/// tokens ([`Claims::client_id`](crate::claims::Claims::client_id)), so one requirement serves
/// both token versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdRequirement {
    client_ids: Values,
}

impl ClientIdRequirement {
    /// Any of `client_ids`. With no id at all, nobody is accepted.
    pub fn new<I>(client_ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        Self {
            client_ids: collect(client_ids),
        }
    }

    /// The accepted client ids.
    pub fn client_ids(&self) -> impl Iterator<Item = &str> {
        self.client_ids.iter().map(|s| s.as_ref())
    }
}

impl Requirement for ClientIdRequirement {
    fn description(&self) -> Cow<'_, str> {
        format!(
            "the client id (`azp` or `appid`) must be one of {}",
            list(self.client_ids())
        )
        .into()
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        Decision::from(
            ctx.claims()
                .client_id()
                .is_some_and(|id| contains(&self.client_ids, id)),
        )
    }

    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        match (show_values, ctx.claims().client_id()) {
            (false, _) => Cow::Borrowed("the token has a different value or none"),
            (true, None) => Cow::Borrowed("the token has neither `azp` nor `appid`"),
            (true, Some(id)) => format!("the token has {}", show(&Value::from(id))).into(),
        }
    }
}

/// The calling application must have authenticated to the authority this way: `azpacr` in v2
/// tokens, `appidacr` in v1 tokens
/// ([`Claims::client_authentication`](crate::claims::Claims::client_authentication)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAuthenticationRequirement {
    accepted: ClientAuthentication,
}

impl ClientAuthenticationRequirement {
    /// Exactly `accepted`.
    #[must_use]
    pub fn new(accepted: ClientAuthentication) -> Self {
        Self { accepted }
    }

    /// The accepted way.
    #[must_use]
    pub fn accepted(&self) -> ClientAuthentication {
        self.accepted
    }
}

fn authentication_words(how: ClientAuthentication) -> &'static str {
    match how {
        ClientAuthentication::Public => "as a public client",
        ClientAuthentication::Secret => "with a client secret",
        ClientAuthentication::Certificate => "with a certificate",
    }
}

impl Requirement for ClientAuthenticationRequirement {
    fn description(&self) -> Cow<'_, str> {
        format!(
            "the client must authenticate {} (`azpacr` or `appidacr` = {})",
            authentication_words(self.accepted),
            self.accepted.as_claim_value()
        )
        .into()
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        Decision::from(ctx.claims().client_authentication() == Some(self.accepted))
    }

    fn unmet_reason(&self, ctx: &AuthorizationContext<'_>, show_values: bool) -> Cow<'static, str> {
        match (show_values, ctx.claims().client_authentication()) {
            (false, _) => Cow::Borrowed("the token has a different value or none"),
            (true, None) => {
                Cow::Borrowed("the token has neither `azpacr` nor `appidacr` with a known value")
            }
            (true, Some(how)) => format!(
                "the client authenticated {} ({})",
                authentication_words(how),
                how.as_claim_value()
            )
            .into(),
        }
    }
}

type Assertion = dyn Fn(&AuthorizationContext<'_>) -> bool + Send + Sync;

/// A requirement decided by a closure over the context, like ASP.NET Core's
/// `RequireAssertion`. For decisions that need I/O, write an
/// [`AuthorizationHandler`](super::AuthorizationHandler).
#[derive(Clone)]
pub struct AssertionRequirement {
    description: Cow<'static, str>,
    assertion: Arc<Assertion>,
}

impl AssertionRequirement {
    /// A requirement met when `assertion` returns true; `description` says what it checks.
    pub fn new<F>(description: impl Into<Cow<'static, str>>, assertion: F) -> Self
    where
        F: Fn(&AuthorizationContext<'_>) -> bool + Send + Sync + 'static,
    {
        Self {
            description: description.into(),
            assertion: Arc::new(assertion),
        }
    }
}

impl fmt::Debug for AssertionRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionRequirement")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Requirement for AssertionRequirement {
    fn description(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.description)
    }

    fn decide(&self, ctx: &AuthorizationContext<'_>) -> Decision {
        Decision::from((self.assertion)(ctx))
    }

    fn unmet_reason(&self, _: &AuthorizationContext<'_>, _: bool) -> Cow<'static, str> {
        Cow::Borrowed("it does not hold")
    }
}
