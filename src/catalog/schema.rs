//! JSON Schemas of addon values (`addons/<name>/values.schema.yaml`), checked with the
//! `jsonschema` crate, plus kaddons' `format: go-duration` and `minDuration` keyword for
//! Go durations. Each layer of values is checked alone (a partial tree: the schema requires
//! nothing), so that an error can say where the bad value came from.

use kaddons_model::duration::{go_duration, parse_go_duration};
use serde_json::Value;

/// One value that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted key (`hostNetwork.securePort`, `kubeletPreferredAddressTypes[0]`).
    pub key: String,
    /// The value as given, shortened.
    pub value: String,
    /// The rule, in words.
    pub rule: String,
}

/// A compiled values schema.
pub struct ValuesSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for ValuesSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValuesSchema")
            .field("raw", &self.raw)
            .finish()
    }
}

impl Clone for ValuesSchema {
    fn clone(&self) -> Self {
        ValuesSchema::compile(&self.raw).expect("a schema that compiled once compiles again")
    }
}

fn is_go_duration(s: &str) -> bool {
    parse_go_duration(s).is_ok()
}

impl ValuesSchema {
    pub fn compile(raw: &Value) -> Result<Self, String> {
        let validator = jsonschema::options()
            .with_format("go-duration", is_go_duration)
            .should_validate_formats(true)
            .build(raw)
            .map_err(|e| e.to_string())?;
        let mut min_durations = Vec::new();
        walk_min_durations(raw, &mut Vec::new(), &mut min_durations);
        for (path, text) in min_durations {
            parse_go_duration(&text)
                .map_err(|e| format!("minDuration of {}: {e}", path.join(".")))?;
        }
        Ok(ValuesSchema {
            raw: raw.clone(),
            validator,
        })
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The first violation in `values`, if any.
    pub fn check(&self, values: &Value) -> Result<(), Violation> {
        if let Some(e) = self.validator.iter_errors(values).next() {
            let pointer = e.instance_path().to_string();
            let key = dotted(&pointer);
            let node = self.node_at(&pointer);
            let rule = match node {
                Some(n) if n.get("enum").is_some() => format!("must be {}", describe(n)),
                Some(n) => match n.get("description").and_then(Value::as_str) {
                    Some(d) => format!("must be {d} ({e})"),
                    None => format!("must be {} ({e})", describe(n)),
                },
                None => e.to_string(),
            };
            return Err(Violation {
                value: shown(e.instance()),
                key,
                rule,
            });
        }
        let mut mins = Vec::new();
        walk_min_durations(&self.raw, &mut Vec::new(), &mut mins);
        for (path, min) in mins {
            let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
            let (Some(Value::String(text)), Ok(min)) =
                (values.pointer(&pointer), parse_go_duration(&min))
            else {
                continue;
            };
            if let Ok(d) = parse_go_duration(text) {
                if d < min {
                    return Err(Violation {
                        key: path.join("."),
                        value: format!("\"{text}\""),
                        rule: format!(
                            "must be at least {} (upstream refuses shorter)",
                            go_duration(min)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The schema node of an instance pointer (array indices go to `items`).
    fn node_at(&self, pointer: &str) -> Option<&Value> {
        let mut node = &self.raw;
        for part in pointer.split('/').filter(|p| !p.is_empty()) {
            if part.chars().all(|c| c.is_ascii_digit()) {
                node = node.get("items")?;
            } else {
                node = node.get("properties")?.get(part)?;
            }
        }
        Some(node)
    }

    /// Each value's constraint in words, for `kaddons info`: (dotted key, constraint).
    pub fn constraints(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        describe_all(&self.raw, "", &mut out);
        out
    }
}

fn walk_min_durations(node: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    if let Some(min) = node.get("minDuration").and_then(Value::as_str) {
        out.push((path.clone(), min.to_string()));
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            path.push(k.clone());
            walk_min_durations(child, path, out);
            path.pop();
        }
    }
}

/// `/hostNetwork/securePort` -> `hostNetwork.securePort`; `/a/0` -> `a[0]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() {
        "(values)".into()
    } else {
        out
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn describe_all(node: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, child) in props {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if child.get("properties").is_some() {
            describe_all(child, &key, out);
        } else {
            out.push((key, describe(child)));
        }
    }
}

/// A schema node in words: `integer 1..65535`, `one of: A, B`, `list of: one of ...`.
pub fn describe(node: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(e) = node.get("enum").and_then(Value::as_array) {
        let items: Vec<String> = e
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        parts.push(format!("one of: {}", items.join(", ")));
    }
    let ty = node.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "array" => {
            let inner = node.get("items").map(describe).unwrap_or_default();
            let mut s = "list".to_string();
            if let Some(n) = node.get("minItems").and_then(Value::as_u64) {
                s.push_str(&format!(" of at least {n}"));
            }
            if node.get("uniqueItems") == Some(&Value::Bool(true)) {
                s.push_str(", no repeats");
            }
            if !inner.is_empty() {
                s.push_str(&format!(", each {inner}"));
            }
            parts.push(s);
        }
        "integer" | "number" => {
            let min = node.get("minimum").map(Value::to_string);
            let max = node.get("maximum").map(Value::to_string);
            parts.push(match (min, max) {
                (Some(a), Some(b)) => format!("{ty} {a}..{b}"),
                (Some(a), None) => format!("{ty} >= {a}"),
                (None, Some(b)) => format!("{ty} <= {b}"),
                _ => ty.to_string(),
            });
            if let Some(c) = node.pointer("/not/const") {
                parts.push(format!("not {c}"));
            }
        }
        "string" => {
            let mut s = if node.get("format").and_then(Value::as_str) == Some("go-duration") {
                "Go duration".to_string()
            } else {
                "string".to_string()
            };
            if let Some(m) = node.get("minDuration").and_then(Value::as_str) {
                s.push_str(&format!(" >= {m}"));
            }
            if let Some(p) = node.get("pattern").and_then(Value::as_str) {
                s.push_str(&format!(" matching {p}"));
            }
            parts.push(s);
        }
        "object" => parts.push(
            if node.get("additionalProperties").and_then(|a| a.get("type"))
                == Some(&Value::from("string"))
            {
                "free-form mapping of strings".into()
            } else {
                "free-form mapping".into()
            },
        ),
        "" => {}
        other => parts.push(other.to_string()),
    }
    if ty == "array" && node.pointer("/items/type") == Some(&Value::from("object")) {
        parts = vec!["free-form list of mappings".into()];
    }
    parts.join("; ")
}
