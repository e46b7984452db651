//! Parsing a page in one pass: records stay raw JSON (no tree is built for them, and their size is
//! known exactly for the per-record cap); everything else becomes a small `Value` for pagination.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::canonical::{CanonicalError, canonical_json};
use crate::selector::Selector;

/// One record as the provider sent it.
#[derive(Debug, Clone)]
pub struct Record(Box<RawValue>);

impl Record {
    /// Wraps raw JSON.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// Serializes a value.
    pub fn from_value(v: &Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(v).map(Self)
    }

    /// The JSON text as the provider sent it.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The record's canonical JSON ([`canonical_json`]): the text to store, hash and print, the
    /// same whatever the provider's whitespace, escaping and key order.
    pub fn canonical(&self) -> Result<String, CanonicalError> {
        canonical_json(self.0.get())
    }

    /// Parses into a value.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Whether the JSON text is empty (never, for parsed records).
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }
}

/// A parsed page body.
#[derive(Debug)]
pub struct ParsedPage {
    /// The body without the records (the record array is replaced by `null`).
    pub meta: Value,
    /// The records; `None` when the selector found nothing.
    pub records: Option<Vec<Record>>,
}

/// Parses `body`, taking the records at `selector` as raw JSON.
pub fn parse_page(body: &[u8], selector: &Selector) -> Result<ParsedPage, serde_json::Error> {
    let steps = selector.steps();
    // Array indexes on the way to the records are rare; take the simple route for them.
    if steps.iter().any(|s| s.parse::<usize>().is_ok()) {
        let meta: Value = serde_json::from_slice(body)?;
        let records = match selector.get(&meta) {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(Record::from_value)
                    .collect::<Result<_, _>>()?,
            ),
            Some(Value::Null) => Some(Vec::new()),
            _ => None,
        };
        return Ok(ParsedPage { meta, records });
    }
    let mut records = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let meta = Seed {
        steps,
        records: &mut records,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(ParsedPage { meta, records })
}

struct Seed<'s> {
    steps: &'s [String],
    records: &'s mut Option<Vec<Record>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.steps.is_empty() {
            let items: Option<Vec<Box<RawValue>>> = de::Deserialize::deserialize(d)?;
            *self.records = Some(items.unwrap_or_default().into_iter().map(Record).collect());
            return Ok(Value::Null);
        }
        d.deserialize_any(MetaVisitor(self))
    }
}

struct MetaVisitor<'s>(Seed<'s>);

impl<'de> Visitor<'de> for MetaVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object containing `{}`", self.0.steps.join("."))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Seed { steps, records } = self.0;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == steps[0] {
                map.next_value_seed(Seed {
                    steps: &steps[1..],
                    records: &mut *records,
                })?
            } else {
                map.next_value::<Value>()?
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    // Anything else on the way to the records: keep it as metadata; the records are absent.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            v.push(item);
        }
        Ok(Value::Array(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records_from_metadata() {
        let body =
            br#"{"data":[{"id":"a"},{"id":"b","x":[1,2]}],"has_more":true,"meta":{"next":"c"}}"#;
        let p = parse_page(body, &Selector::parse("data").unwrap()).unwrap();
        let recs = p.records.unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].json(), r#"{"id":"b","x":[1,2]}"#);
        assert_eq!(p.meta["has_more"], Value::Bool(true));
        assert_eq!(p.meta["meta"]["next"], Value::from("c"));
    }

    #[test]
    fn a_record_keeps_the_providers_text_and_gives_its_canonical_form() {
        let body =
            b"{\"data\": [ {\n  \"name\": \"\\u00e9\",\n  \"id\": 10000000000000000001\n} ]}";
        let p = parse_page(body, &Selector::parse("data").unwrap()).unwrap();
        let r = &p.records.unwrap()[0];
        assert!(r.json().contains('\n'));
        assert_eq!(
            r.canonical().unwrap(),
            "{\"id\":10000000000000000001,\"name\":\"\u{e9}\"}"
        );
    }

    #[test]
    fn nested_and_root_selectors() {
        let body = br#"{"response":{"items":[1,2,3]}}"#;
        let p = parse_page(body, &Selector::parse("response.items").unwrap()).unwrap();
        assert_eq!(p.records.unwrap().len(), 3);
        let p = parse_page(b"[{\"a\":1}]", &Selector::parse("").unwrap()).unwrap();
        assert_eq!(p.records.unwrap().len(), 1);
    }

    #[test]
    fn missing_records_and_null_records_differ() {
        let p = parse_page(br#"{"other":[]}"#, &Selector::parse("data").unwrap()).unwrap();
        assert!(p.records.is_none());
        let p = parse_page(br#"{"data":null}"#, &Selector::parse("data").unwrap()).unwrap();
        assert_eq!(p.records.unwrap().len(), 0);
    }

    #[test]
    fn malformed_body_is_an_error() {
        assert!(parse_page(b"{\"data\":[1,", &Selector::parse("data").unwrap()).is_err());
        assert!(parse_page(b"<html>", &Selector::parse("data").unwrap()).is_err());
    }
}
