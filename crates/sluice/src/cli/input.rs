//! Parsing of flag values beyond what clap checks: `JSON|@FILE`, namespaces, `KEY=VALUE`.

use super::error::{CliError, CliResult};
use serde_json::Value;

/// `--flag '{"a":1}'` or `--flag @path/to/file.json` (`@-` reads standard input).
pub fn json_arg(flag: &str, raw: &str) -> CliResult<Value> {
    let (text, source) = if let Some(path) = raw.strip_prefix('@') {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| CliError::usage(format!("--{flag}: reading standard input: {e}")))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("--{flag}: cannot read {path}: {e}")))?
        };
        (text, format!(" (from {path})"))
    } else {
        (raw.to_string(), String::new())
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("--{flag}: not valid JSON{source}: {e}")))
}

/// `json_arg` that must give a JSON object.
pub fn json_object_arg(flag: &str, raw: &str) -> CliResult<Value> {
    let v = json_arg(flag, raw)?;
    if !v.is_object() {
        return Err(CliError::usage(format!(
            "--{flag}: expected a JSON object ({{...}})"
        )));
    }
    Ok(v)
}

/// Policy statements: a JSON array, or an object with a `statements` array (a policy
/// document as `policy get -o json` prints it).
pub fn statements_arg(raw: &str) -> CliResult<Value> {
    let v = json_arg("statements", raw)?;
    let arr = match v {
        Value::Array(_) => v,
        Value::Object(mut o) => match o.remove("statements") {
            Some(a @ Value::Array(_)) => a,
            _ => {
                return Err(CliError::usage(
                    "--statements: expected a JSON array of statements",
                ))
            }
        },
        _ => {
            return Err(CliError::usage(
                "--statements: expected a JSON array of statements",
            ))
        }
    };
    Ok(arr)
}

/// Namespace levels: one value is split on dots (`a.b` → [a, b]); several values are one
/// level each (so a level may contain a dot).
pub fn namespace_levels(flag: &str, values: &[String]) -> CliResult<Vec<String>> {
    let levels: Vec<String> = match values {
        [] => Vec::new(),
        [one] => one.split('.').map(str::to_string).collect(),
        many => many.to_vec(),
    };
    if levels.iter().any(|l| l.is_empty()) {
        return Err(CliError::usage(format!(
            "--{flag}: empty namespace level in '{}'",
            values.join(".")
        )));
    }
    Ok(levels)
}

/// `KEY=VALUE` pairs into a JSON object of strings.
pub fn properties(values: &[String]) -> CliResult<serde_json::Map<String, Value>> {
    let mut map = serde_json::Map::new();
    for v in values {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--property: expected KEY=VALUE, got '{v}'")))?;
        if k.is_empty() {
            return Err(CliError::usage(format!("--property: empty key in '{v}'")));
        }
        map.insert(k.to_string(), Value::String(val.to_string()));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(
            namespace_levels("n", &["a.b".into()]).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            namespace_levels("n", &["a.b".into(), "c".into()]).unwrap(),
            vec!["a.b", "c"]
        );
        assert!(namespace_levels("n", &["a..b".into()]).is_err());
        assert!(namespace_levels("n", &[]).unwrap().is_empty());
    }

    #[test]
    fn json_values() {
        assert_eq!(json_arg("x", r#"{"a":1}"#).unwrap()["a"], 1);
        let e = json_arg("storage-profile", "{nope").unwrap_err();
        assert!(
            e.message.starts_with("--storage-profile: not valid JSON"),
            "{}",
            e.message
        );
        assert!(json_arg("x", "@/does/not/exist")
            .unwrap_err()
            .message
            .contains("cannot read"));
        assert!(json_object_arg("x", "[1]").is_err());
        let s = statements_arg(r#"{"name":"p","statements":[{"effect":"allow"}]}"#).unwrap();
        assert!(s.is_array());
        assert!(statements_arg("3").is_err());
    }

    #[test]
    fn props() {
        let p = properties(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(p["b"], "x=y");
        assert!(properties(&["nope".into()]).is_err());
    }
}
