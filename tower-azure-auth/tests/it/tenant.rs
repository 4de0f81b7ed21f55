//! A tenant chosen per request (`AcquireTokenOptions::tenant`) against the dev authority over
//! real HTTP: the tenant segment replaced, tokens cached per tenant, overrides refused as
//! MSAL Go refuses them; and the outbound layer and middleware refusing a scope without
//! `/.default` when they are built.

use std::time::Duration;

use entra_dev_authority::{DevAuthority, Endpoint};
use tower_azure_auth::credentials::{
    AcquireTokenOptions, ClientCertificate, ConfidentialClient, TokenError,
};
use tower_azure_auth::layers::AddAccessTokenLayer;
use tower_azure_auth::{Authority, ConfigError};

use crate::cae::dev_authority;

const CLIENT: &str = "0b7c5d2e-0000-4000-8000-0000000000c1";
const SCOPE: &str = "api://weather/.default";
/// A tenant the dev authority does not know (it answers AADSTS90002).
const OTHER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

fn client_on(
    authority: &DevAuthority,
    tenant: &str,
    certificate: ClientCertificate,
) -> ConfidentialClient {
    ConfidentialClient::builder(CLIENT)
        .authority(Authority::entra(&authority.instance(), tenant).unwrap())
        .certificate(certificate)
        .retry_delay(Duration::ZERO)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_tenant_override_goes_to_that_tenant_and_is_cached_per_tenant() {
    let (authority, certificate) = dev_authority().await;
    let client = client_on(&authority, "organizations", certificate);
    // Without an override, the client credentials flow on `organizations` is refused by Entra.
    let error = client.acquire_token_for_client(&[SCOPE]).await.unwrap_err();
    assert!(matches!(error, TokenError::Rejected(_)), "{error}");
    assert_eq!(authority.request_count(Endpoint::Token), 1);

    let home = AcquireTokenOptions::new().tenant(authority.tenant_id());
    let other = AcquireTokenOptions::new().tenant(OTHER_TENANT);
    let token = client
        .acquire_token_for_client_with(&[SCOPE], &home)
        .await
        .unwrap();
    assert_eq!(authority.request_count(Endpoint::Token), 2);
    // The other tenant is not served from the home tenant's entry: it goes to its own path,
    // which the dev authority does not know.
    let error = client
        .acquire_token_for_client_with(&[SCOPE], &other)
        .await
        .unwrap_err();
    assert_eq!(error.aadsts_code(), Some(90002), "{error}");
    assert_eq!(authority.request_count(Endpoint::Token), 3);
    // Both the home tenant's entry and the configured one are kept apart.
    let again = client
        .acquire_token_for_client_with(&[SCOPE], &home)
        .await
        .unwrap();
    assert_eq!(
        again.secret(),
        token.secret(),
        "a cache hit for the home tenant"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 3);
    assert!(client.acquire_token_for_client(&[SCOPE]).await.is_err());
    assert_eq!(
        authority.request_count(Endpoint::Token),
        4,
        "the configured tenant has its own entry"
    );
}

#[tokio::test]
async fn a_client_built_for_a_tenant_can_switch_tenants() {
    let (authority, certificate) = dev_authority().await;
    let client = client_on(&authority, authority.tenant_id(), certificate);
    let configured = client.acquire_token_for_client(&[SCOPE]).await.unwrap();
    let error = client
        .acquire_token_for_client_with(&[SCOPE], &AcquireTokenOptions::new().tenant(OTHER_TENANT))
        .await
        .unwrap_err();
    assert_eq!(error.aadsts_code(), Some(90002), "{error}");
    let same = client
        .acquire_token_for_client_with(
            &[SCOPE],
            &AcquireTokenOptions::new().tenant(authority.tenant_id()),
        )
        .await
        .unwrap();
    assert_eq!(
        same.secret(),
        configured.secret(),
        "the same tenant is the same cache entry"
    );
    assert_eq!(authority.request_count(Endpoint::Token), 2);
}

#[tokio::test]
async fn refused_tenant_overrides_fail_at_the_call_without_a_request() {
    let (authority, certificate) = dev_authority().await;
    let entra = client_on(&authority, "organizations", certificate.clone());
    for tenant in [
        "",
        " ",
        "common",
        "organizations",
        "Consumers",
        "bad/tenant",
    ] {
        let error = entra
            .acquire_token_for_client_with(&[SCOPE], &AcquireTokenOptions::new().tenant(tenant))
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::InvalidTenant { .. }),
            "{tenant:?}: {error}"
        );
    }
    for issuer in [
        "https://contoso.b2clogin.com/tfp/contoso.onmicrosoft.com/B2C_1_signin/v2.0",
        "https://adfs.contoso.com/adfs",
    ] {
        let other = ConfidentialClient::builder(CLIENT)
            .authority(Authority::oidc(issuer).unwrap())
            .certificate(certificate.clone())
            .build()
            .unwrap();
        let error = other
            .acquire_token_for_client_with(
                &["api://weather/.default"],
                &AcquireTokenOptions::new().tenant(authority.tenant_id()),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::InvalidTenant { .. }),
            "{issuer}: {error}"
        );
        assert!(
            error.to_string().contains("only Entra authorities"),
            "{error}"
        );
    }
    assert_eq!(authority.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn the_layer_and_middleware_refuse_a_scope_without_default_when_built() {
    let (authority, certificate) = dev_authority().await;
    let client = client_on(&authority, authority.tenant_id(), certificate);
    for scopes in [vec!["api://weather/read"], vec![SCOPE, "User.Read"], vec![]] {
        let error = AddAccessTokenLayer::new(client.clone(), scopes.clone(), "http://127.0.0.1:1")
            .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Invalid { .. } | ConfigError::Missing { .. }
            ),
            "{scopes:?}: {error}"
        );
        assert!(
            error.to_string().contains("/.default"),
            "{scopes:?}: {error}"
        );
        #[cfg(feature = "reqwest")]
        {
            let error = tower_azure_auth::middleware::AccessTokenMiddleware::new(
                client.clone(),
                scopes.clone(),
                "http://127.0.0.1:1",
            )
            .unwrap_err();
            assert!(
                error.to_string().contains("/.default"),
                "{scopes:?}: {error}"
            );
        }
    }
    assert!(AddAccessTokenLayer::new(client, [SCOPE], "http://127.0.0.1:1").is_ok());
    assert_eq!(authority.request_count(Endpoint::Token), 0);
}
