//! [`ConfigSource`]: an `appsettings.json` document, the environment's
//! `appsettings.{Environment}.json` over it, and `Section__Key` environment variables on top,
//! keys compared without case, as .NET's configuration does.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// Layered configuration: a JSON document, overlaid by environment variables.
#[derive(Clone, Default)]
pub struct ConfigSource {
    root: Map<String, Value>,
    origin: String,
}

impl fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may hold secrets.
        f.debug_struct("ConfigSource")
            .field("origin", &self.origin)
            .field("sections", &self.root.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConfigSource {
    /// An empty source.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// [`ConfigSource::load_file`] when a file is given; otherwise the process environment
    /// alone.
    ///
    /// # Errors
    ///
    /// As [`ConfigSource::load_file`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        match file {
            Some(path) => Self::load_file(path),
            None => Ok(Self::new().with_env(std::env::vars())),
        }
    }

    /// The layers of a .NET host, for one file: `file` (required), then the environment's file
    /// beside it (`appsettings.Development.json` for `appsettings.json` when
    /// `DOTNET_ENVIRONMENT`, or else `ASPNETCORE_ENVIRONMENT`, is `Development`; absent is
    /// fine), then the process environment's `Section__Key` variables.
    ///
    /// # Errors
    ///
    /// When `file` cannot be read, or it or the environment's file is not a JSON object
    /// ([`ConfigError::Io`], [`ConfigError::Json`], both naming the file).
    pub fn load_file(file: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let environment = environment_name(std::env::vars());
        Ok(Self::layered(file, environment.as_deref())?.with_env(std::env::vars()))
    }

    /// `appsettings.json` and `appsettings.{Environment}.json` in `dir` (each optional, as in
    /// .NET's default host), then the process environment.
    ///
    /// # Errors
    ///
    /// When a file that exists cannot be read or is not a JSON object (the error names it).
    pub fn appsettings(dir: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let base = dir.as_ref().join("appsettings.json");
        let mut source = Self::from_optional_file(&base)?.unwrap_or_default();
        if let Some(environment) = environment_name(std::env::vars()) {
            if let Some(over) = Self::from_optional_file(&environment_file(&base, &environment))? {
                source = source.overlay(over);
            }
        }
        Ok(source.with_env(std::env::vars()))
    }

    /// `file` (required), then `{stem}.{environment}.{extension}` beside it when it exists
    /// (`appsettings.Production.json`); no environment variables. [`ConfigSource::load_file`]
    /// is this with the hosting environment's name and the process environment on top.
    ///
    /// # Errors
    ///
    /// When `file` cannot be read, or either file is not a JSON object (the error names it).
    pub fn layered(file: impl AsRef<Path>, environment: Option<&str>) -> Result<Self, ConfigError> {
        let file = file.as_ref();
        let source = Self::from_file(file)?;
        let Some(environment) = environment.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(source);
        };
        Ok(
            match Self::from_optional_file(&environment_file(file, environment))? {
                Some(over) => source.overlay(over),
                None => source,
            },
        )
    }

    /// `over`'s values on top of this source's: objects merged key by key, arrays item by
    /// item (as .NET's `Section:0:Key` keys are), any other value replaced.
    #[must_use]
    pub fn overlay(mut self, over: Self) -> Self {
        for (key, value) in over.root {
            merge_into(&mut self.root, key, value);
        }
        self.origin = if self.origin.is_empty() {
            over.origin
        } else {
            format!("{} + {}", self.origin, over.origin)
        };
        self
    }

    /// The hosting environment's name as .NET reads it from `vars` (pass
    /// `std::env::vars()`): `DOTNET_ENVIRONMENT`, else `ASPNETCORE_ENVIRONMENT`; blank values
    /// are ignored.
    #[must_use]
    pub fn environment_name(vars: impl IntoIterator<Item = (String, String)>) -> Option<String> {
        environment_name(vars)
    }

    /// A file that may be absent: `None` when it does not exist.
    fn from_optional_file(path: &Path) -> Result<Option<Self>, ConfigError> {
        match Self::from_file(path) {
            Ok(source) => Ok(Some(source)),
            Err(ConfigError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Reads a JSON file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not a JSON object.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ConfigError::Json {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let mut source = Self::from_value(value).map_err(|reason| ConfigError::Invalid {
            key: path.display().to_string(),
            reason,
        })?;
        source.origin = path.display().to_string();
        Ok(source)
    }

    /// Parses a JSON document.
    ///
    /// # Errors
    ///
    /// When the text is not a JSON object.
    pub fn from_json_str(json: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(json).map_err(|e| ConfigError::Invalid {
            key: "<json>".into(),
            reason: e.to_string(),
        })?;
        Self::from_value(value).map_err(|reason| ConfigError::Invalid {
            key: "<json>".into(),
            reason,
        })
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match lowercase_keys(value) {
            Value::Object(root) => Ok(Self {
                root,
                origin: "<json>".into(),
            }),
            _ => Err("the configuration must be a JSON object".into()),
        }
    }

    /// Overlays `Section__Key__SubKey=value` variables (keys case-insensitive; array items by
    /// index: `ClientCertificates__0__SourceType`). Variables without `__` are ignored.
    #[must_use]
    pub fn with_env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut vars: Vec<(String, String)> =
            vars.into_iter().filter(|(k, _)| k.contains("__")).collect();
        vars.sort();
        for (key, value) in vars {
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                continue;
            }
            set_path(&mut self.root, &path, value);
        }
        self
    }

    /// Deserializes one section (missing sections give the type's defaults).
    ///
    /// # Errors
    ///
    /// When a value in the section has the wrong shape.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let value = self
            .root
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let value = arrays_from_index_maps(value);
        serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
            key: format!(
                "{name} (from {})",
                if self.origin.is_empty() {
                    "the environment"
                } else {
                    &self.origin
                }
            ),
            reason: e.to_string(),
        })
    }
}

fn environment_name(vars: impl IntoIterator<Item = (String, String)>) -> Option<String> {
    let (mut dotnet, mut aspnetcore) = (None, None);
    for (key, value) in vars {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "DOTNET_ENVIRONMENT" => dotnet = Some(value.to_owned()),
            "ASPNETCORE_ENVIRONMENT" => aspnetcore = Some(value.to_owned()),
            _ => {}
        }
    }
    dotnet.or(aspnetcore)
}

/// `dir/appsettings.Development.json` for `dir/appsettings.json` and `Development`.
fn environment_file(file: &Path, environment: &str) -> PathBuf {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let name = match file.extension() {
        Some(extension) => format!("{stem}.{environment}.{}", extension.to_string_lossy()),
        None => format!("{stem}.{environment}"),
    };
    file.with_file_name(name)
}

fn merge_into(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        Some(existing) => merge_value(existing, value),
        None => {
            map.insert(key, value);
        }
    }
}

fn merge_value(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge_into(base, key, value);
            }
        }
        (Value::Array(base), Value::Array(over)) => {
            for (index, value) in over.into_iter().enumerate() {
                match base.get_mut(index) {
                    Some(existing) => merge_value(existing, value),
                    None => base.push(value),
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// Writes `value` at `path`, turning arrays into index maps where the environment addresses
/// array items (`…__0__…`); [`arrays_from_index_maps`] turns them back.
fn set_path(map: &mut Map<String, Value>, path: &[String], value: String) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), Value::String(value));
        return;
    }
    let entry = map
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Array(items) = entry {
        let as_map: Map<String, Value> = std::mem::take(items)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect();
        *entry = Value::Object(as_map);
    }
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(child) = entry {
        set_path(child, rest, value);
    }
}

fn arrays_from_index_maps(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let all_indexes = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if all_indexes {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, arrays_from_index_maps(v))))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, arrays_from_index_maps(v)))
                        .collect(),
                )
            }
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(arrays_from_index_maps).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_name_prefers_dotnet_then_aspnetcore() {
        struct Case {
            name: &'static str,
            vars: Vec<(String, String)>,
            expected: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "neither",
                vars: vars(&[("PATH", "/bin")]),
                expected: None,
            },
            Case {
                name: "ASPNETCORE only",
                vars: vars(&[("ASPNETCORE_ENVIRONMENT", "Staging")]),
                expected: Some("Staging"),
            },
            Case {
                name: "both: DOTNET wins",
                vars: vars(&[
                    ("ASPNETCORE_ENVIRONMENT", "Staging"),
                    ("DOTNET_ENVIRONMENT", "Development"),
                ]),
                expected: Some("Development"),
            },
            Case {
                name: "blank DOTNET falls back",
                vars: vars(&[
                    ("DOTNET_ENVIRONMENT", " "),
                    ("ASPNETCORE_ENVIRONMENT", "Production"),
                ]),
                expected: Some("Production"),
            },
        ];
        for case in cases {
            assert_eq!(
                ConfigSource::environment_name(case.vars).as_deref(),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase", default)]
    struct Section {
        instance: Option<String>,
        clientid: Option<String>,
        tenantid: Option<String>,
        allowed: Vec<String>,
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(name: &str, files: &[(&str, &str)]) -> Dir {
        let dir = std::env::temp_dir().join(format!("taa-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        Dir(dir)
    }

    const BASE: &str = r#"{"AzureAd": {"Instance": "https://login.microsoftonline.com/",
        "ClientId": "base", "TenantId": "t", "Allowed": ["a", "b"]}}"#;

    #[test]
    fn the_environment_file_overlays_the_base_and_the_variables_overlay_both() {
        let d = dir(
            "layers",
            &[
                ("appsettings.json", BASE),
                (
                    "appsettings.Development.json",
                    r#"{"azuread": {"clientid": "dev", "Allowed": ["A"]}}"#,
                ),
            ],
        );
        let file = d.0.join("appsettings.json");
        let layered = ConfigSource::layered(&file, Some("Development")).unwrap();
        let section: Section = layered.section("AzureAd").unwrap();
        assert_eq!(
            section,
            Section {
                instance: Some("https://login.microsoftonline.com/".into()),
                clientid: Some("dev".into()),
                tenantid: Some("t".into()),
                // Item by item, as .NET's `AzureAd:Allowed:0` keys.
                allowed: vec!["A".into(), "b".into()],
            }
        );
        let with_env: Section = layered
            .with_env(vars(&[("AzureAd__TenantId", "from-env")]))
            .section("AzureAd")
            .unwrap();
        assert_eq!(with_env.tenantid.as_deref(), Some("from-env"));
        assert_eq!(with_env.clientid.as_deref(), Some("dev"));
        // Another environment without a file: the base alone, no error.
        let production: Section = ConfigSource::layered(&file, Some("Production"))
            .unwrap()
            .section("AzureAd")
            .unwrap();
        assert_eq!(production.clientid.as_deref(), Some("base"));
        // No environment: the base alone.
        let none: Section = ConfigSource::layered(file.as_path(), None)
            .unwrap()
            .section("AzureAd")
            .unwrap();
        assert_eq!(none.clientid.as_deref(), Some("base"));
    }

    #[test]
    fn a_malformed_environment_file_is_an_error_naming_it() {
        let d = dir(
            "malformed",
            &[
                ("weather.json", BASE),
                ("weather.Staging.json", r#"{"AzureAd": {"ClientId": }"#),
            ],
        );
        let error = ConfigSource::layered(d.0.join("weather.json"), Some("Staging")).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ConfigError::Json { .. }), "{error:?}");
        assert!(message.contains("weather.Staging.json"), "{message}");
        // The base file is required; its absence names it.
        let error = ConfigSource::layered(d.0.join("missing.json"), None).unwrap_err();
        assert!(error.to_string().contains("missing.json"), "{error}");
    }

    #[test]
    fn appsettings_in_a_directory_are_both_optional() {
        let empty = dir("empty", &[]);
        let source = ConfigSource::appsettings(&empty.0).unwrap();
        let section: Section = source.section("AzureAd").unwrap();
        assert_eq!(section.clientid, None);
        let d = dir("appsettings", &[("appsettings.json", BASE)]);
        let section: Section = ConfigSource::appsettings(d.0.as_path())
            .unwrap()
            .section("AzureAd")
            .unwrap();
        assert_eq!(section.tenantid.as_deref(), Some("t"));
    }
}
