//! The fixtures the Tower and the actix-web tests share (the actix crate's tests include this
//! support module by path, so both crates' tests read them from here, with no crate in
//! between and no dependency cycle): the tenant, API and calling client ids, the test clock's
//! time, the seed's policy (`ValidateAccessTokenPolicy`: its custom `service-api` role
//! requirement and handler, `azp` and `azpacr`), and the claims of a valid token with the
//! helpers that derive the refused cases from it.

use std::borrow::Cow;

use serde_json::{json, Value};
use tower_azure_auth::authorization::{
    AuthorizationContext, AuthorizationHandler, HandlerOutcome, Policies, PoliciesBuilder, Policy,
    Requirement,
};

use super::TestIdp;

/// The tenant of the test authority.
pub const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
/// The protected API's client id (the audience of its tokens).
pub const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
/// The calling application's client id (`azp`, `appid`).
pub const CALLER: &str = "11111111-2222-3333-4444-555555555555";
/// The test clock's time (unix seconds); tokens are valid around it.
pub const NOW: u64 = 1_800_000_000;
/// The seed's policy name.
pub const SEED_POLICY: &str = "ValidateAccessTokenPolicy";

/// The seed's custom requirement.
#[derive(Debug)]
pub struct HasServiceApiRoleRequirement;

impl Requirement for HasServiceApiRoleRequirement {
    fn description(&self) -> Cow<'_, str> {
        "the caller must have the `service-api` role".into()
    }
}

/// The seed's handler, asynchronous only (no `handle_sync`): it awaits, as a handler doing
/// I/O would, so policies using it take the layers' boxed path.
#[derive(Debug)]
pub struct HasServiceApiRoleHandler;

impl AuthorizationHandler for HasServiceApiRoleHandler {
    type Requirement = HasServiceApiRoleRequirement;

    async fn handle(
        &self,
        ctx: &AuthorizationContext<'_>,
        _requirement: &HasServiceApiRoleRequirement,
    ) -> HandlerOutcome {
        tokio::task::yield_now().await;
        HandlerOutcome::from(ctx.claims().has_role("service-api"))
    }
}

/// The seed's policy for calls from `client_id`: the custom role requirement, `azp` ==
/// `client_id`, `azpacr` == `2` (a certificate).
pub fn seed_policy(client_id: &str) -> Policy {
    Policy::builder()
        .requirement(HasServiceApiRoleRequirement)
        .require_claim("azp", [client_id.to_owned()])
        .require_claim("azpacr", ["2"])
        .build()
}

/// Policies with the seed's handler and [`seed_policy`] as [`SEED_POLICY`], to add more to.
pub fn seed_policies_builder(client_id: &str) -> PoliciesBuilder {
    Policies::builder()
        .add_handler(HasServiceApiRoleHandler)
        .add_policy(SEED_POLICY, seed_policy(client_id))
}

/// The seed's policies for calls from [`CALLER`].
pub fn seed_policies() -> Policies {
    seed_policies_builder(CALLER).build()
}

/// Claims of a valid v2 token for [`API`] from [`CALLER`] with the `service-api` role.
pub fn claims(idp: &TestIdp) -> Value {
    json!({
        "aud": API,
        "iss": idp.issuer_v2(),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "azp": CALLER,
        "azpacr": "2",
        "oid": "o1",
        "roles": ["service-api"],
        "sub": "o1",
        "tid": TENANT,
        "ver": "2.0",
    })
}

/// Claims of a valid v1 token (`appid`/`appidacr`, the v1 issuer and audience).
pub fn claims_v1(idp: &TestIdp) -> Value {
    let mut claims = claims(idp);
    let object = claims.as_object_mut().unwrap();
    object.remove("azp");
    object.remove("azpacr");
    object.insert("appid".into(), json!(CALLER));
    object.insert("appidacr".into(), json!("2"));
    object.insert("ver".into(), json!("1.0"));
    object.insert("iss".into(), json!(idp.issuer_v1()));
    object.insert("aud".into(), json!(format!("api://{API}")));
    claims
}

/// `claims` with the members of `patch` set (a refused case from a valid one).
pub fn with(claims: &Value, patch: Value) -> Value {
    let mut claims = claims.clone();
    if let (Some(target), Value::Object(patch)) = (claims.as_object_mut(), patch) {
        for (name, value) in patch {
            target.insert(name, value);
        }
    }
    claims
}
