use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

use super::*;

/// The only test of this binary that installs a global provider: before it, the global
/// provider is the API's no-op one.
#[test]
fn the_global_no_op_provider_gets_no_instruments_and_an_installed_one_does() {
    let before = Telemetry::global();
    assert!(
        before.instruments.is_none(),
        "no provider: nothing to record"
    );
    assert!(before.start().0.is_none(), "and no clock read");

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let telemetry = Telemetry::global();
    assert!(telemetry.instruments.is_some());
    telemetry.validation(Err(AuthErrorKind::Expired), false, telemetry.start());
    provider.force_flush().expect("flush");
    let exported = exporter.get_finished_metrics().expect("metrics");
    let scope = exported
        .iter()
        .flat_map(|resource| resource.scope_metrics())
        .find(|scope| {
            scope
                .metrics()
                .any(|metric| metric.name() == "tower_azure_auth.validations")
        })
        .expect("the validation counter, exported");
    assert_eq!(scope.scope().name(), "tower-azure-auth");
    assert_eq!(scope.scope().version(), Some(env!("CARGO_PKG_VERSION")));
    // A validator built before the provider was installed keeps recording nothing, as the
    // API's own meters do.
    assert!(before.instruments.is_none());
}

#[test]
fn error_codes_are_bounded() {
    struct Case {
        name: &'static str,
        code: &'static str,
        tag: &'static str,
    }
    let cases = [
        Case {
            name: "an OAuth 2 error code",
            code: "invalid_client",
            tag: "invalid_client",
        },
        Case {
            name: "a description instead of a code",
            code: "AADSTS7000215: Invalid client secret provided.",
            tag: "_OTHER",
        },
        Case {
            name: "empty",
            code: "",
            tag: "_OTHER",
        },
        Case {
            name: "too long",
            code: "a_very_long_error_code_that_is_much_longer_than_any_oauth_code_ever_is",
            tag: "_OTHER",
        },
    ];
    for case in cases {
        assert_eq!(
            metrics::bounded_error_code(case.code),
            case.tag,
            "{}",
            case.name
        );
    }
}

#[test]
fn tag_values_are_stable_names() {
    assert_eq!(TokenSource::L2Cache.as_str(), "l2_cache");
    assert_eq!(TokenSource::L2Cache.msal_cache_level(), "L2Cache");
    assert_eq!(TokenSource::L2Cache.msal_token_source(), "Cache");
    assert_eq!(TokenSource::IdentityProvider.msal_cache_level(), "None");
    assert_eq!(
        RefreshTrigger::for_error(AuthErrorKind::KeysUnavailable),
        RefreshTrigger::KeysUnavailable
    );
    assert_eq!(
        RefreshTrigger::for_error(AuthErrorKind::UnknownSigningKey).as_str(),
        "unknown_key"
    );
    assert_eq!(
        CacheRefreshReason::ForceRefresh.as_str(),
        "ForceRefreshOrClaims"
    );
}
