//! [`Policies::diagnose`]: a policy's evaluation with each requirement's own result, for a
//! tool that explains a 403 (the `entra-doctor` CLI). The requirements and handlers decide
//! exactly as in [`Policies::authorize`], whose result the diagnosis carries.

use super::context::AuthorizationContext;
use super::failure::{AuthorizationResult, FailedRequirement};
use super::policies::Policies;
use super::policy::Policy;

/// One requirement of a [`PolicyDiagnosis`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequirementCheck {
    /// What the requirement asks for.
    pub description: String,
    /// Why it is not met (with the caller's claim values), or `None` when it is.
    pub failure: Option<FailedRequirement>,
}

impl RequirementCheck {
    /// Whether the caller meets the requirement.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// A policy evaluated against one caller: each requirement, and the policy's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyDiagnosis {
    /// The policy's name, if it is a registered one.
    pub policy: Option<String>,
    /// Each requirement, in the policy's order.
    pub requirements: Vec<RequirementCheck>,
    /// What [`Policies::authorize`] answers.
    pub result: AuthorizationResult,
}

impl Policies {
    /// Evaluates `policy` as [`authorize`](Self::authorize) does and reports each
    /// requirement's result too, with the caller's claim values in the reasons (a
    /// diagnosis is for the caller's own token, whatever [`pii_logging`](Self::pii_logging)
    /// says). [`PolicyDiagnosis::result`] is `authorize`'s answer.
    ///
    /// ```
    /// use tower_azure_auth::authorization::{AuthorizationContext, Policies, Policy};
    /// use tower_azure_auth::claims::{ClientAuthentication, Claims};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let policies = Policies::builder()
    ///     .add_policy("Api", Policy::builder()
    ///         .require_role("service-api")
    ///         .require_client_authentication(ClientAuthentication::Certificate)
    ///         .build())
    ///     .build();
    /// let claims = Claims::from_json(serde_json::json!({"roles": ["service-api"], "azpacr": "1"})).unwrap();
    /// let diagnosis = policies
    ///     .diagnose(&policies.policy("Api").unwrap(), &AuthorizationContext::new(&claims))
    ///     .await;
    /// assert!(diagnosis.requirements[0].passed());
    /// assert!(!diagnosis.requirements[1].passed());
    /// assert!(diagnosis.result.is_err());
    /// # }
    /// ```
    pub async fn diagnose(
        &self,
        policy: &Policy,
        ctx: &AuthorizationContext<'_>,
    ) -> PolicyDiagnosis {
        let mut requirements = Vec::with_capacity(policy.requirements().len());
        for requirement in policy.requirements() {
            let mut failed = Vec::with_capacity(1);
            self.evaluate(requirement, ctx, true, &mut failed).await;
            requirements.push(RequirementCheck {
                description: requirement.description().into_owned(),
                failure: failed.pop(),
            });
        }
        PolicyDiagnosis {
            policy: policy.name().map(str::to_owned),
            requirements,
            result: self.authorize(policy, ctx).await,
        }
    }
}
