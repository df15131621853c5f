//! Addon values: deep merging, checking user values against an addon's defaults, and parsing
//! `--set key.path=value` with the type of the default it replaces.
//!
//! The defaults in addon.yaml are the schema: a key that has no default is a typo (rejected
//! with a did-you-mean), and a value must have the type of its default. Keys listed as
//! `freeform` hold arbitrary Kubernetes structures (nodeSelector, tolerations, resources) and
//! are not checked below their top level.

use serde_json::{Map, Value};

use super::{closest, did_you_mean};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValuesError {
    #[error("unknown value \"{key}\"{}; list the values with `kaddons info ADDON`", did_you_mean(.suggestion))]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("value \"{key}\" must be {expected}, not {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("value \"{key}\" cannot be {value}: {rule}")]
    Constraint {
        key: String,
        value: String,
        rule: String,
    },
    #[error("--set \"{expr}\": {problem}")]
    BadSet { expr: String, problem: String },
    #[error("values must be a mapping of keys to values, not {found}")]
    NotAMapping { found: &'static str },
    #[error("value \"{key}\" cannot be \"{value}\"{}; it is one of: {}", did_you_mean(.suggestion), .allowed.join(", "))]
    NotAChoice {
        key: String,
        value: String,
        allowed: Vec<String>,
        suggestion: Option<String>,
    },
}

/// What user values are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    pub defaults: &'a Value,
    pub freeform: &'a [String],
    /// Dotted keys whose string value must be one of a list.
    pub choices: &'a std::collections::BTreeMap<String, Vec<String>>,
}

/// Merges `overlay` into `base`: mappings merge key by key, anything else replaces.
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean (true/false)",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn same_type(default: &Value, given: &Value) -> bool {
    match (default, given) {
        (Value::Number(d), Value::Number(g)) => {
            !(d.is_i64() || d.is_u64()) || g.is_i64() || g.is_u64()
        }
        (d, g) => std::mem::discriminant(d) == std::mem::discriminant(g),
    }
}

fn describe(v: &Value) -> String {
    let shown = match v {
        Value::String(s) => format!("\"{}\"", s.chars().take(40).collect::<String>()),
        other => {
            let s = other.to_string();
            s.chars().take(40).collect()
        }
    };
    format!("{} {shown}", type_name(v))
}

impl Schema<'_> {
    /// Checks the keys restricted to a list of values (e.g. `implementation`).
    pub fn check_choices(&self, values: &Value) -> Result<(), ValuesError> {
        for (key, allowed) in self.choices {
            let pointer: String = key.split('.').map(|p| format!("/{p}")).collect();
            if let Some(v) = values.pointer(&pointer) {
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                if !allowed.contains(&text) {
                    return Err(ValuesError::NotAChoice {
                        key: key.clone(),
                        suggestion: closest(&text, allowed.iter().map(String::as_str)),
                        value: text,
                        allowed: allowed.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn is_freeform(&self, path: &[String]) -> bool {
        path.first().is_some_and(|k| self.freeform.contains(k))
    }

    /// Checks a values tree (from a profile patch or a --values file) against the defaults.
    pub fn check(&self, given: &Value) -> Result<(), ValuesError> {
        if !given.is_object() {
            return Err(ValuesError::NotAMapping {
                found: type_name(given),
            });
        }
        self.check_at(&mut Vec::new(), self.defaults, given)
    }

    fn check_at(
        &self,
        path: &mut Vec<String>,
        default: &Value,
        given: &Value,
    ) -> Result<(), ValuesError> {
        if !path.is_empty() && self.is_freeform(path) {
            return Ok(());
        }
        match (default, given) {
            (Value::Object(d), Value::Object(g)) => {
                for (k, v) in g {
                    path.push(k.clone());
                    let Some(dv) = d.get(k) else {
                        return Err(self.unknown(path, d));
                    };
                    self.check_at(path, dv, v)?;
                    path.pop();
                }
                Ok(())
            }
            (Value::Array(d), Value::Array(g)) => {
                // Non-free-form lists hold scalars of the defaults' element type (strings when
                // the default list is empty).
                let element = d.first().cloned().unwrap_or(Value::String(String::new()));
                for item in g {
                    if !same_type(&element, item) {
                        return Err(ValuesError::WrongType {
                            key: format!("{}[]", path.join(".")),
                            expected: type_name(&element),
                            found: describe(item),
                        });
                    }
                }
                Ok(())
            }
            (d, g) if same_type(d, g) => Ok(()),
            (d, g) => Err(ValuesError::WrongType {
                key: path.join("."),
                expected: type_name(d),
                found: describe(g),
            }),
        }
    }

    fn unknown(&self, path: &[String], siblings: &Map<String, Value>) -> ValuesError {
        let (last, parent) = path
            .split_last()
            .map_or(("", &[][..]), |(l, p)| (l.as_str(), p));
        let prefix = if parent.is_empty() {
            String::new()
        } else {
            format!("{}.", parent.join("."))
        };
        let suggestion = closest(last, siblings.keys().map(String::as_str))
            .map(|s| format!("{prefix}{s}"))
            .or_else(|| {
                // A key given at the wrong depth: look for the name anywhere.
                let all = leaf_paths(self.defaults);
                let names: Vec<&str> = all.iter().map(String::as_str).collect();
                closest(&path.join("."), names.iter().copied()).or_else(|| {
                    all.iter()
                        .find(|p| p.rsplit('.').next() == Some(last))
                        .cloned()
                })
            });
        ValuesError::UnknownKey {
            key: path.join("."),
            suggestion,
        }
    }

    /// Parses one `--set key.path=value` into a tree with that single key, typed by the value
    /// the key currently has in `current` (defaults with the profile applied): booleans take
    /// true/false, integers take digits, lists take `a,b,c` (or `[]` for empty), strings take
    /// the text verbatim. Dots inside a key are written `\.`.
    pub fn parse_set(&self, expr: &str, current: &Value) -> Result<Value, ValuesError> {
        let bad = |problem: String| ValuesError::BadSet {
            expr: expr.to_string(),
            problem,
        };
        let Some((key, raw)) = split_unescaped(expr, '=') else {
            return Err(bad(
                "expected key=value, e.g. --set kubeletInsecureTLS=true".into(),
            ));
        };
        let path = split_key(key);
        if path.iter().any(String::is_empty) {
            return Err(bad("the key has an empty part".into()));
        }
        let value = if self.is_freeform(&path) {
            // Below free-form keys there is no default to type by; Kubernetes labels and
            // quantities are strings, so a string is the right default. Use --values for more.
            if path.len() == 1 {
                return Err(bad(format!(
                    "\"{key}\" is a structure; set a key inside it (e.g. {key}.NAME=VALUE) or use --values FILE"
                )));
            }
            Value::String(raw.to_string())
        } else {
            let mut cursor = current;
            for (i, part) in path.iter().enumerate() {
                let Some(next) = cursor.as_object().and_then(|m| m.get(part)) else {
                    let siblings = cursor.as_object().cloned().unwrap_or_default();
                    return Err(self.unknown(&path[..=i], &siblings));
                };
                cursor = next;
            }
            typed(cursor, raw).map_err(bad)?
        };
        let mut tree = value;
        for part in path.iter().rev() {
            let mut m = Map::new();
            m.insert(part.clone(), tree);
            tree = Value::Object(m);
        }
        Ok(tree)
    }
}

fn typed(default: &Value, raw: &str) -> Result<Value, String> {
    match default {
        Value::Bool(_) => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("expects true or false, not \"{raw}\"")),
        },
        Value::Number(n) if n.is_i64() || n.is_u64() => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("expects an integer, not \"{raw}\"")),
        Value::Number(_) => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("expects a number, not \"{raw}\"")),
        Value::Array(items) => {
            let inner = raw
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .or_else(|| raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')))
                .unwrap_or(raw);
            if inner.trim().is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            let element = items
                .first()
                .cloned()
                .unwrap_or(Value::String(String::new()));
            split_list(inner)
                .into_iter()
                .map(|item| typed(&element, &item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Value::Object(_) => {
            Err("this key is a structure; set a key inside it or use --values FILE".to_string())
        }
        Value::String(_) | Value::Null => Ok(Value::String(raw.to_string())),
    }
}

/// Splits at the first `sep` not preceded by a backslash.
fn split_unescaped(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            return Some((&s[..i], &s[i + c.len_utf8()..]));
        }
    }
    None
}

/// `a.b\.c` -> ["a", "b.c"].
fn split_key(key: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('.') | Some('=') | Some('\\')) => {
                if let (Some(last), Some(n)) = (parts.last_mut(), chars.next()) {
                    last.push(n);
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

/// `a,b\,c` -> ["a", "b,c"].
fn split_list(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                if let (Some(last), Some(n)) = (out.last_mut(), chars.next()) {
                    last.push(n);
                }
            }
            ',' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// Every key path of a tree, dotted (`hostNetwork.enabled`).
pub fn leaf_paths(v: &Value) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if child.is_object() && !child.as_object().is_some_and(Map::is_empty) {
                    walk(&p, child, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Value {
        json!({
            "ha": false,
            "securePort": 10250,
            "metricResolution": "15s",
            "kubeletInsecureTLS": false,
            "kubeletPreferredAddressTypes": ["InternalIP", "ExternalIP"],
            "extraArgs": [],
            "hostNetwork": {"enabled": false, "securePort": 4443},
            "nodeSelector": {"kubernetes.io/os": "linux"},
        })
    }

    fn freeform() -> Vec<String> {
        vec!["nodeSelector".to_string()]
    }

    fn set(expr: &str) -> Result<Value, ValuesError> {
        let d = defaults();
        let f = freeform();
        let c = Default::default();
        let schema = Schema {
            defaults: &d,
            freeform: &f,
            choices: &c,
        };
        schema.parse_set(expr, &d)
    }

    #[test]
    fn merge_is_deep_for_mappings_and_replaces_lists() {
        let mut base = defaults();
        merge(
            &mut base,
            &json!({"hostNetwork": {"enabled": true}, "kubeletPreferredAddressTypes": ["Hostname"]}),
        );
        assert_eq!(
            base["hostNetwork"],
            json!({"enabled": true, "securePort": 4443})
        );
        assert_eq!(base["kubeletPreferredAddressTypes"], json!(["Hostname"]));
    }

    #[test]
    fn set_is_typed_by_the_default() {
        assert_eq!(set("ha=true").unwrap(), json!({"ha": true}));
        assert_eq!(set("securePort=4443").unwrap(), json!({"securePort": 4443}));
        assert_eq!(
            set("metricResolution=30s").unwrap(),
            json!({"metricResolution": "30s"})
        );
        assert_eq!(
            set("kubeletPreferredAddressTypes=InternalIP,Hostname").unwrap(),
            json!({"kubeletPreferredAddressTypes": ["InternalIP", "Hostname"]})
        );
        assert_eq!(
            set("kubeletPreferredAddressTypes=[]").unwrap(),
            json!({"kubeletPreferredAddressTypes": []})
        );
        assert_eq!(
            set("hostNetwork.enabled=true").unwrap(),
            json!({"hostNetwork": {"enabled": true}})
        );
        // A string default keeps "true" and "1" as strings.
        assert_eq!(
            set("metricResolution=true").unwrap(),
            json!({"metricResolution": "true"})
        );
    }

    #[test]
    fn set_value_keeps_everything_after_the_first_equals() {
        assert_eq!(
            set("extraArgs=--v=4,--a=b\\,c").unwrap(),
            json!({"extraArgs": ["--v=4", "--a=b,c"]})
        );
    }

    #[test]
    fn set_rejects_wrong_types_with_the_expected_one() {
        let err = set("ha=yes").unwrap_err().to_string();
        assert!(err.contains("expects true or false"), "{err}");
        let err = set("securePort=443x").unwrap_err().to_string();
        assert!(err.contains("expects an integer"), "{err}");
        let err = set("hostNetwork=true").unwrap_err().to_string();
        assert!(err.contains("structure"), "{err}");
    }

    #[test]
    fn set_unknown_key_suggests_the_closest() {
        let err = set("kubeletInsecureTls=true").unwrap_err();
        assert_eq!(
            err,
            ValuesError::UnknownKey {
                key: "kubeletInsecureTls".into(),
                suggestion: Some("kubeletInsecureTLS".into())
            }
        );
        let err = set("hostNetwork.enable=true").unwrap_err().to_string();
        assert!(
            err.contains("did you mean \"hostNetwork.enabled\""),
            "{err}"
        );
        // A nested key given at the top level.
        let err = set("enabled=true").unwrap_err().to_string();
        assert!(err.contains("hostNetwork.enabled"), "{err}");
    }

    #[test]
    fn set_below_freeform_keys_takes_strings_and_escaped_dots() {
        assert_eq!(
            set("nodeSelector.kubernetes\\.io/arch=arm64").unwrap(),
            json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}})
        );
        assert!(set("nodeSelector=x").is_err());
    }

    #[test]
    fn set_without_equals_is_an_error() {
        let err = set("ha").unwrap_err().to_string();
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn check_accepts_known_keys_and_rejects_unknown_or_mistyped() {
        let d = defaults();
        let f = freeform();
        let c = Default::default();
        let schema = Schema {
            defaults: &d,
            freeform: &f,
            choices: &c,
        };
        schema
            .check(&json!({"hostNetwork": {"enabled": true}, "nodeSelector": {"a": {"b": 1}}}))
            .unwrap();
        let err = schema
            .check(&json!({"hostnetwork": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean \"hostNetwork\""), "{err}");
        let err = schema
            .check(&json!({"securePort": "443"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be an integer"), "{err}");
        let err = schema
            .check(&json!({"extraArgs": [1]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("extraArgs[]"), "{err}");
        assert!(schema.check(&json!([1])).is_err());
    }

    #[test]
    fn choices_are_enforced_with_a_suggestion() {
        let d = json!({"implementation": "upstream"});
        let f = Vec::new();
        let c = std::collections::BTreeMap::from([(
            "implementation".to_string(),
            vec!["upstream".to_string(), "builtin".to_string()],
        )]);
        let schema = Schema {
            defaults: &d,
            freeform: &f,
            choices: &c,
        };
        assert!(schema
            .check_choices(&json!({"implementation": "builtin"}))
            .is_ok());
        let err = schema
            .check_choices(&json!({"implementation": "built-in"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean \"builtin\""), "{err}");
        assert!(err.contains("upstream, builtin"), "{err}");
    }

    #[test]
    fn leaf_paths_lists_nested_keys() {
        let paths = leaf_paths(&defaults());
        assert!(paths.contains(&"hostNetwork.enabled".to_string()));
        assert!(paths.contains(&"nodeSelector.kubernetes.io/os".to_string()));
    }
}
