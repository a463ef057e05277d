//! JSON kept as text (SPEC §5 "What is stored is what was sent").
//!
//! Raw records travel from the request to PostgreSQL and back as JSON text,
//! never as a tree of binary floats, so every digit survives. Before a body
//! is parsed, [`scan`] walks its text once (no tree is built) and finds what
//! PostgreSQL's `jsonb` cannot hold:
//!
//! - U+0000 (`\u0000`) inside a string or key: removed, and each place
//!   reported, or refused where the field is an identifier
//!   ([`CleanBody::identifier`]);
//! - a number beyond PostgreSQL's `numeric` (more than 16383 digits after
//!   the point, more than 131072 before it): refused;
//! - an unpaired UTF-16 surrogate escape (`\ud800`): refused.
//!
//! [`RawObject`] is a JSON object held as its text.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where in a document: `raw_data.fields.labels[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(pub Vec<Segment>);

impl JsonPath {
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The path without its first `n` steps.
    pub fn skip(&self, n: usize) -> JsonPath {
        JsonPath(self.0.iter().skip(n).cloned().collect())
    }

    /// The path's first `n` steps.
    pub fn take(&self, n: usize) -> JsonPath {
        JsonPath(self.0.iter().take(n).cloned().collect())
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if n == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Why a body's text cannot be stored as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub path: JsonPath,
    pub message: String,
}

/// What [`scan`] found in a body that it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Each place (a string, or a key, named without its NULs) where
    /// U+0000 occurs, once, in document order.
    pub nul_places: Vec<JsonPath>,
    /// Byte ranges of the `\u0000` escapes.
    removals: Vec<(usize, usize)>,
}

impl Scan {
    /// The text without its `\u0000` escapes (borrowed when it has none).
    pub fn clean<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        if self.removals.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut from = 0;
        for &(start, end) in &self.removals {
            out.extend_from_slice(&text[from..start]);
            from = end;
        }
        out.extend_from_slice(&text[from..]);
        Cow::Owned(out)
    }
}

/// PostgreSQL `numeric`'s limits (its `NUMERIC_DSCALE_MAX`, weight limit
/// in decimal digits, and the exponent bound of its parser).
const NUMERIC_MAX_SCALE: i64 = 16383;
const NUMERIC_MAX_LEADING_POSITION: i64 = 131_071;
const NUMERIC_MAX_EXPONENT: i64 = 1_073_741_823;

/// The deepest nesting of arrays and objects a body may have. PostgreSQL's
/// `jsonb` parser recurses once per level and, with its default
/// `max_stack_depth` of 2 MB, refuses a document somewhere past 12,000
/// levels ("stack depth limit exceeded"); a body is refused here, before
/// the database is asked, well inside that.
pub const MAX_NESTING: usize = 10_000;

/// How many bytes of paths [`scan`] lists one by one in
/// [`Scan::nul_places`]. A body with more NUL places than that (a hostile
/// one: real data has a handful) has its further places named by their
/// field alone (`raw_data`), so what is listed stays linear in the body's
/// size and bounded in bytes however the body is shaped.
pub const NUL_PLACES_BUDGET_BYTES: usize = 1 << 20;

/// One open array or object.
struct Frame {
    kind: FrameKind,
    /// Bytes of the path up to this container (an upper bound: keys are
    /// counted as their raw text).
    prefix_bytes: usize,
}

enum FrameKind {
    /// An object; `key` is the byte range of the current key (quotes
    /// included), `expect_key` whether the next string is a key.
    Object {
        key: Option<(usize, usize)>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

impl Frame {
    /// Bytes of this container's current step (`.key` or `[12]`).
    fn step_bytes(&self) -> usize {
        match self.kind {
            FrameKind::Object { key, .. } => key.map_or(0, |(start, end)| end - start),
            FrameKind::Array { index } => index.checked_ilog10().unwrap_or(0) as usize + 3,
        }
    }

    /// What identifies this container's current step without decoding it.
    fn step_identity(&self) -> (usize, usize) {
        match self.kind {
            FrameKind::Object { key, .. } => key.unwrap_or((0, 0)),
            FrameKind::Array { index } => (usize::MAX, index),
        }
    }
}

/// Where [`scan`] puts the places where U+0000 occurs: each one whole while
/// the budget lasts, then each distinct field once.
struct Places {
    field_depth: usize,
    budget: usize,
    listed: Vec<JsonPath>,
    seen: HashSet<JsonPath>,
    /// The field of the last place named by its field alone.
    last_field: Vec<(usize, usize)>,
}

impl Places {
    fn note(&mut self, text: &[u8], stack: &[Frame]) {
        let bytes = stack
            .last()
            .map_or(0, |top| top.prefix_bytes + top.step_bytes());
        let place = if bytes <= self.budget {
            self.budget -= bytes;
            path_of(text, stack)
        } else {
            // Past the budget: the field, once per run of places in it
            // (places come in document order), found without decoding.
            self.budget = 0;
            let field: Vec<(usize, usize)> = stack
                .iter()
                .take(self.field_depth)
                .map(Frame::step_identity)
                .collect();
            if field == self.last_field {
                return;
            }
            self.last_field = field;
            path_of(text, &stack[..stack.len().min(self.field_depth)])
        };
        if self.seen.insert(place.clone()) {
            self.listed.push(place);
        }
    }
}

/// Walks JSON text once without building a tree, in time linear in its
/// length whatever its shape. Text that is not JSON is not judged here (the
/// parser that follows reports it); only what PostgreSQL would refuse in
/// valid JSON is. `field_depth` is how many leading steps of a path name a
/// field of the body (1 for `raw_data`, 3 for `records[3].raw_data`).
pub fn scan(text: &[u8], field_depth: usize) -> Result<Scan, Refusal> {
    let mut removals = Vec::new();
    let mut places = Places {
        field_depth: field_depth.max(1),
        budget: NUL_PLACES_BUDGET_BYTES,
        listed: Vec::new(),
        seen: HashSet::new(),
        last_field: Vec::new(),
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            open @ (b'{' | b'[') => {
                if stack.len() >= MAX_NESTING {
                    return Err(Refusal {
                        path: path_of(text, &stack),
                        message: format!(
                            "is nested too deeply: more than {MAX_NESTING} levels of arrays and \
                             objects, deeper than PostgreSQL's jsonb accepts"
                        ),
                    });
                }
                let prefix_bytes = stack
                    .last()
                    .map_or(0, |top| top.prefix_bytes + top.step_bytes());
                let kind = if open == b'{' {
                    FrameKind::Object {
                        key: None,
                        expect_key: true,
                    }
                } else {
                    FrameKind::Array { index: 0 }
                };
                stack.push(Frame { kind, prefix_bytes });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut().map(|frame| &mut frame.kind) {
                    Some(FrameKind::Array { index }) => *index += 1,
                    Some(FrameKind::Object { expect_key, .. }) => *expect_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let start = i;
                let found = string_at(text, i, &mut removals).map_err(|message| Refusal {
                    path: path_of(text, &stack),
                    message,
                })?;
                i = found.end;
                if let Some(FrameKind::Object { key, expect_key }) =
                    stack.last_mut().map(|frame| &mut frame.kind)
                {
                    if *expect_key {
                        *key = Some((start, found.end));
                        *expect_key = false;
                    }
                }
                if found.nul {
                    places.note(text, &stack);
                }
            }
            b'-' | b'0'..=b'9' => {
                let end = number_end(text, i);
                if let Err(message) = check_number(&text[i..end]) {
                    return Err(Refusal {
                        path: path_of(text, &stack),
                        message,
                    });
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(Scan {
        nul_places: places.listed,
        removals,
    })
}

struct StringEnd {
    /// Just past the closing quote.
    end: usize,
    nul: bool,
}

/// The string starting at the quote `text[start]`; notes its `\u0000`
/// escapes in `removals`.
fn string_at(
    text: &[u8],
    start: usize,
    removals: &mut Vec<(usize, usize)>,
) -> Result<StringEnd, String> {
    let mut i = start + 1;
    let mut nul = false;
    while i < text.len() {
        match text[i] {
            b'"' => return Ok(StringEnd { end: i + 1, nul }),
            b'\\' => match text.get(i + 1) {
                Some(b'u') => {
                    let unit = hex4(text, i + 2);
                    match unit {
                        Some(0) => {
                            removals.push((i, i + 6));
                            nul = true;
                        }
                        Some(0xD800..=0xDBFF) => {
                            let low = (text.get(i + 6) == Some(&b'\\')
                                && text.get(i + 7) == Some(&b'u'))
                            .then(|| hex4(text, i + 8))
                            .flatten();
                            if !matches!(low, Some(0xDC00..=0xDFFF)) {
                                return Err(UNPAIRED.to_owned());
                            }
                            i += 6;
                        }
                        Some(0xDC00..=0xDFFF) => return Err(UNPAIRED.to_owned()),
                        _ => {}
                    }
                    i += 6;
                }
                _ => i += 2,
            },
            _ => i += 1,
        }
    }
    Ok(StringEnd {
        end: text.len(),
        nul,
    })
}

const UNPAIRED: &str = "holds an unpaired UTF-16 surrogate escape, which PostgreSQL cannot store";

fn hex4(text: &[u8], at: usize) -> Option<u32> {
    let digits = text.get(at..at + 4)?;
    let digits = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

fn number_end(text: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < text.len() && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
        i += 1;
    }
    i
}

/// Whether PostgreSQL's `numeric` holds this JSON number exactly.
fn check_number(number: &[u8]) -> Result<(), String> {
    let unsigned = number.strip_prefix(b"-").unwrap_or(number);
    let (mantissa, exponent) = match unsigned.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, &b""[..]),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &b""[..]),
    };
    let exponent = parse_exponent(exponent);
    let too_big = || {
        format!(
            "holds the number {}, beyond what PostgreSQL's numeric can store",
            abbreviate(number)
        )
    };
    if exponent.abs() >= NUMERIC_MAX_EXPONENT {
        return Err(too_big());
    }
    let frac_digits = i64::try_from(frac_part.len()).unwrap_or(i64::MAX);
    if frac_digits.saturating_sub(exponent) > NUMERIC_MAX_SCALE {
        return Err(too_big());
    }
    let int_digits = i64::try_from(int_part.len()).unwrap_or(i64::MAX);
    let leading = match int_part.iter().position(|&b| b != b'0') {
        Some(k) => Some(int_digits - 1 - i64::try_from(k).unwrap_or(0)),
        None => frac_part
            .iter()
            .position(|&b| b != b'0')
            .map(|k| -1 - i64::try_from(k).unwrap_or(0)),
    };
    if leading.is_some_and(|w| w.saturating_add(exponent) > NUMERIC_MAX_LEADING_POSITION) {
        return Err(too_big());
    }
    Ok(())
}

/// A JSON exponent (`+12`, `-5`), saturating far beyond any limit.
fn parse_exponent(text: &[u8]) -> i64 {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    for &d in digits {
        if d.is_ascii_digit() {
            value = value
                .saturating_mul(10)
                .saturating_add(i64::from(d - b'0'))
                .min(i64::MAX / 4);
        }
    }
    if negative {
        -value
    } else {
        value
    }
}

fn abbreviate(number: &[u8]) -> String {
    let text = String::from_utf8_lossy(number);
    if text.chars().count() <= 40 {
        text.into_owned()
    } else {
        let head: String = text.chars().take(20).collect();
        let tail: String = {
            let mut t: Vec<char> = text.chars().rev().take(12).collect();
            t.reverse();
            t.into_iter().collect()
        };
        format!("{head}…{tail} ({} characters)", text.chars().count())
    }
}

/// The path of the value (or key) the scan is at.
fn path_of(text: &[u8], stack: &[Frame]) -> JsonPath {
    let segments = stack
        .iter()
        .filter_map(|frame| match frame.kind {
            FrameKind::Array { index } => Some(Segment::Index(index)),
            FrameKind::Object { key, .. } => {
                key.map(|(start, end)| Segment::Key(decode_key(&text[start..end])))
            }
        })
        .collect();
    JsonPath(segments)
}

/// A key as it is stored: decoded, without its NULs.
fn decode_key(quoted: &[u8]) -> String {
    let mut removals = Vec::new();
    let _ = string_at(quoted, 0, &mut removals);
    let scan = Scan {
        nul_places: Vec::new(),
        removals,
    };
    let clean = scan.clean(quoted);
    serde_json::from_slice::<String>(&clean)
        .unwrap_or_else(|_| String::from_utf8_lossy(&clean).trim_matches('"').to_owned())
}

/// Appends `[a,b,…]` to `out`, each item being JSON text already: arrays
/// of stored rows are spliced, never parsed and written again.
pub fn push_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (n, item) in items.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
}

/// An upper bound of the length of `text` as PostgreSQL writes it back
/// from `jsonb` (it puts a space after every `,` and `:`), for JSON text
/// whose numbers PostgreSQL already wrote once (it spells `1e3` as `1000`,
/// which no bound on the text alone can foresee).
pub fn jsonb_text_len_bound(text: &str) -> usize {
    text.len() + text.bytes().filter(|b| matches!(b, b',' | b':')).count()
}

/// A request body type's rules for U+0000.
pub trait CleanBody {
    /// Whether the string at `path` is an identifier, where U+0000 is
    /// refused (422) instead of removed.
    fn identifier(path: &JsonPath) -> bool {
        matches!(path.segments(), [Segment::Key(k)] if k == "entity_type" || k == "external_id")
    }

    /// How many leading steps of a path name the field an error reports
    /// (`raw_data` of `raw_data.fields.x`).
    fn field_depth() -> usize {
        1
    }

    /// Told, after parsing, each place where U+0000 was removed.
    fn removed(&mut self, _places: &[JsonPath]) {}
}

/// One change made to a raw record on the way in (SPEC §5
/// `ingest_changes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestChange {
    /// `raw_data.fields.summary`, `raw_data.fields.labels[2]`.
    pub field: String,
    /// `removed_nul`.
    pub change: String,
}

impl IngestChange {
    pub fn removed_nul(field: String) -> Self {
        Self {
            field,
            change: "removed_nul".to_owned(),
        }
    }
}

/// A JSON object held as its text: serialised verbatim, never through a
/// tree of numbers.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RawObject(Box<RawValue>);

impl RawObject {
    /// Checks that the text is one JSON object.
    pub fn from_text(text: String) -> Result<Self, String> {
        let raw = RawValue::from_string(text).map_err(|e| e.to_string())?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Box<RawValue>) -> Result<Self, String> {
        if raw.get().starts_with('{') {
            Ok(Self(raw))
        } else {
            Err("must be a JSON object".to_owned())
        }
    }

    /// `{}`.
    pub fn empty() -> Self {
        Self::from_text("{}".to_owned()).unwrap_or_else(|_| unreachable!("`{{}}` is an object"))
    }

    /// Builds `{"k": v, …}` from keys and the text of their values.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
    ) -> Result<Self, String> {
        let mut text = String::from("{");
        for (n, (key, value)) in entries.into_iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(key).map_err(|e| e.to_string())?);
            text.push(':');
            text.push_str(value.get());
        }
        text.push('}');
        Self::from_text(text)
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn into_string(self) -> String {
        self.0.get().to_owned()
    }
}

impl Default for RawObject {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for RawObject {
    /// Equal when the texts are: a wire type, not a JSON comparison.
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(text: &str) -> Vec<String> {
        scan(text.as_bytes(), 1)
            .expect("accepted")
            .nul_places
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn refused(text: &str) -> (String, String) {
        let refusal = scan(text.as_bytes(), 1).expect_err("refused");
        (refusal.path.to_string(), refusal.message)
    }

    #[test]
    fn jsonb_text_bound_counts_the_spaces_postgres_adds() {
        // `{"a": 1, "b": [1, 2]}` is how PostgreSQL writes it back.
        assert_eq!(jsonb_text_len_bound(r#"{"a":1,"b":[1,2]}"#), 21);
        assert_eq!(jsonb_text_len_bound(""), 0);
    }

    #[test]
    fn nul_places_are_named_by_key_and_index() {
        assert_eq!(
            places(r#"{"fields":{"summary":"a\u0000","labels":["x","y","z\u0000\u0000"]}}"#),
            ["fields.summary", "fields.labels[2]"]
        );
        assert_eq!(places(r#"{"a\u0000b":{"c":1}}"#), ["ab"]);
        assert_eq!(places(r#"{"k":[{"x":1},{"y":"\u0000"}]}"#), ["k[1].y"]);
        assert!(places(r#"{"a":"\\u0000","b":"\\\u0041"}"#).is_empty());
    }

    #[test]
    fn clean_removes_only_the_nul_escapes() {
        let text = br#"{"a\u0000b":"x\u0000y\\u0000","n":1.50}"#;
        let found = scan(text, 1).expect("accepted");
        assert_eq!(
            &*found.clean(text),
            br#"{"ab":"xy\\u0000","n":1.50}"#.as_slice()
        );
        let plain = br#"{"a":1}"#;
        assert!(matches!(
            scan(plain, 1).expect("ok").clean(plain),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn numbers_are_judged_by_postgresqls_numeric_limits() {
        let long_fraction = format!("0.{}1", "0".repeat(4998));
        for ok in [
            "1e-16383",
            "9999e131068",
            "0.0001e131075",
            "1e131071",
            "0e200000",
            "0e1073741822",
            "12345678901234567890123",
            "-0.000",
            "90.28571428571429",
            long_fraction.as_str(),
        ] {
            assert!(
                scan(format!(r#"{{"n":[{ok}]}}"#).as_bytes(), 1).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "1e-16384",
            "1.5e-16383",
            "10e-16384",
            "0e-20000",
            "1e131072",
            "1e-20000",
            "1e200000",
            "0e1073741823",
            "1e99999999999999999999",
        ] {
            let (path, message) = refused(&format!(r#"{{"x":{{"n":[1,{bad}]}}}}"#));
            assert_eq!(path, "x.n[1]", "{bad}");
            assert!(message.contains("numeric"), "{message}");
        }
    }

    #[test]
    fn unpaired_surrogates_are_refused() {
        assert!(scan(br#"{"a":"\ud83d\ude00"}"#, 1).is_ok());
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
        ] {
            assert_eq!(refused(bad).0, "a", "{bad}");
        }
    }

    #[test]
    fn raw_objects_keep_their_text() {
        let text = r#"{"n": 12345678901234567890123, "f": 90.28571428571429}"#;
        let object: RawObject = serde_json::from_str(text).expect("object");
        assert_eq!(serde_json::to_string(&object).expect("text"), text);
        assert!(serde_json::from_str::<RawObject>("[1]").is_err());
        assert!(serde_json::from_str::<RawObject>("\"{}\"").is_err());
    }

    #[test]
    fn nesting_past_the_bound_is_refused_naming_where_it_starts() {
        let depth_ok = MAX_NESTING - 1;
        let ok = format!(
            r#"{{"raw_data":{}{}}}"#,
            "[".repeat(depth_ok - 1),
            "]".repeat(depth_ok - 1)
        );
        assert!(scan(ok.as_bytes(), 1).is_ok());
        let deep = format!(r#"{{"raw_data":{}}}"#, "[".repeat(MAX_NESTING * 10));
        let refusal = scan(deep.as_bytes(), 1).expect_err("too deep");
        assert_eq!(refusal.path.take(1).to_string(), "raw_data");
        assert!(refusal.message.contains("nested too deeply"), "{refusal:?}");
    }

    #[test]
    fn a_place_seen_twice_is_listed_once() {
        // A key and its value, and a key repeated further on.
        assert_eq!(
            places(r#"{"a\u0000":"\u0000","b":1,"a\u0000":"x\u0000"}"#),
            ["a"]
        );
    }

    #[test]
    fn places_past_the_budget_are_named_by_their_field_once() {
        let count = NUL_PLACES_BUDGET_BYTES / 4;
        let many = vec![r#""\u0000""#; count].join(",");
        let body =
            format!(r#"{{"raw_data":{{"a":[{many}]}},"extraction_metadata":{{"b":"\u0000"}}}}"#);
        let found = scan(body.as_bytes(), 1).expect("accepted");
        let listed: Vec<String> = found.nul_places.iter().map(ToString::to_string).collect();
        assert!(listed.len() < count, "{} listed", listed.len());
        assert_eq!(listed[0], "raw_data.a[0]");
        let listed_bytes: usize = listed.iter().map(String::len).sum();
        assert!(listed_bytes <= NUL_PLACES_BUDGET_BYTES, "{listed_bytes}");
        assert_eq!(
            listed[listed.len() - 2..],
            ["raw_data", "extraction_metadata"]
        );
        // Every escape is removed all the same.
        assert!(!found
            .clean(body.as_bytes())
            .windows(6)
            .any(|w| w == br"\u0000"));
    }

    #[test]
    fn batch_places_past_the_budget_keep_their_record() {
        let many = vec![r#""\u0000""#; NUL_PLACES_BUDGET_BYTES / 4].join(",");
        let body = format!(
            r#"{{"records":[{{"raw_data":{{"a":[{many}]}}}},{{"raw_data":{{"b":[{many}]}}}}]}}"#
        );
        let found = scan(body.as_bytes(), 3).expect("accepted");
        let tail: Vec<String> = found
            .nul_places
            .iter()
            .rev()
            .take(2)
            .map(ToString::to_string)
            .collect();
        assert_eq!(tail, ["records[1].raw_data", "records[0].raw_data"]);
    }
}
