//! A real `redis-server` for the fleet tests: started on 127.0.0.1 with a free port, no
//! persistence and no configuration file, and stopped when the handle drops.
//!
//! `scripts/interop-setup.sh` (run by `scripts/test.sh`) installs `redis-server` from Debian's
//! packages when it is missing. A missing binary fails the test that asked for it, never skips
//! it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start (or restart) may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server` on 127.0.0.1, owned by the test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed or does not answer within 10 s (the message says
    /// how to install it).
    #[must_use]
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
        server.spawn();
        server
    }

    /// The server's port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL, `redis://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: no graceful shutdown, as when a host dies). Its data is lost;
    /// [`RedisServer::restart`] brings up an empty server on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::stop`]).
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends one command in the inline protocol and returns the first line of the answer
    /// (`+PONG`, `:1`, `$5`…): enough for a test to look at what the library stored.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    #[must_use]
    pub fn command(&self, args: &[&str]) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        stream.write_all(&request).expect("write to redis");
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        reader
            .read_until(b'\n', &mut line)
            .expect("read from redis");
        if line.first() == Some(&b'$') {
            let len: i64 = std::str::from_utf8(&line[1..])
                .unwrap_or("-1")
                .trim()
                .parse()
                .unwrap_or(-1);
            if len < 0 {
                return Vec::new();
            }
            let mut value = vec![0; usize::try_from(len).unwrap_or(0) + 2];
            std::io::Read::read_exact(&mut reader, &mut value).expect("read bulk string");
            value.truncate(value.len() - 2);
            return value;
        }
        line
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}); run scripts/interop-setup.sh, which \
                     installs Debian's redis-server package"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                if stream.write_all(b"PING\r\n").is_ok() {
                    let mut line = String::new();
                    if BufReader::new(stream).read_line(&mut line).is_ok()
                        && line.starts_with("+PONG")
                    {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on 127.0.0.1:{} within {START_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::RedisServer;

    #[test]
    fn a_started_server_answers_and_a_restarted_one_is_empty() {
        let mut redis = RedisServer::start();
        assert_eq!(redis.command(&["SET", "k", "v"]), b"+OK\r\n");
        assert_eq!(redis.command(&["GET", "k"]), b"v");
        redis.restart();
        assert_eq!(redis.command(&["GET", "k"]), b"");
    }
}
