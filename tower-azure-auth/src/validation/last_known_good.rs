//! Last-known-good signing keys: what the validator fetched last (the discovery document's
//! issuers and the JWKS), kept in a [`LastKnownGoodStore`] so that a replica that starts while
//! the authority is unreachable can still validate tokens.
//!
//! After every successful fetch the validator saves what it got. When a fetch fails and it
//! holds no keys yet, it loads the stored document and, if it is for the same authority, no
//! older than the configured age ([`TokenValidatorBuilder::last_known_good_max_age`], default
//! 24 hours) and well formed, serves the keys in it, while the background refresh keeps asking
//! the authority (every 1 to 30 seconds) and replaces them as soon as it answers. Stored keys
//! that pass their age during the outage are dropped (tokens are then answered with 503 again).
//! A document that cannot be used (garbage, another authority, too old) is ignored with a
//! warning, never an error to a caller.
//!
//! The trade-off: a key the authority withdrew during the outage (a rotation after a key
//! compromise) is still accepted until the authority answers again. The age limit bounds it.
//!
//! The store is trusted: whoever can write to it can make a replica that starts during an
//! outage accept tokens signed with keys of their choosing. Keep the file writable by the
//! service only, and the Redis behind authentication (ACL, `rediss://`) on a private network.
//!
//! Two stores come with the crate: [`FileStore`] (a file written atomically) and, with the
//! `redis` feature, `fleet::RedisKeyStore` (in [`validation`](super)).
//!
//! [`TokenValidatorBuilder::last_known_good_max_age`]: super::TokenValidatorBuilder::last_known_good_max_age

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, Snapshot};

/// The largest stored document read (a JWKS of 64 keys is well below it).
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// The format written in stored documents; others are ignored.
const FORMAT: u32 = 1;

/// Where the validator keeps its last known good metadata and keys: one document (bytes the
/// validator writes and checks itself) per authority, named by the authority's metadata URL.
///
/// Implementations only move bytes; the validator checks a loaded document (authority, age,
/// keys) before using it, so a store needs no validation of its own. Errors are logged by the
/// validator and never reach a caller.
pub trait LastKnownGoodStore: fmt::Debug + Send + Sync + 'static {
    /// The document stored for `authority`, or `None` when there is none.
    fn load<'a>(&'a self, authority: &'a str)
        -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;

    /// Stores `document` for `authority`, replacing the previous one.
    fn save<'a>(
        &'a self,
        authority: &'a str,
        document: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A store that could not load or save. The message never holds a token or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("cannot access `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a plain file (a symbolic link, a directory, a device): it is not read.
    #[error("`{}` is not a regular file (symbolic links are not followed)", path.display())]
    NotARegularFile {
        /// The path.
        path: PathBuf,
    },
    /// The stored document is larger than the 1 MiB read.
    #[error("the stored document is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The store's backend failed (a Redis error, a timeout…).
    #[error("the store failed: {reason}")]
    Backend {
        /// What failed (never a credential).
        reason: String,
    },
}

/// Keeps the document in one file, written atomically (a temporary file in the same
/// directory, flushed, then renamed over the target) so a reader never sees half a document.
///
/// The keys are public, so the file needs no special permissions; it is never read through a
/// symbolic link (the path must be a regular file), and the temporary file is created
/// exclusively (an existing file or link of that name is never followed). One file holds one
/// authority's document: give each validator its own path.
///
/// Reads and writes block briefly (a few kilobytes, once per refresh).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let metadata = match fs::symlink_metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io(error)),
        };
        if !metadata.file_type().is_file() {
            return Err(StoreError::NotARegularFile {
                path: self.path.clone(),
            });
        }
        let mut bytes = Vec::new();
        File::open(&self.path)
            .and_then(|file| file.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|error| self.io(error))?;
        if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(StoreError::TooLarge {
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        Ok(Some(bytes))
    }

    fn write(&self, document: &[u8]) -> Result<(), StoreError> {
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = self.path.with_file_name(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(document)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temporary, &self.path));
        if let Err(error) = written {
            let _ = fs::remove_file(&temporary);
            return Err(self.io(error));
        }
        Ok(())
    }
}

impl LastKnownGoodStore for FileStore {
    fn load<'a>(
        &'a self,
        _authority: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move { self.read() })
    }

    fn save<'a>(
        &'a self,
        _authority: &'a str,
        document: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.write(document) })
    }
}

/// The store and the age limit, as the key refresh holds them.
#[derive(Debug, Clone)]
pub(crate) struct LastKnownGood {
    pub(crate) store: Arc<dyn LastKnownGoodStore>,
    pub(crate) max_age: Duration,
}

/// The stored document.
#[derive(Serialize, Deserialize)]
struct Document {
    format: u32,
    /// The metadata URL the keys were fetched for.
    authority: String,
    /// When they were fetched, Unix seconds.
    fetched_at: u64,
    issuer: String,
    #[serde(default)]
    v1_issuer: Option<String>,
    /// The JWKS as the authority sent it.
    jwks: String,
}

/// The document for a snapshot just fetched for `authority` with the JWKS `jwks`.
pub(crate) fn encode(authority: &str, snapshot: &Snapshot, jwks: &[u8], now: u64) -> Vec<u8> {
    let document = Document {
        format: FORMAT,
        authority: authority.to_owned(),
        fetched_at: now,
        issuer: snapshot.issuer.clone(),
        v1_issuer: snapshot.v1_issuer.clone(),
        jwks: String::from_utf8_lossy(jwks).into_owned(),
    };
    serde_json::to_vec(&document).unwrap_or_default()
}

/// Checks a loaded document: the format, the authority, the age (`now` − `fetched_at` at most
/// `max_age`, and not from the future beyond 5 minutes of clock skew), the keys. The error
/// says why it is ignored (no token or key material in it).
pub(crate) fn decode(
    bytes: &[u8],
    authority: &str,
    now: u64,
    max_age: Duration,
) -> Result<Snapshot, String> {
    let document: Document = serde_json::from_slice(bytes)
        .map_err(|error| format!("not a last-known-good document ({error})"))?;
    if document.format != FORMAT {
        return Err(format!("unknown format {}", document.format));
    }
    if document.authority != authority {
        return Err(format!(
            "stored for another authority (`{}`)",
            super::rules::short(&document.authority)
        ));
    }
    if document.fetched_at > now.saturating_add(300) {
        return Err("fetched in the future (clock skew?)".to_owned());
    }
    let age = now.saturating_sub(document.fetched_at);
    if age > max_age.as_secs() {
        return Err(format!(
            "{age} s old, more than the {} s allowed",
            max_age.as_secs()
        ));
    }
    if document.issuer.trim().is_empty() {
        return Err("no issuer".to_owned());
    }
    let keys = KeySet::from_jwks(document.jwks.as_bytes())?;
    Ok(Snapshot {
        keys,
        issuer: document.issuer,
        v1_issuer: document.v1_issuer,
        stored_at: Some(document.fetched_at),
    })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    const AUTHORITY: &str = "https://idp.example.com/.well-known/openid-configuration";
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn jwks() -> String {
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
        format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"AQAB"}}]}}"#)
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            keys: KeySet::from_jwks(jwks().as_bytes()).expect("keys"),
            issuer: "https://idp.example.com".into(),
            v1_issuer: None,
            stored_at: None,
        }
    }

    #[test]
    fn a_stored_document_is_used_only_when_it_is_sound() {
        let good = encode(AUTHORITY, &snapshot(), jwks().as_bytes(), 1_000_000);
        let with = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut value: serde_json::Value = serde_json::from_slice(&good).expect("json");
            edit(&mut value);
            serde_json::to_vec(&value).expect("json")
        };
        struct Case {
            name: &'static str,
            bytes: Vec<u8>,
            now: u64,
            accepted: bool,
        }
        let cases = [
            Case {
                name: "fresh",
                bytes: good.clone(),
                now: 1_000_000 + 60,
                accepted: true,
            },
            Case {
                name: "exactly the max age",
                bytes: good.clone(),
                now: 1_000_000 + DAY.as_secs(),
                accepted: true,
            },
            Case {
                name: "older than the max age",
                bytes: good.clone(),
                now: 1_000_000 + DAY.as_secs() + 1,
                accepted: false,
            },
            Case {
                name: "from the future",
                bytes: good.clone(),
                now: 1_000_000 - 3600,
                accepted: false,
            },
            Case {
                name: "garbage",
                bytes: b"\x00\xffnot json".to_vec(),
                now: 1_000_000,
                accepted: false,
            },
            Case {
                name: "empty",
                bytes: Vec::new(),
                now: 1_000_000,
                accepted: false,
            },
            Case {
                name: "another authority",
                bytes: with(&|v| v["authority"] = "https://evil.example.com/x".into()),
                now: 1_000_000,
                accepted: false,
            },
            Case {
                name: "another format",
                bytes: with(&|v| v["format"] = 2.into()),
                now: 1_000_000,
                accepted: false,
            },
            Case {
                name: "no usable key",
                bytes: with(&|v| v["jwks"] = r#"{"keys":[{"kty":"EC","kid":"e"}]}"#.into()),
                now: 1_000_000,
                accepted: false,
            },
            Case {
                name: "jwks not json",
                bytes: with(&|v| v["jwks"] = "<html>".into()),
                now: 1_000_000,
                accepted: false,
            },
            Case {
                name: "blank issuer",
                bytes: with(&|v| v["issuer"] = " ".into()),
                now: 1_000_000,
                accepted: false,
            },
        ];
        for case in cases {
            let result = decode(&case.bytes, AUTHORITY, case.now, DAY);
            assert_eq!(
                result.is_ok(),
                case.accepted,
                "{}: {:?}",
                case.name,
                result.err()
            );
            if let Ok(snapshot) = result {
                assert_eq!(snapshot.stored_at, Some(1_000_000), "{}", case.name);
                assert_eq!(snapshot.keys.len(), 1, "{}", case.name);
                assert_eq!(snapshot.issuer, "https://idp.example.com", "{}", case.name);
            }
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("taa-lkg-{name}-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[tokio::test]
    async fn the_file_store_replaces_its_file_atomically_and_leaves_no_temporary() {
        let dir = temp_dir("atomic");
        let store = FileStore::new(dir.join("keys.json"));
        assert!(
            store.load(AUTHORITY).await.expect("load").is_none(),
            "no file yet"
        );
        store.save(AUTHORITY, b"first").await.expect("save");
        store.save(AUTHORITY, b"second").await.expect("save");
        assert_eq!(
            store.load(AUTHORITY).await.expect("load").as_deref(),
            Some(&b"second"[..])
        );
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["keys.json"], "no temporary file left");
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_store_never_reads_through_a_symbolic_link_and_replaces_one_on_save() {
        let dir = temp_dir("symlink");
        let elsewhere = dir.join("elsewhere.json");
        fs::write(&elsewhere, b"not yours").expect("write");
        let path = dir.join("keys.json");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("symlink");
        let store = FileStore::new(&path);
        assert!(matches!(
            store.load(AUTHORITY).await,
            Err(StoreError::NotARegularFile { .. })
        ));
        store.save(AUTHORITY, b"keys").await.expect("save");
        assert_eq!(
            fs::read(&elsewhere).expect("read"),
            b"not yours",
            "the link's target is untouched"
        );
        assert!(fs::symlink_metadata(&path)
            .expect("meta")
            .file_type()
            .is_file());
        assert_eq!(
            store.load(AUTHORITY).await.expect("load").as_deref(),
            Some(&b"keys"[..])
        );
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[tokio::test]
    async fn the_file_store_refuses_a_huge_file() {
        let dir = temp_dir("huge");
        let path = dir.join("keys.json");
        fs::write(&path, vec![b' '; (MAX_DOCUMENT_BYTES + 10) as usize]).expect("write");
        assert!(matches!(
            FileStore::new(&path).load(AUTHORITY).await,
            Err(StoreError::TooLarge { .. })
        ));
        fs::remove_dir_all(dir).expect("cleanup");
    }
}
