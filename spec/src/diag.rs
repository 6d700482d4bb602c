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

/// Every problem found in one file, in source order (the first [`Diagnostics::MAX_ITEMS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
    /// Problems found beyond the first `MAX_ITEMS`, counted but not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Diagnostics {
    /// Most problems kept for one file: a hostile file cannot make the answer grow without end.
    pub const MAX_ITEMS: usize = 200;

    pub fn new(file: impl Into<String>) -> Self {
        Diagnostics {
            file: file.into(),
            items: Vec::new(),
            more: 0,
        }
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        if self.items.len() >= Self::MAX_ITEMS {
            self.more += 1;
            return;
        }
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
        self.items.len() + self.more
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
                // A long line is shown around the column only.
                let chars: Vec<char> = text.chars().collect();
                let col = d.col.saturating_sub(1).min(chars.len());
                let from = col.saturating_sub(60);
                let to = (col + 60).min(chars.len());
                let mut shown: String = chars[from..to].iter().collect();
                let mut caret = col - from;
                if from > 0 {
                    shown.insert(0, '…');
                    caret += 1;
                }
                if to < chars.len() {
                    shown.push('…');
                }
                out.push_str(&format!("{gutter} | {shown}\n"));
                let pad = " ".repeat(gutter.len());
                out.push_str(&format!("{pad} | {}^\n", " ".repeat(caret)));
            }
        }
        if self.more > 0 {
            out.push_str(&format!(
                "{}: … and {} more error(s)\n",
                self.file, self.more
            ));
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
        if self.more > 0 {
            write!(f, "\n{}: … and {} more error(s)", self.file, self.more)?;
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

    #[test]
    fn a_flood_of_errors_is_counted_past_the_first_ones_and_long_lines_are_cut() {
        let mut d = Diagnostics::new("p.yaml");
        for i in 0..10_000 {
            d.error(Span::new(1, i + 1), format!("bad {i}"));
        }
        assert_eq!(d.items.len(), Diagnostics::MAX_ITEMS);
        assert_eq!(d.len(), 10_000);
        let line = "x".repeat(100_000);
        let out = d.render(&line);
        assert!(
            out.ends_with("p.yaml: … and 9800 more error(s)\n"),
            "{}",
            &out[out.len() - 80..]
        );
        assert!(out.lines().all(|l| l.chars().count() < 200));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["more"], 9800);
    }
}
