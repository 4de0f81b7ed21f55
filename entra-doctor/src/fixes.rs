//! What to change, in plain words, for a failed check or requirement. The verdicts come from
//! the library ([`Diagnosis`](tower_azure_auth::validation::Diagnosis),
//! [`PolicyDiagnosis`](tower_azure_auth::authorization::PolicyDiagnosis)); this only reads
//! the error kind and the token's claims to say what to do about it.

use tower_azure_auth::authorization::{
    ClaimRequirement, ClientAuthenticationRequirement, ClientIdRequirement, Requirement,
    RolesRequirement, ScopeOrAppPermissionRequirement, ScopesRequirement,
};
use tower_azure_auth::claims::{Claims, ClientAuthentication, TokenVersion};
use tower_azure_auth::validation::{Check, CheckName, CheckOutcome};
use tower_azure_auth::AuthErrorKind as K;

/// What the fixes need to know about the API's settings.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// Where the signing keys came from (`the file keys.json`, `https://…/discovery/v2.0/keys`).
    pub(crate) key_source: &'a str,
    /// The configured tenant, if any.
    pub(crate) tenant: Option<&'a str>,
    /// The configured client id, if any.
    pub(crate) client_id: Option<&'a str>,
    /// The clock skew allowed, seconds.
    pub(crate) leeway: u64,
    /// Why the keys could not be fetched, if they could not.
    pub(crate) fetch_error: Option<&'a str>,
    /// The time checked at, Unix seconds.
    pub(crate) now: u64,
}

fn claim<'c>(claims: Option<&'c Claims>, name: &str) -> Option<&'c str> {
    claims.and_then(|c| c.get_str(name))
}

/// The fix for a failed validation check, or a note on a passed one (an expired token that
/// only the leeway keeps valid).
pub(crate) fn for_check(
    check: &Check,
    claims: Option<&Claims>,
    ctx: &Context<'_>,
) -> Option<String> {
    let error = match &check.outcome {
        CheckOutcome::Failed(error) => error,
        CheckOutcome::Passed => return note_for_passed(check, claims, ctx),
        _ => return None,
    };
    let version = claims.and_then(Claims::version);
    if check.name == CheckName::Issuer {
        if let Some(fix) = wrong_tenant(claims, ctx) {
            return Some(fix);
        }
    }
    let fix = match (check.name, error.kind()) {
        (CheckName::Size, _) => "the API refuses tokens this long (AzureAd:MaxTokenSize); a token with many groups or roles is long: request fewer claims, or raise MaxTokenSize".to_owned(),
        (CheckName::Signature, K::MalformedToken) => "this is not a compact JWT (three base64url parts separated by dots): copy the whole access token (not an id token, not a refresh token), without quotes".to_owned(),
        (CheckName::Signature, K::DisallowedAlgorithm) => {
            let header_alg = check.actual.split(',').next().unwrap_or_default();
            if header_alg.trim().eq_ignore_ascii_case("alg none") {
                "`alg: none` means the token is not signed: no API accepts it; it was not issued by Entra ID, or was altered — request a new token from the authority".to_owned()
            } else {
                format!("the token's algorithm is not one the API accepts ({}); Entra ID signs with RS256: list another algorithm in AzureAd:ValidAlgorithms only if your authority really uses it", check.expected)
            }
        }
        (CheckName::Signature, K::UnknownSigningKey) => format!(
            "no key with this kid in {}: the token was signed by another authority or tenant (check Instance/TenantId or Authority against the token's iss), or by a key not published there{}",
            ctx.key_source,
            if ctx.key_source.starts_with("the file") { " (the JWKS file may be stale: download the authority's jwks_uri again)" } else { " (yet)" }
        ),
        (CheckName::Signature, K::InvalidSignature) => format!(
            "the signature does not match the key with this kid in {}: the token was altered (copied incompletely?), or signed with another key under the same kid",
            ctx.key_source
        ),
        (CheckName::Signature, K::KeysUnavailable) => format!(
            "the API cannot check signatures: no signing keys could be fetched{}; check Instance/TenantId or Authority and the network (the API answers 503 meanwhile)",
            ctx.fetch_error.map(|e| format!(" ({e})")).unwrap_or_default()
        ),
        (CheckName::Lifetime, K::Expired) => {
            let exp = claims.and_then(Claims::expires_at).unwrap_or_default();
            format!(
                "the token expired {} s ago, more than the {} s of clock skew allowed (AzureAd:ClockSkewSeconds): request a new token (Entra ID tokens last 60–90 minutes; a client should refresh before exp, as the library's client does)",
                ctx.now.saturating_sub(exp), ctx.leeway
            )
        }
        (CheckName::Lifetime, K::NotYetValid) => "the token is not valid yet (nbf or iat is in the future beyond the clock skew): this machine's clock or the issuer's is wrong — check time synchronisation (NTP), or --at".to_owned(),
        (CheckName::Lifetime, _) => "the token's times are unusable (no exp, not numbers, or a lifetime longer than AzureAd allows): it was not issued by Entra ID as is".to_owned(),
        (CheckName::Issuer, K::InvalidTenant) => match (claim(claims, "tid"), ctx.tenant) {
            (Some(tid), Some(tenant)) => format!(
                "wrong tenant: the token comes from tenant {tid}, the API is configured for {tenant} (AzureAd:TenantId); the client must request its token from its authority in tenant {tenant}, or a multi-tenant API lists {tid} in AzureAd:AllowedTenants"
            ),
            (Some(tid), None) => format!("the token's tenant {tid} is not accepted: add it to AzureAd:AllowedTenants, or check TenantId"),
            _ => "the token has no usable tenant (tid): Entra ID tokens always carry one; this token comes from another kind of authority".to_owned(),
        },
        (CheckName::Issuer, _) => {
            let iss = claim(claims, "iss").unwrap_or("none");
            let host = |s: &str| url::Url::parse(s.trim_matches('\'')).ok().and_then(|u| u.host_str().map(str::to_owned));
            let expected_host = check.expected.split(" or ").next().and_then(host);
            match (host(iss), expected_host) {
                (Some(actual), Some(expected)) if actual != expected => format!(
                    "the token was issued by another authority (host {actual}, the API expects {expected}): check AzureAd:Instance or Authority (the cloud: login.microsoftonline.com, login.microsoftonline.us, …) and where the client requests its tokens"
                ),
                _ => format!("the issuer `{iss}` is not the one the API expects ({}): check AzureAd:Instance/TenantId or Authority", check.expected),
            }
        }
        (CheckName::Audience, _) => audience_fix(check, claims, version, ctx),
        (CheckName::Client, _) => format!(
            "the calling application ({}) is not in AzureAd:AllowedClientIds: add its application (client) id there, or call with an allowed client",
            claim(claims, "azp").or(claim(claims, "appid")).unwrap_or("none")
        ),
        (CheckName::Permission, _) => "the token carries no permission (neither scp nor roles): grant the client an application permission (app role) of this API and grant admin consent (API permissions), then request a new token; or set AzureAd:AllowWebApiToBeAuthorizedByACL if the API authorizes by ACL".to_owned(),
        (CheckName::Revocation, _) => "this token (or its client, subject or key) was revoked on this API: request a new token after the revocation ends".to_owned(),
        _ => return None,
    };
    Some(fix)
}

/// A configured single tenant (a GUID) that is not the token's `tid`.
fn wrong_tenant(claims: Option<&Claims>, ctx: &Context<'_>) -> Option<String> {
    let tid = claim(claims, "tid")?;
    let tenant = ctx.tenant?;
    let single = tenant.len() == 36 && tenant.chars().filter(|c| *c == '-').count() == 4;
    (single && !tid.eq_ignore_ascii_case(tenant)).then(|| format!(
        "wrong tenant: the token comes from tenant {tid}, the API is configured for {tenant} (AzureAd:TenantId); the client must request its token from its authority in tenant {tenant}, or a multi-tenant API lists {tid} in AzureAd:AllowedTenants"
    ))
}

fn audience_fix(
    check: &Check,
    claims: Option<&Claims>,
    version: Option<TokenVersion>,
    ctx: &Context<'_>,
) -> String {
    let aud = claims
        .map(|c| c.audiences().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let client_id = ctx.client_id.unwrap_or("<api client id>");
    match version {
        Some(TokenVersion::V1) => format!(
            "this is a v1 token (ver 1.0, aud `{aud}`): Entra ID issues v1 tokens when the API's app manifest has accessTokenAcceptedVersion null or 1, and their aud is the Application ID URI; set accessTokenAcceptedVersion to 2 in the API's app manifest (then aud is {client_id}), or accept `{aud}` with AzureAd:Audience"
        ),
        _ if aud.starts_with("api://") => format!(
            "this v2 token names `{aud}` as audience; the API accepts {}: set AzureAd:Audience to `{aud}` if that is this API's Application ID URI, or check the client's scope (`api://{client_id}/.default`)",
            check.expected
        ),
        _ => format!(
            "the token was requested for `{aud}`, not for this API ({}): the client's scope must be this API's `{{Application ID URI}}/.default` (e.g. api://{client_id}/.default); or, if `{aud}` is this API, set AzureAd:ClientId or AzureAd:Audience to it",
            check.expected
        ),
    }
}

fn note_for_passed(check: &Check, claims: Option<&Claims>, ctx: &Context<'_>) -> Option<String> {
    if check.name != CheckName::Lifetime {
        return None;
    }
    let exp = claims.and_then(Claims::expires_at)?;
    (exp < ctx.now).then(|| {
        format!(
            "note: the token expired {} s ago; it passes only because of the {} s of clock skew allowed (AzureAd:ClockSkewSeconds) — request a new one",
            ctx.now - exp,
            ctx.leeway
        )
    })
}

/// The fix for a failed policy requirement.
pub(crate) fn for_requirement(requirement: &dyn Requirement, claims: &Claims) -> String {
    if requirement.is::<RolesRequirement>() || requirement.is::<ScopeOrAppPermissionRequirement>() {
        return role_fix(claims);
    }
    if let Some(acr) = requirement.downcast_ref::<ClientAuthenticationRequirement>() {
        let actual = claims.client_authentication();
        return match (acr.accepted(), actual) {
            (ClientAuthentication::Certificate, Some(ClientAuthentication::Secret)) => "`azpacr` is 1: the caller used a client secret; the policy requires a certificate (azpacr 2): give the client a certificate (CallApi:ClientCertificates, registered under Certificates & secrets) instead of ClientSecret, and request a new token".to_owned(),
            (ClientAuthentication::Certificate, Some(ClientAuthentication::Public)) => "`azpacr` is 0: the caller is a public client (no credential); the policy requires a confidential client with a certificate".to_owned(),
            (_, None) => "the token has no azpacr (v2) or appidacr (v1) claim: it is not an Entra ID application token, or a user token without client authentication".to_owned(),
            (wanted, _) => format!("the policy requires client authentication {} (azpacr {}): change how the client authenticates", match wanted { ClientAuthentication::Certificate => "by certificate", ClientAuthentication::Secret => "by secret", ClientAuthentication::Public => "as a public client" }, wanted.as_claim_value()),
        };
    }
    if let Some(ids) = requirement.downcast_ref::<ClientIdRequirement>() {
        return format!(
            "the calling application ({}) is not the one the policy expects ({}): call with that client, or add this client's id to the policy",
            claims.client_id().unwrap_or("none"),
            ids.client_ids().collect::<Vec<_>>().join(", ")
        );
    }
    if requirement.is::<ScopesRequirement>() {
        return "the token lacks the delegated scope: the client must request it (and the user or an admin consent to it); application tokens carry roles, not scopes".to_owned();
    }
    if let Some(claim) = requirement.downcast_ref::<ClaimRequirement>() {
        return format!(
            "the `{}` claim does not hold what the policy requires: check the token configuration (optional claims) of the app registration, or the policy",
            claim.claim()
        );
    }
    "this requirement is decided by the API's own code (a handler): see its description".to_owned()
}

fn role_fix(claims: &Claims) -> String {
    if claims.roles().is_empty() && claims.scopes().next().is_some() {
        return "this token has scopes only (scp): it is a delegated (user) token, the policy requires an application role; a service calls with the client credentials flow (scope `{Application ID URI}/.default`) after the role is granted to it".to_owned();
    }
    "the caller lacks the application role: in the API's app registration (App roles) define it, grant it to the client (client's API permissions → Add a permission → My APIs → Application permissions) and grant admin consent; tokens issued before the grant do not carry it — request a new one".to_owned()
}
