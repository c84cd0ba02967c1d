//! A small JSON parser for plugin configurations (the crate has no
//! dependencies, so no serde). [`Config`] reads a parsed object strictly:
//! wrong types and unknown keys are errors naming the key.

use std::fmt;

/// A JSON value. Objects keep their keys in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, its members in document order.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type's name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A JSON syntax error, at a byte offset.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// The byte offset of the error.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.message)
    }
}

/// Parses a JSON document. Nesting deeper than 64 levels is refused.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { s: text, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, message: &'static str) -> ParseError {
        ParseError { offset: self.i, message }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > 64 {
            return Err(self.err("nested too deeply"));
        }
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'n') if self.eat(b"null") => Ok(Value::Null),
            Some(b't') if self.eat(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.i += 1;
                let mut out = Vec::new();
                self.ws();
                if self.eat(b"]") {
                    return Ok(Value::Array(out));
                }
                loop {
                    self.ws();
                    out.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"]") {
                        return Ok(Value::Array(out));
                    }
                    return Err(self.err("expected , or ]"));
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut out: Vec<(String, Value)> = Vec::new();
                self.ws();
                if self.eat(b"}") {
                    return Ok(Value::Object(out));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a key"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return Err(self.err("expected :"));
                    }
                    self.ws();
                    let v = self.value(depth + 1)?;
                    match out.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v, // the last one wins, as in Go
                        None => out.push((k, v)),
                    }
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"}") {
                        return Ok(Value::Object(out));
                    }
                    return Err(self.err("expected , or }"));
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map(Value::Number)
            .ok_or(ParseError { offset: start, message: "invalid number" })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(self.err("short \\u escape"))?;
        let t = std::str::from_utf8(h).map_err(|_| self.err("invalid \\u escape"))?;
        let n = u32::from_str_radix(t, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // "
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' && self.s[self.i] >= 0x20 {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("invalid UTF-8"))?);
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = *self.s.get(self.i).ok_or(self.err("unexpected end"))?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut n = self.hex4()?;
                            if (0xD800..0xDC00).contains(&n) && self.eat(b"\\u") {
                                let lo = self.hex4()?;
                                n = 0x10000 + ((n - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            out.push(char::from_u32(n).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }
}

/// A plugin's configuration object, read strictly: every getter names
/// the key in its error, and [`Config::deny_unknown`] refuses keys the
/// plugin does not know. An absent configuration is an empty object.
#[derive(Debug)]
pub struct Config {
    value: Value,
}

/// A configuration error: a message naming the key, for
/// [`crate::fail`] (which makes the config load fail with it).
pub type ConfigError = String;

impl Config {
    /// Parses a configuration; empty input is an empty object, anything
    /// but an object is an error.
    pub fn parse(text: &[u8]) -> Result<Config, ConfigError> {
        if text.iter().all(|c| c.is_ascii_whitespace()) {
            return Ok(Config { value: Value::Object(Vec::new()) });
        }
        match parse(text).map_err(|e| format!("config: {}", e))? {
            v @ Value::Object(_) => Ok(Config { value: v }),
            v => Err(format!("config: an object is expected, got {}", v.type_name())),
        }
    }

    /// The whole configuration.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Fails with the first key not in `known`, suggesting the closest.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), ConfigError> {
        if let Value::Object(m) = &self.value {
            for (k, _) in m {
                if !known.contains(&k.as_str()) {
                    return Err(format!("config key {:?} is unknown (known: {})", k, known.join(", ")));
                }
            }
        }
        Ok(())
    }

    /// A string, or None when absent.
    pub fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(wrong(key, "a string", v)),
        }
    }

    /// A list of strings, or None when absent. A single string is an
    /// error that says how to write a one-element list in KDL.
    pub fn str_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(wrong(&format!("{}[{}]", key, i), "a string", v)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(_)) => Err(format!(
                "config key {:?}: a list is expected, got a single string; in KDL write {} (list)\"…\" for a one-element list",
                key, key
            )),
            Some(v) => Err(wrong(key, "a list of strings", v)),
        }
    }

    /// An object of strings (name → value), in document order, or None
    /// when absent.
    pub fn str_map(&self, key: &str) -> Result<Option<Vec<(String, String)>>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    v => Err(wrong(&format!("{}.{}", key, k), "a string", v)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(wrong(key, "an object of strings", v)),
        }
    }

    /// A non-negative integer, or None when absent.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 && *n <= 9.0e15 => Ok(Some(*n as u64)),
            Some(v) => Err(wrong(key, "a non-negative integer", v)),
        }
    }

    /// A boolean, or None when absent.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong(key, "a boolean", v)),
        }
    }
}

fn wrong(key: &str, want: &str, got: &Value) -> ConfigError {
    format!("config key {:?}: {} is expected, got {}", key, want, got.type_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let v = parse(br#" {"a": [1, -2.5e1, true, false, null], "b": "x\"\u00e9\ud83d\ude00\n", "c": {}} "#).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::Array(vec![Value::Number(1.0), Value::Number(-25.0), Value::Bool(true), Value::Bool(false), Value::Null]))
        );
        assert_eq!(v.get("b"), Some(&Value::String("x\"é😀\n".to_string())));
        assert_eq!(v.get("c"), Some(&Value::Object(vec![])));
    }

    #[test]
    fn refuses() {
        for bad in [&b"{"[..], b"[1,]", b"{\"a\" 1}", b"\"\x01\"", b"1 2", b"tru", b"\"\\x\"", b"{1:2}", b"-"] {
            assert!(parse(bad).is_err(), "{:?}", std::str::from_utf8(bad));
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().message, "nested too deeply");
    }

    #[test]
    fn config_is_strict() {
        let c = Config::parse(br#"{"allow": "/api", "n": 3, "m": {"X": "1"}, "f": true}"#).unwrap();
        assert!(c.str_list("allow").unwrap_err().contains("(list)"));
        assert_eq!(c.str("allow").unwrap(), Some("/api".to_string()));
        assert_eq!(c.uint("n").unwrap(), Some(3));
        assert!(c.uint("allow").is_err());
        assert_eq!(c.str_map("m").unwrap(), Some(vec![("X".to_string(), "1".to_string())]));
        assert_eq!(c.bool("f").unwrap(), Some(true));
        assert_eq!(c.str("missing").unwrap(), None);
        assert!(c.deny_unknown(&["allow", "n", "m"]).unwrap_err().contains("\"f\""));
        assert!(c.deny_unknown(&["allow", "n", "m", "f"]).is_ok());
        assert!(Config::parse(b"").unwrap().str("x").unwrap().is_none());
        assert!(Config::parse(b"[1]").unwrap_err().contains("an object is expected"));
    }
}
