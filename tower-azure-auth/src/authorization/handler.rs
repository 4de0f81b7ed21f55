//! [`AuthorizationHandler`]: decides requirements of one type, possibly with I/O; closures
//! become handlers with [`handler_fn`] and [`async_handler_fn`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use futures_util::future::BoxFuture;

use super::context::AuthorizationContext;
use super::requirement::Requirement;

/// What a handler says about one requirement.
///
/// ASP.NET Core semantics: one [`Fail`](Self::Fail) from any handler fails the whole
/// evaluation; otherwise one [`Succeed`](Self::Succeed) satisfies the requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerOutcome {
    /// The requirement is met (`context.Succeed(requirement)`).
    Succeed,
    /// The evaluation fails, whatever other handlers say (`context.Fail(reason)`). The
    /// reason goes into the failure message and the 403 body: never put a token or secret in
    /// it, nor the caller's claim values unless PII logging is on.
    Fail(Cow<'static, str>),
    /// The handler does not decide (neither `Succeed` nor `Fail` called).
    Abstain,
}

impl HandlerOutcome {
    /// An explicit failure with a reason.
    pub fn fail(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Fail(reason.into())
    }
}

impl From<bool> for HandlerOutcome {
    /// `true` succeeds, `false` abstains (as an ASP.NET handler that does not call `Succeed`).
    fn from(succeeded: bool) -> Self {
        if succeeded {
            Self::Succeed
        } else {
            Self::Abstain
        }
    }
}

/// The boxed future an [`async_handler_fn`] closure returns (futures-util's `BoxFuture`).
pub type HandlerFuture<'a> = BoxFuture<'a, HandlerOutcome>;

/// Decides requirements of type [`Self::Requirement`], like ASP.NET Core's
/// `AuthorizationHandler<TRequirement>`. Register it with
/// [`PoliciesBuilder::add_handler`](super::PoliciesBuilder::add_handler); it is called once for
/// each requirement of its type in the policy being evaluated.
///
/// A handler as a struct (it could await a database or an HTTP call):
///
/// ```
/// use std::borrow::Cow;
/// use tower_azure_auth::authorization::{
///     AuthorizationContext, AuthorizationHandler, HandlerOutcome, Requirement,
/// };
///
/// #[derive(Debug)]
/// struct HasServiceApiRoleRequirement;
///
/// impl Requirement for HasServiceApiRoleRequirement {
///     fn description(&self) -> Cow<'_, str> {
///         "the caller must have the `service-api` role".into()
///     }
/// }
///
/// #[derive(Debug)]
/// struct HasServiceApiRoleHandler;
///
/// impl AuthorizationHandler for HasServiceApiRoleHandler {
///     type Requirement = HasServiceApiRoleRequirement;
///
///     async fn handle(
///         &self,
///         ctx: &AuthorizationContext<'_>,
///         _requirement: &HasServiceApiRoleRequirement,
///     ) -> HandlerOutcome {
///         HandlerOutcome::from(ctx.claims().has_role("service-api"))
///     }
/// }
/// ```
pub trait AuthorizationHandler: Send + Sync + 'static {
    /// The requirement type this handler decides.
    type Requirement: Requirement;

    /// Decides one requirement.
    fn handle(
        &self,
        ctx: &AuthorizationContext<'_>,
        requirement: &Self::Requirement,
    ) -> impl Future<Output = HandlerOutcome> + Send;

    /// Decides synchronously if the handler can, so that a policy served only by synchronous
    /// handlers is evaluated without a future. `None` (the default) means: call
    /// [`handle`](Self::handle). When this returns `Some`, `handle` is not called.
    fn handle_sync(
        &self,
        ctx: &AuthorizationContext<'_>,
        requirement: &Self::Requirement,
    ) -> Option<HandlerOutcome> {
        let _ = (ctx, requirement);
        None
    }
}

/// A handler from a synchronous closure; see [`handler_fn`].
pub struct HandlerFn<R, F> {
    f: F,
    _requirement: PhantomData<fn(&R)>,
}

/// A handler for requirements of type `R` from a synchronous closure returning a
/// [`HandlerOutcome`] or a `bool` (`true` succeeds, `false` abstains).
///
/// ```
/// use tower_azure_auth::authorization::{handler_fn, AuthorizationContext, RolesRequirement};
///
/// // Lets an administrator through any roles requirement.
/// let admin_override = handler_fn(|ctx: &AuthorizationContext<'_>, _: &RolesRequirement| {
///     ctx.claims().has_role("admin")
/// });
/// # let _ = admin_override;
/// ```
pub fn handler_fn<R, F, O>(f: F) -> HandlerFn<R, F>
where
    R: Requirement,
    F: Fn(&AuthorizationContext<'_>, &R) -> O + Send + Sync + 'static,
    O: Into<HandlerOutcome>,
{
    HandlerFn {
        f,
        _requirement: PhantomData,
    }
}

impl<R, F> fmt::Debug for HandlerFn<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerFn")
            .field("requirement", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}

impl<R, F, O> AuthorizationHandler for HandlerFn<R, F>
where
    R: Requirement,
    F: Fn(&AuthorizationContext<'_>, &R) -> O + Send + Sync + 'static,
    O: Into<HandlerOutcome>,
{
    type Requirement = R;

    fn handle(
        &self,
        ctx: &AuthorizationContext<'_>,
        requirement: &R,
    ) -> impl Future<Output = HandlerOutcome> + Send {
        std::future::ready((self.f)(ctx, requirement).into())
    }

    fn handle_sync(
        &self,
        ctx: &AuthorizationContext<'_>,
        requirement: &R,
    ) -> Option<HandlerOutcome> {
        Some((self.f)(ctx, requirement).into())
    }
}

/// A handler from an asynchronous closure; see [`async_handler_fn`].
pub struct AsyncHandlerFn<R, F> {
    f: F,
    _requirement: PhantomData<fn(&R)>,
}

/// A handler for requirements of type `R` from a closure returning a boxed future.
///
/// ```
/// use tower_azure_auth::authorization::{
///     async_handler_fn, AuthorizationContext, HandlerOutcome, RolesRequirement,
/// };
///
/// let handler = async_handler_fn(|ctx: &AuthorizationContext<'_>, _: &RolesRequirement| {
///     let client = ctx.claims().client_id().map(str::to_owned);
///     Box::pin(async move {
///         // e.g. look the client up in a database
///         HandlerOutcome::from(client.as_deref() == Some("allowed-client"))
///     })
/// });
/// # let _ = handler;
/// ```
pub fn async_handler_fn<R, F>(f: F) -> AsyncHandlerFn<R, F>
where
    R: Requirement,
    F: for<'a> Fn(&'a AuthorizationContext<'a>, &'a R) -> HandlerFuture<'a> + Send + Sync + 'static,
{
    AsyncHandlerFn {
        f,
        _requirement: PhantomData,
    }
}

impl<R, F> fmt::Debug for AsyncHandlerFn<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncHandlerFn")
            .field("requirement", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}

impl<R, F> AuthorizationHandler for AsyncHandlerFn<R, F>
where
    R: Requirement,
    F: for<'a> Fn(&'a AuthorizationContext<'a>, &'a R) -> HandlerFuture<'a> + Send + Sync + 'static,
{
    type Requirement = R;

    async fn handle(&self, ctx: &AuthorizationContext<'_>, requirement: &R) -> HandlerOutcome {
        (self.f)(ctx, requirement).await
    }
}

/// A handler with its requirement type erased, as the registry stores it.
pub(crate) trait ErasedHandler: Send + Sync {
    /// The handler's type name, for `Debug`.
    fn name(&self) -> &'static str;

    /// `Some` when the handler decided synchronously (or the requirement is not its type).
    fn decide_sync(
        &self,
        ctx: &AuthorizationContext<'_>,
        requirement: &dyn Requirement,
    ) -> Option<HandlerOutcome>;

    /// The asynchronous decision.
    fn decide<'a>(
        &'a self,
        ctx: &'a AuthorizationContext<'a>,
        requirement: &'a dyn Requirement,
    ) -> HandlerFuture<'a>;
}

pub(crate) struct Erased<H>(pub(crate) H);

impl<H: AuthorizationHandler> ErasedHandler for Erased<H> {
    fn name(&self) -> &'static str {
        std::any::type_name::<H>()
    }

    fn decide_sync(
        &self,
        ctx: &AuthorizationContext<'_>,
        requirement: &dyn Requirement,
    ) -> Option<HandlerOutcome> {
        match requirement.downcast_ref::<H::Requirement>() {
            Some(requirement) => self.0.handle_sync(ctx, requirement),
            None => Some(HandlerOutcome::Abstain),
        }
    }

    fn decide<'a>(
        &'a self,
        ctx: &'a AuthorizationContext<'a>,
        requirement: &'a dyn Requirement,
    ) -> HandlerFuture<'a> {
        match requirement.downcast_ref::<H::Requirement>() {
            Some(requirement) => Box::pin(self.0.handle(ctx, requirement)),
            None => Box::pin(std::future::ready(HandlerOutcome::Abstain)),
        }
    }
}
