//! Numbers and dates as the token endpoints send them, in one place: JSON numbers that may be
//! numeric strings or floats, `Retry-After` (delta-seconds or an HTTP date, via `httpdate`)
//! and the managed identity endpoints' `expires_on` dates (via `time`).

use std::time::{Duration, SystemTime};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The longest lifetime taken from a token response (10 years); longer values are capped.
pub(crate) const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 86_400;

/// A JSON number (integer, or a non-negative finite float, truncated: MSAL and some
/// endpoints send `3599.0`) or a numeric string; `Ok(None)` when absent or `null`.
pub(crate) fn number(value: Option<&Value>) -> Result<Option<u64>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(()),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// `Retry-After`: delta-seconds or an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`; years
/// 1970 to 9999, as `httpdate` reads them). A date in the past waits zero.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The forms besides RFC 3339 with an offset: ISO 8601 variants and `MM/DD/YYYY hh:mm:ss AM
/// +hh:mm`, the form older App Service versions send, with and without the period.
const APP_SERVICE_WITH_OFFSET: &[&[BorrowedFormatItem<'static>]] = &[
    ISO_WITH_OFFSET,
    format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period case_sensitive:false] [offset_hour sign:mandatory]:[offset_minute]"
    ),
    format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour padding:none]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    ),
];
/// ISO 8601 without an offset (read as UTC), `T` or a space between date and time.
const ISO_UTC: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day][first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
);
/// ISO 8601 with an offset but not RFC 3339 (a space between date and time, no seconds).
const ISO_WITH_OFFSET: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day][first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]][offset_hour sign:mandatory]:[offset_minute]"
);
const APP_SERVICE_UTC: &[&[BorrowedFormatItem<'static>]] = &[
    ISO_UTC,
    format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period case_sensitive:false]"
    ),
    format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour padding:none]:[minute]:[second]"
    ),
];

/// Unix seconds from a managed identity endpoint's date: RFC 3339 / ISO 8601
/// (`2030-01-01T10:00:00Z`, `…+01:00`, fractional seconds) or the `MM/DD/YYYY hh:mm:ss
/// [AM|PM] [+hh:mm]` form older App Service versions send (UTC without an offset). Dates
/// before 1970 are refused.
pub(crate) fn parse_date(value: &str) -> Option<u64> {
    let value = value.trim();
    let date = OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .or_else(|| {
            APP_SERVICE_WITH_OFFSET
                .iter()
                .find_map(|format| OffsetDateTime::parse(value, format).ok())
        })
        .or_else(|| {
            // `Z` is UTC, as no offset is.
            let utc = value.strip_suffix(['Z', 'z']).unwrap_or(value);
            APP_SERVICE_UTC
                .iter()
                .find_map(|format| PrimitiveDateTime::parse(utc, format).ok())
                .map(PrimitiveDateTime::assume_utc)
        })?;
    u64::try_from(date.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        struct Case {
            name: &'static str,
            json: &'static str,
            expected: Result<Option<u64>, ()>,
        }
        let cases = [
            Case {
                name: "integer",
                json: "3599",
                expected: Ok(Some(3599)),
            },
            Case {
                name: "numeric string",
                json: r#"" 3600 ""#,
                expected: Ok(Some(3600)),
            },
            Case {
                name: "float is truncated",
                json: "3599.9",
                expected: Ok(Some(3599)),
            },
            Case {
                name: "null",
                json: "null",
                expected: Ok(None),
            },
            Case {
                name: "negative",
                json: "-1",
                expected: Err(()),
            },
            Case {
                name: "negative float",
                json: "-1.5",
                expected: Err(()),
            },
            Case {
                name: "word",
                json: r#""soon""#,
                expected: Err(()),
            },
            Case {
                name: "float string",
                json: r#""3599.5""#,
                expected: Err(()),
            },
            Case {
                name: "object",
                json: "{}",
                expected: Err(()),
            },
        ];
        for case in cases {
            let value: Value = serde_json::from_str(case.json).unwrap();
            assert_eq!(number(Some(&value)), case.expected, "{}", case.name);
        }
        assert_eq!(number(None), Ok(None), "absent");
    }

    #[test]
    fn retry_after_values() {
        struct Case {
            name: &'static str,
            value: &'static str,
            expected: Option<u64>,
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let cases = [
            Case {
                name: "seconds",
                value: "120",
                expected: Some(120),
            },
            Case {
                name: "date in the future",
                value: "Sun, 06 Nov 1994 08:50:37 GMT",
                expected: Some(60),
            },
            Case {
                name: "date in the past",
                value: "Sun, 06 Nov 1994 08:00:00 GMT",
                expected: Some(0),
            },
            Case {
                name: "garbage",
                value: "soon",
                expected: None,
            },
            Case {
                name: "negative",
                value: "-5",
                expected: None,
            },
            Case {
                name: "retry_after_date_with_a_huge_year_overflowed",
                value: "Sun, 06 Nov 99999999999999 08:49:37 GMT",
                expected: None,
            },
            Case {
                name: "year 10000 is not an HTTP date",
                value: "Sat, 01 Jan 10000 00:00:00 GMT",
                expected: None,
            },
            Case {
                name: "year 9999 is",
                value: "Fri, 31 Dec 9999 23:59:59 GMT",
                expected: Some(253_402_300_799 - 784_111_777),
            },
            Case {
                name: "huge delta-seconds",
                value: "18446744073709551615",
                expected: Some(u64::MAX),
            },
        ];
        for case in cases {
            assert_eq!(
                parse_retry_after(case.value, now).map(|d| d.as_secs()),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn dates() {
        struct Case {
            name: &'static str,
            value: &'static str,
            expected: Option<u64>,
        }
        let cases = [
            Case {
                name: "iso utc",
                value: "2017-09-26T03:49:33Z",
                expected: Some(1_506_397_773),
            },
            Case {
                name: "iso fractional with offset",
                value: "2017-09-26T05:49:33.123+02:00",
                expected: Some(1_506_397_773),
            },
            Case {
                name: "app service 2017 form",
                value: "09/26/2017 03:49:33 AM +00:00",
                expected: Some(1_506_397_773),
            },
            Case {
                name: "pm",
                value: "09/26/2017 03:49:33 PM +00:00",
                expected: Some(1_506_397_773 + 12 * 3600),
            },
            Case {
                name: "no time",
                value: "2017-09-26",
                expected: None,
            },
            Case {
                name: "garbage",
                value: "tomorrow morning",
                expected: None,
            },
            Case {
                name: "app service without an offset is utc",
                value: "9/26/2017 3:49:33 AM",
                expected: Some(1_506_397_773),
            },
            Case {
                name: "twelve pm is noon",
                value: "09/26/2017 12:00:00 PM +00:00",
                expected: Some(1_506_427_200),
            },
            Case {
                name: "iso without an offset is utc",
                value: "2017-09-26T03:49:33",
                expected: Some(1_506_397_773),
            },
            Case {
                name: "iso with a space and no seconds",
                value: "2017-09-26 03:49Z",
                expected: Some(1_506_397_773 - 33),
            },
            Case {
                name: "iso with a negative offset",
                value: "2017-09-25T23:49:33-04:00",
                expected: Some(1_506_397_773),
            },
            Case {
                name: "before 1970",
                value: "1969-12-31T23:59:59Z",
                expected: None,
            },
            Case {
                name: "month 13",
                value: "2017-13-01T00:00:00Z",
                expected: None,
            },
        ];
        for case in cases {
            assert_eq!(parse_date(case.value), case.expected, "{}", case.name);
        }
    }
}
