//! Conditions (`when:`): a small expression language over pipeline parameters and upstream output
//! parameters. `{{params.x}} > 0.9 and ({{steps.train.outputs.params.model}} == "rf" or not
//! {{params.quick}})`: comparisons (`== != < <= > >=`), `and`/`&&`, `or`/`||`, `not`/`!`,
//! parentheses; numbers, quoted strings, `true`/`false` and bare words. Two values compare as
//! numbers when both read as numbers, else as text; a lone value is true unless it is `false`,
//! `0`, empty or null.

use super::refs::{parse_ref, Ref};
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, Op, Operand),
    Truthy(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Ref(Ref),
    Num(f64),
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Val(Operand),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokens(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        let two = src.get(i..i + 2).unwrap_or("");
        if c.is_whitespace() {
            i += 1;
        } else if two == "{{" {
            let end = src[i + 2..]
                .find("}}")
                .ok_or_else(|| "`{{` without a closing `}}`".to_string())?;
            out.push(Tok::Val(Operand::Ref(parse_ref(
                src[i + 2..i + 2 + end].trim(),
            )?)));
            i += end + 4;
        } else if let Some((op, len)) = match two {
            "==" => Some((Tok::Op(Op::Eq), 2)),
            "!=" => Some((Tok::Op(Op::Ne), 2)),
            "<=" => Some((Tok::Op(Op::Le), 2)),
            ">=" => Some((Tok::Op(Op::Ge), 2)),
            "&&" => Some((Tok::And, 2)),
            "||" => Some((Tok::Or, 2)),
            _ => match c {
                '<' => Some((Tok::Op(Op::Lt), 1)),
                '>' => Some((Tok::Op(Op::Gt), 1)),
                '!' => Some((Tok::Not, 1)),
                '(' => Some((Tok::Open, 1)),
                ')' => Some((Tok::Close, 1)),
                _ => None,
            },
        } {
            out.push(op);
            i += len;
        } else if c == '"' || c == '\'' {
            let end = src[i + 1..]
                .find(c)
                .ok_or_else(|| format!("a string opened with {c} is not closed"))?;
            out.push(Tok::Val(Operand::Str(src[i + 1..i + 1 + end].to_string())));
            i += end + 2;
        } else if c == '=' {
            return Err("`=` is not an operator: compare with `==`".into());
        } else {
            let start = i;
            while i < b.len() {
                let c = b[i] as char;
                if c.is_whitespace() || "()<>!=&|\"'{".contains(c) {
                    break;
                }
                i += 1;
            }
            let word = &src[start..i];
            out.push(match word {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                "true" => Tok::Val(Operand::Bool(true)),
                "false" => Tok::Val(Operand::Bool(false)),
                w => match w.parse::<f64>() {
                    Ok(n) => Tok::Val(Operand::Num(n)),
                    Err(_) => Tok::Val(Operand::Str(w.to_string())),
                },
            });
        }
    }
    Ok(out)
}

/// Most words, values and signs one condition may hold.
pub const MAX_TOKENS: usize = 512;
/// Deepest nesting of parentheses and `not`s.
pub const MAX_DEPTH: usize = 32;

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    /// One level deeper (a `(` or a `not`), within [`MAX_DEPTH`].
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "parentheses and `not`s nest deeper than {MAX_DEPTH} levels (the limit)"
            ));
        }
        Ok(())
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            self.deeper()?;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Open) {
            self.at += 1;
            self.deeper()?;
            let e = self.or()?;
            self.depth -= 1;
            return match self.next() {
                Some(Tok::Close) => Ok(e),
                _ => Err("a `(` is not closed".into()),
            };
        }
        let left = match self.next() {
            Some(Tok::Val(v)) => v,
            Some(t) => return Err(format!("expected a value, found {}", describe(&t))),
            None => return Err("the condition ends where a value was expected".into()),
        };
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.at += 1;
            return match self.next() {
                Some(Tok::Val(right)) => Ok(Expr::Cmp(left, op, right)),
                Some(t) => Err(format!(
                    "expected a value after the comparison, found {}",
                    describe(&t)
                )),
                None => Err("the condition ends after a comparison".into()),
            };
        }
        Ok(Expr::Truthy(left))
    }
}

fn describe(t: &Tok) -> &'static str {
    match t {
        Tok::Val(_) => "a value",
        Tok::Op(_) => "a comparison",
        Tok::And => "`and`",
        Tok::Or => "`or`",
        Tok::Not => "`not`",
        Tok::Open => "`(`",
        Tok::Close => "`)`",
    }
}

/// Parses a condition; the error says what is wrong.
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = tokens(src)?;
    if toks.is_empty() {
        return Err("the condition is empty".into());
    }
    if toks.len() > MAX_TOKENS {
        return Err(format!(
            "the condition has {} words and signs, over the limit of {MAX_TOKENS}",
            toks.len()
        ));
    }
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
    };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(format!(
            "unexpected {} after a complete condition",
            describe(t)
        )),
    }
}

/// The references a condition makes.
pub fn refs(e: &Expr) -> Vec<&Ref> {
    let mut out = Vec::new();
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Ref>) {
        let mut op = |o: &'a Operand| {
            if let Operand::Ref(r) = o {
                out.push(r);
            }
        };
        match e {
            Expr::Or(a, b) | Expr::And(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Expr::Not(a) => walk(a, out),
            Expr::Cmp(a, _, b) => {
                op(a);
                op(b);
            }
            Expr::Truthy(a) => op(a),
        }
    }
    walk(e, &mut out);
    out
}

fn value(o: &Operand, lookup: &dyn Fn(&Ref) -> Result<Json, String>) -> Result<Json, String> {
    Ok(match o {
        Operand::Ref(r) => lookup(r)?,
        Operand::Num(n) => serde_json::json!(n),
        Operand::Str(s) => Json::String(s.clone()),
        Operand::Bool(b) => Json::Bool(*b),
    })
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !matches!(s.trim(), "" | "false" | "0"),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// Evaluates a condition, looking each reference up.
pub fn eval(e: &Expr, lookup: &dyn Fn(&Ref) -> Result<Json, String>) -> Result<bool, String> {
    Ok(match e {
        Expr::Or(a, b) => eval(a, lookup)? || eval(b, lookup)?,
        Expr::And(a, b) => eval(a, lookup)? && eval(b, lookup)?,
        Expr::Not(a) => !eval(a, lookup)?,
        Expr::Truthy(a) => truthy(&value(a, lookup)?),
        Expr::Cmp(a, op, b) => {
            let (a, b) = (value(a, lookup)?, value(b, lookup)?);
            let ord = match (number(&a), number(&b)) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => match (&a, &b) {
                    (Json::Bool(_), _) | (_, Json::Bool(_)) => {
                        let as_bool = |v: &Json| match v {
                            Json::Bool(b) => Some(*b),
                            Json::String(s) if s == "true" => Some(true),
                            Json::String(s) if s == "false" => Some(false),
                            _ => None,
                        };
                        match (as_bool(&a), as_bool(&b)) {
                            (Some(x), Some(y)) => Some(x.cmp(&y)),
                            _ => Some(text(&a).cmp(&text(&b))),
                        }
                    }
                    _ => Some(text(&a).cmp(&text(&b))),
                },
            };
            use std::cmp::Ordering::*;
            match (op, ord) {
                (_, None) => false,
                (Op::Eq, Some(o)) => o == Equal,
                (Op::Ne, Some(o)) => o != Equal,
                (Op::Lt, Some(o)) => o == Less,
                (Op::Le, Some(o)) => o != Greater,
                (Op::Gt, Some(o)) => o == Greater,
                (Op::Ge, Some(o)) => o != Less,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, params: Json) -> Result<bool, String> {
        let e = parse(src)?;
        eval(&e, &|r| match r {
            Ref::Param(n) => params.get(n).cloned().ok_or_else(|| format!("no {n}")),
            Ref::StepOutput { step, name, .. } => params
                .get(format!("{step}.{name}"))
                .cloned()
                .ok_or_else(|| format!("step `{step}` was skipped")),
            _ => Err("unsupported".into()),
        })
    }

    #[test]
    fn conditions_evaluate_as_written() {
        let p = serde_json::json!({
            "acc": 0.93, "model": "rf", "quick": false, "n": "10", "train.acc": "0.8", "name": "random forest"
        });
        let cases: &[(&str, bool)] = &[
            ("{{params.acc}} > 0.9", true),
            ("{{params.acc}} >= 0.95", false),
            ("{{params.model}} == rf", true),
            ("{{params.model}} == 'rf' and not {{params.quick}}", true),
            ("{{params.model}} != \"rf\" || {{params.quick}}", false),
            (
                "({{params.model}} == svm or {{params.acc}} < 1) && !{{params.quick}}",
                true,
            ),
            // Numbers that arrive as text still compare as numbers: 10 > 9, though "10" < "9".
            ("{{params.n}} > 9", true),
            ("{{steps.train.outputs.params.acc}} < {{params.acc}}", true),
            ("{{params.name}} == 'random forest'", true),
            ("{{params.quick}} == false", true),
            ("{{params.quick}}", false),
            ("{{params.model}}", true),
        ];
        for (src, want) in cases {
            assert_eq!(check(src, p.clone()), Ok(*want), "{src}");
        }
    }

    #[test]
    fn bad_conditions_are_explained() {
        let cases: &[(&str, &str)] = &[
            ("", "the condition is empty"),
            ("{{params.a}} = 1", "compare with `==`"),
            ("({{params.a}} == 1", "a `(` is not closed"),
            ("{{params.a}} ==", "ends after a comparison"),
            ("{{params.a}} == 1 2", "unexpected a value"),
            ("'open", "not closed"),
            ("and 1", "expected a value, found `and`"),
            ("{{params.a", "without a closing"),
        ];
        for (src, want) in cases {
            let e = parse(src).unwrap_err();
            assert!(e.contains(want), "{src}: {e}");
        }
        let e = check("{{steps.x.outputs.params.y}} == 1", serde_json::json!({})).unwrap_err();
        assert!(e.contains("skipped"), "{e}");
    }

    #[test]
    fn conditions_that_would_recurse_without_bound_are_refused() {
        let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().contains("over the limit of 512"));
        let parens = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&parens)
            .unwrap_err()
            .contains("deeper than 32 levels"));
        let nots = format!("{}true", "not ".repeat(40));
        assert!(parse(&nots).unwrap_err().contains("deeper than 32 levels"));
        let chain = vec!["1"; 1000].join(" and ");
        assert!(parse(&chain).unwrap_err().contains("over the limit"));
        // Within the limits, nesting works as written.
        let ok = format!("{}true{}", "(not ".repeat(16), ")".repeat(16));
        assert!(check(&ok, serde_json::json!({})).unwrap());
    }
}
