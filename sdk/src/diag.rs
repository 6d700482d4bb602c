//! Diagnostics: errors that name a place in a source file (line and column) and say what was expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A position in a source text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub const fn new(line: usize, col: usize) -> Self {
        Span { line, col }
    }

    /// The earlier of two positions.
    pub fn min_by_line(self, other: Span) -> Span {
        if (self.line, self.col) <= (other.line, other.col) {
            self
        } else {
            other
        }
    }
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem found in one file, in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>) -> Self {
        Diagnostics {
            file: file.into(),
            items: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.items.push(Diagnostic {
            line: span.line,
            col: span.col,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Sorts by position and drops exact repeats, so output reads top to bottom.
    pub fn finish(&mut self) {
        self.items
            .sort_by(|a, b| (a.line, a.col, &a.message).cmp(&(b.line, b.col, &b.message)));
        self.items.dedup();
    }

    /// Renders every diagnostic with the offending source line and a caret under the column.
    pub fn render(&self, source: &str) -> String {
        let lines: Vec<&str> = source.lines().collect();
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&format!(
                "{}:{}:{}: error: {}\n",
                self.file, d.line, d.col, d.message
            ));
            if let Some(text) = d.line.checked_sub(1).and_then(|i| lines.get(i)) {
                let gutter = d.line.to_string();
                out.push_str(&format!("{gutter} | {text}\n"));
                let pad = " ".repeat(gutter.len());
                let caret = " ".repeat(d.col.saturating_sub(1));
                out.push_str(&format!("{pad} | {caret}^\n"));
            }
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, d.line, d.col, d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to a misspelt name, if one is close enough to suggest.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("imgae", ["image", "command"]), Some("image"));
        assert_eq!(
            did_you_mean("dependson", ["dependsOn", "name"]),
            Some("dependsOn")
        );
        assert_eq!(did_you_mean("zzz", ["image", "command"]), None);
    }

    #[test]
    fn render_points_at_column() {
        let mut d = Diagnostics::new("p.yaml");
        d.error(Span::new(2, 3), "bad");
        let out = d.render("a: 1\nb: 2\n");
        assert!(
            out.contains("p.yaml:2:3: error: bad\n2 | b: 2\n  |   ^"),
            "{out}"
        );
    }
}
