//! [`ConfigSource`]: an `appsettings.json` document overlaid by `Section__Key` environment
//! variables, keys compared without case, as .NET's configuration does.

use std::fmt;
use std::path::Path;

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

    /// The optional JSON file, then the process environment on top.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not a JSON object.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let source = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::new(),
        };
        Ok(source.with_env(std::env::vars()))
    }

    /// Reads a JSON file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not a JSON object.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
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
            key: format!("{name} (from {})", self.origin),
            reason: e.to_string(),
        })
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
