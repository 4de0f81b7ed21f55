//! Why a caller was refused: [`AuthorizationFailure`]; its 403 response is
//! [`Rejection::forbidden`](crate::rejection::Rejection::forbidden).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The result of evaluating a policy.
pub type AuthorizationResult = Result<(), AuthorizationFailure>;

/// One requirement that was not met: what it asks for and why it failed.
///
/// Never holds a token; holds the caller's claim values only when PII logging is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRequirement {
    requirement: String,
    reason: Cow<'static, str>,
    explicit: bool,
}

impl FailedRequirement {
    pub(crate) fn new(requirement: String, reason: Cow<'static, str>, explicit: bool) -> Self {
        Self {
            requirement,
            reason,
            explicit,
        }
    }

    /// The requirement's description.
    #[must_use]
    pub fn requirement(&self) -> &str {
        &self.requirement
    }

    /// Why it failed.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether a handler failed the evaluation explicitly (rather than no one succeeding).
    #[must_use]
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }
}

impl fmt::Display for FailedRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.requirement, self.reason)
    }
}

/// A caller authenticated but not authorized: the policy and the requirements that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationFailure {
    policy: Option<Arc<str>>,
    failed: Vec<FailedRequirement>,
}

impl AuthorizationFailure {
    pub(crate) fn new(policy: Option<Arc<str>>, failed: Vec<FailedRequirement>) -> Self {
        Self { policy, failed }
    }

    /// The name of the policy, if it is a registered one.
    #[must_use]
    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }

    /// The requirements that failed, in the policy's order.
    #[must_use]
    pub fn failed_requirements(&self) -> &[FailedRequirement] {
        &self.failed
    }

    /// One sentence for the `error_description` of the response.
    #[must_use]
    pub fn description(&self) -> String {
        match &self.policy {
            Some(name) => format!("the caller does not satisfy the authorization policy `{name}`"),
            None => String::from("the caller does not satisfy the authorization requirements"),
        }
    }
}

impl fmt::Display for AuthorizationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())?;
        for (i, failed) in self.failed.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { " | " })?;
            fmt::Display::fmt(failed, f)?;
        }
        Ok(())
    }
}

impl std::error::Error for AuthorizationFailure {}
