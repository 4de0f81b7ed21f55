//! A real `prometheus` server for the monitoring tests: started on 127.0.0.1 with a free
//! port, a temporary storage directory and a scrape configuration of the test's targets with
//! a one-second scrape interval; stopped (and its directory removed) when the handle drops.
//!
//! `scripts/interop-setup.sh` installs `prometheus` from Debian's packages when it is missing.
//! A missing binary fails the test that asked for it, never skips it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A scrape target: the job name and `host:port` of its `/metrics`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `job` label Prometheus gives its series.
    pub job: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

/// A running `prometheus` on 127.0.0.1, owned by the test.
#[derive(Debug)]
pub struct PrometheusServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrometheusServer {
    /// Starts a server scraping `targets` every second and waits until it is ready.
    ///
    /// # Panics
    ///
    /// When `prometheus` is not installed or is not ready within 30 s (the message says how
    /// to install it, and what the server printed).
    #[must_use]
    pub fn start(targets: &[Target]) -> Self {
        Self::start_with_rules(targets, &[])
    }

    /// [`start`](Self::start), with these rule files loaded (evaluated every second).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start); also when a rule file does not load.
    #[must_use]
    pub fn start_with_rules(targets: &[Target], rule_files: &[PathBuf]) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("e2e-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus temp dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for file in rule_files {
                config.push_str(&format!("  - '{}'\n", file.display()));
            }
        }
        config.push_str("scrape_configs:\n");
        for target in targets {
            config.push_str(&format!(
                "  - job_name: '{}'\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{}']\n",
                target.job, target.address
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start prometheus ({e}); run scripts/interop-setup.sh, which installs \
                     Debian's prometheus package"
                )
            });
        let mut server = Self {
            port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok((200, _)) = server.get("/-/ready") {
                return server;
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                panic!(
                    "prometheus exited ({status}) before it was ready: {}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready on 127.0.0.1:{port} within {START_TIMEOUT:?}: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server printed (its log).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GETs a path of the HTTP API (`/api/v1/rules`, …) and returns its `data`.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or does not answer `"status": "success"`.
    pub fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let (status, body) = self
            .get(path)
            .map_err(|e| format!("cannot reach prometheus: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("prometheus answered {status} and not JSON ({e}): {body}"))?;
        if json["status"] != "success" {
            return Err(format!("prometheus answered {status}: {body}"));
        }
        Ok(json["data"].clone())
    }

    /// Runs an instant query (`/api/v1/query`) and returns the result vector as
    /// `(labels, value)` pairs.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or answers something else than a vector.
    pub fn query(
        &self,
        promql: &str,
    ) -> Result<Vec<(serde_json::Map<String, serde_json::Value>, f64)>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)))?;
        let result = data["result"]
            .as_array()
            .ok_or_else(|| format!("no result vector: {data}"))?;
        Ok(result
            .iter()
            .map(|sample| {
                let labels = sample["metric"].as_object().cloned().unwrap_or_default();
                let value = sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect())
    }

    /// A plain HTTP/1.0 GET on the server; the status and body.
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query parameter's value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
