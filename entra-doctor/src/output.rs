//! Text and JSON output: marks (✔ ✘ –), colours only on a terminal and without `NO_COLOR`,
//! times as RFC 3339, and [`Report`], what a command hands to `main`.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// What a command found: its text, its JSON and whether all is well (exit 0) or not (1).
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) text: String,
    pub(crate) json: Value,
    pub(crate) ok: bool,
}

/// How marks are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Colours when standard output is a terminal, no JSON is asked for and `NO_COLOR` is
    /// unset or empty (<https://no-color.org>).
    pub(crate) fn detect(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !json && !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// ✔ or ✘.
    pub(crate) fn mark(self, passed: bool) -> String {
        if passed {
            self.paint("32", "✔")
        } else {
            self.paint("31", "✘")
        }
    }

    /// – (a check that could not run).
    pub(crate) fn skipped(self) -> String {
        self.paint("33", "–")
    }

    /// A heading.
    pub(crate) fn heading(self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Text being written, line by line.
#[derive(Debug, Default)]
pub(crate) struct Text(pub(crate) String);

impl Text {
    pub(crate) fn line(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.0, "{}", line.as_ref());
    }

    /// `    label: value` (lines of a multi-line value indented alike).
    pub(crate) fn field(&mut self, indent: usize, label: &str, value: &str) {
        let pad = " ".repeat(indent);
        let mut lines = value.lines();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(self.0, "{pad}{label}: {first}");
        let continuation = " ".repeat(indent + label.len() + 2);
        for line in lines {
            let _ = writeln!(self.0, "{continuation}{line}");
        }
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub(crate) fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// A time as Unix seconds (0 before the epoch).
pub(crate) fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `3 h 12 min`, `42 s`.
pub(crate) fn human(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} days", s / 86_400),
    }
}

/// Parses `--at`: RFC 3339 or Unix seconds.
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(seconds));
    }
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!(
                "--at `{text}` is neither RFC 3339 (2026-12-02T06:00:00Z) nor Unix seconds: {e}"
            )
        })?;
    let seconds = u64::try_from(parsed.unix_timestamp())
        .map_err(|_| format!("--at `{text}` is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Reads a token given as an argument, or from standard input for `-` (at most 64 KiB);
/// surrounding whitespace and a `Bearer ` prefix are dropped.
pub(crate) async fn read_token(argument: &str) -> Result<String, String> {
    use tokio::io::AsyncReadExt as _;
    let raw = if argument == "-" {
        let mut buffer = Vec::new();
        tokio::io::stdin()
            .take(64 * 1024 + 1)
            .read_to_end(&mut buffer)
            .await
            .map_err(|e| format!("cannot read the token from standard input: {e}"))?;
        if buffer.len() > 64 * 1024 {
            return Err("the token on standard input is longer than 64 KiB".into());
        }
        String::from_utf8(buffer).map_err(|_| "the token on standard input is not UTF-8")?
    } else {
        argument.to_owned()
    };
    let token = raw.trim();
    let token = match token.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => token[7..].trim(),
        _ => token,
    };
    Ok(token.to_owned())
}
