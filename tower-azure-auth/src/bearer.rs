//! RFC 6750 `Authorization: Bearer` header parsing: the one place a request's credential is
//! taken from its headers, for the tower layers, the actix middleware and any other adapter.

use crate::error::{AuthError, AuthErrorKind};

// The two scans below run over every request's whole token (about 1-2 KB): written as
// non-short-circuiting folds of byte arithmetic so that they vectorise. With `all` and
// `is_ascii_alphanumeric` they were 90 % of the layer's cost on a cached token.

/// Whether every byte is visible ASCII or a space (0x20..=0x7E).
fn all_visible_ascii(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
}

/// Whether every byte may stand in an RFC 6750 `b64token` (before its `=` padding):
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`.
fn all_token68(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        let digit = b.wrapping_sub(b'0') < 10;
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let mark =
            (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
        ok & (digit | letter | mark)
    })
}

/// Extracts the bearer token from the values of the `Authorization` header(s).
///
/// The scheme is case-insensitive; one header only; the token must be an RFC 6750
/// `b64token`. Another scheme (e.g. `Basic`) counts as no bearer token.
///
/// # Errors
///
/// [`AuthErrorKind::MissingToken`] or [`AuthErrorKind::MalformedHeader`].
///
/// ```
/// use tower_azure_auth::bearer::bearer_token;
/// use tower_azure_auth::AuthErrorKind;
///
/// assert_eq!(bearer_token([b"bearer abc.def.ghi".as_slice()]).unwrap(), "abc.def.ghi");
/// assert_eq!(bearer_token([]).unwrap_err().kind(), AuthErrorKind::MissingToken);
/// assert_eq!(
///     bearer_token([b"Bearer a".as_slice(), b"Bearer b".as_slice()]).unwrap_err().kind(),
///     AuthErrorKind::MalformedHeader
/// );
/// ```
pub fn bearer_token<'a, I>(values: I) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    use AuthErrorKind as K;
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Err(AuthError::missing_token());
    };
    if values.next().is_some() {
        return Err(AuthError::new(
            K::MalformedHeader,
            "more than one Authorization header",
        ));
    }
    let value = Some(value)
        .filter(|v| all_visible_ascii(v))
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or_else(|| {
            AuthError::new(
                K::MalformedHeader,
                "the Authorization header is not visible ASCII",
            )
        })?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::new(
            K::MissingToken,
            "the Authorization header does not use the Bearer scheme",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::new(
            K::MalformedHeader,
            "the Bearer credential is empty",
        ));
    }
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty() && all_token68(body.as_bytes());
    if !b64token {
        return Err(AuthError::new(
            K::MalformedHeader,
            "the Bearer credential has characters a token cannot have",
        ));
    }
    Ok(token)
}

/// The credential of a lone `Authorization: Bearer <credential>` header, split off without
/// the byte checks of [`bearer_token`], for looking it up among tokens already verified
/// (whose bytes are base64url and dots only, so [`bearer_token`] would return the same
/// credential for them). `None` for anything else, which then takes [`bearer_token`].
pub(crate) fn bearer_candidate<'a, I>(values: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, credential) = value.split_at_checked(b"Bearer ".len())?;
    if !scheme.eq_ignore_ascii_case(b"Bearer ") {
        return None;
    }
    std::str::from_utf8(credential).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_is_what_bearer_token_returns_for_a_verified_token() {
        // A verified token's bytes: base64url and dots.
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJhIjoiYiJ9.c2ln-_";
        for value in [
            format!("Bearer {token}"),
            format!("bearer {token}"),
            format!("BeArEr {token}"),
        ] {
            assert_eq!(bearer_candidate([value.as_bytes()]), Some(token), "{value}");
            assert_eq!(bearer_token([value.as_bytes()]).unwrap(), token, "{value}");
        }
        let one = format!("Bearer {token}");
        for (name, values) in [
            ("no header", vec![]),
            ("two headers", vec![one.as_bytes(), one.as_bytes()]),
            ("another scheme", vec![b"Basic abc".as_slice()]),
            ("scheme only", vec![b"Bearer".as_slice()]),
            ("a tab", vec![b"Bearer\tabc".as_slice()]),
            ("not UTF-8", vec![b"Bearer \xff".as_slice()]),
        ] {
            assert_eq!(bearer_candidate(values), None, "{name}");
        }
    }

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            assert_eq!(
                all_visible_ascii(&[b]),
                (0x20..0x7f).contains(&b),
                "visible ascii {b:#04x}"
            );
            assert_eq!(
                all_token68(&[b]),
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'),
                "token68 {b:#04x}"
            );
        }
        // Long inputs, one bad byte anywhere.
        let mut token = vec![b'a'; 4096];
        assert!(all_token68(&token) && all_visible_ascii(&token));
        for at in [0, 31, 32, 1000, 4095] {
            token[at] = 0x7f;
            assert!(!all_token68(&token) && !all_visible_ascii(&token), "{at}");
            token[at] = b'a';
        }
    }

    #[test]
    fn bearer_header_parsing() {
        struct Case {
            name: &'static str,
            values: &'static [&'static [u8]],
            result: Result<&'static str, AuthErrorKind>,
        }
        let cases = [
            Case {
                name: "plain",
                values: &[b"Bearer a.b.c"],
                result: Ok("a.b.c"),
            },
            Case {
                name: "scheme case",
                values: &[b"BEARER a.b.c"],
                result: Ok("a.b.c"),
            },
            Case {
                name: "extra spaces",
                values: &[b"  Bearer   a.b.c  "],
                result: Ok("a.b.c"),
            },
            Case {
                name: "none",
                values: &[],
                result: Err(AuthErrorKind::MissingToken),
            },
            Case {
                name: "basic",
                values: &[b"Basic dXNlcjpwYXNz"],
                result: Err(AuthErrorKind::MissingToken),
            },
            Case {
                name: "repeated",
                values: &[b"Bearer a", b"Bearer b"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "empty credential",
                values: &[b"Bearer "],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "two credentials",
                values: &[b"Bearer a b"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "non ascii",
                values: &[b"Bearer \xff\xfe"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
            Case {
                name: "quote",
                values: &[b"Bearer a\"b"],
                result: Err(AuthErrorKind::MalformedHeader),
            },
        ];
        for case in cases {
            let result = bearer_token(case.values.iter().copied()).map_err(|e| e.kind());
            assert_eq!(result, case.result, "{}", case.name);
        }
    }
}
