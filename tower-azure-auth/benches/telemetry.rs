//! What the instruments cost on the hot path: `ValidateAccessTokenLayer` in front of a bare
//! service with a cached token (the verified-token cache answers), and the seed's policy
//! through `RequirePolicyLayer`, in three set-ups:
//!
//! - the `opentelemetry` feature off (`cargo bench … --bench telemetry`): the baseline;
//! - the feature on, no meter provider installed (the global no-op provider);
//! - the feature on, the SDK's `SdkMeterProvider` recording (a periodic reader that exports
//!   once an hour, so the export is not measured).
//!
//! Run both builds:
//! `cargo bench -p tower-azure-auth --bench telemetry` and
//! `cargo bench -p tower-azure-auth --bench telemetry --features opentelemetry`.

#![allow(missing_docs)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use support::{TestIdp, TestKey};
use tower::{Layer as _, Service as _};
use tower_azure_auth::authorization::{Policies, Policy};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::validation::TokenValidatorBuilder;
use tower_azure_auth::{Authority, TokenValidator};

const TENANT: &str = "7ff95b15-dc21-4ba6-bc92-824856578fc1";
const API: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const NOW: u64 = 1_800_000_000;

/// The set-ups of this build: (name, how the validator and the policies are built).
type Configure = Box<dyn Fn(TokenValidatorBuilder) -> (TokenValidatorBuilder, Policies)>;

fn policies() -> tower_azure_auth::authorization::PoliciesBuilder {
    Policies::builder().add_policy(
        "ValidateAccessTokenPolicy",
        Policy::builder().require_role("service-api").build(),
    )
}

fn setups() -> Vec<(&'static str, Configure)> {
    #[cfg(not(feature = "opentelemetry"))]
    {
        vec![(
            "feature_off",
            Box::new(|builder| (builder, policies().build())) as Configure,
        )]
    }
    #[cfg(feature = "opentelemetry")]
    {
        use opentelemetry::metrics::MeterProvider as _;
        use opentelemetry_sdk::metrics::{
            InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
        };
        let provider = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(InMemoryMetricExporter::default())
                    .with_interval(Duration::from_secs(3600))
                    .build(),
            )
            .build();
        vec![
            (
                "feature_on_no_provider",
                Box::new(|builder| (builder, policies().build())) as Configure,
            ),
            (
                "feature_on_sdk",
                Box::new(move |builder: TokenValidatorBuilder| {
                    let meter = provider.meter("tower-azure-auth");
                    (
                        builder.meter(meter.clone()),
                        policies().meter(meter).build(),
                    )
                }) as Configure,
            ),
        ]
    }
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = TestKey::generate("key-1");
    let idp = runtime.block_on(TestIdp::start(TENANT, &[&key]));
    let token = key.token(&json!({
        "aud": API, "iss": idp.issuer_v2(), "iat": NOW - 60, "nbf": NOW - 60,
        "exp": NOW + 3600, "aio": "E2ZgYJj+9y2fWnE7pd1GV3tbR8mKAQA=",
        "azp": "11111111-2222-3333-4444-555555555555", "azpacr": "2",
        "oid": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11",
        "rh": "0.AXEAFVv5fyHcpku8koJIVlePwaXzeLGIdSpJkk9y14d-fkhxAAA.",
        "roles": ["service-api"], "sub": "6e1b4f5c-31a8-4c7e-9a7e-2d1f9b8c0a11",
        "tid": TENANT, "uti": "uti-0000000000000002", "ver": "2.0",
    }));
    let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let request = || {
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, header.clone());
        request
    };
    let bare = tower::service_fn(|request: http::Request<()>| async move {
        black_box(request.extensions().len());
        Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
    });
    let mut group = c.benchmark_group("telemetry");
    for (name, configure) in setups() {
        let _guard = runtime.enter();
        let (builder, policies) = configure(
            TokenValidator::builder(Authority::entra(&idp.instance(), TENANT).unwrap())
                .client_id(API)
                .clock(Arc::new(ManualClock::at_unix(NOW))),
        );
        let validator = builder.build().unwrap();
        runtime.block_on(validator.refresh()).unwrap();
        validator.validate_with_current_keys(&token).unwrap();
        let mut service = ValidateAccessTokenLayer::new(validator.clone()).layer(bare);
        group.bench_function(format!("layer_cached/{name}"), |b| {
            b.iter(|| futures_util::FutureExt::now_or_never(service.call(black_box(request()))))
        });
        let mut service = ValidateAccessTokenLayer::new(validator).layer(
            RequirePolicyLayer::named(&policies, "ValidateAccessTokenPolicy")
                .unwrap()
                .layer(bare),
        );
        group.bench_function(format!("layer_cached_and_policy/{name}"), |b| {
            b.iter(|| futures_util::FutureExt::now_or_never(service.call(black_box(request()))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = layer
}
criterion_main!(benches);
