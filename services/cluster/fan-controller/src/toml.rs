//! The part of TOML a fan curve needs: `key = value` with integers, floats, booleans and
//! strings ("basic" with \\ \" \n \t \r escapes, or 'literal'), `#` comments, `[table]` and
//! `[[array-of-tables]]` headers. Anything else (arrays, inline tables, dotted keys,
//! multi-line strings) is refused with the line it is on, never misread.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Str(_) => "a string",
        }
    }
}

/// One `key = value`, with the line it was on (1-based) for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub line: usize,
}

/// The keys of one table, in file order; `line` is its header's (0 for the top level).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// The top-level table, then every `[name]` and `[[name]]` table in file order (an array of
/// tables is its name repeated).
#[derive(Debug, Default)]
pub struct Document {
    pub top: Table,
    pub tables: Vec<(bool, Table)>, // (is an [[array]] element, table)
}

#[derive(Debug, PartialEq)]
pub struct Error {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, Error> {
    Err(Error { line, message: message.into() })
}

fn bare_key(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The line without its comment (a `#` outside a string).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
    }
    line
}

fn parse_string(text: &str, line: usize) -> Result<String, Error> {
    let quote = text.chars().next().unwrap_or('"');
    if text.len() < 2 || !text.ends_with(quote) || text.starts_with("\"\"\"") || text.starts_with("'''") {
        return err(line, format!("unterminated or multi-line string {text}"));
    }
    let inner = &text[1..text.len() - 1];
    if quote == '\'' {
        if inner.contains('\'') {
            return err(line, "a ' inside a 'literal string'");
        }
        return Ok(inner.to_string());
    }
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                other => return err(line, format!("unsupported escape \\{}", other.map(String::from).unwrap_or_default())),
            },
            '"' => return err(line, "a \" inside a string must be escaped as \\\""),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn parse_number(text: &str, line: usize) -> Result<Value, Error> {
    let digits_ok = |s: &str| {
        let s = s.trim_start_matches(['+', '-']);
        !s.is_empty() && !s.starts_with('_') && !s.ends_with('_') && !s.contains("__")
    };
    let plain = text.replace('_', "");
    if !digits_ok(text) || !plain.trim_start_matches(['+', '-']).starts_with(|c: char| c.is_ascii_digit()) {
        return err(line, format!("`{text}` is not a value (a number, true/false, or a \"string\")"));
    }
    if plain.contains(['.', 'e', 'E']) {
        if plain.ends_with('.') || plain.contains(".e") || plain.contains(".E") {
            return err(line, format!("`{text}`: a float needs digits after the point"));
        }
        return plain.parse::<f64>().map(Value::Float).or_else(|_| err(line, format!("`{text}` is not a number")));
    }
    plain.parse::<i64>().map(Value::Int).or_else(|_| err(line, format!("`{text}` is not a number")))
}

fn parse_value(text: &str, line: usize) -> Result<Value, Error> {
    match text {
        "" => err(line, "a key needs a value"),
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        "inf" | "+inf" | "-inf" | "nan" | "+nan" | "-nan" => err(line, format!("`{text}` is not a usable number here")),
        t if t.starts_with('"') || t.starts_with('\'') => parse_string(t, line).map(Value::Str),
        t if t.starts_with('[') => err(line, "arrays are not supported: write one [[table]] per element"),
        t if t.starts_with('{') => err(line, "inline tables are not supported: write a [[table]]"),
        t => parse_number(t, line),
    }
}

pub fn parse(text: &str) -> Result<Document, Error> {
    let mut doc = Document::default();
    let mut current: Option<(bool, Table)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        if content.starts_with('[') {
            let (array, name) = if let Some(inner) = content.strip_prefix("[[").and_then(|c| c.strip_suffix("]]")) {
                (true, inner.trim())
            } else if let Some(inner) = content.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
                (false, inner.trim())
            } else {
                return err(line, format!("`{content}` is not a [table] or [[table]] header"));
            };
            if !bare_key(name) {
                return err(line, format!("table name `{name}`: use letters, digits, - and _"));
            }
            let seen = current.iter().chain(doc.tables.iter()).any(|(a, t)| t.name == name && (!array || !*a));
            if seen {
                return err(line, format!("table [{name}] appears twice"));
            }
            if let Some(done) = current.take() {
                doc.tables.push(done);
            }
            current = Some((array, Table { name: name.to_string(), line, entries: Vec::new() }));
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            return err(line, format!("`{content}`: expected `key = value`"));
        };
        let key = key.trim();
        if !bare_key(key) {
            return err(line, format!("key `{key}`: use letters, digits, - and _ (no dotted or quoted keys)"));
        }
        let value = parse_value(value.trim(), line)?;
        let table = match current.as_mut() {
            Some((_, table)) => table,
            None => &mut doc.top,
        };
        if table.get(key).is_some() {
            return err(line, format!("key `{key}` is set twice in the same table"));
        }
        table.entries.push(Entry { key: key.to_string(), value, line });
    }
    if let Some(done) = current {
        doc.tables.push(done);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_tables_and_comments() {
        let doc = parse(
            "# a curve\nhwmon = \"/sys/class/hwmon/hwmon2\" # where\nhysteresis = 3.5\nn = -1_000\nok = true\n\
             lit = 'C:\\x # not a comment'\n\n[[step]]\ntemp = 40\npwm = 90\n[[step]]\ntemp = 1e2\n",
        )
        .unwrap();
        let top = &doc.top;
        assert_eq!(top.get("hwmon").unwrap().value, Value::Str("/sys/class/hwmon/hwmon2".into()));
        assert_eq!(top.get("hysteresis").unwrap().value, Value::Float(3.5));
        assert_eq!(top.get("n").unwrap().value, Value::Int(-1000));
        assert_eq!(top.get("ok").unwrap().value, Value::Bool(true));
        assert_eq!(top.get("lit").unwrap().value, Value::Str("C:\\x # not a comment".into()));
        assert_eq!(doc.tables.len(), 2);
        assert_eq!((doc.tables[0].0, doc.tables[0].1.name.as_str(), doc.tables[0].1.line), (true, "step", 8));
        assert_eq!(doc.tables[0].1.get("pwm").unwrap().value, Value::Int(90));
        assert_eq!(doc.tables[1].1.get("temp").unwrap().value, Value::Float(100.0));
    }

    #[test]
    fn escapes() {
        let doc = parse(r#"s = "a \"q\" \\ \t # kept""#).unwrap();
        assert_eq!(doc.top.get("s").unwrap().value, Value::Str("a \"q\" \\ \t # kept".into()));
    }

    #[test]
    fn refusals_name_the_line() {
        let cases = [
            ("a = [1, 2]", 1, "arrays are not supported"),
            ("\nb = { x = 1 }", 2, "inline tables"),
            ("a.b = 1", 1, "no dotted"),
            ("a = 1\na = 2", 2, "set twice"),
            ("[t]\n[t]", 2, "appears twice"),
            ("[[s]]\n[s]", 2, "appears twice"),
            ("just words", 1, "expected `key = value`"),
            ("a = \"open", 1, "unterminated"),
            ("a = 1__0", 1, "is not a value"),
            ("a = 1.", 1, "digits after the point"),
            ("a = nan", 1, "not a usable number"),
            ("a = \"\\x\"", 1, "unsupported escape"),
            ("a =", 1, "needs a value"),
            ("[bad name]", 1, "table name"),
            ("a = 99999999999999999999", 1, "not a number"),
        ];
        for (text, line, words) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(words), "{text}: {e}");
        }
    }

    #[test]
    fn array_tables_repeat() {
        let doc = parse("[[step]]\na = 1\n[[step]]\na = 2\n[[step]]\na = 3\n").unwrap();
        assert_eq!(doc.tables.iter().filter(|(array, t)| *array && t.name == "step").count(), 3);
    }
}
