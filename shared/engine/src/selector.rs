//! Selectors: dotted paths into JSON (`paging.next.after`, `errors.0.code`; `""` is the root).

use std::fmt;

use serde_json::Value;

/// A selector syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector `{0}`: use dotted keys and array indexes such as `data.0.id`")]
pub struct SelectorError(pub String);

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    steps: Vec<String>,
}

impl Selector {
    /// Parses `a.b.0`; `""` and `$` select the root.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let text = text.trim();
        if text.is_empty() || text == "$" {
            return Ok(Self::default());
        }
        let text = text.strip_prefix("$.").unwrap_or(text);
        let steps: Vec<String> = text.split('.').map(str::to_owned).collect();
        if steps.iter().any(String::is_empty) {
            return Err(SelectorError(text.to_owned()));
        }
        Ok(Self { steps })
    }

    /// The steps, outermost first.
    pub fn steps(&self) -> &[String] {
        &self.steps
    }

    /// Whether this selects the root.
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// The selected value, if present.
    pub fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        let mut cur = value;
        for step in &self.steps {
            cur = match cur {
                Value::Object(m) => m.get(step)?,
                Value::Array(a) => a.get(step.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The selected value as text: strings as-is, numbers and booleans formatted;
    /// `None` for missing, null, empty strings, arrays and objects.
    pub fn get_text(&self, value: &Value) -> Option<String> {
        match self.get(value)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.steps.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_nested_keys_and_indexes() {
        let v = json!({"paging": {"next": {"after": "abc"}}, "errors": [{"code": 7}]});
        assert_eq!(
            Selector::parse("paging.next.after")
                .unwrap()
                .get_text(&v)
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            Selector::parse("errors.0.code")
                .unwrap()
                .get_text(&v)
                .as_deref(),
            Some("7")
        );
        assert_eq!(Selector::parse("").unwrap().get(&v), Some(&v));
        assert_eq!(Selector::parse("paging.prev").unwrap().get(&v), None);
    }

    #[test]
    fn rejects_empty_steps() {
        assert!(Selector::parse("a..b").is_err());
        assert!(Selector::parse(".a").is_err());
    }
}
