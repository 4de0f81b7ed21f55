//! The claims the validator and the typed accessors read, found in one pass over the decoded
//! payload without building a JSON tree: strings are kept as positions in the payload (a copy
//! only for a string with escapes), dates as numbers; every other member is parsed as
//! strictly as [`serde_json::Value`] would parse it, then dropped. The full claims map is
//! built from the same text only when a caller asks for it (see [`Claims::get`](super::Claims::get)).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::ClaimsError;

/// A string claim: where it sits in the payload (no escapes), or its unescaped copy.
#[derive(Debug, Clone)]
pub(super) enum Text {
    /// `payload[start..start + len]`.
    Span { start: u32, len: u32 },
    /// A string with escapes, unescaped.
    Owned(Box<str>),
}

impl Text {
    /// The text, borrowed from `payload` for a span (empty if the span does not fit, which
    /// the parser never produces).
    pub(super) fn get<'a>(&'a self, payload: &'a str) -> &'a str {
        match self {
            Self::Span { start, len } => {
                let start = *start as usize;
                payload
                    .get(start..start + *len as usize)
                    .unwrap_or_default()
            }
            Self::Owned(text) => text,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Span { .. } => 0,
            Self::Owned(text) => text.len(),
        }
    }
}

/// A claim that may be a string or an array of strings (`aud`, `roles`).
#[derive(Debug, Clone, Default)]
pub(super) enum Texts {
    /// Absent, `null`, or of another type.
    #[default]
    None,
    /// One string.
    One(Text),
    /// The strings of an array, in order (non-strings left out).
    Many(Box<[Text]>),
}

impl Texts {
    pub(super) fn as_slice(&self) -> &[Text] {
        match self {
            Self::None => &[],
            Self::One(text) => std::slice::from_ref(text),
            Self::Many(texts) => texts,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::None => 0,
            Self::One(text) => text.heap_bytes(),
            Self::Many(texts) => {
                texts.len() * size_of::<Text>() + texts.iter().map(Text::heap_bytes).sum::<usize>()
            }
        }
    }
}

/// A JWT NumericDate claim (`exp`, `nbf`, `iat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Date {
    /// Not in the token.
    #[default]
    Absent,
    /// Seconds since the Unix epoch (a float truncated).
    At(u64),
    /// Present, but not a non-negative number.
    Invalid,
}

impl Date {
    /// The date, when it is one.
    pub(crate) fn at(self) -> Option<u64> {
        match self {
            Self::At(at) => Some(at),
            Self::Absent | Self::Invalid => None,
        }
    }
}

/// The claims read by the rules and the typed accessors.
#[derive(Debug, Clone, Default)]
pub(super) struct Fields {
    pub(super) iss: Option<Text>,
    pub(super) tid: Option<Text>,
    pub(super) azp: Option<Text>,
    pub(super) appid: Option<Text>,
    pub(super) azpacr: Option<Text>,
    pub(super) appidacr: Option<Text>,
    pub(super) ver: Option<Text>,
    pub(super) oid: Option<Text>,
    pub(super) sub: Option<Text>,
    pub(super) idtyp: Option<Text>,
    pub(super) uti: Option<Text>,
    pub(super) jti: Option<Text>,
    pub(super) scp: Option<Text>,
    /// Whether `scp` is present at all (any type, `null` included).
    pub(super) has_scp: bool,
    pub(super) aud: Texts,
    pub(super) roles: Texts,
    pub(super) exp: Date,
    pub(super) nbf: Date,
    pub(super) iat: Date,
}

impl Fields {
    /// The string field of this claim name, if it is one of those kept here.
    pub(super) fn text(&self, name: &str) -> Option<&Option<Text>> {
        Some(match name {
            "iss" => &self.iss,
            "tid" => &self.tid,
            "azp" => &self.azp,
            "appid" => &self.appid,
            "azpacr" => &self.azpacr,
            "appidacr" => &self.appidacr,
            "ver" => &self.ver,
            "oid" => &self.oid,
            "sub" => &self.sub,
            "idtyp" => &self.idtyp,
            "uti" => &self.uti,
            "jti" => &self.jti,
            "scp" => &self.scp,
            _ => return None,
        })
    }

    /// [`Fields::text`], to write.
    fn text_mut(&mut self, name: &str) -> Option<&mut Option<Text>> {
        Some(match name {
            "iss" => &mut self.iss,
            "tid" => &mut self.tid,
            "azp" => &mut self.azp,
            "appid" => &mut self.appid,
            "azpacr" => &mut self.azpacr,
            "appidacr" => &mut self.appidacr,
            "ver" => &mut self.ver,
            "oid" => &mut self.oid,
            "sub" => &mut self.sub,
            "idtyp" => &mut self.idtyp,
            "uti" => &mut self.uti,
            "jti" => &mut self.jti,
            "scp" => &mut self.scp,
            _ => return None,
        })
    }

    /// The heap the fields hold (copies of escaped strings, arrays).
    pub(super) fn heap_bytes(&self) -> usize {
        [
            &self.iss,
            &self.tid,
            &self.azp,
            &self.appid,
            &self.azpacr,
            &self.appidacr,
            &self.ver,
            &self.oid,
            &self.sub,
            &self.idtyp,
            &self.uti,
            &self.jti,
            &self.scp,
        ]
        .iter()
        .map(|text| text.as_ref().map_or(0, Text::heap_bytes))
        .sum::<usize>()
            + self.aud.heap_bytes()
            + self.roles.heap_bytes()
    }
}

/// Why a payload was refused.
#[derive(Debug)]
pub(crate) enum PayloadError {
    /// Not a JSON object (or not UTF-8, or trailing characters).
    NotAnObject,
    /// An object, but a claim has the wrong type.
    Claims(ClaimsError),
}

/// Reads the fields of a payload that must be one JSON object, validating every member as
/// `serde_json` would for a [`serde_json::Map`], so that building that map from the same
/// text later cannot fail.
pub(super) fn parse(payload: &str) -> Result<Fields, PayloadError> {
    let mut deserializer = serde_json::Deserializer::from_str(payload);
    let fields = deserializer
        .deserialize_map(FieldsVisitor { payload })
        .map_err(|_| PayloadError::NotAnObject)?;
    deserializer.end().map_err(|_| PayloadError::NotAnObject)?;
    fields.map_err(PayloadError::Claims)
}

struct FieldsVisitor<'p> {
    payload: &'p str,
}

impl<'de> Visitor<'de> for FieldsVisitor<'de> {
    type Value = Result<Fields, ClaimsError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        // A wrong type is reported after the whole object was read (a syntax error later
        // in the payload wins, as it did with a map).
        let mut wrong = None;
        // A repeated member overwrites the earlier one, as in a `serde_json::Map`.
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let is_date = matches!(&*key.0, "exp" | "nbf" | "iat");
            let is_list = matches!(&*key.0, "aud" | "roles");
            if fields.text(&key.0).is_none() && !is_date && !is_list {
                map.next_value::<Skip>()?;
                continue;
            }
            let value = map.next_value::<Claim<'de>>()?;
            if &*key.0 == "scp" {
                fields.has_scp = true;
            }
            if let Some(slot) = fields.text_mut(&key.0) {
                *slot = match value {
                    Claim::Str(s) => Some(self.text(s)),
                    _ => None,
                };
            } else if is_date {
                let date = match value {
                    Claim::Number(Some(n)) => Date::At(n),
                    _ => Date::Invalid,
                };
                match &*key.0 {
                    "exp" => fields.exp = date,
                    "nbf" => fields.nbf = date,
                    _ => fields.iat = date,
                }
            } else {
                let roles = &*key.0 == "roles";
                let texts = match value {
                    Claim::Str(s) => Texts::One(self.text(s)),
                    Claim::Array { strings, all } => {
                        if roles && !all {
                            wrong = Some(wrong_roles());
                        }
                        Texts::Many(strings.into_iter().map(|s| self.text(s)).collect())
                    }
                    Claim::Null => Texts::None,
                    _ => {
                        if roles {
                            wrong = Some(wrong_roles());
                        }
                        Texts::None
                    }
                };
                if roles {
                    fields.roles = texts;
                } else {
                    fields.aud = texts;
                }
            }
        }
        Ok(match wrong {
            Some(error) => Err(error),
            None => Ok(fields),
        })
    }
}

fn wrong_roles() -> ClaimsError {
    ClaimsError::WrongType {
        claim: "roles",
        expected: "an array of strings",
    }
}

impl FieldsVisitor<'_> {
    /// A string from the payload as a span when it is borrowed from it, else a copy.
    fn text(&self, text: Cow<'_, str>) -> Text {
        match text {
            Cow::Borrowed(s) => {
                let base = self.payload.as_ptr() as usize;
                let start = (s.as_ptr() as usize).wrapping_sub(base);
                match (u32::try_from(start), u32::try_from(s.len())) {
                    (Ok(start32), Ok(len)) if start + s.len() <= self.payload.len() => Text::Span {
                        start: start32,
                        len,
                    },
                    _ => Text::Owned(s.into()),
                }
            }
            Cow::Owned(s) => Text::Owned(s.into_boxed_str()),
        }
    }
}

/// A member name, borrowed unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(Key)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The value of a claim kept in [`Fields`], by JSON type.
enum Claim<'de> {
    Str(Cow<'de, str>),
    /// A number: `Some` for a NumericDate (non-negative; a float truncated).
    Number(Option<u64>),
    /// An array: its strings, and whether every element was one.
    Array {
        strings: Vec<Cow<'de, str>>,
        all: bool,
    },
    Null,
    /// A boolean or an object.
    Other,
}

impl<'de> Deserialize<'de> for Claim<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Claim::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Claim::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Claim::Str(Cow::Owned(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Claim::Number(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Claim::Number(u64::try_from(v).ok()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Claim::Number(
            (v.is_finite() && v >= 0.0).then_some(v as u64),
        ))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Claim::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Claim::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Vec::new();
        let mut all = true;
        while let Some(item) = seq.next_element::<Item<'de>>()? {
            match item.0 {
                Some(s) => strings.push(s),
                None => all = false,
            }
        }
        Ok(Claim::Array { strings, all })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Claim::Other)
    }
}

/// An array element: a string, or anything else (validated and dropped).
struct Item<'de>(Option<Cow<'de, str>>);

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(ClaimVisitor)? {
            Claim::Str(s) => Ok(Item(Some(s))),
            _ => Ok(Item(None)),
        }
    }
}

/// Any JSON value, parsed as [`serde_json::Value`] parses it (numbers in range, strings
/// unescaped and checked, nesting limited) and dropped: unlike
/// [`IgnoredAny`](serde::de::IgnoredAny), which lets lone surrogates and out-of-range numbers
/// through.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}
