//! A YAML document as a tree whose every node knows its line and column, so that pipeline
//! diagnostics can point at the exact place (serde-based YAML loaders keep only the first error's place).

use crate::diag::{Diagnostics, Span};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string scalar; `quoted` is true when it was written in quotes or as a block.
    Str {
        value: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    /// What this node is, for messages such as "expected a list, found a string".
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str { .. } => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The scalar's text as written (numbers and booleans included), or `None` for collections and null.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str { value, .. } => Some(value.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The node as plain JSON (for parameter defaults and values).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Kind::Str { value, .. } => Value::String(value.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses one YAML document. Syntax errors, duplicate keys and non-scalar keys are reported
/// into `diags`; `None` is returned only when the text is not YAML at all.
pub fn parse(source: &str, diags: &mut Diagnostics) -> Option<Node> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    if let Err(e) = parser.load(&mut builder, false) {
        let m = e.marker();
        diags.error(span_of(m), format!("invalid YAML: {}", e.info()));
        return None;
    }
    for (span, msg) in builder.errors {
        diags.error(span, msg);
    }
    match builder.stack.pop() {
        Some(Frame::Done(node)) => Some(node),
        _ => {
            diags.error(
                Span::new(1, 1),
                "the file is empty: expected a pipeline mapping",
            );
            None
        }
    }
}

fn span_of(m: &Marker) -> Span {
    Span::new(m.line().max(1), m.col() + 1)
}

enum Frame {
    Seq(Span, usize, Vec<Node>),
    Map(Span, usize, Vec<(Key, Node)>, Option<Key>),
    Done(Node),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    errors: Vec<(Span, String)>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending)) => match pending.take() {
                None => {
                    let name = match node.scalar_text() {
                        Some(t) => t,
                        None => {
                            self.errors.push((
                                node.span,
                                format!(
                                    "mapping keys must be plain names, found {}",
                                    node.describe()
                                ),
                            ));
                            String::new()
                        }
                    };
                    *pending = Some(Key {
                        name,
                        span: node.span,
                    });
                }
                Some(key) => {
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                        self.errors.push((
                            key.span,
                            format!(
                                "duplicate key `{}` (first defined at line {})",
                                key.name, first.span.line
                            ),
                        ));
                    } else {
                        entries.push((key, node));
                    }
                }
            },
            _ => self.stack.push(Frame::Done(node)),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let span = span_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let kind = if style == TScalarStyle::Plain {
                    resolve_plain(&value)
                } else {
                    Kind::Str {
                        value,
                        quoted: true,
                    }
                };
                self.push_value(Node { span, kind }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(span, anchor, Vec::new()))
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(span, anchor, Vec::new(), None))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(span, anchor, items)) = self.stack.pop() {
                    let node = Node {
                        span,
                        kind: Kind::Seq(items),
                    };
                    self.push_value(node, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(span, anchor, entries, _)) = self.stack.pop() {
                    // A block mapping is marked at its first colon; its first key reads better.
                    let span = entries
                        .first()
                        .map_or(span, |(k, _)| k.span.min_by_line(span));
                    let node = Node {
                        span,
                        kind: Kind::Map(entries),
                    };
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.span = span;
                    self.push_value(node, 0);
                }
                None => self
                    .errors
                    .push((span, "alias to an unknown anchor".into())),
            },
            _ => {}
        }
    }
}

/// YAML 1.2 core schema resolution of an unquoted scalar.
fn resolve_plain(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Kind::Int(i);
        }
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Kind::Int(i);
        }
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Kind::Int(i);
        }
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_float {
        if let Ok(f) = s.parse::<f64>() {
            return Kind::Float(f);
        }
    }
    Kind::Str {
        value: s.to_string(),
        quoted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> (Option<Node>, Diagnostics) {
        let mut d = Diagnostics::new("t.yaml");
        let n = parse(src, &mut d);
        (n, d)
    }

    #[test]
    fn spans_are_one_based() {
        let (n, d) = load("a: 1\nb:\n  - x\n  - 'y'\n");
        assert!(d.is_empty());
        let Kind::Map(entries) = n.unwrap().kind else {
            panic!()
        };
        assert_eq!(entries[1].0.span, Span::new(2, 1));
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(items[1].span, Span::new(4, 5));
        assert_eq!(
            items[1].kind,
            Kind::Str {
                value: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn core_schema_scalars() {
        assert_eq!(resolve_plain("12"), Kind::Int(12));
        assert_eq!(resolve_plain("-3"), Kind::Int(-3));
        assert_eq!(resolve_plain("0.5"), Kind::Float(0.5));
        assert_eq!(resolve_plain("1e-3"), Kind::Float(0.001));
        assert_eq!(resolve_plain("true"), Kind::Bool(true));
        assert_eq!(resolve_plain("~"), Kind::Null);
        assert!(matches!(resolve_plain("yes"), Kind::Str { .. }));
        assert!(matches!(resolve_plain("1.2.3"), Kind::Str { .. }));
        assert!(matches!(resolve_plain("e"), Kind::Str { .. }));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_reported() {
        let (_, d) = load("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.items.len(), 1);
        assert_eq!((d.items[0].line, d.items[0].col), (3, 1));
        assert!(d.items[0]
            .message
            .contains("duplicate key `a` (first defined at line 1)"));

        let (n, d) = load("a: [1, 2\n");
        assert!(n.is_none());
        assert!(d.items[0].message.starts_with("invalid YAML"), "{d}");
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let (n, d) = load("base: &b {x: 1}\nother: *b\n");
        assert!(d.is_empty());
        let v = n.unwrap().to_json();
        assert_eq!(v["other"]["x"], 1);
    }
}
