//! The claim rules: what a verified token's claims must say (lifetime, issuer, tenant,
//! audience, calling application, permission), as plain functions over [`Rules`], the
//! settings they read. No keys, no I/O, no clock: `now` is passed in.

use std::borrow::Cow;

use crate::claims::{Claims, Date, TokenVersion};
use crate::error::{AuthError, AuthErrorKind};

/// The settings of the claim rules, fixed when the validator is built.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Whether the authority is Entra ID (its issuer and audience rules).
    pub(crate) entra: bool,
    /// Accepted audiences; empty: the client id (see [`Rules::check_audience`]).
    pub(crate) audiences: Vec<String>,
    pub(crate) default_audience_client_id: Option<String>,
    /// Trimmed, ASCII-lowercased, sorted and deduplicated (tenant ids are GUIDs, compared
    /// ignoring ASCII case): looked up by binary search ([`Rules::tenant_allowed`]).
    pub(crate) allowed_tenants: Vec<String>,
    /// Trimmed, compared ignoring ASCII case (client ids are GUIDs); empty: any caller.
    pub(crate) allowed_client_ids: Vec<String>,
    /// Seconds of clock skew allowed.
    pub(crate) leeway: u64,
    /// Seconds.
    pub(crate) max_token_lifetime: u64,
    pub(crate) require_scope_or_role: bool,
    /// Keep the expected and actual values of a refusal in [`AuthError::detail`] (and log them).
    pub(crate) pii: bool,
    /// Send that detail in responses too.
    pub(crate) detailed_errors: bool,
}

impl Rules {
    /// Every rule, in order: lifetime, issuer, audience, client, permission. `issuer` and
    /// `v1_issuer` are the metadata's, `key_issuer` the verifying key's own.
    pub(crate) fn check(
        &self,
        claims: &Claims,
        now: u64,
        issuer: &str,
        v1_issuer: Option<&str>,
        key_issuer: Option<&str>,
    ) -> Result<(), AuthError> {
        self.check_lifetime(claims, now)?;
        self.check_issuer(issuer, v1_issuer, key_issuer, claims)?;
        self.check_audience(claims)?;
        self.check_client(claims)?;
        self.check_permission(claims)
    }

    /// A non-empty `scp` or `roles` (unless `AllowWebApiToBeAuthorizedByACL`).
    pub(crate) fn check_permission(&self, claims: &Claims) -> Result<(), AuthError> {
        // `"scp": null`, `""` or a non-string is no scope.
        if self.require_scope_or_role
            && claims.scopes().next().is_none()
            && claims.roles().is_empty()
        {
            return Err(AuthError::new(
                AuthErrorKind::InvalidClaim,
                "the token has neither a scp nor a roles claim (IDW10201); the caller was granted no permission on this API",
            ));
        }
        Ok(())
    }

    /// A refusal: `reason` names the check and holds no personal data; `detail` (the
    /// expected and actual values) is built and kept only with PII logging or detailed
    /// errors on.
    pub(crate) fn refuse(
        &self,
        kind: AuthErrorKind,
        reason: impl Into<Cow<'static, str>>,
        detail: impl FnOnce() -> String,
    ) -> AuthError {
        let error = AuthError::new(kind, reason);
        if self.pii {
            error
                .with_detail(detail())
                .with_detail_in_response(self.detailed_errors)
        } else {
            error
        }
    }

    /// `exp` (required), `nbf` and `iat` (neither after `now`, unix seconds) with the
    /// leeway, and a lifetime of at most `max_token_lifetime`.
    pub(crate) fn check_lifetime(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        use AuthErrorKind as K;
        let leeway = self.leeway;
        let date = |name: &'static str| -> Result<Option<u64>, AuthError> {
            match claims.date(name) {
                Date::Absent => Ok(None),
                Date::At(at) => Ok(Some(at)),
                Date::Invalid => Err(AuthError::new(
                    K::InvalidClaim,
                    format!("the {name} claim is not a NumericDate"),
                )),
            }
        };
        let Some(exp) = date("exp")? else {
            return Err(AuthError::new(
                K::InvalidClaim,
                "the token has no expiration (exp)",
            ));
        };
        let nbf = date("nbf")?;
        let iat = date("iat")?;
        if let Some(nbf) = nbf {
            if nbf > exp {
                return Err(AuthError::new(
                    K::InvalidClaim,
                    format!("the token lifetime is invalid: nbf {nbf} is after exp {exp}"),
                ));
            }
            if nbf > now.saturating_add(leeway) {
                return Err(AuthError::new(
                    K::NotYetValid,
                    format!(
                        "the token is not valid before {nbf} (unix time), {} s from now; {leeway} s of clock skew allowed",
                        nbf - now
                    ),
                ));
            }
        }
        if let Some(iat) = iat {
            if iat > now.saturating_add(leeway) {
                return Err(AuthError::new(
                    K::NotYetValid,
                    format!(
                        "the token was issued in the future: iat {iat} (unix time) is {} s from now; {leeway} s of clock skew allowed",
                        iat - now
                    ),
                ));
            }
        }
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::new(
                K::Expired,
                format!(
                    "the token expired at {exp} (unix time), {} s ago; {leeway} s of clock skew allowed",
                    now - exp
                ),
            ));
        }
        // The lifetime from the later of nbf and iat (both at most now + leeway here), or
        // what is left of it when the token has neither.
        let start = nbf.max(iat).unwrap_or(now);
        let lifetime = exp.saturating_sub(start);
        let max = self.max_token_lifetime;
        if lifetime > max {
            return Err(AuthError::new(
                K::InvalidClaim,
                format!(
                    "the token's lifetime of {lifetime} s is longer than the {max} s allowed (exp is {exp}, unix time)"
                ),
            ));
        }
        Ok(())
    }

    /// The issuer: for Entra, the tenant (`tid`, in the issuer and allowed), the metadata's
    /// v2 `issuer` or v1 `v1_issuer` (with the `{tenantid}` template) and the signing key's own
    /// `issuer`; for any other authority, exactly the metadata's `issuer`.
    pub(crate) fn check_issuer(
        &self,
        issuer: &str,
        v1_issuer: Option<&str>,
        key_issuer: Option<&str>,
        claims: &Claims,
    ) -> Result<(), AuthError> {
        use AuthErrorKind as K;
        let inner = self;
        let iss = claims
            .issuer()
            .ok_or_else(|| AuthError::new(K::InvalidIssuer, "the token has no issuer (iss)"))?;
        if !inner.entra {
            if iss != issuer {
                return Err(
                    inner.refuse(K::InvalidIssuer, "the issuer is not accepted", || {
                        format!(
                            "the issuer '{}' is not accepted; expected '{}'",
                            short(iss),
                            issuer
                        )
                    }),
                );
            }
            return Ok(());
        }
        let Some(tenant) = claims.tenant_id() else {
            return Err(AuthError::new(
                K::InvalidTenant,
                "the token has no tenant (tid); Entra ID tokens always carry one",
            ));
        };
        if !iss.contains(tenant) {
            return Err(inner.refuse(
                K::InvalidTenant,
                "the token's tenant (tid) does not appear in its issuer",
                || {
                    format!(
                        "the token's tenant '{}' does not appear in its issuer '{}'",
                        short(tenant),
                        short(iss)
                    )
                },
            ));
        }
        let tid = Some(tenant);
        let templates = std::iter::once(issuer).chain(v1_issuer);
        if !templates.clone().any(|t| matches_issuer(t, tid, iss)) {
            return Err(
                inner.refuse(K::InvalidIssuer, "the issuer is not accepted", || {
                    let expected: Vec<String> = templates
                        .map(|t| format!("'{}'", substitute(t, tid)))
                        .collect();
                    format!(
                        "the issuer '{}' is not accepted; expected {}",
                        short(iss),
                        expected.join(" or ")
                    )
                }),
            );
        }
        if !inner.tenant_allowed(tenant) {
            return Err(inner.refuse(
                K::InvalidTenant,
                "the tenant is not one of the allowed tenants (AllowedTenants)",
                || {
                    format!(
                        "the tenant '{}' is not in the allowed tenants",
                        short(tenant)
                    )
                },
            ));
        }
        if let Some(key_issuer) = key_issuer {
            let ok = matches_issuer(key_issuer, tid, iss)
                || substitute(key_issuer, tid) == substitute(issuer, tid);
            if !ok {
                return Err(inner.refuse(
                    K::InvalidIssuer,
                    "the signing key is reserved for another issuer",
                    || {
                        format!(
                            "the signing key is reserved for issuer '{}', not '{}'",
                            substitute(key_issuer, tid),
                            short(iss)
                        )
                    },
                ));
            }
        }
        Ok(())
    }

    /// Whether `AllowedTenants` accepts `tenant` (an empty list accepts any), ignoring ASCII
    /// case.
    pub(crate) fn tenant_allowed(&self, tenant: &str) -> bool {
        self.allowed_tenants.is_empty()
            || self
                .allowed_tenants
                .binary_search_by(|allowed| {
                    allowed
                        .bytes()
                        .map(|b| b.to_ascii_lowercase())
                        .cmp(tenant.bytes().map(|b| b.to_ascii_lowercase()))
                })
                .is_ok()
    }

    /// The audience: a configured one, else the client id (and `api://` + client id for v1
    /// tokens of an Entra authority).
    pub(crate) fn check_audience(&self, claims: &Claims) -> Result<(), AuthError> {
        let inner = self;
        // `api://ClientId` is Entra's App ID URI form; other authorities have no such rule.
        let api_uri_default =
            inner.entra && matches!(claims.version(), Some(TokenVersion::V1) | None);
        let accepted = |aud: &str| -> bool {
            if !inner.audiences.is_empty() {
                return inner.audiences.iter().any(|a| a == aud);
            }
            let Some(client_id) = inner.default_audience_client_id.as_deref() else {
                return false;
            };
            aud == client_id || (api_uri_default && aud.strip_prefix("api://") == Some(client_id))
        };
        if claims.audiences().any(accepted) {
            return Ok(());
        }
        Err(inner.refuse(
            AuthErrorKind::InvalidAudience,
            "the audience is not accepted",
            || {
                let expected = if inner.audiences.is_empty() {
                    let client_id = inner
                        .default_audience_client_id
                        .as_deref()
                        .unwrap_or_default();
                    if api_uri_default {
                        format!("'{client_id}' or 'api://{client_id}'")
                    } else {
                        format!("'{client_id}'")
                    }
                } else {
                    inner
                        .audiences
                        .iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                };
                let actual: Vec<String> = claims
                    .audiences()
                    .take(4)
                    .map(|a| format!("'{}'", short(a)))
                    .collect();
                let actual = if actual.is_empty() {
                    "none".to_owned()
                } else {
                    actual.join(", ")
                };
                format!("the audience {actual} is not accepted; expected {expected}")
            },
        ))
    }

    /// `AllowedClientIds`: the calling application (`azp`, or `appid` in v1 tokens) must be
    /// listed, when the list is set.
    pub(crate) fn check_client(&self, claims: &Claims) -> Result<(), AuthError> {
        let inner = self;
        if inner.allowed_client_ids.is_empty() {
            return Ok(());
        }
        let Some(client) = claims.client_id() else {
            return Err(AuthError::new(
                AuthErrorKind::ClientNotAllowed,
                "the token names no client application (neither azp nor appid), and only the allowed client ids (AllowedClientIds) are accepted",
            ));
        };
        if inner
            .allowed_client_ids
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(client))
        {
            return Ok(());
        }
        Err(inner.refuse(
            AuthErrorKind::ClientNotAllowed,
            "the client application is not one of the allowed client ids (AllowedClientIds)",
            || {
                format!(
                    "the client '{}' is not accepted; expected one of {}",
                    short(client),
                    inner
                        .allowed_client_ids
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ))
    }
}

/// The first 64 characters of a value from a token, for messages.
pub(crate) fn short(value: &str) -> String {
    let mut s: String = value.chars().take(64).collect();
    if value.len() > s.len() {
        s.push('…');
    }
    s
}

/// Whether `iss` is the issuer `template` names (every `{tenantid}` replaced by `tid`:
/// External ID's issuer may name the tenant twice, `https://{tenantid}.ciamlogin.com/{tenantid}/v2.0`).
pub(crate) fn matches_issuer(template: &str, tid: Option<&str>, iss: &str) -> bool {
    match tid {
        // A byte scan first: a single-tenant issuer has no `{`, and a substring search
        // costs about 1 % of a whole fresh-token validation (perf).
        _ if !(template.as_bytes().contains(&b'{') && template.contains("{tenantid}")) => {
            template == iss
        }
        Some(tid) => {
            let mut rest = iss;
            let mut parts = template.split("{tenantid}").peekable();
            while let Some(part) = parts.next() {
                let Some(after) = rest.strip_prefix(part) else {
                    return false;
                };
                rest = after;
                if parts.peek().is_some() {
                    let Some(after) = rest.strip_prefix(tid) else {
                        return false;
                    };
                    rest = after;
                }
            }
            rest.is_empty()
        }
        None => false,
    }
}

/// The issuer `template` names for tenant `tid`.
pub(crate) fn substitute(template: &str, tid: Option<&str>) -> String {
    match tid {
        Some(tid) => template.replace("{tenantid}", tid),
        None => template.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_templates() {
        struct Case {
            name: &'static str,
            template: &'static str,
            tid: Option<&'static str>,
            iss: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                name: "exact",
                template: "https://a/t/v2.0",
                tid: None,
                iss: "https://a/t/v2.0",
                ok: true,
            },
            Case {
                name: "template",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/t/v2.0",
                ok: true,
            },
            Case {
                name: "template, other tenant in iss",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/u/v2.0",
                ok: false,
            },
            Case {
                name: "template without tid",
                template: "https://a/{tenantid}/v2.0",
                tid: None,
                iss: "https://a/t/v2.0",
                ok: false,
            },
            Case {
                name: "suffix differs",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/t/",
                ok: false,
            },
            Case {
                name: "exact mismatch",
                template: "https://a/t/",
                tid: Some("t"),
                iss: "https://a/t/v2.0",
                ok: false,
            },
            Case {
                name: "tenant named twice (External ID)",
                template: "https://{tenantid}.ciamlogin.com/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://t.ciamlogin.com/t/v2.0",
                ok: true,
            },
            Case {
                name: "tenant named twice, the second differs",
                template: "https://{tenantid}.ciamlogin.com/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://t.ciamlogin.com/u/v2.0",
                ok: false,
            },
            Case {
                name: "trailing text after the template",
                template: "https://a/{tenantid}/v2.0",
                tid: Some("t"),
                iss: "https://a/t/v2.0/x",
                ok: false,
            },
        ];
        for case in cases {
            assert_eq!(
                matches_issuer(case.template, case.tid, case.iss),
                case.ok,
                "{}",
                case.name
            );
        }
    }

    const NOW: u64 = 1_700_000_000;
    const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
    const V2: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const V1: &str = "https://sts.windows.net/{tenantid}/";

    fn rules() -> Rules {
        Rules {
            entra: true,
            audiences: Vec::new(),
            default_audience_client_id: Some("api".into()),
            allowed_tenants: Vec::new(),
            allowed_client_ids: Vec::new(),
            leeway: 300,
            max_token_lifetime: 2 * 24 * 3600,
            require_scope_or_role: true,
            pii: false,
            detailed_errors: false,
        }
    }

    fn claims(json: serde_json::Value) -> Claims {
        let serde_json::Value::Object(map) = json else {
            panic!("an object")
        };
        Claims::from_map(map).expect("claims")
    }

    #[test]
    fn lifetime_rules() {
        struct Case {
            name: &'static str,
            claims: serde_json::Value,
            result: Result<(), AuthErrorKind>,
        }
        use serde_json::json;
        use AuthErrorKind as K;
        let cases = [
            Case {
                name: "valid",
                claims: json!({"exp": NOW + 3600, "nbf": NOW - 60, "iat": NOW - 60}),
                result: Ok(()),
            },
            Case {
                name: "no exp",
                claims: json!({"nbf": NOW}),
                result: Err(K::InvalidClaim),
            },
            Case {
                name: "exp not a NumericDate",
                claims: json!({"exp": "tomorrow"}),
                result: Err(K::InvalidClaim),
            },
            Case {
                name: "expired inside the leeway",
                claims: json!({"exp": NOW - 299}),
                result: Ok(()),
            },
            Case {
                name: "expired past the leeway",
                claims: json!({"exp": NOW - 301}),
                result: Err(K::Expired),
            },
            Case {
                name: "nbf inside the leeway",
                claims: json!({"exp": NOW + 3600, "nbf": NOW + 299}),
                result: Ok(()),
            },
            Case {
                name: "nbf past the leeway",
                claims: json!({"exp": NOW + 3600, "nbf": NOW + 301}),
                result: Err(K::NotYetValid),
            },
            Case {
                name: "iat in the future",
                claims: json!({"exp": NOW + 3600, "iat": NOW + 301}),
                result: Err(K::NotYetValid),
            },
            Case {
                name: "nbf after exp",
                claims: json!({"exp": NOW + 60, "nbf": NOW + 120}),
                result: Err(K::InvalidClaim),
            },
            Case {
                name: "lifetime over two days",
                claims: json!({"exp": NOW + 2 * 24 * 3600 + 1, "iat": NOW}),
                result: Err(K::InvalidClaim),
            },
        ];
        let rules = rules();
        for case in cases {
            let result = rules
                .check_lifetime(&claims(case.claims), NOW)
                .map_err(|e| e.kind());
            assert_eq!(result, case.result, "{}", case.name);
        }
    }

    #[test]
    fn issuer_rules() {
        struct Case {
            name: &'static str,
            entra: bool,
            allowed_tenants: &'static [&'static str],
            claims: serde_json::Value,
            key_issuer: Option<&'static str>,
            result: Result<(), AuthErrorKind>,
        }
        use serde_json::json;
        use AuthErrorKind as K;
        let v2_iss = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
        let v1_iss = format!("https://sts.windows.net/{TENANT}/");
        let cases = [
            Case {
                name: "v2",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": v2_iss, "tid": TENANT}),
                key_issuer: None,
                result: Ok(()),
            },
            Case {
                name: "v1",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": v1_iss, "tid": TENANT}),
                key_issuer: None,
                result: Ok(()),
            },
            Case {
                name: "no iss",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"tid": TENANT}),
                key_issuer: None,
                result: Err(K::InvalidIssuer),
            },
            Case {
                name: "no tid",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": v2_iss}),
                key_issuer: None,
                result: Err(K::InvalidTenant),
            },
            Case {
                name: "tid not in iss",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": v2_iss, "tid": "00000000-0000-0000-0000-000000000000"}),
                key_issuer: None,
                result: Err(K::InvalidTenant),
            },
            Case {
                name: "another host",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": format!("https://evil.example/{TENANT}/v2.0"), "tid": TENANT}),
                key_issuer: None,
                result: Err(K::InvalidIssuer),
            },
            Case {
                name: "allowed tenant, any case",
                entra: true,
                allowed_tenants: &["7FF95B15-DC21-4BA6-BC92-824856578FC1"],
                claims: json!({"iss": v2_iss, "tid": TENANT}),
                key_issuer: None,
                result: Ok(()),
            },
            Case {
                name: "tenant not allowed",
                entra: true,
                allowed_tenants: &["11111111-1111-1111-1111-111111111111"],
                claims: json!({"iss": v2_iss, "tid": TENANT}),
                key_issuer: None,
                result: Err(K::InvalidTenant),
            },
            Case {
                name: "key reserved for this issuer",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": v2_iss, "tid": TENANT}),
                key_issuer: Some(V2),
                result: Ok(()),
            },
            Case {
                name: "key reserved for another issuer",
                entra: true,
                allowed_tenants: &[],
                claims: json!({"iss": v2_iss, "tid": TENANT}),
                key_issuer: Some("https://login.microsoftonline.com/other/v2.0"),
                result: Err(K::InvalidIssuer),
            },
            Case {
                name: "oidc: exactly the metadata's issuer",
                entra: false,
                allowed_tenants: &[],
                claims: json!({"iss": V2}),
                key_issuer: None,
                result: Ok(()),
            },
            Case {
                name: "oidc: another issuer",
                entra: false,
                allowed_tenants: &[],
                claims: json!({"iss": v2_iss}),
                key_issuer: None,
                result: Err(K::InvalidIssuer),
            },
        ];
        for case in cases {
            let rules = Rules {
                entra: case.entra,
                allowed_tenants: case.allowed_tenants.iter().map(|t| t.to_string()).collect(),
                ..rules()
            };
            let result = rules
                .check_issuer(V2, Some(V1), case.key_issuer, &claims(case.claims))
                .map_err(|e| e.kind());
            assert_eq!(result, case.result, "{}", case.name);
        }
    }

    /// Each cloud's issuer shapes, as their discovery documents name them (the template for
    /// multi-tenant metadata, or the tenant's own issuer), against tokens of the tenant and
    /// of another tenant.
    #[test]
    fn every_cloud_issuer_shape() {
        struct Case {
            name: &'static str,
            metadata_issuer: &'static str,
            iss: String,
            ok: bool,
        }
        const OTHER: &str = "00000000-1111-2222-3333-444444444444";
        let t = TENANT;
        let cases = [
            Case {
                name: "US Government v2 template",
                metadata_issuer: "https://login.microsoftonline.us/{tenantid}/v2.0",
                iss: format!("https://login.microsoftonline.us/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "China v2 template",
                metadata_issuer: "https://login.partner.microsoftonline.cn/{tenantid}/v2.0",
                iss: format!("https://login.partner.microsoftonline.cn/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "Bleu v2 template",
                metadata_issuer: "https://login.sovcloud-identity.fr/{tenantid}/v2.0",
                iss: format!("https://login.sovcloud-identity.fr/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "Delos v2 template",
                metadata_issuer: "https://login.sovcloud-identity.de/{tenantid}/v2.0",
                iss: format!("https://login.sovcloud-identity.de/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "GovSG v2 template",
                metadata_issuer: "https://login.sovcloud-identity.sg/{tenantid}/v2.0",
                iss: format!("https://login.sovcloud-identity.sg/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "GovSG: a token of the public cloud",
                metadata_issuer: "https://login.sovcloud-identity.sg/{tenantid}/v2.0",
                iss: format!("https://login.microsoftonline.com/{t}/v2.0"),
                ok: false,
            },
            Case {
                name: "External ID, the tenant's issuer",
                metadata_issuer: "https://7ff95b15-dc21-4ba6-bc92-824856578fc1.ciamlogin.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/v2.0",
                iss: format!("https://{t}.ciamlogin.com/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "External ID template naming the tenant twice",
                metadata_issuer: "https://{tenantid}.ciamlogin.com/{tenantid}/v2.0",
                iss: format!("https://{t}.ciamlogin.com/{t}/v2.0"),
                ok: true,
            },
            Case {
                name: "External ID, another tenant's subdomain",
                metadata_issuer: "https://{tenantid}.ciamlogin.com/{tenantid}/v2.0",
                iss: format!("https://{OTHER}.ciamlogin.com/{t}/v2.0"),
                ok: false,
            },
            Case {
                name: "External ID, a token of the workforce tenant",
                metadata_issuer: "https://7ff95b15-dc21-4ba6-bc92-824856578fc1.ciamlogin.com/7ff95b15-dc21-4ba6-bc92-824856578fc1/v2.0",
                iss: format!("https://login.microsoftonline.com/{t}/v2.0"),
                ok: false,
            },
        ];
        for case in cases {
            let claims = claims(serde_json::json!({"iss": case.iss, "tid": TENANT}));
            let result = rules().check_issuer(case.metadata_issuer, None, None, &claims);
            assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
        }
    }

    #[test]
    fn audience_client_and_permission_rules() {
        struct Case {
            name: &'static str,
            rules: Rules,
            claims: serde_json::Value,
            result: Result<(), AuthErrorKind>,
        }
        use serde_json::json;
        use AuthErrorKind as K;
        let cases = [
            Case {
                name: "client id as audience",
                rules: rules(),
                claims: json!({"aud": "api", "ver": "2.0", "roles": ["r"]}),
                result: Ok(()),
            },
            Case {
                name: "api:// client id in a v1 token",
                rules: rules(),
                claims: json!({"aud": "api://api", "ver": "1.0", "roles": ["r"]}),
                result: Ok(()),
            },
            Case {
                name: "api:// client id in a v2 token",
                rules: rules(),
                claims: json!({"aud": "api://api", "ver": "2.0", "roles": ["r"]}),
                result: Err(K::InvalidAudience),
            },
            Case {
                name: "api:// for another authority",
                rules: Rules {
                    entra: false,
                    ..rules()
                },
                claims: json!({"aud": "api://api", "roles": ["r"]}),
                result: Err(K::InvalidAudience),
            },
            Case {
                name: "configured audiences replace the client id",
                rules: Rules {
                    audiences: vec!["https://api.contoso.com".into()],
                    ..rules()
                },
                claims: json!({"aud": "api", "roles": ["r"]}),
                result: Err(K::InvalidAudience),
            },
            Case {
                name: "one of several audiences",
                rules: Rules {
                    audiences: vec!["https://api.contoso.com".into()],
                    ..rules()
                },
                claims: json!({"aud": ["x", "https://api.contoso.com"], "roles": ["r"]}),
                result: Ok(()),
            },
            Case {
                name: "no audience",
                rules: rules(),
                claims: json!({"roles": ["r"]}),
                result: Err(K::InvalidAudience),
            },
            Case {
                name: "allowed client (azp), any case",
                rules: Rules {
                    allowed_client_ids: vec!["CLIENT".into()],
                    ..rules()
                },
                claims: json!({"aud": "api", "azp": "client", "roles": ["r"]}),
                result: Ok(()),
            },
            Case {
                name: "allowed client (appid)",
                rules: Rules {
                    allowed_client_ids: vec!["client".into()],
                    ..rules()
                },
                claims: json!({"aud": "api", "appid": "client", "ver": "1.0", "roles": ["r"]}),
                result: Ok(()),
            },
            Case {
                name: "client not allowed",
                rules: Rules {
                    allowed_client_ids: vec!["client".into()],
                    ..rules()
                },
                claims: json!({"aud": "api", "azp": "other", "roles": ["r"]}),
                result: Err(K::ClientNotAllowed),
            },
            Case {
                name: "no client with a list",
                rules: Rules {
                    allowed_client_ids: vec!["client".into()],
                    ..rules()
                },
                claims: json!({"aud": "api", "roles": ["r"]}),
                result: Err(K::ClientNotAllowed),
            },
            Case {
                name: "a scope is a permission",
                rules: rules(),
                claims: json!({"aud": "api", "scp": "read"}),
                result: Ok(()),
            },
            Case {
                name: "no scope and no role",
                rules: rules(),
                claims: json!({"aud": "api", "scp": ""}),
                result: Err(K::InvalidClaim),
            },
            Case {
                name: "no permission allowed by ACL",
                rules: Rules {
                    require_scope_or_role: false,
                    ..rules()
                },
                claims: json!({"aud": "api"}),
                result: Ok(()),
            },
        ];
        for case in cases {
            let claims = claims(case.claims);
            let result = case
                .rules
                .check_audience(&claims)
                .and_then(|()| case.rules.check_client(&claims))
                .and_then(|()| case.rules.check_permission(&claims))
                .map_err(|e| e.kind());
            assert_eq!(result, case.result, "{}", case.name);
        }
    }

    #[test]
    fn details_only_with_pii() {
        let claims = claims(serde_json::json!({"aud": "other"}));
        let quiet = rules().check_audience(&claims).unwrap_err();
        assert_eq!(quiet.detail(), None, "no detail without PII logging");
        let detailed = Rules {
            pii: true,
            ..rules()
        }
        .check_audience(&claims)
        .unwrap_err();
        assert!(
            detailed
                .detail()
                .is_some_and(|d| d.contains("'other'") && d.contains("'api'")),
            "{detailed:?}"
        );
    }
}
