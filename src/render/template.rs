//! YAML-safe templating on top of handlebars.
//!
//! User values must never change the structure of a manifest. Three rules make that hold:
//! 1. Every `{{ }}` expression that writes output must call one of the quoting helpers
//!    (`yaml`, `arg`, `image`); a bare `{{value}}` or a triple-stash `{{{value}}}` is rejected
//!    when the template is loaded ([`lint`]).
//! 2. The quoting helpers emit YAML flow scalars and collections (double-quoted strings with
//!    every non-printable character escaped), which cannot open a new line, key or document.
//! 3. Strict mode: a missing variable is an error, not an empty string. HTML escaping is off.

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{
    no_escape, Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;

use crate::catalog::TemplateFile;

/// Helpers that write output, each quoting what it writes.
const OUTPUT_HELPERS: [&str; 3] = ["yaml", "arg", "image"];
/// Block helpers allowed for control flow; their parameters are never written out.
const BLOCK_HELPERS: [&str; 4] = ["if", "unless", "each", "with"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {file}: {problem}")]
    Unsafe { file: String, problem: String },
    #[error("template {file}: {source}")]
    Syntax {
        file: String,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("template {file}: {source}")]
    Render {
        file: String,
        #[source]
        source: Box<RenderError>,
    },
}

/// Compiled templates of one addon.
pub struct Engine {
    registry: Handlebars<'static>,
    names: Vec<String>,
    /// (template, dotted path) of every path parameter the templates read.
    paths: Vec<(String, String)>,
}

impl Engine {
    pub fn new(templates: &[TemplateFile]) -> Result<Self, TemplateError> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(no_escape);
        registry.register_helper("yaml", Box::new(yaml_helper));
        registry.register_helper("arg", Box::new(arg_helper));
        registry.register_helper("image", Box::new(image_helper));
        let mut names = Vec::new();
        let mut paths = Vec::new();
        for t in templates {
            let compiled = Template::compile(&t.source).map_err(|e| TemplateError::Syntax {
                file: t.name.clone(),
                source: Box::new(e),
            })?;
            lint(&compiled).map_err(|problem| TemplateError::Unsafe {
                file: t.name.clone(),
                problem,
            })?;
            let mut used = Vec::new();
            collect_paths(&compiled, &mut used);
            paths.extend(used.into_iter().map(|p| (t.name.clone(), p)));
            registry
                .register_template_string(&t.name, &t.source)
                .map_err(|e| TemplateError::Syntax {
                    file: t.name.clone(),
                    source: Box::new(e),
                })?;
            names.push(t.name.clone());
        }
        Ok(Engine {
            registry,
            names,
            paths,
        })
    }

    /// Checks that every `values.…` path the templates read exists in `values`. Strict mode
    /// does not cover block helpers (`{{#if values.typo}}` is silently false), so this does.
    pub fn check_paths(&self, values: &Value) -> Result<(), TemplateError> {
        for (file, path) in &self.paths {
            let Some(rest) = path.strip_prefix("values.") else {
                continue;
            };
            let pointer: String = rest.split('.').map(|p| format!("/{p}")).collect();
            if values.pointer(&pointer).is_none() {
                return Err(TemplateError::Unsafe {
                    file: file.clone(),
                    problem: format!("reads `{path}`, which addon.yaml `values` does not define"),
                });
            }
        }
        Ok(())
    }

    /// Renders every template with `context`, in file-name order.
    pub fn render_all(&self, context: &Value) -> Result<Vec<(String, String)>, TemplateError> {
        self.names
            .iter()
            .map(|name| {
                self.registry
                    .render(name, context)
                    .map(|text| (name.clone(), text))
                    .map_err(|e| TemplateError::Render {
                        file: name.clone(),
                        source: Box::new(e),
                    })
            })
            .collect()
    }
}

/// Rejects any expression that could write an unquoted value.
pub fn lint(template: &Template) -> Result<(), String> {
    for element in &template.elements {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) => {
                let name = helper_name(&h.name);
                if !name.is_some_and(|n| OUTPUT_HELPERS.contains(&n)) {
                    return Err(format!(
                        "`{{{{{}}}}}` writes a value without quoting it; write `{{{{yaml {}}}}}` (or `arg`/`image`)",
                        describe(&h.name),
                        describe(&h.name)
                    ));
                }
            }
            TemplateElement::HtmlExpression(h) => {
                return Err(format!(
                    "`{{{{{{{}}}}}}}` (triple braces) writes raw text; use `{{{{yaml ...}}}}`",
                    describe(&h.name)
                ));
            }
            TemplateElement::HelperBlock(h) => {
                let name = helper_name(&h.name);
                if !name.is_some_and(|n| BLOCK_HELPERS.contains(&n)) {
                    return Err(format!(
                        "block helper `{}` is not allowed; use if, unless, each or with",
                        describe(&h.name)
                    ));
                }
                if let Some(t) = &h.template {
                    lint(t)?;
                }
                if let Some(t) = &h.inverse {
                    lint(t)?;
                }
            }
            TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_)
            | TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_) => {
                return Err("partials and decorators are not supported in addon templates".into());
            }
            // The enum is non-exhaustive: anything new is unknown, so refuse it.
            _ => return Err("unsupported template construct".into()),
        }
    }
    Ok(())
}

fn collect_paths(template: &Template, out: &mut Vec<String>) {
    fn param(p: &Parameter, out: &mut Vec<String>) {
        match p {
            Parameter::Path(handlebars::Path::Relative((_, raw))) => out.push(raw.clone()),
            Parameter::Subexpression(s) => {
                if let TemplateElement::Expression(h) = s.element.as_ref() {
                    h.params.iter().for_each(|p| param(p, out));
                }
            }
            _ => {}
        }
    }
    for element in &template.elements {
        if let TemplateElement::Expression(h)
        | TemplateElement::HtmlExpression(h)
        | TemplateElement::HelperBlock(h) = element
        {
            h.params.iter().for_each(|p| param(p, out));
            h.hash.values().for_each(|p| param(p, out));
            for t in [&h.template, &h.inverse].into_iter().flatten() {
                collect_paths(t, out);
            }
        }
    }
}

fn helper_name(p: &Parameter) -> Option<&str> {
    match p {
        Parameter::Name(n) => Some(n.as_str()),
        _ => None,
    }
}

fn describe(p: &Parameter) -> String {
    match p {
        Parameter::Name(n) => n.clone(),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => raw.clone(),
        Parameter::Path(handlebars::Path::Local((_, _, raw))) => raw.clone(),
        Parameter::Literal(v) => v.to_string(),
        Parameter::Subexpression(_) => "(...)".to_string(),
        _ => "?".to_string(),
    }
}

/// Parameter `i` of a helper. Strict mode does not cover helper parameters, so a path that
/// resolves to nothing is refused here rather than rendered as `null`.
fn param<'a>(h: &'a Helper<'_>, helper: &'static str, i: usize) -> Result<&'a Value, RenderError> {
    let p = h
        .param(i)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, i))?;
    if p.is_value_missing() {
        let path = p.relative_path().cloned().unwrap_or_default();
        return Err(RenderErrorReason::Other(format!(
            "{helper}: no value at `{path}` (a missing key in addon.yaml `values`?)"
        ))
        .into());
    }
    Ok(p.value())
}

/// `{{yaml VALUE}}`: VALUE as a YAML flow node.
fn yaml_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let v = param(h, "yaml", 0)?;
    out.write(&to_flow(v))?;
    Ok(())
}

/// `{{arg "--flag" VALUE}}`: the quoted string `--flag=VALUE`; lists are joined with commas.
fn arg_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let flag = param(h, "arg", 0)?
        .as_str()
        .ok_or_else(|| RenderErrorReason::InvalidParamType("arg: flag must be a string"))?;
    let value = match param(h, "arg", 1)? {
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
        other => plain(other),
    };
    out.write(&quote(&format!("{flag}={value}")))?;
    Ok(())
}

/// `{{image "NAME"}}`: the resolved reference of the addon's image NAME.
fn image_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    ctx: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let name = param(h, "image", 0)?
        .as_str()
        .ok_or_else(|| RenderErrorReason::InvalidParamType("image: name must be a string"))?;
    let reference = ctx
        .data()
        .get("images")
        .and_then(|i| i.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| RenderErrorReason::Other(format!("the addon has no image \"{name}\"")))?;
    out.write(&quote(reference))?;
    Ok(())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a single-line YAML flow node.
pub fn to_flow(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(to_flow).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    let key = quote(k);
                    // YAML limits implicit keys to 1024 characters; longer ones need the
                    // explicit `? key : value` form.
                    if key.chars().count() > 1000 {
                        format!("? {key} : {}", to_flow(v))
                    } else {
                        format!("{key}: {}", to_flow(v))
                    }
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// A YAML double-quoted scalar. Escapes `"` and `\`, and every character outside YAML's
/// printable set (controls, DEL, C1 controls, BOM, line and paragraph separators) so that
/// the scalar stays on one line and parses back to exactly `s`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let code = c as u32;
                if code <= 0xFFFF {
                    out.push_str(&format!("\\u{code:04X}"));
                } else {
                    out.push_str(&format!("\\U{code:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    let code = c as u32;
    code < 0x20
        || (0x7F..=0x9F).contains(&code)
        || code == 0x2028
        || code == 0x2029
        || code == 0xFEFF
        || (0xFFFE..=0xFFFF).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(source: &str) -> Vec<TemplateFile> {
        vec![TemplateFile {
            name: "t.yaml.hbs".into(),
            source: source.into(),
        }]
    }

    #[test]
    fn bare_and_triple_stash_expressions_are_rejected() {
        for bad in [
            "a: {{values.x}}",
            "a: {{{yaml values.x}}}",
            "{{> p}}",
            "{{#lookup x}}{{/lookup}}",
        ] {
            let err = Engine::new(&file(bad)).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains("t.yaml.hbs")), "{bad}");
        }
        // Inside blocks too.
        assert!(Engine::new(&file("{{#if values.x}}a: {{values.x}}{{/if}}")).is_err());
        assert!(Engine::new(&file("{{#if values.x}}{{else}}a: {{values.x}}{{/if}}")).is_err());
    }

    #[test]
    fn quoting_helpers_are_accepted_and_render() {
        let e = Engine::new(&file(
            "a: {{yaml values.x}}\nb: {{arg \"--f\" values.l}}\nc: {{image \"m\"}}\n",
        ))
        .unwrap();
        let out = e
            .render_all(&json!({"values": {"x": 1, "l": ["a", "b"]}, "images": {"m": "r/m:1"}}))
            .unwrap();
        assert_eq!(out[0].1, "a: 1\nb: \"--f=a,b\"\nc: \"r/m:1\"\n");
    }

    #[test]
    fn paths_in_block_helpers_are_checked_against_values() {
        let e = Engine::new(&file("{{#if values.tls}}a: 1{{/if}}\n")).unwrap();
        assert!(e.check_paths(&json!({"tls": false})).is_ok());
        let err = e
            .check_paths(&json!({"tlz": false}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("values.tls"), "{err}");
    }

    #[test]
    fn strict_mode_makes_missing_values_errors() {
        let e = Engine::new(&file("a: {{yaml values.missing}}\n")).unwrap();
        let err = e
            .render_all(&json!({"values": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml.hbs"), "{err}");
    }

    #[test]
    fn quote_round_trips_through_a_yaml_parser() {
        let nasty = [
            "plain",
            "a: b",
            "# not a comment",
            "line1\nline2\r\n---\nkind: Secret",
            "{{x}}",
            "\"quoted\" 'single'",
            "- item",
            "tab\there",
            "\u{7f}\u{85}\u{2028}\u{feff}\u{0}",
            "日本語 ✓ 🚀",
            "yes",
            "~",
            "0o17",
            "\\",
            "",
        ];
        for s in nasty {
            let doc = format!("k: {}\n", quote(s));
            let parsed: serde_yaml::Value = serde_yaml::from_str(&doc).unwrap();
            assert_eq!(parsed["k"].as_str(), Some(s), "{doc}");
            assert_eq!(doc.lines().count(), 1, "{doc}");
        }
    }

    #[test]
    fn flow_nodes_parse_back_to_the_same_value() {
        let long = "k".repeat(5000);
        let v = json!({"a": [1, true, null, "x: y"], "b\nc": {"d": "e\u{0}"}, long.clone(): long});
        let parsed: Value = serde_yaml::from_str(&to_flow(&v)).unwrap();
        assert_eq!(parsed, v);
    }
}
