//! The configuration loader: `Section__Key=value` environment lines, a NUL byte, then the
//! JSON document; both sections read, and what builds on them (authorities, builders).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_azure_auth::config::ConfigSource;
use tower_azure_auth::credentials::{ConfidentialClient, CredentialDescriptions};
use tower_azure_auth::{Authority, AzureAdOptions, CallApiOptions, TokenValidator};

fuzz_target!(|data: &[u8]| {
    let (env, json) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let Ok(json) = std::str::from_utf8(json) else {
        return;
    };
    let vars: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let Ok(source) = ConfigSource::from_json_str(json) else {
        return;
    };
    let source = source.with_env(vars);
    if let Ok(options) = source.section::<AzureAdOptions>("AzureAd") {
        let _ = format!("{options:?}");
        let _ = Authority::from_options(&options);
        let _ = TokenValidator::from_options(&options);
    }
    if let Ok(options) = source.section::<CallApiOptions>("CallApi") {
        let _ = format!("{options:?}");
        let _ = CredentialDescriptions::from_call_api(&options);
        let _ = ConfidentialClient::builder_from_options(&options);
    }
});
