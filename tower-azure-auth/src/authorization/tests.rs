use std::borrow::Cow;

use http::{Method, Request};
use serde_json::{json, Value};

use super::*;
use crate::claims::{Claims, ClientAuthentication};
use crate::error::ConfigError;

fn claims(value: Value) -> Claims {
    Claims::from_json(value).unwrap()
}

#[test]
fn built_in_requirements() {
    struct Case {
        name: &'static str,
        requirement: Box<dyn Requirement>,
        claims: Value,
        satisfied: bool,
        /// The failure message without PII (`requirement; reason`).
        message: &'static str,
        /// The reason with PII logging on.
        pii_reason: &'static str,
    }
    let azpacr = || Box::new(ClaimRequirement::equals("azpacr", ["2"]));
    let client = || Box::new(ClientIdRequirement::new(["client-a"]));
    let cert = || {
        Box::new(ClientAuthenticationRequirement::new(
            ClientAuthentication::Certificate,
        ))
    };
    let either = || Box::new(ScopeOrAppPermissionRequirement::new(["read"], ["Read.All"]));
    let ok = |name, requirement: Box<dyn Requirement>, claims| Case {
        name,
        requirement,
        claims,
        satisfied: true,
        message: "",
        pii_reason: "",
    };
    let cases = [
        ok("role among several", Box::new(RolesRequirement::new(["a", "service-api"])), json!({"roles": ["x", "service-api"]})),
        ok("role as a single string", Box::new(RolesRequirement::new(["service-api"])), json!({"roles": "service-api"})),
        Case {
            name: "role missing",
            requirement: Box::new(RolesRequirement::new(["service-api"])),
            claims: json!({"roles": ["reader"]}),
            satisfied: false,
            message: "claim `roles` must contain one of [service-api]; the token has none of them",
            pii_reason: "the token has [reader]",
        },
        Case {
            name: "no roles claim",
            requirement: Box::new(RolesRequirement::new(["service-api"])),
            claims: json!({}),
            satisfied: false,
            message: "claim `roles` must contain one of [service-api]; the token has none of them",
            pii_reason: "the token has no `roles` claim",
        },
        Case {
            name: "no accepted role accepts nobody",
            requirement: Box::new(RolesRequirement::new(Vec::<String>::new())),
            claims: json!({"roles": ["service-api"]}),
            satisfied: false,
            message: "claim `roles` must contain one of []; the token has none of them",
            pii_reason: "the token has [service-api]",
        },
        ok("claim equals", azpacr(), json!({"azpacr": "2"})),
        ok("claim equals one of several", Box::new(ClaimRequirement::equals("tid", ["t1", "t2"])), json!({"tid": "t2"})),
        ok("array claim contains the value", Box::new(ClaimRequirement::equals("groups", ["g"])), json!({"groups": ["f", "g"]})),
        ok("number compares as its text", azpacr(), json!({"azpacr": 2})),
        ok("boolean compares as its text", Box::new(ClaimRequirement::equals("x", ["true"])), json!({"x": true})),
        Case {
            name: "claim has another value",
            requirement: azpacr(),
            claims: json!({"azpacr": "1"}),
            satisfied: false,
            message: "claim `azpacr` must be one of [2]; the token has a different value or none",
            pii_reason: "the token has `1`",
        },
        Case {
            name: "claim absent: a v1 token has appidacr, and the failure says so",
            requirement: azpacr(),
            claims: json!({"ver": "1.0", "appidacr": "2"}),
            satisfied: false,
            message: "claim `azpacr` must be one of [2]; the token has no `azpacr` claim (v1 tokens carry `appidacr` instead; `require_client_authentication` and `RequireClientAuthentication` read either)",
            pii_reason: "the token has no `azpacr` claim (v1 tokens carry `appidacr` instead; `require_client_authentication` and `RequireClientAuthentication` read either)",
        },
        Case {
            name: "azp absent: a v1 token has appid, and the failure says so",
            requirement: Box::new(ClaimRequirement::equals("azp", ["client"])),
            claims: json!({"ver": "1.0", "appid": "client"}),
            satisfied: false,
            message: "claim `azp` must be one of [client]; the token has no `azp` claim (v1 tokens carry `appid` instead; `require_client_id` reads either)",
            pii_reason: "the token has no `azp` claim (v1 tokens carry `appid` instead; `require_client_id` reads either)",
        },
        Case {
            name: "another claim absent: no hint",
            requirement: Box::new(ClaimRequirement::equals("tid", ["t1"])),
            claims: json!({}),
            satisfied: false,
            message: "claim `tid` must be one of [t1]; the token has a different value or none",
            pii_reason: "the token has no `tid` claim",
        },
        Case {
            name: "non-canonical number text does not match",
            requirement: Box::new(ClaimRequirement::equals("n", ["02", "+2"])),
            claims: json!({"n": 2}),
            satisfied: false,
            message: "claim `n` must be one of [02, +2]; the token has a different value or none",
            pii_reason: "the token has 2",
        },
        Case {
            name: "claim values compare exactly (case)",
            requirement: Box::new(ClaimRequirement::equals("azp", ["Client"])),
            claims: json!({"azp": "client"}),
            satisfied: false,
            message: "claim `azp` must be one of [Client]; the token has a different value or none",
            pii_reason: "the token has `client`",
        },
        ok("claim present", Box::new(ClaimRequirement::present("oid")), json!({"oid": "o"})),
        ok("empty string is present", Box::new(ClaimRequirement::present("oid")), json!({"oid": ""})),
        Case {
            name: "null is not present",
            requirement: Box::new(ClaimRequirement::present("oid")),
            claims: json!({"oid": null}),
            satisfied: false,
            message: "claim `oid` must be present; the token has none",
            pii_reason: "the token has no `oid` claim",
        },
        Case {
            name: "empty array is not present",
            requirement: Box::new(ClaimRequirement::present("groups")),
            claims: json!({"groups": []}),
            satisfied: false,
            message: "claim `groups` must be present; the token has none",
            pii_reason: "the token has []",
        },
        ok("scope among space-separated", Box::new(ScopesRequirement::new(["write", "read"])), json!({"scp": "profile read"})),
        Case {
            name: "scope missing",
            requirement: Box::new(ScopesRequirement::new(["write"])),
            claims: json!({"scp": "read writer"}),
            satisfied: false,
            message: "claim `scp` must contain one of [write]; the token has none of them",
            pii_reason: "the token has `read writer`",
        },
        ok("scope or app permission: scope", either(), json!({"scp": "read"})),
        ok("scope or app permission: app permission", either(), json!({"roles": ["Read.All"]})),
        Case {
            name: "scope or app permission: neither claim",
            requirement: either(),
            claims: json!({"azp": "c"}),
            satisfied: false,
            message: "claim `scp` must contain one of [read] or claim `roles` one of [Read.All]; the token has neither `scp` nor `roles`",
            pii_reason: "the token has neither `scp` nor `roles`",
        },
        Case {
            name: "scope or app permission: both claims, no match",
            requirement: either(),
            claims: json!({"scp": "write", "roles": ["Write.All"]}),
            satisfied: false,
            message: "claim `scp` must contain one of [read] or claim `roles` one of [Read.All]; the token has none of them",
            pii_reason: "the token has `write`; the token has [Write.All]",
        },
        Case {
            name: "scope or app permission that accepts nothing",
            requirement: Box::new(ScopeOrAppPermissionRequirement::new(Vec::<String>::new(), Vec::<String>::new())),
            claims: json!({"scp": "read", "roles": ["Read.All"]}),
            satisfied: false,
            message: "claim `scp` must contain one of [] or claim `roles` one of []; the token has none of them",
            pii_reason: "the token has `read`; the token has [Read.All]",
        },
        ok("client id from azp (v2)", client(), json!({"azp": "client-a"})),
        ok("client id from appid (v1)", client(), json!({"appid": "client-a", "ver": "1.0"})),
        Case {
            name: "wrong client id",
            requirement: client(),
            claims: json!({"azp": "client-b"}),
            satisfied: false,
            message: "the client id (`azp` or `appid`) must be one of [client-a]; the token has a different value or none",
            pii_reason: "the token has `client-b`",
        },
        Case {
            name: "no client id",
            requirement: client(),
            claims: json!({}),
            satisfied: false,
            message: "the client id (`azp` or `appid`) must be one of [client-a]; the token has a different value or none",
            pii_reason: "the token has neither `azp` nor `appid`",
        },
        ok("certificate from azpacr (v2)", cert(), json!({"azpacr": "2"})),
        ok("certificate from appidacr (v1)", cert(), json!({"appidacr": "2"})),
        Case {
            name: "secret instead of certificate",
            requirement: cert(),
            claims: json!({"appidacr": "1"}),
            satisfied: false,
            message: "the client must authenticate with a certificate (`azpacr` or `appidacr` = 2); the token has a different value or none",
            pii_reason: "the client authenticated with a client secret (1)",
        },
        Case {
            name: "no client authentication claim",
            requirement: cert(),
            claims: json!({"azpacr": "7"}),
            satisfied: false,
            message: "the client must authenticate with a certificate (`azpacr` or `appidacr` = 2); the token has a different value or none",
            pii_reason: "the token has neither `azpacr` nor `appidacr` with a known value",
        },
        ok(
            "assertion holds",
            Box::new(AssertionRequirement::new("tenant must be t1", |ctx| ctx.claims().tenant_id() == Some("t1"))),
            json!({"tid": "t1"}),
        ),
        Case {
            name: "assertion fails",
            requirement: Box::new(AssertionRequirement::new("tenant must be t1", |ctx| ctx.claims().tenant_id() == Some("t1"))),
            claims: json!({"tid": "t2"}),
            satisfied: false,
            message: "tenant must be t1; it does not hold",
            pii_reason: "it does not hold",
        },
    ];
    for case in cases {
        let claims = claims(case.claims);
        let ctx = AuthorizationContext::new(&claims);
        let expected = if case.satisfied {
            Decision::Satisfied
        } else {
            Decision::Unsatisfied
        };
        assert_eq!(case.requirement.decide(&ctx), expected, "{}", case.name);

        let result = super::policies::authorize_requirement(&*case.requirement, &ctx);
        if case.satisfied {
            assert_eq!(result, Ok(()), "{}", case.name);
            continue;
        }
        let failure = result.expect_err(case.name);
        assert_eq!(failure.failed_requirements().len(), 1, "{}", case.name);
        assert_eq!(
            failure.failed_requirements()[0].to_string(),
            case.message,
            "{}",
            case.name
        );
        assert!(
            !failure.failed_requirements()[0].is_explicit(),
            "{}",
            case.name
        );
        assert_eq!(
            case.requirement.unmet_reason(&ctx, true),
            case.pii_reason,
            "{}",
            case.name
        );
    }
}

/// A requirement only handlers decide.
#[derive(Debug)]
struct Custom;

impl Requirement for Custom {
    fn description(&self) -> Cow<'_, str> {
        "the custom check must pass".into()
    }
}

/// An asynchronous handler that really suspends before answering.
#[derive(Debug)]
struct Async(HandlerOutcome);

impl AuthorizationHandler for Async {
    type Requirement = Custom;

    async fn handle(&self, _: &AuthorizationContext<'_>, _: &Custom) -> HandlerOutcome {
        tokio::task::yield_now().await;
        self.0.clone()
    }
}

fn sync_outcome(outcome: HandlerOutcome) -> impl AuthorizationHandler {
    handler_fn(move |_: &AuthorizationContext<'_>, _: &Custom| outcome.clone())
}

#[tokio::test]
async fn handler_semantics() {
    type Register = fn(PoliciesBuilder) -> PoliciesBuilder;
    struct Case {
        name: &'static str,
        handlers: &'static [Register],
        /// Whether the synchronous path can decide.
        sync: bool,
        /// `None`: authorized; `Some((reason, explicit))`: the failure of `Custom`.
        failure: Option<(&'static str, bool)>,
    }
    let cases = [
        Case {
            name: "sync success",
            handlers: &[|b| b.add_handler(sync_outcome(HandlerOutcome::Succeed))],
            sync: true,
            failure: None,
        },
        Case {
            name: "async success",
            handlers: &[|b| b.add_handler(Async(HandlerOutcome::Succeed))],
            sync: false,
            failure: None,
        },
        Case {
            name: "explicit failure beats an earlier success",
            handlers: &[
                |b| b.add_handler(sync_outcome(HandlerOutcome::Succeed)),
                |b| b.add_handler(sync_outcome(HandlerOutcome::fail("blocked by policy"))),
            ],
            sync: true,
            failure: Some(("blocked by policy", true)),
        },
        Case {
            name: "explicit failure beats a later success",
            handlers: &[
                |b| b.add_handler(sync_outcome(HandlerOutcome::fail("blocked by policy"))),
                |b| b.add_handler(Async(HandlerOutcome::Succeed)),
            ],
            sync: false,
            failure: Some(("blocked by policy", true)),
        },
        Case {
            name: "async explicit failure beats a sync success",
            handlers: &[
                |b| b.add_handler(sync_outcome(HandlerOutcome::Succeed)),
                |b| b.add_handler(Async(HandlerOutcome::fail("revoked"))),
            ],
            sync: false,
            failure: Some(("revoked", true)),
        },
        Case {
            name: "two explicit failures are both reported",
            handlers: &[
                |b| b.add_handler(sync_outcome(HandlerOutcome::fail("one"))),
                |b| b.add_handler(Async(HandlerOutcome::fail("two"))),
            ],
            sync: false,
            failure: Some(("one; two", true)),
        },
        Case {
            name: "one success among abstentions is enough",
            handlers: &[
                |b| b.add_handler(sync_outcome(HandlerOutcome::Abstain)),
                |b| b.add_handler(Async(HandlerOutcome::Succeed)),
                |b| b.add_handler(Async(HandlerOutcome::Abstain)),
            ],
            sync: false,
            failure: None,
        },
        Case {
            name: "all abstain",
            handlers: &[
                |b| b.add_handler(sync_outcome(HandlerOutcome::Abstain)),
                |b| b.add_handler(Async(HandlerOutcome::Abstain)),
            ],
            sync: false,
            failure: Some(("no handler succeeded", false)),
        },
        Case {
            name: "no handler registered",
            handlers: &[],
            sync: true,
            failure: Some((
                "no authorization handler is registered for `tower_azure_auth::authorization::tests::Custom`",
                false,
            )),
        },
        Case {
            name: "a handler for another requirement type does not count",
            handlers: &[|b| {
                b.add_handler(handler_fn(|_: &AuthorizationContext<'_>, _: &RolesRequirement| true))
            }],
            sync: true,
            failure: Some((
                "no authorization handler is registered for `tower_azure_auth::authorization::tests::Custom`",
                false,
            )),
        },
    ];
    let claims = claims(json!({"roles": ["service-api"]}));
    let ctx = AuthorizationContext::new(&claims);
    for case in cases {
        let mut builder = Policies::builder().add_policy(
            "Custom",
            Policy::builder()
                .requirement(Custom)
                .require_role("service-api")
                .build(),
        );
        for register in case.handlers {
            builder = register(builder);
        }
        let policies = builder.build();
        let policy = policies.policy("Custom").unwrap();

        let expected = case.failure.map(|(reason, explicit)| {
            AuthorizationFailure::new(
                Some("Custom".into()),
                vec![FailedRequirement::new(
                    "the custom check must pass".into(),
                    reason.to_owned().into(),
                    explicit,
                )],
            )
        });
        let expected = expected.map_or(Ok(()), Err);

        let sync = policies.authorize_sync(&policy, &ctx);
        if case.sync {
            assert_eq!(sync.as_ref(), Some(&expected), "{} (sync)", case.name);
        } else {
            assert_eq!(sync, None, "{}: the sync path must defer", case.name);
        }
        assert_eq!(
            policies.authorize(&policy, &ctx).await,
            expected,
            "{} (async)",
            case.name
        );
    }
}

#[tokio::test]
async fn handlers_also_serve_built_in_requirements() {
    // ASP.NET semantics: the requirement's own decision is one voice among the handlers'.
    let policies = Policies::builder()
        .add_handler(handler_fn(
            |ctx: &AuthorizationContext<'_>, _: &RolesRequirement| {
                if ctx.claims().has_role("banned") {
                    HandlerOutcome::fail("the caller is banned")
                } else {
                    HandlerOutcome::from(ctx.claims().has_role("admin"))
                }
            },
        ))
        .build();
    let policy = Policy::builder().require_role("service-api").build();
    struct Case {
        name: &'static str,
        roles: Value,
        authorized: bool,
    }
    let cases = [
        Case {
            name: "the role itself",
            roles: json!(["service-api"]),
            authorized: true,
        },
        Case {
            name: "an admin override",
            roles: json!(["admin"]),
            authorized: true,
        },
        Case {
            name: "neither",
            roles: json!(["reader"]),
            authorized: false,
        },
        Case {
            name: "an explicit failure beats the role",
            roles: json!(["service-api", "banned"]),
            authorized: false,
        },
    ];
    for case in cases {
        let claims = claims(json!({ "roles": case.roles }));
        let ctx = AuthorizationContext::new(&claims);
        let result = policies.authorize_sync(&policy, &ctx);
        assert_eq!(
            result.map(|r| r.is_ok()),
            Some(case.authorized),
            "{}",
            case.name
        );
        assert_eq!(
            policies.authorize(&policy, &ctx).await.is_ok(),
            case.authorized,
            "{}",
            case.name
        );
    }
}

#[test]
fn handlers_see_the_request() {
    let policies = Policies::builder()
        .add_handler(handler_fn(|ctx: &AuthorizationContext<'_>, _: &Custom| {
            let read_only = ctx.method() == Some(&Method::GET);
            let tenant_header = ctx
                .headers()
                .and_then(|h| h.get("x-tenant"))
                .and_then(|v| v.to_str().ok());
            let marked = ctx.extensions().is_some_and(|e| e.get::<u8>() == Some(&7));
            HandlerOutcome::from(
                read_only
                    && ctx.path() == Some("/weatherforecast")
                    && tenant_header == ctx.claims().tenant_id()
                    && marked,
            )
        }))
        .build();
    let policy = Policy::builder().requirement(Custom).build();
    let claims = claims(json!({"tid": "t1"}));
    struct Case {
        name: &'static str,
        method: Method,
        uri: &'static str,
        tenant: &'static str,
        mark: u8,
        authorized: bool,
    }
    let cases = [
        Case {
            name: "all facts match",
            method: Method::GET,
            uri: "/weatherforecast?days=5",
            tenant: "t1",
            mark: 7,
            authorized: true,
        },
        Case {
            name: "wrong method",
            method: Method::POST,
            uri: "/weatherforecast",
            tenant: "t1",
            mark: 7,
            authorized: false,
        },
        Case {
            name: "wrong path",
            method: Method::GET,
            uri: "/other",
            tenant: "t1",
            mark: 7,
            authorized: false,
        },
        Case {
            name: "wrong header",
            method: Method::GET,
            uri: "/weatherforecast",
            tenant: "t2",
            mark: 7,
            authorized: false,
        },
        Case {
            name: "wrong extension",
            method: Method::GET,
            uri: "/weatherforecast",
            tenant: "t1",
            mark: 8,
            authorized: false,
        },
    ];
    for case in cases {
        let mut request = Request::builder()
            .method(case.method)
            .uri(case.uri)
            .header("x-tenant", case.tenant)
            .body(())
            .unwrap();
        request.extensions_mut().insert(case.mark);
        // Both constructors (the second is what the actix adapter uses).
        let (parts, ()) = request.into_parts();
        let from_parts =
            AuthorizationContext::for_request(&claims, RequestFacts::from_parts(&parts));
        let from_pieces = AuthorizationContext::for_request(
            &claims,
            RequestFacts::new(&parts.method, &parts.uri, &parts.headers, &parts.extensions),
        );
        for ctx in [from_parts, from_pieces] {
            let result = policies.authorize_sync(&policy, &ctx).unwrap();
            assert_eq!(result.is_ok(), case.authorized, "{}", case.name);
        }
    }
    // Without a request, the handler sees no facts.
    let ctx = AuthorizationContext::new(&claims);
    assert!(policies.authorize_sync(&policy, &ctx).unwrap().is_err());
}

#[tokio::test]
async fn async_closure_handler() {
    let policies = Policies::builder()
        .add_handler(async_handler_fn(
            |ctx: &AuthorizationContext<'_>, _: &Custom| {
                Box::pin(async move {
                    tokio::task::yield_now().await;
                    HandlerOutcome::from(ctx.claims().client_id() == Some("client-a"))
                })
            },
        ))
        .build();
    let policy = Policy::builder().requirement(Custom).build();
    for (name, client, authorized) in [
        ("known client", "client-a", true),
        ("other client", "client-b", false),
    ] {
        let claims = claims(json!({ "azp": client }));
        let ctx = AuthorizationContext::new(&claims);
        assert_eq!(policies.authorize_sync(&policy, &ctx), None, "{name}");
        assert_eq!(
            policies.authorize(&policy, &ctx).await.is_ok(),
            authorized,
            "{name}"
        );
    }
}

#[test]
fn registry_default_fallback_and_names() {
    let empty = Policies::builder().build();
    let claims = claims(json!({"roles": ["reader"]}));
    let ctx = AuthorizationContext::new(&claims);

    // The default default: any authenticated caller. No fallback: endpoints stay open.
    assert_eq!(
        empty.default_policy().requirements().len(),
        0,
        "default default"
    );
    assert_eq!(
        empty.authorize_sync(&empty.default_policy(), &ctx),
        Some(Ok(()))
    );
    assert!(empty.fallback_policy().is_none(), "no fallback by default");

    let policies = Policies::builder()
        .add_policy("Reader", Policy::builder().require_role("reader").build())
        .add_policy("Writer", Policy::builder().require_role("nobody").build())
        .add_policy("writer", Policy::builder().require_role("writer").build())
        .default_policy(Policy::builder().require_role("reader").build())
        .fallback_policy(Policy::builder().require_role("admin").build())
        .build();
    assert_eq!(
        policies.authorize_sync(&policies.default_policy(), &ctx),
        Some(Ok(())),
        "set default"
    );
    let fallback = policies.fallback_policy().unwrap();
    let denied = policies
        .authorize_sync(fallback, &ctx)
        .unwrap()
        .unwrap_err();
    assert_eq!(denied.policy(), None, "the fallback has no name");
    assert_eq!(
        denied.description(),
        "the caller does not satisfy the authorization requirements"
    );

    // Lookups ignore case; a later registration replaces an earlier one.
    let writer = policies.policy("WRITER").unwrap();
    assert_eq!(writer.name(), Some("writer"));
    let required = writer
        .requirements()
        .next()
        .unwrap()
        .downcast_ref::<RolesRequirement>()
        .unwrap();
    assert_eq!(required.roles().collect::<Vec<_>>(), ["writer"]);
    assert_eq!(policies.names().collect::<Vec<_>>(), ["Reader", "writer"]);

    match policies.policy("Admin") {
        Err(ConfigError::UnknownPolicy { name, known }) => {
            assert_eq!(name, "Admin");
            assert_eq!(known, "Reader, writer");
        }
        other => panic!("expected UnknownPolicy, got {other:?}"),
    }
    let message = policies.policy("Admin").unwrap_err().to_string();
    assert_eq!(
        message,
        "no authorization policy named `Admin` is registered (known: Reader, writer)"
    );
}

#[test]
fn pii_only_when_enabled() {
    let policy = Policy::builder()
        .require_client_id("expected-client")
        .require_claim("azpacr", ["2"])
        .build();
    let claims = claims(json!({"azp": "caller-client-0000", "azpacr": "1"}));
    let ctx = AuthorizationContext::new(&claims);
    for (name, pii) in [("pii off", false), ("pii on", true)] {
        let policies = Policies::builder()
            .pii_logging(pii)
            .add_policy("P", policy.clone())
            .build();
        let failure = policies
            .authorize_sync(&policies.policy("P").unwrap(), &ctx)
            .unwrap()
            .unwrap_err();
        let text = failure.to_string();
        assert_eq!(failure.failed_requirements().len(), 2, "{name}");
        assert_eq!(text.contains("caller-client-0000"), pii, "{name}: {text}");
        assert_eq!(text.contains("the token has `1`"), pii, "{name}: {text}");
        assert!(
            text.starts_with("the caller does not satisfy the authorization policy `P`: "),
            "{name}: {text}"
        );
    }
}

#[test]
fn debug_output_names_policies_and_handlers() {
    let policies = Policies::builder()
        .add_policy(
            "P",
            Policy::builder()
                .requirement(Custom)
                .require_assertion(|_| true)
                .build(),
        )
        .add_handler(Async(HandlerOutcome::Succeed))
        .build();
    let debug = format!("{policies:?}");
    assert!(debug.contains("\"P\""), "{debug}");
    assert!(debug.contains("Custom"), "{debug}");
    assert!(debug.contains("tests::Async"), "{debug}");
    assert!(
        debug.contains("the policy's assertion must hold"),
        "{debug}"
    );
}
