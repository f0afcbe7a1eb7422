//! Output: human-readable aligned tables (default) or the raw JSON (`--output json`).
//!
//! Every command hands its result over (the SDK's typed response, the catalog's JSON, or a
//! small status object for calls that answer 204) plus a description of the columns a person
//! wants to see; this module renders one or the other. Results go to stdout, everything
//! else (warnings, hints, prompts) to stderr.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;

/// One column of a typed row: its header and how a row shows it.
pub struct Field<T> {
    pub header: &'static str,
    pub show: fn(&T) -> String,
}

pub const fn field<T>(header: &'static str, show: fn(&T) -> String) -> Field<T> {
    Field { header, show }
}

/// A string as a table cell shows it (control characters replaced).
pub fn text(s: &str) -> String {
    one_line(s)
}

/// An optional string; `-` when absent.
pub fn opt_text(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_string(), one_line)
}

/// A timestamp as a local ISO 8601 date-time (as [`time_cell`] shows it).
pub fn when(t: &DateTime<Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// An optional timestamp; `-` when absent.
pub fn opt_when(t: Option<&DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_string(), when)
}

pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// A list of names, comma-separated; `-` when empty.
pub fn names(v: &[String]) -> String {
    if v.is_empty() {
        return "-".to_string();
    }
    v.iter().map(|s| one_line(s)).collect::<Vec<_>>().join(", ")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// One column of a JSON row: its header and where its value is in each row object (a
/// dotted path; `*` as the whole value, for lists of plain strings).
#[derive(Clone, Copy, Debug)]
pub struct Col {
    pub header: &'static str,
    pub path: &'static str,
}

pub const fn col(header: &'static str, path: &'static str) -> Col {
    Col { header, path }
}

/// A timestamp as a local ISO 8601 date-time (`2026-12-05T16:04:05+01:00`); RFC 3339 strings
/// and epoch milliseconds (Iceberg's `timestamp-ms`) alike. Anything else as it is.
pub fn time_cell(v: Option<&Value>) -> String {
    let parsed = match v {
        Some(Value::Number(n)) => n.as_i64().and_then(chrono::DateTime::from_timestamp_millis),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.to_utc()),
        _ => None,
    };
    match parsed {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => cell(v),
    }
}

/// A byte count in binary units (`512 B`, `1.5 KiB`, `20.0 MiB`).
pub fn size_cell(v: Option<&Value>) -> String {
    let bytes = match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let Some(bytes) = bytes else { return cell(v) };
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub format: OutputFormat,
}

impl Output {
    pub fn new(format: OutputFormat) -> Self {
        Output { format }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A list: `rows` is the array (already taken out of its envelope); in JSON mode the
    /// whole `raw` response is printed instead.
    pub fn list(&self, raw: &Value, rows: &[Value], cols: &[Col]) {
        if self.is_json() {
            print_json(raw);
            return;
        }
        if rows.is_empty() {
            print_str("(none)\n");
            return;
        }
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| cols.iter().map(|c| cell(lookup(r, c.path))).collect())
            .collect();
        let headers: Vec<&str> = cols.iter().map(|c| c.header).collect();
        print_str(&render_table(&headers, &table));
    }

    /// Typed rows as a table; in JSON mode the server's envelope `{key: [...]}`.
    pub fn rows<T: Serialize>(&self, key: &str, rows: &[T], cols: &[Field<T>]) {
        if self.is_json() {
            print_json(&serde_json::json!({ key: rows }));
            return;
        }
        if rows.is_empty() {
            print_str("(none)\n");
            return;
        }
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| cols.iter().map(|c| (c.show)(r)).collect())
            .collect();
        let headers: Vec<&str> = cols.iter().map(|c| c.header).collect();
        print_str(&render_table(&headers, &table));
    }

    /// One typed object as `field: value` lines, or its JSON.
    pub fn record<T: Serialize>(&self, v: &T, fields: &[Field<T>]) {
        if self.is_json() {
            print_json(v);
            return;
        }
        let rows: Vec<(String, String)> = fields
            .iter()
            .map(|f| (f.header.to_string(), (f.show)(v)))
            .collect();
        print_str(&render_fields(&rows));
    }

    /// A confirmation for calls without a response body: `text` for people, `json` for scripts.
    pub fn done(&self, text: &str, json: Value) {
        if self.is_json() {
            print_json(&json);
        } else {
            print_str(&format!("{text}\n"));
        }
    }
}

/// Pretty JSON, keys in the order `serde_json::Value` keeps them (the same text whether the
/// value came typed or as JSON).
pub fn print_json<T: Serialize + ?Sized>(v: &T) {
    let v = serde_json::to_value(v).unwrap_or(Value::Null);
    let s = serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
    print_str(&format!("{s}\n"));
}

/// Writes to stdout, ignoring a closed pipe (`sluice user list | head -1` must not panic).
pub fn print_str(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// `a.b.c` into nested objects; `*` is the value itself.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path == "*" {
        return Some(v);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// How one JSON value reads in a table cell.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => one_line(s),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if a.is_empty() => "-".to_string(),
        Some(Value::Array(a)) if a.iter().all(|x| x.is_string()) => a
            .iter()
            .filter_map(|x| x.as_str())
            .map(one_line)
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Object(o)) if o.is_empty() => "-".to_string(),
        Some(other) => one_line(&other.to_string()),
    }
}

/// Control characters (newlines, escape sequences from a hostile name) never reach the
/// terminal raw.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn width(s: &str) -> usize {
    s.chars().count()
}

pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - width(c) + 2));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub fn render_fields(rows: &[(String, String)]) -> String {
    let w = rows.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k}:{}{v}\n", " ".repeat(w - width(k) + 1)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns() {
        let t = render_table(
            &["NAME", "ID"],
            &[
                vec!["a".into(), "1".into()],
                vec!["long-name".into(), "22".into()],
            ],
        );
        assert_eq!(t, "NAME       ID\na          1\nlong-name  22\n");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&json!(null))), "-");
        assert_eq!(cell(Some(&json!(true))), "yes");
        assert_eq!(cell(Some(&json!(["a", "b"]))), "a, b");
        assert_eq!(cell(Some(&json!("x\ny\u{1b}[31m"))), "x?y?[31m");
        assert_eq!(cell(Some(&json!({"k": 1}))), r#"{"k":1}"#);
        assert_eq!(cell(lookup(&json!({"a": {"b": "c"}}), "a.b")), "c");
    }

    #[test]
    fn times_and_sizes() {
        // Same instant, two spellings: the same local date-time.
        let a = time_cell(Some(&json!("2026-01-02T03:04:05Z")));
        let b = time_cell(Some(&json!(1_767_323_045_000_i64)));
        assert_eq!(a, b);
        assert!(a.len() == 25 && a.as_bytes()[10] == b'T', "{a}");
        assert_eq!(time_cell(Some(&json!("soon"))), "soon");
        assert_eq!(time_cell(None), "-");
        assert_eq!(size_cell(Some(&json!(512))), "512 B");
        assert_eq!(size_cell(Some(&json!("1536"))), "1.5 KiB");
        assert_eq!(size_cell(Some(&json!(20 * 1024 * 1024))), "20.0 MiB");
        assert_eq!(size_cell(Some(&json!("x"))), "x");
    }

    #[test]
    fn fields() {
        let f = render_fields(&[("name".into(), "x".into()), ("created".into(), "y".into())]);
        assert_eq!(f, "name:    x\ncreated: y\n");
    }
}
