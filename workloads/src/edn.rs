//! EDN values: what Jepsen writes in `results.edn` and `history.edn`.
//!
//! Results must be readable by a Clojure user exactly as Maelstrom's are, so printing
//! follows Clojure's conventions: doubles always show a `.` or an exponent (`1.0`,
//! `1.0E7`), maps print `{:k v, :k2 v2}`, and [`Edn::to_pretty`] breaks a collection over
//! lines the way `clojure.pprint` does once it passes a 72-column margin, aligning
//! entries after the opening bracket. The parser reads everything Jepsen writes in those
//! files (tagged literals such as `#jepsen.history.Op{…}`, sets, symbols), so stored runs,
//! ours or Maelstrom's, can be analysed again. Map order is insertion order.

use std::fmt;

use serde_json::Value;

/// An EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Without the leading `:`.
    Keyword(String),
    Symbol(String),
    List(Vec<Edn>),
    Vector(Vec<Edn>),
    Set(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
    /// `#tag value`, e.g. `#jepsen.history.Op{…}`.
    Tagged(String, Box<Edn>),
}

/// Where and why EDN text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdnError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for EdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EDN error at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for EdnError {}

/// `clojure.pprint`'s default right margin.
const MARGIN: usize = 72;

impl Edn {
    pub fn kw(name: &str) -> Edn {
        Edn::Keyword(name.to_string())
    }

    /// A map with keyword keys, in the given order.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Edn)>) -> Edn {
        Edn::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Edn::Keyword(k.into()), v))
                .collect(),
        )
    }

    /// Looks up a keyword key in a map (or a tagged map).
    pub fn get(&self, keyword: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == keyword))
                .map(|(_, v)| v),
            Edn::Tagged(_, inner) => inner.get(keyword),
            _ => None,
        }
    }

    /// Sets a keyword key of a map, replacing an existing entry in place.
    pub fn insert(&mut self, keyword: &str, value: Edn) {
        if let Edn::Map(entries) = self {
            if let Some(entry) = entries
                .iter_mut()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == keyword))
            {
                entry.1 = value;
            } else {
                entries.push((Edn::kw(keyword), value));
            }
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Edn::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Edn::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of a list, vector or set.
    pub fn elements(&self) -> Option<&[Edn]> {
        match self {
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => Some(items),
            _ => None,
        }
    }

    /// One line, as Jepsen writes each op of `history.edn`.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }

    /// Over several lines where a line would pass the margin, as `results.edn`.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write_pretty(&mut out, 0);
        out
    }

    fn write_compact(&self, out: &mut String) {
        match self {
            Edn::Nil => out.push_str("nil"),
            Edn::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Edn::Int(i) => out.push_str(&i.to_string()),
            Edn::Float(f) => out.push_str(&format_double(*f)),
            Edn::Str(s) => write_string(s, out),
            Edn::Keyword(k) => {
                out.push(':');
                out.push_str(k);
            }
            Edn::Symbol(s) => out.push_str(s),
            Edn::List(items) => write_seq(out, "(", ")", items),
            Edn::Vector(items) => write_seq(out, "[", "]", items),
            Edn::Set(items) => write_seq(out, "#{", "}", items),
            Edn::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_compact(out);
                    out.push(' ');
                    v.write_compact(out);
                }
                out.push('}');
            }
            Edn::Tagged(tag, inner) => {
                out.push('#');
                out.push_str(tag);
                inner.write_compact(out);
            }
        }
    }

    /// Writes at `column` (where the cursor already is).
    fn write_pretty(&self, out: &mut String, column: usize) {
        let compact = self.to_compact();
        if column + compact.len() <= MARGIN || !self.is_collection() {
            out.push_str(&compact);
            return;
        }
        match self {
            Edn::List(items) => pretty_seq(out, column, "(", ")", items),
            Edn::Vector(items) => pretty_seq(out, column, "[", "]", items),
            Edn::Set(items) => pretty_seq(out, column, "#{", "}", items),
            Edn::Map(entries) => pretty_map(out, column, entries),
            Edn::Tagged(tag, inner) => {
                out.push('#');
                out.push_str(tag);
                inner.write_pretty(out, column + 1 + tag.len());
            }
            _ => out.push_str(&compact),
        }
    }

    fn is_collection(&self) -> bool {
        matches!(
            self,
            Edn::List(_) | Edn::Vector(_) | Edn::Set(_) | Edn::Map(_) | Edn::Tagged(..)
        )
    }

    /// Reads exactly one value.
    pub fn parse(text: &str) -> Result<Edn, EdnError> {
        let mut parser = Parser { text, pos: 0 };
        let value = parser
            .value()?
            .ok_or_else(|| parser.error("expected a value, found the end"))?;
        parser.skip_space();
        if parser.pos < text.len() {
            return Err(parser.error("unexpected text after the value"));
        }
        Ok(value)
    }

    /// Reads every top-level value, e.g. the ops of a `history.edn`.
    pub fn parse_all(text: &str) -> Result<Vec<Edn>, EdnError> {
        let mut parser = Parser { text, pos: 0 };
        let mut values = Vec::new();
        while let Some(value) = parser.value()? {
            values.push(value);
        }
        Ok(values)
    }

    /// Converts JSON as Maelstrom does: with `keywordize_keys`, the keys of the top-level
    /// object become keywords; nested objects keep string keys.
    pub fn from_json(v: &Value, keywordize_keys: bool) -> Edn {
        match v {
            Value::Null => Edn::Nil,
            Value::Bool(b) => Edn::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Edn::Int(i)
                } else if let Some(u) = n.as_u64() {
                    // Beyond i64: Clojure reads it as a bigint, printed with an N.
                    Edn::Symbol(format!("{u}N"))
                } else {
                    Edn::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Edn::Str(s.clone()),
            Value::Array(items) => {
                Edn::Vector(items.iter().map(|i| Edn::from_json(i, false)).collect())
            }
            Value::Object(map) => Edn::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = if keywordize_keys {
                            Edn::Keyword(k.clone())
                        } else {
                            Edn::Str(k.clone())
                        };
                        (key, Edn::from_json(v, false))
                    })
                    .collect(),
            ),
        }
    }

    /// Converts to JSON: keywords become their names, sets and lists arrays, map keys
    /// strings (non-string keys in their EDN spelling), tagged values their inner value.
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::from(*i),
            Edn::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(format_double(*f))),
            Edn::Str(s) => Value::String(s.clone()),
            Edn::Keyword(k) => Value::String(k.clone()),
            Edn::Symbol(s) => match s.strip_suffix('N').and_then(|d| d.parse::<u64>().ok()) {
                Some(u) => Value::from(u),
                None => Value::String(s.clone()),
            },
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                Value::Array(items.iter().map(Edn::to_json).collect())
            }
            Edn::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Edn::Str(s) | Edn::Keyword(s) => s.clone(),
                            other => other.to_compact(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
            Edn::Tagged(_, inner) => inner.to_json(),
        }
    }
}

impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compact())
    }
}

impl From<i64> for Edn {
    fn from(i: i64) -> Self {
        Edn::Int(i)
    }
}

impl From<u64> for Edn {
    fn from(u: u64) -> Self {
        i64::try_from(u)
            .map(Edn::Int)
            .unwrap_or_else(|_| Edn::Symbol(format!("{u}N")))
    }
}

impl From<usize> for Edn {
    fn from(u: usize) -> Self {
        Edn::from(u as u64)
    }
}

impl From<f64> for Edn {
    fn from(f: f64) -> Self {
        Edn::Float(f)
    }
}

impl From<bool> for Edn {
    fn from(b: bool) -> Self {
        Edn::Bool(b)
    }
}

impl From<&str> for Edn {
    fn from(s: &str) -> Self {
        Edn::Str(s.to_string())
    }
}

impl From<String> for Edn {
    fn from(s: String) -> Self {
        Edn::Str(s)
    }
}

/// Java's `Double.toString`: always a `.`, scientific outside [1e-3, 1e7).
fn format_double(f: f64) -> String {
    if f.is_nan() {
        return "##NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "##Inf" } else { "##-Inf" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-3..1e7).contains(&abs) {
        let s = format!("{f:E}");
        let (mantissa, exponent) = s.split_once('E').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        return format!("{mantissa}E{exponent}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_seq(out: &mut String, open: &str, close: &str, items: &[Edn]) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        item.write_compact(out);
    }
    out.push_str(close);
}

fn pretty_seq(out: &mut String, column: usize, open: &str, close: &str, items: &[Edn]) {
    out.push_str(open);
    let inner = column + open.len();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(inner));
        }
        item.write_pretty(out, inner);
    }
    out.push_str(close);
}

fn pretty_map(out: &mut String, column: usize, entries: &[(Edn, Edn)]) {
    out.push('{');
    let inner = column + 1;
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
            out.push_str(&" ".repeat(inner));
        }
        let key = k.to_compact();
        out.push_str(&key);
        out.push(' ');
        v.write_pretty(out, inner + key.chars().count() + 1);
    }
    out.push('}');
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> EdnError {
        EdnError {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// Skips white space, comments and `#_` discarded forms.
    fn skip_ignored(&mut self) -> Result<(), EdnError> {
        loop {
            self.skip_space();
            if !self.text[self.pos..].starts_with("#_") {
                return Ok(());
            }
            self.pos += 2;
            if self.value()?.is_none() {
                return Err(self.error("#_ needs a form to discard"));
            }
        }
    }

    /// The next value, or `None` at the end of the text.
    fn value(&mut self) -> Result<Option<Edn>, EdnError> {
        self.skip_ignored()?;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let value = match c {
            '(' => {
                self.bump();
                Edn::List(self.items(')')?)
            }
            '[' => {
                self.bump();
                Edn::Vector(self.items(']')?)
            }
            '{' => {
                self.bump();
                self.map_body()?
            }
            '"' => Edn::Str(self.string()?),
            ':' => {
                self.bump();
                Edn::Keyword(self.token())
            }
            '\\' => {
                self.bump();
                Edn::Str(self.token())
            }
            '#' => {
                self.bump();
                match self.peek() {
                    Some('{') => {
                        self.bump();
                        Edn::Set(self.items('}')?)
                    }
                    Some('#') => {
                        self.bump();
                        match self.token().as_str() {
                            "Inf" => Edn::Float(f64::INFINITY),
                            "-Inf" => Edn::Float(f64::NEG_INFINITY),
                            _ => Edn::Float(f64::NAN),
                        }
                    }
                    _ => {
                        let tag = self.token();
                        if tag.is_empty() {
                            return Err(self.error("a # must start a set, a tag or ##"));
                        }
                        let inner = self
                            .value()?
                            .ok_or_else(|| self.error("a tag needs a value"))?;
                        Edn::Tagged(tag, Box::new(inner))
                    }
                }
            }
            ')' | ']' | '}' => return Err(self.error(&format!("unexpected {c:?}"))),
            _ => self.atom()?,
        };
        Ok(Some(value))
    }

    fn items(&mut self, close: char) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_ignored()?;
            match self.peek() {
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                None => return Err(self.error(&format!("missing {close:?}"))),
                _ => match self.value()? {
                    Some(v) => items.push(v),
                    None => return Err(self.error(&format!("missing {close:?}"))),
                },
            }
        }
    }

    fn map_body(&mut self) -> Result<Edn, EdnError> {
        let items = self.items('}')?;
        if items.len() % 2 != 0 {
            return Err(self.error("a map needs an even number of forms"));
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut iter = items.into_iter();
        while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn string(&mut self) -> Result<String, EdnError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.error("bad \\u escape"))?;
                        s.push(c);
                    }
                    Some(c) => s.push(c),
                    None => return Err(self.error("unterminated string")),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';')
            {
                break;
            }
            self.bump();
        }
        self.text[start..self.pos].to_string()
    }

    fn atom(&mut self) -> Result<Edn, EdnError> {
        let token = self.token();
        if token.is_empty() {
            return Err(self.error("unexpected character"));
        }
        Ok(match token.as_str() {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ => {
                let numeric = token.starts_with(|c: char| c.is_ascii_digit())
                    || (token.len() > 1
                        && token.starts_with(['-', '+'])
                        && token[1..].starts_with(|c: char| c.is_ascii_digit()));
                if !numeric {
                    Edn::Symbol(token)
                } else if let Ok(i) = token.parse::<i64>() {
                    Edn::Int(i)
                } else if token.ends_with('N') {
                    Edn::Symbol(token)
                } else if let Ok(f) = token.trim_end_matches('M').parse::<f64>() {
                    Edn::Float(f)
                } else if let Some((n, d)) = token.split_once('/') {
                    match (n.parse::<f64>(), d.parse::<f64>()) {
                        (Ok(n), Ok(d)) => Edn::Float(n / d),
                        _ => Edn::Symbol(token),
                    }
                } else {
                    Edn::Symbol(token)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doubles_print_like_clojure() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (2.064516, "2.064516"),
            (1e7, "1.0E7"),
            (1.5e-4, "1.5E-4"),
            (-3.25, "-3.25"),
        ] {
            assert_eq!(Edn::Float(f).to_compact(), s);
        }
    }

    #[test]
    fn compact_maps_use_commas_and_sequences_spaces() {
        let v = Edn::map([
            ("index", Edn::Int(0)),
            ("type", Edn::kw("ok")),
            ("value", Edn::List(vec![Edn::Int(32), Edn::Int(25)])),
            ("range", Edn::Vector(vec![Edn::Int(1), Edn::Nil])),
            ("set", Edn::Set(vec![Edn::from("n3")])),
            ("s", Edn::from("a \"q\"\n")),
        ]);
        assert_eq!(
            v.to_compact(),
            r#"{:index 0, :type :ok, :value (32 25), :range [1 nil], :set #{"n3"}, :s "a \"q\"\n"}"#
        );
    }

    #[test]
    fn pretty_breaks_past_the_margin_like_pprint() {
        let perf = Edn::map([
            ("latency-graph", Edn::map([("valid?", Edn::Bool(true))])),
            ("rate-graph", Edn::map([("valid?", Edn::Bool(true))])),
            ("valid?", Edn::Bool(true)),
        ]);
        let results = Edn::map([
            ("perf", perf),
            (
                "availability",
                Edn::map([
                    ("valid?", Edn::Bool(true)),
                    ("ok-fraction", Edn::Float(1.0)),
                ]),
            ),
            ("valid?", Edn::Bool(true)),
        ]);
        assert_eq!(
            results.to_pretty(),
            "{:perf {:latency-graph {:valid? true},\n        :rate-graph {:valid? true},\n        :valid? true},\n :availability {:valid? true, :ok-fraction 1.0},\n :valid? true}"
        );
    }

    #[test]
    fn parses_what_jepsen_writes() {
        let text = r#"#jepsen.history.Op{:index 1, :time 3, :type :info, :f :generate, :value nil,
            :exception {:class clojure.lang.ExceptionInfo, :via [{:at [x "y" 201]}]}, :v #{1 2}, :n -4, :big 123N, :r 0.5 ; comment
            :inf ##Inf #_ :ignored}"#;
        let v = Edn::parse(text).unwrap();
        let Edn::Tagged(tag, _) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(tag, "jepsen.history.Op");
        assert_eq!(v.get("index"), Some(&Edn::Int(1)));
        assert_eq!(v.get("n"), Some(&Edn::Int(-4)));
        assert_eq!(v.get("big"), Some(&Edn::Symbol("123N".into())));
        assert_eq!(v.get("v"), Some(&Edn::Set(vec![Edn::Int(1), Edn::Int(2)])));
        assert_eq!(v.get("r"), Some(&Edn::Float(0.5)));
        assert_eq!(v.get("inf"), Some(&Edn::Float(f64::INFINITY)));
        assert!(v.get("ignored").is_none());
        assert!(matches!(
            v.get("exception").unwrap().get("class"),
            Some(Edn::Symbol(_))
        ));
    }

    #[test]
    fn print_then_parse_is_identity() {
        let v = Edn::map([
            (
                "a",
                Edn::Vector(vec![Edn::Int(1), Edn::Float(2.5), Edn::from("x\ty")]),
            ),
            (
                "b",
                Edn::Map(vec![(Edn::from("n1"), Edn::Set(vec![Edn::from("n2")]))]),
            ),
            (
                "c",
                Edn::List(vec![
                    Edn::Nil,
                    Edn::Bool(false),
                    Edn::Symbol("foo.Bar".into()),
                ]),
            ),
        ]);
        assert_eq!(Edn::parse(&v.to_compact()).unwrap(), v);
        assert_eq!(Edn::parse(&v.to_pretty()).unwrap(), v);
    }

    #[test]
    fn bad_text_is_an_error_not_a_panic() {
        for bad in [
            "{:a",
            "(1 2",
            "\"open",
            "{:a 1 :b}",
            ")",
            "#",
            "[1 2]]",
            "#foo",
        ] {
            assert!(Edn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_conversion_keywordizes_only_the_top_level() {
        let v = Edn::from_json(
            &json!({"type":"echo_ok","echo":{"k":[1,2.5,null]},"in_reply_to":1}),
            true,
        );
        assert_eq!(
            v.to_compact(),
            r#"{:type "echo_ok", :echo {"k" [1 2.5 nil]}, :in_reply_to 1}"#
        );
        assert_eq!(
            v.to_json(),
            json!({"type":"echo_ok","echo":{"k":[1,2.5,null]},"in_reply_to":1})
        );
        assert_eq!(
            Edn::from_json(&json!(u64::MAX), false).to_json(),
            json!(u64::MAX)
        );
    }
}
