//! Plumbing for the interop suite: the case runner, child processes on 127.0.0.1, the
//! prerequisites `scripts/interop-setup.sh` installs, temporary files.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What a case returns: `Err` carries the reason it failed.
pub(crate) type Outcome = Result<(), String>;

/// Fails the current case with a formatted reason unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            return Err(format!($($reason)+));
        }
    };
}
pub(crate) use ensure;

/// Adds what was being done to any error, for `?` in cases.
pub(crate) trait Context<T> {
    /// Maps the error to `"{what}: {error}"`.
    fn context(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T, String> {
        self.ok_or_else(|| format!("{what}: missing"))
    }
}

/// Which cases run: names containing any `include` word (all when empty) and no `skip` word.
pub(crate) struct Filters {
    pub(crate) include: Vec<String>,
    pub(crate) skip: Vec<String>,
}

impl Filters {
    fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|f| name.contains(f.as_str())))
            && !self.skip.iter().any(|s| name.contains(s.as_str()))
    }
}

type CaseFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Runs named cases of one suite in order, printing each as `interop <suite> :: <case> ... ok`
/// (or `FAILED` with the reason); a panic fails its case, not the others.
pub(crate) struct Suite {
    name: &'static str,
    filters: Arc<Filters>,
    pub(crate) passed: usize,
    pub(crate) failed: Vec<String>,
    pub(crate) filtered_out: usize,
}

impl Suite {
    pub(crate) fn new(name: &'static str, filters: Arc<Filters>) -> Self {
        Self {
            name,
            filters,
            passed: 0,
            failed: Vec::new(),
            filtered_out: 0,
        }
    }

    fn full_name(&self, case: &str) -> String {
        format!("{} :: {case}", self.name)
    }

    /// Whether any case whose name starts with `prefix` could run under the filters (to skip
    /// starting servers nobody needs).
    pub(crate) fn wants(&self, prefix: &str) -> bool {
        let name = self.full_name(prefix);
        !self.filters.skip.iter().any(|s| name.contains(s.as_str()))
            && (self.filters.include.is_empty()
                || self
                    .filters
                    .include
                    .iter()
                    .any(|f| name.contains(f.as_str()) || f.contains(&name)))
    }

    /// Runs one case (unless filtered out) and records the outcome.
    pub(crate) async fn case<'a>(&mut self, name: impl Into<String>, run: CaseFuture<'a>) {
        let name = self.full_name(&name.into());
        if !self.filters.selects(&name) {
            self.filtered_out += 1;
            drop(run);
            return;
        }
        // A panic inside the case (an unwrap in a helper) fails this case only.
        let outcome = match futures_catch(run).await {
            Ok(outcome) => outcome,
            Err(panic) => Err(format!("panicked: {panic}")),
        };
        match outcome {
            Ok(()) => {
                println!("interop {name} ... ok");
                self.passed += 1;
            }
            Err(reason) => {
                println!(
                    "interop {name} ... FAILED\n    {}",
                    reason.replace('\n', "\n    ")
                );
                self.failed.push(name);
            }
        }
    }

    /// Records a failure that prevents the remaining cases of the suite from running
    /// (a server that did not start, a missing prerequisite).
    pub(crate) fn abort(&mut self, what: &str, reason: &str) {
        let name = self.full_name(what);
        println!(
            "interop {name} ... FAILED\n    {}",
            reason.replace('\n', "\n    ")
        );
        self.failed.push(name);
    }
}

async fn futures_catch(run: CaseFuture<'_>) -> Result<Outcome, String> {
    use futures_util::FutureExt as _;
    std::panic::AssertUnwindSafe(run)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a non-string panic".to_owned())
        })
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests.parent().unwrap_or(tests).to_path_buf()
}

/// `tests/interop`.
pub(crate) fn interop_dir() -> PathBuf {
    repo_root().join("tests").join("interop")
}

const SETUP_HINT: &str =
    "run scripts/interop-setup.sh first (scripts/test.sh, the README's test command, does)";

/// The Python of the interop virtual environment, or why it is not usable.
pub(crate) fn venv_python() -> Result<PathBuf, String> {
    let python = interop_dir().join(".venv").join("bin").join("python");
    ensure!(
        python.is_file(),
        "the interop virtual environment is missing ({}): {SETUP_HINT}",
        python.display()
    );
    Ok(python)
}

/// `node`, checked to run, and oidc-provider installed in `tests/interop/oidc-provider`.
pub(crate) fn node_with_oidc_provider() -> Result<(PathBuf, PathBuf), String> {
    let dir = interop_dir().join("oidc-provider");
    let installed = dir
        .join("node_modules")
        .join("oidc-provider")
        .join("package.json");
    ensure!(
        installed.is_file(),
        "oidc-provider is not installed ({} is missing): {SETUP_HINT}",
        installed.display()
    );
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node cannot be run ({e}): {SETUP_HINT}"))?;
    ensure!(
        version.status.success(),
        "`node --version` failed: {SETUP_HINT}"
    );
    Ok((PathBuf::from("node"), dir.join("server.mjs")))
}

/// `node`, checked to run, and @azure/msal-node installed in `tests/interop/msal-node`;
/// returns the client script.
pub(crate) fn node_with_msal_node() -> Result<PathBuf, String> {
    let dir = interop_dir().join("msal-node");
    let installed = dir
        .join("node_modules")
        .join("@azure")
        .join("msal-node")
        .join("package.json");
    ensure!(
        installed.is_file(),
        "@azure/msal-node is not installed ({} is missing): {SETUP_HINT}",
        installed.display()
    );
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node cannot be run ({e}): {SETUP_HINT}"))?;
    ensure!(
        version.status.success(),
        "`node --version` failed: {SETUP_HINT}"
    );
    Ok(dir.join("client.mjs"))
}

/// A binary of this workspace, built by `scripts/interop-setup.sh`
/// (`cargo build --workspace --all-features --bins`): found next to this test's own
/// executable (`target/debug/deps/interop-…` → `target/debug/NAME`), so `CARGO_TARGET_DIR`
/// is honoured.
pub(crate) fn workspace_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the target directory of the test executable")?;
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        binary.is_file(),
        "{} is not built: {SETUP_HINT}, or `cargo build --workspace --all-features --bins`",
        binary.display()
    );
    Ok(binary)
}

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).context("creating a temporary directory")?;
        Ok(Self(path))
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file in the directory and returns its path.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf, String> {
        let path = self.0.join(name);
        std::fs::write(&path, contents).context(&format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process serving on 127.0.0.1: its output is collected (shown when a case fails)
/// and it is killed on drop.
pub(crate) struct Service {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
    /// The `http://…` base URL it printed.
    pub(crate) url: String,
}

impl Service {
    /// Spawns `command` and waits until a line of its standard output contains
    /// `listening on http://…` (the convention of the examples and of `server.mjs`).
    pub(crate) fn spawn(name: &str, mut command: Command) -> Result<Self, String> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("{name} could not be started: {e}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, Arc::clone(&output), Some(ready_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, Arc::clone(&output), None);
        }
        let mut service = Self {
            name: name.to_owned(),
            child,
            output,
            url: String::new(),
        };
        // A guard against a hung start, not a timing assertion.
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => {
                service.url = url;
                Ok(service)
            }
            Err(_) => Err(format!(
                "{name} did not report `listening on http://…`; its output:\n{}",
                service.output()
            )),
        }
    }

    /// Everything the process printed so far.
    pub(crate) fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the process prints a line containing `needle` (its output is read by another
    /// thread, so a line written before a response may arrive just after it); gives up
    /// after a generous deadline.
    pub(crate) async fn printed(&self, needle: &str) -> bool {
        for _ in 0..500 {
            if self.output().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// `reason` followed by this process's output, for a failing case.
    pub(crate) fn explain(&self, reason: impl std::fmt::Display) -> String {
        format!(
            "{reason}\n--- output of {} ---\n{}",
            self.name,
            self.output().trim_end()
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    ready: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut ready = ready;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &ready {
                if let Some(url) = listening_url(&line) {
                    let _ = tx.send(url);
                    ready = None;
                }
            }
            let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
            output.push_str(&line);
            output.push('\n');
        }
    });
}

fn listening_url(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let start = rest.find("http://")?;
    let url = rest[start..].split_whitespace().next()?;
    Some(url.trim_end_matches('/').to_owned())
}
