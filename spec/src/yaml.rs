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

/// What a YAML document may cost to load: its size, how deep it nests, and how many nodes it
/// expands to (an alias counts as a copy of everything it names, so alias bombs are caught before
/// they are built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_bytes: 4 << 20,
            max_depth: 64,
            max_nodes: 1_000_000,
        }
    }
}

/// Parses one YAML document with the default [`YamlLimits`].
pub fn parse(source: &str, diags: &mut Diagnostics) -> Option<Node> {
    parse_with(source, &YamlLimits::default(), diags)
}

/// Parses one YAML document (the first, where the text has several). Syntax errors, duplicate
/// keys and non-scalar keys are reported into `diags`; `None` is returned when the text is not
/// YAML at all or passes a limit (which is reported with its place).
pub fn parse_with(source: &str, limits: &YamlLimits, diags: &mut Diagnostics) -> Option<Node> {
    documents(source, limits, false, diags).and_then(|mut docs| docs.drain(..).next())
}

/// Parses every document of a YAML stream (`---` between them), as [`parse_with`] parses one;
/// the limits hold for the stream as a whole.
pub fn parse_documents_with(
    source: &str,
    limits: &YamlLimits,
    diags: &mut Diagnostics,
) -> Option<Vec<Node>> {
    documents(source, limits, true, diags)
}

fn documents(
    source: &str,
    limits: &YamlLimits,
    all: bool,
    diags: &mut Diagnostics,
) -> Option<Vec<Node>> {
    if source.len() > limits.max_bytes {
        diags.error(
            Span::new(1, 1),
            format!(
                "the file is {} bytes, over the limit of {} bytes",
                source.len(),
                limits.max_bytes
            ),
        );
        return None;
    }
    let mut builder = Builder {
        limits: *limits,
        ..Default::default()
    };
    let mut docs = Vec::new();
    // Events are pulled one at a time (the parser's own `load` recurses once per level).
    let mut parser = Parser::new_from_str(source);
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) => {
                diags.error(span_of(e.marker()), format!("invalid YAML: {}", e.info()));
                return None;
            }
        };
        match ev {
            Event::DocumentEnd => {
                if let Some(Frame::Done(node)) = builder.stack.pop() {
                    docs.push(node);
                }
                builder.stack.clear();
                builder.anchors.clear();
                if !all {
                    break;
                }
            }
            Event::StreamEnd => break,
            ev => builder.on_event(ev, mark),
        }
        if let Some((span, msg)) = builder.fatal.take() {
            diags.error(span, msg);
            return None;
        }
    }
    for (span, msg) in builder.errors {
        diags.error(span, msg);
    }
    if let Some(Frame::Done(node)) = builder.stack.pop() {
        docs.push(node);
    }
    if docs.is_empty() {
        diags.error(
            Span::new(1, 1),
            "the file is empty: expected a pipeline mapping",
        );
        return None;
    }
    Some(docs)
}

fn span_of(m: &Marker) -> Span {
    Span::new(m.line().max(1), m.col() + 1)
}

/// A collection being built, with the number of nodes in it so far (itself included).
enum Frame {
    Seq(Span, usize, Vec<Node>, usize),
    Map(Span, usize, Vec<(Key, Node)>, Option<Key>, usize),
    Done(Node),
}

#[derive(Default)]
struct Builder {
    limits: YamlLimits,
    stack: Vec<Frame>,
    /// Anchored nodes and their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    errors: Vec<(Span, String)>,
    /// Nodes made so far, aliases counted at their full size.
    nodes: usize,
    /// A limit was passed: loading stops here.
    fatal: Option<(Span, String)>,
}

impl Builder {
    /// Counts `size` more nodes; false (and a fatal error) past the limit.
    fn spend(&mut self, size: usize, span: Span, alias: bool) -> bool {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes <= self.limits.max_nodes {
            return true;
        }
        self.fatal = Some((
            span,
            format!(
                "the document expands to more than {} nodes{} (the limit)",
                self.limits.max_nodes,
                if alias { " through its aliases" } else { "" }
            ),
        ));
        false
    }

    fn push_value(&mut self, node: Node, size: usize, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(_, _, items, n)) => {
                items.push(node);
                *n += size;
            }
            Some(Frame::Map(_, _, entries, pending, n)) => match pending.take() {
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
                        *n += size;
                    }
                }
            },
            _ => self.stack.push(Frame::Done(node)),
        }
    }

    /// Opens a collection, unless that nests deeper than the limit.
    fn open(&mut self, frame: Frame, span: Span) {
        if self.stack.len() >= self.limits.max_depth {
            self.fatal = Some((
                span,
                format!(
                    "mappings and lists nest deeper than {} levels here (the limit)",
                    self.limits.max_depth
                ),
            ));
            return;
        }
        if self.spend(1, span, false) {
            self.stack.push(frame);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let span = span_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                if !self.spend(1, span, false) {
                    return;
                }
                let kind = if style == TScalarStyle::Plain {
                    resolve_plain(&value)
                } else {
                    Kind::Str {
                        value,
                        quoted: true,
                    }
                };
                self.push_value(Node { span, kind }, 1, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.open(Frame::Seq(span, anchor, Vec::new(), 1), span)
            }
            Event::MappingStart(anchor, _) => {
                self.open(Frame::Map(span, anchor, Vec::new(), None, 1), span)
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(span, anchor, items, n)) = self.stack.pop() {
                    let node = Node {
                        span,
                        kind: Kind::Seq(items),
                    };
                    self.push_value(node, n, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(span, anchor, entries, _, n)) = self.stack.pop() {
                    // A block mapping is marked at its first colon; its first key reads better.
                    let span = entries
                        .first()
                        .map_or(span, |(k, _)| k.span.min_by_line(span));
                    let node = Node {
                        span,
                        kind: Kind::Map(entries),
                    };
                    self.push_value(node, n, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, size)| *size) {
                Some(size) => {
                    // Counted before it is copied: a bomb stops here, unbuilt.
                    if !self.spend(size, span, true) {
                        return;
                    }
                    let mut node = self.anchors[&id].0.clone();
                    node.span = span;
                    self.push_value(node, size, 0);
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
    fn deep_nesting_is_refused_at_the_limit_with_its_place() {
        // 6000 levels of block lists on one line (12 KB), of block mappings and of flow lists.
        let (n, d) = load(&format!("{}x\n", "- ".repeat(6000)));
        assert!(n.is_none());
        assert_eq!(d.items.len(), 1, "{d}");
        assert!(d.items[0].message.contains("deeper than 64 levels"), "{d}");
        assert_eq!((d.items[0].line, d.items[0].col), (1, 129), "{d}");
        let block: String = (0..600).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let (n, d) = load(&block);
        assert!(n.is_none());
        assert!(d.items[0].message.contains("deeper than 64 levels"), "{d}");
        assert_eq!(d.items[0].line, 65, "{d}");
        let flow = format!("a: {}{}\n", "[".repeat(6000), "]".repeat(6000));
        let (n, d) = load(&flow);
        assert!(n.is_none());
        assert!(!d.is_empty());
        // 64 levels load.
        let ok: String = (0..63).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert!(load(&ok).0.is_some());
    }

    #[test]
    fn an_alias_bomb_is_refused_before_it_is_built() {
        // Nine levels of ten aliases each: 10^9 nodes from 640 bytes.
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (n, d) = load(&src);
        assert!(n.is_none());
        assert_eq!(d.items.len(), 1, "{d}");
        assert!(
            d.items[0]
                .message
                .contains("more than 1000000 nodes through its aliases"),
            "{d}"
        );
        assert_eq!(d.items[0].line, 6, "{d}");
    }

    #[test]
    fn a_document_over_the_size_limit_is_refused_unread() {
        let limits = YamlLimits {
            max_bytes: 100,
            ..Default::default()
        };
        let mut d = Diagnostics::new("t.yaml");
        assert!(parse_with(&"a: b\n".repeat(30), &limits, &mut d).is_none());
        assert!(
            d.items[0].message.contains("over the limit of 100 bytes"),
            "{d}"
        );
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let (n, d) = load("base: &b {x: 1}\nother: *b\n");
        assert!(d.is_empty());
        let v = n.unwrap().to_json();
        assert_eq!(v["other"]["x"], 1);
    }
}
