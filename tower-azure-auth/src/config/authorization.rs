//! The `Authorization` section: named policies declared in configuration, so that the API and
//! a tool that explains its refusals (the `entra-doctor` CLI) build the same [`Policies`].
//!
//! ```
//! use tower_azure_auth::authorization::AuthorizationContext;
//! use tower_azure_auth::claims::Claims;
//! use tower_azure_auth::config::{AuthorizationOptions, ConfigSource};
//!
//! let options: AuthorizationOptions = ConfigSource::from_json_str(r#"{
//!   "Authorization": {
//!     "Policies": [{
//!       "Name": "ValidateAccessTokenPolicy",
//!       "RequireRoles": ["service-api"],
//!       "RequireClientAuthentication": "Certificate"
//!     }]
//!   }
//! }"#)?.section("Authorization")?;
//! let policies = options.policies()?.build();
//! let policy = policies.policy("ValidateAccessTokenPolicy")?;
//! let claims = Claims::from_json(serde_json::json!({"roles": ["service-api"], "azpacr": "1"})).unwrap();
//! // azpacr 1: the caller used a client secret, the policy wants a certificate
//! assert!(policies.authorize_sync(&policy, &AuthorizationContext::new(&claims)).unwrap().is_err());
//! # Ok::<(), tower_azure_auth::ConfigError>(())
//! ```

use std::path::Path;

use serde::Deserialize;

use super::{de_string_list, ConfigSource};
use crate::authorization::{Policies, PoliciesBuilder, Policy};
use crate::claims::ClientAuthentication;
use crate::error::ConfigError;

/// The `Authorization` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationOptions {
    /// `Policies`: the named policies.
    #[serde(rename = "policies", default)]
    pub policies: Vec<PolicyOptions>,
}

/// One policy of the `Authorization` section; every requirement given must be met.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct PolicyOptions {
    /// `Name`: the policy's name (compared without regard to case).
    #[serde(rename = "name")]
    pub name: Option<String>,
    /// `RequireRoles`: the `roles` claim must contain one of these.
    #[serde(rename = "requireroles", default, deserialize_with = "de_string_list")]
    pub require_roles: Vec<String>,
    /// `RequireScopes`: the `scp` claim must contain one of these.
    #[serde(rename = "requirescopes", default, deserialize_with = "de_string_list")]
    pub require_scopes: Vec<String>,
    /// `RequireClientIds`: the calling application (`azp`, or `appid` in v1 tokens) must be
    /// one of these.
    #[serde(
        rename = "requireclientids",
        default,
        deserialize_with = "de_string_list"
    )]
    pub require_client_ids: Vec<String>,
    /// `RequireClientAuthentication`: how the caller authenticated (`azpacr`/`appidacr`):
    /// `Certificate` (2), `Secret` (1) or `Public` (0).
    #[serde(rename = "requireclientauthentication")]
    pub require_client_authentication: Option<String>,
    /// `RequireClaims`: claims that must hold one of their `Values` (or be present, with no
    /// values).
    #[serde(rename = "requireclaims", default)]
    pub require_claims: Vec<ClaimOptions>,
}

/// A claim requirement of [`PolicyOptions::require_claims`].
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct ClaimOptions {
    /// `Type`: the claim's name (case-sensitive, as in the token).
    #[serde(rename = "type")]
    pub claim_type: Option<String>,
    /// `Values`: the accepted values; empty: any value, the claim must be present.
    #[serde(rename = "values", default, deserialize_with = "de_string_list")]
    pub values: Vec<String>,
}

impl AuthorizationOptions {
    /// Loads the `Authorization` section from an optional JSON file and the process
    /// environment.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed, or a value has the wrong shape.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        ConfigSource::load(file)?.section("Authorization")
    }

    /// A [`Policies`] builder with these policies (add handlers, a default policy… then
    /// build).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] for a policy without `Name` or a claim without `Type`,
    /// [`ConfigError::Invalid`] for an unknown `RequireClientAuthentication` or a policy with
    /// no requirement at all (which would accept any caller: declare it in code with
    /// [`Policy::authenticated`] if that is meant).
    pub fn policies(&self) -> Result<PoliciesBuilder, ConfigError> {
        let mut builder = Policies::builder();
        for (index, options) in self.policies.iter().enumerate() {
            let name = options
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or(ConfigError::Missing {
                    key: "Authorization:Policies:Name",
                    hint: "every policy needs a name",
                })?;
            builder = builder.add_policy(name, options.policy(index)?);
        }
        Ok(builder)
    }
}

impl PolicyOptions {
    fn policy(&self, index: usize) -> Result<Policy, ConfigError> {
        let mut policy = Policy::builder();
        let mut requirements = 0;
        if !self.require_roles.is_empty() {
            policy = policy.require_any_role(self.require_roles.clone());
            requirements += 1;
        }
        if !self.require_scopes.is_empty() {
            policy = policy.require_any_scope(self.require_scopes.clone());
            requirements += 1;
        }
        if !self.require_client_ids.is_empty() {
            policy = policy.requirement(crate::authorization::ClientIdRequirement::new(
                self.require_client_ids.clone(),
            ));
            requirements += 1;
        }
        if let Some(how) = &self.require_client_authentication {
            let how = match how.trim().to_ascii_lowercase().as_str() {
                "certificate" | "2" => ClientAuthentication::Certificate,
                "secret" | "1" => ClientAuthentication::Secret,
                "public" | "0" => ClientAuthentication::Public,
                other => {
                    return Err(ConfigError::Invalid {
                        key: format!("Authorization:Policies:{index}:RequireClientAuthentication"),
                        reason: format!(
                            "`{other}` is not Certificate (2), Secret (1) or Public (0)"
                        ),
                    })
                }
            };
            policy = policy.require_client_authentication(how);
            requirements += 1;
        }
        for claim in &self.require_claims {
            let name = claim
                .claim_type
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or(ConfigError::Missing {
                    key: "Authorization:Policies:RequireClaims:Type",
                    hint: "every claim requirement names its claim",
                })?
                .to_owned();
            policy = if claim.values.is_empty() {
                policy.require_claim_present(name)
            } else {
                policy.require_claim(name, claim.values.clone())
            };
            requirements += 1;
        }
        if requirements == 0 {
            return Err(ConfigError::Invalid {
                key: format!("Authorization:Policies:{index}"),
                reason: "the policy has no requirement and would accept any caller".into(),
            });
        }
        Ok(policy.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorization::AuthorizationContext;
    use crate::claims::Claims;

    fn options(json: &str) -> AuthorizationOptions {
        ConfigSource::from_json_str(json)
            .expect("json")
            .section("Authorization")
            .expect("section")
    }

    #[test]
    fn declared_policies_decide_as_the_builder_would() {
        struct Case {
            name: &'static str,
            claims: serde_json::Value,
            allowed: bool,
        }
        let policies = options(
            r#"{"Authorization": {"Policies": [{
                "Name": "Api",
                "RequireRoles": ["service-api", "admin"],
                "RequireClientIds": ["c1"],
                "RequireClientAuthentication": "certificate",
                "RequireClaims": [{"Type": "idtyp", "Values": ["app"]}, {"Type": "oid"}]
            }]}}"#,
        )
        .policies()
        .expect("policies")
        .build();
        // Names keep their case and compare without it.
        assert_eq!(policies.names().collect::<Vec<_>>(), ["Api"]);
        let policy = policies
            .policy("api")
            .expect("found without regard to case");
        let good = serde_json::json!({"roles": ["admin"], "azp": "c1", "azpacr": "2", "idtyp": "app", "oid": "o"});
        let cases = [
            Case {
                name: "all met",
                claims: good,
                allowed: true,
            },
            Case {
                name: "other role",
                claims: serde_json::json!({"roles": ["reader"], "azp": "c1", "azpacr": "2", "idtyp": "app", "oid": "o"}),
                allowed: false,
            },
            Case {
                name: "other client",
                claims: serde_json::json!({"roles": ["admin"], "azp": "c2", "azpacr": "2", "idtyp": "app", "oid": "o"}),
                allowed: false,
            },
            Case {
                name: "secret",
                claims: serde_json::json!({"roles": ["admin"], "azp": "c1", "azpacr": "1", "idtyp": "app", "oid": "o"}),
                allowed: false,
            },
            Case {
                name: "claim value",
                claims: serde_json::json!({"roles": ["admin"], "azp": "c1", "azpacr": "2", "idtyp": "user", "oid": "o"}),
                allowed: false,
            },
            Case {
                name: "claim present",
                claims: serde_json::json!({"roles": ["admin"], "azp": "c1", "azpacr": "2", "idtyp": "app"}),
                allowed: false,
            },
        ];
        for case in cases {
            let claims = Claims::from_json(case.claims).expect("claims");
            let result = policies
                .authorize_sync(&policy, &AuthorizationContext::new(&claims))
                .expect("sync");
            assert_eq!(result.is_ok(), case.allowed, "{}: {result:?}", case.name);
        }
    }

    #[test]
    fn unusable_policies_are_configuration_errors() {
        struct Case {
            name: &'static str,
            json: &'static str,
            key: &'static str,
        }
        let cases = [
            Case {
                name: "no name",
                json: r#"{"Authorization": {"Policies": [{"RequireRoles": ["r"]}]}}"#,
                key: "Authorization:Policies:Name",
            },
            Case {
                name: "no requirement",
                json: r#"{"Authorization": {"Policies": [{"Name": "Open"}]}}"#,
                key: "Authorization:Policies:0",
            },
            Case {
                name: "unknown authentication",
                json: r#"{"Authorization": {"Policies": [{"Name": "P", "RequireClientAuthentication": "kerberos"}]}}"#,
                key: "Authorization:Policies:0:RequireClientAuthentication",
            },
            Case {
                name: "claim without type",
                json: r#"{"Authorization": {"Policies": [{"Name": "P", "RequireClaims": [{"Values": ["x"]}]}]}}"#,
                key: "Authorization:Policies:RequireClaims:Type",
            },
        ];
        for case in cases {
            let error = options(case.json).policies().expect_err(case.name);
            let key = match &error {
                ConfigError::Missing { key, .. } => (*key).to_owned(),
                ConfigError::Invalid { key, .. } => key.clone(),
                other => panic!("{}: {other:?}", case.name),
            };
            assert_eq!(key, case.key, "{}", case.name);
        }
    }
}
