//! The `dev-authority` binary run as a new user runs it, with its output piped: certificates
//! written as PEM and PKCS#12 with owner-only permissions, plain (uncoloured) logs, and a
//! registration whose certificate file is missing answered with the command that creates it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tower_azure_auth::credentials::ClientCertificate;

const BINARY: &str = env!("CARGO_BIN_EXE_dev-authority");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/registration.json");

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("dev-authority-cli-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn command() -> Command {
    let mut command = Command::new(BINARY);
    // Plain output must come from the pipe alone, not from these.
    command.env_remove("NO_COLOR").env_remove("RUST_LOG");
    command
}

#[cfg(unix)]
fn assert_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
}
#[cfg(not(unix))]
fn assert_owner_only(_: &Path) {}

#[test]
fn generate_certificate_writes_pem_and_pkcs12_for_the_owner_alone() {
    let dir = TempDir::new("generate");
    let pem = dir.0.join("certs/caller.pem");
    let pfx = dir.0.join("certs/caller.pfx");
    let output = command()
        .args(["--generate-certificate", "CN=caller", "--out"])
        .arg(&pem)
        .arg("--pfx")
        .arg(&pfx)
        .args(["--pfx-password", "pfx-pw"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("x5t#S256: "), "{stdout}");
    assert!(
        stdout.contains(&format!("wrote {}", pfx.display())),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
    assert_owner_only(&pem);
    assert_owner_only(&pfx);
    let from_pem = ClientCertificate::from_file(&pem, None).unwrap();
    let from_pfx = ClientCertificate::from_file(&pfx, Some("pfx-pw")).unwrap();
    assert_eq!(
        from_pem.der(),
        from_pfx.der(),
        "one certificate, two formats"
    );
    let wrong = ClientCertificate::from_file(&pfx, Some("nope")).unwrap_err();
    assert!(wrong.to_string().contains("caller.pfx"), "{wrong}");

    // No password: an empty one, which `CertificatePassword` left out opens.
    let open = dir.0.join("open.pfx");
    let output = command()
        .args(["--generate-certificate", "CN=open", "--pfx"])
        .arg(&open)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_owner_only(&open);
    ClientCertificate::from_file(&open, None).unwrap();
}

#[test]
fn logs_are_plain_when_the_output_is_not_a_terminal() {
    let dir = TempDir::new("logs");
    std::fs::copy(SHIPPED, dir.0.join("registration.json")).unwrap();
    let generate = command()
        .args(["--generate-certificate", "CN=weather-client", "--out"])
        .arg(dir.0.join("certs/weather-client.pem"))
        .output()
        .unwrap();
    assert!(generate.status.success(), "{generate:?}");
    let mut child = command()
        .arg("--config")
        .arg(dir.0.join("registration.json"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let metadata = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("the dev authority ended early:\n{printed}");
        }
        printed.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("metadata") {
            break url.trim().to_owned();
        }
    };
    // A refused request logs at debug too; the answer proves the server is up.
    let status = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { reqwest::get(metadata).await.unwrap().status() })
    })
    .join()
    .unwrap();
    assert_eq!(status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("dev authority started"), "{logs}");
    assert!(logs.contains("DEBUG"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escapes in piped logs:\n{logs:?}"
    );
    assert!(!printed.contains('\u{1b}'), "{printed:?}");
}

#[test]
fn a_missing_certificate_file_suggests_generate_certificate() {
    let dir = TempDir::new("missing");
    let registration = dir.0.join("registration.json");
    std::fs::copy(SHIPPED, &registration).unwrap();
    let output = command()
        .arg("--config")
        .arg(&registration)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let missing = dir.0.join("certs/weather-client.pem");
    let expected = format!(
        "cannot read the certificate file `{path}` of the registration (it does not exist; create it with `dev-authority --generate-certificate CN=<name> --out {path}`)",
        path = missing.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}
