//! Label and field selectors of list requests (`?labelSelector=`, `?fieldSelector=`).
//!
//! `kubectl top pods -l app=x`, the HPA (which lists pod metrics by the scale target's selector)
//! and `kubectl get pods.metrics.k8s.io --field-selector` depend on these; a parse failure must be
//! a 400, not an empty list, so typos are visible. The grammar follows apimachinery's
//! `labels.Parse`: equality (`=`, `==`, `!=`), sets (`in`, `notin`), existence (`k`, `!k`) and the
//! integer comparisons `>`/`<`.

use std::collections::{BTreeMap, BTreeSet};

/// Why a selector was rejected; the text goes into the 400 Status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Syntax(String),
    #[error("invalid label key {key:?}: {why}")]
    InvalidKey { key: String, why: String },
    #[error("invalid label value {value:?}: {why}")]
    InvalidValue { value: String, why: String },
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    #[error("invalid field selector term {0:?}")]
    FieldSyntax(String),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            // Like apimachinery: `!=` and `notin` also select objects without the label.
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => !labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::GreaterThan(k, n) => label_int(labels, k).is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => label_int(labels, k).is_some_and(|v| v < *n),
        }
    }
}

fn label_int(labels: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    labels.get(key).and_then(|v| v.parse().ok())
}

/// A parsed label selector; all requirements must hold. The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the `labelSelector` query value.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if p.peek() == &Token::End {
            return Ok(LabelSelector { requirements });
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                Token::End => break,
                Token::Comma => {}
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found {other:?}, expected ','"
                    )))
                }
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

fn lex(text: &str) -> Result<Vec<Token>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '!' if next == Some('=') => {
                out.push(Token::NotEq);
                i += 2;
            }
            '!' => {
                out.push(Token::Bang);
                i += 1;
            }
            '=' if next == Some('=') => {
                out.push(Token::DoubleEq);
                i += 2;
            }
            '=' => {
                out.push(Token::Eq);
                i += 1;
            }
            '>' => {
                out.push(Token::Gt);
                i += 1;
            }
            '<' => {
                out.push(Token::Lt);
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !is_special(chars[i]) {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    out.push(Token::End);
    Ok(out)
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',')
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == &Token::Bang {
            self.next();
            let key = self.key()?;
            return Ok(Requirement::NotExists(key));
        }
        let key = self.key()?;
        match self.peek().clone() {
            Token::End | Token::Comma => Ok(Requirement::Exists(key)),
            Token::Eq | Token::DoubleEq => {
                self.next();
                Ok(Requirement::Equals(key, self.value()?))
            }
            Token::NotEq => {
                self.next();
                Ok(Requirement::NotEquals(key, self.value()?))
            }
            Token::Gt | Token::Lt => {
                let gt = self.next() == Token::Gt;
                let text = self.value()?;
                let n: i64 = text.parse().map_err(|_| SelectorError::InvalidValue {
                    value: text.clone(),
                    why: "for 'gt', 'lt' operators, the value must be an integer".into(),
                })?;
                Ok(if gt {
                    Requirement::GreaterThan(key, n)
                } else {
                    Requirement::LessThan(key, n)
                })
            }
            Token::Ident(word) if word == "in" || word == "notin" => {
                self.next();
                let set = self.set()?;
                Ok(if word == "in" {
                    Requirement::In(key, set)
                } else {
                    Requirement::NotIn(key, set)
                })
            }
            other => Err(SelectorError::Syntax(format!(
                "found {other:?}, expected one of ['!=', '==', '=', 'in', 'notin', '>', '<']"
            ))),
        }
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Token::Ident(k) => {
                validate_key(&k)?;
                Ok(k)
            }
            other => Err(SelectorError::Syntax(format!(
                "found {other:?}, expected a label key"
            ))),
        }
    }

    /// A value after `=`, `!=`, `>`, `<`; an immediately following `,` or end means "".
    fn value(&mut self) -> Result<String, SelectorError> {
        match self.peek().clone() {
            Token::Ident(v) => {
                self.next();
                validate_value(&v)?;
                Ok(v)
            }
            Token::End | Token::Comma => Ok(String::new()),
            other => Err(SelectorError::Syntax(format!(
                "found {other:?}, expected a label value"
            ))),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        if self.next() != Token::Open {
            return Err(SelectorError::Syntax(
                "expected '(' after set operator".into(),
            ));
        }
        let mut set = BTreeSet::new();
        loop {
            match self.next() {
                Token::Ident(v) => {
                    validate_value(&v)?;
                    set.insert(v);
                    match self.next() {
                        Token::Comma => {}
                        Token::Close => break,
                        other => {
                            return Err(SelectorError::Syntax(format!(
                                "found {other:?} in value set, expected ',' or ')'"
                            )))
                        }
                    }
                }
                Token::Close if set.is_empty() => {
                    return Err(SelectorError::Syntax(
                        "for 'in', 'notin' operators, values set can't be empty".into(),
                    ))
                }
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found {other:?} in value set, expected a value"
                    )))
                }
            }
        }
        Ok(set)
    }
}

/// A DNS-1123-ish label name: 1..=63 chars, alphanumeric at both ends, `-_.` inside.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn validate_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return Err(SelectorError::InvalidKey {
                key: key.into(),
                why: "prefix must be a DNS subdomain".into(),
            });
        }
    }
    if !is_qualified_name_part(name) {
        return Err(SelectorError::InvalidKey {
            key: key.into(),
            why: "name part must be 1-63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character".into(),
        });
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue {
            value: value.into(),
            why: "must be empty or 1-63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character".into(),
        })
    }
}

/// Field a field selector may test. Metrics objects only support their identity fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Namespace,
}

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: Field,
    pub value: String,
    pub negated: bool,
}

/// A parsed field selector; all terms must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` query value (`\` escapes `,`, `=` and `\` in values).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for raw in split_unescaped(text, ',') {
            if raw.trim().is_empty() {
                continue;
            }
            let (lhs, op, rhs) =
                split_operator(&raw).ok_or_else(|| SelectorError::FieldSyntax(raw.clone()))?;
            let field = match lhs.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => return Err(SelectorError::UnsupportedField(other.into())),
            };
            terms.push(FieldTerm {
                field,
                value: unescape(rhs.trim()),
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether an object with this name and namespace ("" for cluster-scoped) is selected.
    pub fn matches(&self, name: &str, namespace: &str) -> bool {
        self.terms.iter().all(|t| {
            let actual = match t.field {
                Field::Name => name,
                Field::Namespace => namespace,
            };
            (actual == t.value) != t.negated
        })
    }
}

fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    parts.push(cur);
    parts
}

/// Finds the first unescaped `!=`, `==` or `=`.
fn split_operator(term: &str) -> Option<(&str, &'static str, &str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], "!=", &term[i + 2..]))
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], "==", &term[i + 2..]))
            }
            b'=' => return Some((&term[..i], "=", &term[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(text: &str) -> LabelSelector {
        LabelSelector::parse(text).unwrap()
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(sel("app = web , tier=front").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        // `!=` selects objects that lack the label entirely.
        assert!(sel("missing!=x").matches(&l));
        assert!(!sel("app=").matches(&l));
        assert!(sel("other=").matches(&labels(&[("other", "")])));
        assert!(sel("").matches(&l));
    }

    #[test]
    fn set_and_existence_operators() {
        let l = labels(&[("app", "web"), ("example.com/team", "a")]);
        assert!(sel("app in (web, db)").matches(&l));
        assert!(!sel("app in (db)").matches(&l));
        assert!(sel("app notin (db)").matches(&l));
        assert!(!sel("app notin (web,db)").matches(&l));
        assert!(sel("gone notin (x)").matches(&l));
        assert!(!sel("gone in (x)").matches(&l));
        assert!(sel("app").matches(&l));
        assert!(sel("example.com/team").matches(&l));
        assert!(!sel("!app").matches(&l));
        assert!(sel("!gone").matches(&l));
        assert!(sel("app in (web),!gone,example.com/team=a").matches(&l));
    }

    #[test]
    fn integer_comparisons() {
        let l = labels(&[("gen", "5")]);
        assert!(sel("gen>4").matches(&l));
        assert!(!sel("gen>5").matches(&l));
        assert!(sel("gen<6").matches(&l));
        assert!(LabelSelector::parse("gen>x").is_err());
    }

    #[test]
    fn parses_structure() {
        assert_eq!(
            sel("a in (x,y),!b").requirements,
            vec![
                Requirement::In("a".into(), BTreeSet::from(["x".into(), "y".into()])),
                Requirement::NotExists("b".into()),
            ]
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "app=web,",
            ",app",
            "app in web",
            "app in ()",
            "app in (a b)",
            "app=(x)",
            "=x",
            "-bad=x",
            "app=v@lue",
            "app in (a,",
            "app web",
            "UPPER.Prefix/x=1",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("a", "default"));
        assert!(!f.matches("a", "kube-system"));
        assert!(!f.matches("b", "default"));
        assert!(FieldSelector::parse("metadata.name==a")
            .unwrap()
            .matches("a", ""));
        assert!(FieldSelector::parse("").unwrap().matches("x", "y"));
        assert!(matches!(
            FieldSelector::parse("spec.nodeName=x"),
            Err(SelectorError::UnsupportedField(_))
        ));
        assert!(FieldSelector::parse("metadata.name").is_err());
        let escaped = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert!(escaped.matches("a,b", ""));
    }
}
