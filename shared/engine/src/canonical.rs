//! Canonical record JSON: one text per JSON value whatever the provider's formatting, so a record
//! is stored and hashed the same when a provider changes its whitespace, escaping or key order.
//!
//! The canonical form:
//! - no whitespace outside strings;
//! - object members sorted by key, comparing the decoded keys' UTF-8 bytes (Unicode code point
//!   order, the order of serde_json's `Map`; not RFC 8785's UTF-16 order, which differs only for
//!   keys with characters above U+FFFF);
//! - strings escaped as serde_json escapes a decoded string: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, other control characters as `\u00xx`, everything else (`/`, non-ASCII) as itself, so
//!   `"\u00e9"` and `"é"` are the same text;
//! - numbers exactly as the provider wrote them (`1.10`, a 20-digit id and `1e3` survive byte for
//!   byte; nothing goes through `f64`), after checking their syntax.
//!
//! Duplicate keys in one object, lone surrogates and nesting deeper than [`MAX_DEPTH`] are
//! refused. The parser makes one pass and builds no tree: records are small and many.

use std::cmp::Ordering;

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// Why a text has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The text is not JSON.
    #[error("invalid JSON at byte {offset}: {reason}")]
    Syntax {
        /// Byte offset in the input.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// An object has the same key twice (after decoding escapes); which one wins is up to each
    /// reader, so there is no single value to store.
    #[error("duplicate key in the object at byte {offset}")]
    DuplicateKey {
        /// Byte offset of the object's second occurrence of the key.
        offset: usize,
    },
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("arrays and objects nest deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

/// The canonical form of the JSON text `raw` (see the module documentation).
pub fn canonical_json(raw: &str) -> Result<String, CanonicalError> {
    let mut p = Parser {
        src: raw.as_bytes(),
        pos: 0,
        out: Vec::with_capacity(raw.len()),
        members: Vec::new(),
        scratch: Vec::new(),
    };
    p.skip_ws();
    p.value(0)?;
    p.skip_ws();
    if p.pos != p.src.len() {
        return Err(p.syntax("characters after the value"));
    }
    // Only whole UTF-8 sequences of the input and ASCII are written, so this cannot fail; the
    // check is kept rather than assumed.
    String::from_utf8(p.out).map_err(|_| CanonicalError::Syntax {
        offset: 0,
        reason: "invalid UTF-8",
    })
}

/// One member of an object being written: its `"key":value` text in the output.
struct Member {
    /// Start of the key's opening quote.
    start: usize,
    /// End of the key's closing quote.
    key_end: usize,
    /// End of the value.
    end: usize,
    /// Where the key starts in the input, for the duplicate-key error.
    at: usize,
    /// Whether the written key holds an escape (and must be decoded to be compared).
    escaped: bool,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    /// Members of every object still open, innermost last (one allocation for the whole text).
    members: Vec<Member>,
    /// Room for reordering an object's members.
    scratch: Vec<u8>,
}

impl Parser<'_> {
    fn syntax(&self, reason: &'static str) -> CanonicalError {
        self.syntax_at(self.pos, reason)
    }

    fn syntax_at(&self, offset: usize, reason: &'static str) -> CanonicalError {
        CanonicalError::Syntax { offset, reason }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A value; `depth` is the number of arrays and objects around it.
    fn value(&mut self, depth: usize) -> Result<(), CanonicalError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(_) => Err(self.syntax("expected a value")),
            None => Err(self.syntax("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), CanonicalError> {
        if !self.src[self.pos..].starts_with(word) {
            return Err(self.syntax("expected `true`, `false` or `null`"));
        }
        self.out.extend_from_slice(word);
        self.pos += word.len();
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, copied as written.
    fn number(&mut self) -> Result<(), CanonicalError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.syntax("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax("expected a digit after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("expected a digit in the exponent"));
            }
        }
        self.out.extend_from_slice(&self.src[start..self.pos]);
        Ok(())
    }

    /// A string; whether its canonical text holds an escape.
    fn string(&mut self) -> Result<bool, CanonicalError> {
        let open = self.pos;
        self.pos += 1;
        self.out.push(b'"');
        let mut escaped = false;
        loop {
            // A run without escapes or quotes is already canonical: copy it whole.
            let run = self.pos;
            let rest = &self.src[run..];
            let len = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            self.pos += len;
            self.out.extend_from_slice(&rest[..len]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    self.out.push(b'"');
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    let c = self.escape()?;
                    escaped |= push_escaped(&mut self.out, c);
                }
                Some(_) => return Err(self.syntax("control character in a string")),
                None => return Err(self.syntax_at(open, "unterminated string")),
            }
        }
    }

    /// Decodes the escape at `pos` (a backslash).
    fn escape(&mut self) -> Result<char, CanonicalError> {
        let at = self.pos;
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                return match unit {
                    0xD800..=0xDBFF => {
                        if !self.src[self.pos..].starts_with(b"\\u") {
                            return Err(self.syntax_at(at, "lone surrogate"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.syntax_at(at, "lone surrogate"));
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or_else(|| self.syntax_at(at, "invalid escape"))
                    }
                    0xDC00..=0xDFFF => Err(self.syntax_at(at, "lone surrogate")),
                    _ => char::from_u32(unit).ok_or_else(|| self.syntax_at(at, "invalid escape")),
                };
            }
            _ => return Err(self.syntax_at(at, "invalid escape")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, CanonicalError> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.syntax("expected four hex digits"))?;
        let mut n = 0u32;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.syntax("expected four hex digits")),
            };
            n = n * 16 + u32::from(v);
        }
        self.pos += 4;
        Ok(n)
    }

    fn array(&mut self, depth: usize) -> Result<(), CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { limit: MAX_DEPTH });
        }
        self.pos += 1;
        self.out.push(b'[');
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.out.push(b']');
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.out.push(b','),
                Some(b']') => break,
                _ => return Err(self.syntax("expected `,` or `]`")),
            }
            self.pos += 1;
        }
        self.pos += 1;
        self.out.push(b']');
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<(), CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { limit: MAX_DEPTH });
        }
        self.pos += 1;
        self.out.push(b'{');
        let content = self.out.len();
        let base = self.members.len();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.out.push(b'}');
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let at = self.pos;
            let start = self.out.len();
            let escaped = self.string()?;
            let key_end = self.out.len();
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.syntax("expected `:`"));
            }
            self.pos += 1;
            self.out.push(b':');
            self.skip_ws();
            self.value(depth)?;
            self.members.push(Member {
                start,
                key_end,
                end: self.out.len(),
                at,
                escaped,
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.out.push(b','),
                Some(b'}') => break,
                _ => return Err(self.syntax("expected `,` or `}`")),
            }
            self.pos += 1;
        }
        self.pos += 1;
        self.sort_members(content, base)?;
        self.members.truncate(base);
        self.out.push(b'}');
        Ok(())
    }

    /// Puts the members written since `content` (`members[base..]`) in key order, refusing a
    /// repeated key.
    fn sort_members(&mut self, content: usize, base: usize) -> Result<(), CanonicalError> {
        let Self {
            out,
            members,
            scratch,
            ..
        } = self;
        let members = &mut members[base..];
        let mut sorted = true;
        for pair in members.windows(2) {
            match key_cmp(out, &pair[0], &pair[1]) {
                Ordering::Less => {}
                Ordering::Equal => return Err(duplicate(&pair[0], &pair[1])),
                Ordering::Greater => sorted = false,
            }
        }
        // Most providers send the same key order every time, and canonical input is sorted.
        if sorted {
            return Ok(());
        }
        // Equal keys are refused whatever their order, so an unstable sort is enough.
        members.sort_unstable_by(|a, b| key_cmp(out, a, b));
        for pair in members.windows(2) {
            if key_cmp(out, &pair[0], &pair[1]) == Ordering::Equal {
                return Err(duplicate(&pair[0], &pair[1]));
            }
        }
        scratch.clear();
        scratch.extend_from_slice(&out[content..]);
        out.truncate(content);
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&scratch[m.start - content..m.end - content]);
        }
        Ok(())
    }
}

fn duplicate(a: &Member, b: &Member) -> CanonicalError {
    CanonicalError::DuplicateKey {
        offset: a.at.max(b.at),
    }
}

/// Compares two members' keys as decoded strings.
fn key_cmp(out: &[u8], a: &Member, b: &Member) -> Ordering {
    let ka = &out[a.start + 1..a.key_end - 1];
    let kb = &out[b.start + 1..b.key_end - 1];
    if !a.escaped && !b.escaped {
        return ka.cmp(kb);
    }
    decoded(ka).cmp(decoded(kb))
}

/// The UTF-8 bytes of a string written by [`push_escaped`]: its escapes stand for ASCII bytes
/// only, so they decode byte by byte.
fn decoded(escaped: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *escaped.get(i)?;
        if b != b'\\' {
            i += 1;
            return Some(b);
        }
        let e = *escaped.get(i + 1)?;
        i += 2;
        Some(match e {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hex = escaped.get(i + 2..i + 4)?;
                i += 4;
                (hex_val(hex[0]) << 4) | hex_val(hex[1])
            }
            other => other,
        })
    })
}

fn hex_val(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        _ => d - b'a' + 10,
    }
}

/// Writes `c` as serde_json writes it inside a string; whether that took an escape.
fn push_escaped(out: &mut Vec<u8>, c: char) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\u{8}' => out.extend_from_slice(b"\\b"),
        '\u{c}' => out.extend_from_slice(b"\\f"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 => {
            let b = c as u8;
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        c => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        canonical_json(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn whitespace_and_pretty_printing_do_not_matter() {
        let compact = r#"{"a":[1,2,{"b":null}],"c":true}"#;
        let pretty = "{\n  \"a\" : [ 1 ,\t2, { \"b\" :\r\n null } ],\n  \"c\": true\n}\n";
        assert_eq!(canon(compact), compact);
        assert_eq!(canon(pretty), compact);
        assert_eq!(canon("  [ ]  "), "[]");
        assert_eq!(canon("{ }"), "{}");
    }

    #[test]
    fn members_are_sorted_by_key_at_every_level() {
        let a = r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"m":0},"A":2,"":3}"#;
        let b = r#"{"":3,"A":2,"a":{"m":0,"z":[{"x":2,"y":1}]},"b":1}"#;
        assert_eq!(canon(a), b);
        assert_eq!(canon(b), b);
        // Code point order: `é` (U+00E9) after `z`, `😀` (U+1F600) after `￿` (U+FFFF).
        assert_eq!(canon(r#"{"é":1,"z":2}"#), r#"{"z":2,"é":1}"#);
        assert_eq!(
            canon("{\"\u{1F600}\":1,\"\u{FFFF}\":2}"),
            "{\"\u{FFFF}\":2,\"\u{1F600}\":1}"
        );
    }

    #[test]
    fn keys_are_ordered_by_their_decoded_text_not_their_escapes() {
        // `"` (0x22) sorts before `#` (0x23), although its escape `\"` starts with `\` (0x5C).
        assert_eq!(canon(r##"{"a#":1,"a\"":2}"##), r##"{"a\"":2,"a#":1}"##);
        assert_eq!(canon(r#"{"\u0062":1,"a":2}"#), r#"{"a":2,"b":1}"#);
        assert_eq!(
            canon(r#"{"b":1,"\u0001":2,"\n":3}"#),
            r#"{"\u0001":2,"\n":3,"b":1}"#
        );
    }

    #[test]
    fn escapes_have_one_form() {
        assert_eq!(canon(r#""\u00e9""#), "\"é\"");
        assert_eq!(canon("\"é\""), "\"é\"");
        assert_eq!(canon(r#""\/\u002F/""#), r#""///""#);
        assert_eq!(canon(r#""\u0022\u005c""#), r#""\"\\""#);
        assert_eq!(
            canon(r#""\u0008\u000c\u000A\u000d\u0009\u0000\u001F\u007f""#),
            "\"\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}\""
        );
        assert_eq!(canon(r#"{"\u0061":"\u0041"}"#), r#"{"a":"A"}"#);
    }

    #[test]
    fn the_escaping_is_serde_jsons() {
        // Keys and strings of every kind of character, numbers serde_json prints as written.
        let inputs = [
            r#"{"b":"x\u0001y","a":["\t","\u2028","é","😀","\ud83d\ude00"],"c\"":"\\/"}"#,
            r#"[{"z":0,"y":-12,"x":[true,false,null]},"\u001b[0m"]"#,
            r#"{"\u00e9":"\u00E9","e\u0301":1,"\ufeff":"\u0000"}"#,
        ];
        for input in inputs {
            let v: serde_json::Value = serde_json::from_str(input).unwrap();
            assert_eq!(canon(input), serde_json::to_string(&v).unwrap(), "{input}");
        }
    }

    #[test]
    fn numbers_are_kept_exactly_as_written() {
        let raw =
            r#"{"id":12345678901234567890123,"price":1.10,"e":1E+5,"f":-0.0e-7,"z":0,"n":-0}"#;
        assert_eq!(
            canon(raw),
            r#"{"e":1E+5,"f":-0.0e-7,"id":12345678901234567890123,"n":-0,"price":1.10,"z":0}"#
        );
        assert_eq!(canon("18446744073709551616"), "18446744073709551616");
    }

    #[test]
    fn unicode_and_surrogate_pairs_are_decoded() {
        assert_eq!(canon(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(canon(r#""\uD83D\uDE00""#), "\"😀\"");
        assert_eq!(canon("\"😀 日本\""), "\"😀 日本\"");
        assert_eq!(canon(r#"["\u65e5",  "日"]"#), "[\"日\",\"日\"]");
    }

    #[test]
    fn nested_values_are_canonical_all_the_way_down() {
        let raw = r#"[ [ [ { "b" : [ { "d" : 1 , "c" : 2 } ] , "a" : [ ] } ] ] , { } ]"#;
        assert_eq!(canon(raw), r#"[[[{"a":[],"b":[{"c":2,"d":1}]}]],{}]"#);
    }

    #[test]
    fn canonical_text_is_a_fixed_point() {
        for raw in [
            r#"{"b" : [1.50, "\u00e9\n"], "a" : {"y": null, "x": -1e-3}}"#,
            "[\n\"\\ud83d\\ude00\", {\"\\u0000\": \"\\/\"}\n]",
            r#"{"":{"":{"":[]}}}"#,
        ] {
            let once = canon(raw);
            assert_eq!(canon(&once), once);
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [
            "",
            "   ",
            "{",
            "[1,]",
            "[,1]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "{'a':1}",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "0x10",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "truex",
            "\"abc",
            "\"a\nb\"",
            "\"tab\there\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            "[1] [2]",
            "{} x",
        ] {
            assert!(
                matches!(canonical_json(bad), Err(CanonicalError::Syntax { .. })),
                "{bad:?} was accepted: {:?}",
                canonical_json(bad)
            );
        }
    }

    #[test]
    fn duplicate_keys_are_refused_whatever_their_spelling() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"b":2,"a":3}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":{"k":1,"j":0,"k":2}}"#,
        ] {
            assert!(
                matches!(
                    canonical_json(bad),
                    Err(CanonicalError::DuplicateKey { .. })
                ),
                "{bad}"
            );
        }
        // The same key in different objects is fine.
        assert_eq!(canon(r#"[{"a":1},{"a":2}]"#), r#"[{"a":1},{"a":2}]"#);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(canon(&deep(MAX_DEPTH)), deep(MAX_DEPTH));
        assert_eq!(
            canonical_json(&deep(MAX_DEPTH + 1)),
            Err(CanonicalError::TooDeep { limit: MAX_DEPTH })
        );
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            canonical_json(&objects),
            Err(CanonicalError::TooDeep { limit: MAX_DEPTH })
        );
        // Far too deep for the stack, if the bound were missing.
        assert!(canonical_json(&deep(100_000)).is_err());
    }
}
