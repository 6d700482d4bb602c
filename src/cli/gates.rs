//! Quality gates: requirements on a run's metrics against a baseline run's, and the selector
//! that finds the baseline. Pure parsing and evaluation; `check` in `ci.rs` fetches the runs.
//!
//! A requirement is `EXPR OP EXPR`, `OP` one of `>=`, `<=`, `>`, `<`, `==`, `!=`; an expression
//! is numbers, names, `+ - * /` and parentheses. A name is one of the run's metrics or numeric
//! outputs: its full name (`evaluate.accuracy`) or, when only one ends so, its last part
//! (`accuracy`); `baseline.NAME` is the baseline run's.
//!
//! A baseline is a run id, or `latest [STATE] run [of this pipeline | of pipeline NAME]
//! [in experiment NAME] [with label K=V [and label K=V]…]` (STATE: succeeded, the default,
//! failed, cancelled or any).

use std::collections::BTreeMap;

/// A run's numbers by name.
pub type Values = BTreeMap<String, f64>;

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    /// A name, and whether it is the baseline's.
    Name {
        baseline: bool,
        name: String,
    },
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub text: String,
    op: &'static str,
    left: Expr,
    right: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(&'static str),
    Sym(char),
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || b[i] == '.'
                    || ((b[i] == 'e' || b[i] == 'E') && i > start)
                    || ((b[i] == '-' || b[i] == '+') && i > start && matches!(b[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let text: String = b[start..i].iter().collect();
            out.push(Tok::Num(
                text.parse()
                    .map_err(|_| format!("`{text}` is not a number"))?,
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || "_.-/".contains(b[i])) {
                // A `-` in a name only before a letter (`f1-macro` is a name; `a - b` and
                // `a-0.1` are subtractions).
                if b[i] == '-' && !b.get(i + 1).is_some_and(|n| n.is_alphabetic()) {
                    break;
                }
                i += 1;
            }
            out.push(Tok::Name(b[start..i].iter().collect()));
        } else {
            let two: String = b[i..(i + 2).min(b.len())].iter().collect();
            let op = [">=", "<=", "==", "!="].into_iter().find(|o| *o == two);
            if let Some(op) = op {
                out.push(Tok::Op(op));
                i += 2;
            } else if c == '>' || c == '<' {
                out.push(Tok::Op(if c == '>' { ">" } else { "<" }));
                i += 1;
            } else if "+-*/()".contains(c) {
                out.push(Tok::Sym(c));
                i += 1;
            } else {
                return Err(format!("unexpected `{c}`"));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        while let Some(Tok::Sym(c @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            e = Expr::Bin(c, Box::new(e), Box::new(self.term()?));
        }
        Ok(e)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.factor()?;
        while let Some(Tok::Sym(c @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            e = Expr::Bin(c, Box::new(e), Box::new(self.factor()?));
        }
        Ok(e)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        let t = self.peek().cloned();
        self.at += 1;
        match t {
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Name(n)) => Ok(match n.strip_prefix("baseline.") {
                Some(rest) if !rest.is_empty() => Expr::Name {
                    baseline: true,
                    name: rest.to_string(),
                },
                _ => Expr::Name {
                    baseline: false,
                    name: n.strip_prefix("run.").unwrap_or(&n).to_string(),
                },
            }),
            Some(Tok::Sym('-')) => Ok(Expr::Neg(Box::new(self.factor()?))),
            Some(Tok::Sym('(')) => {
                let e = self.expr()?;
                match self.peek() {
                    Some(Tok::Sym(')')) => {
                        self.at += 1;
                        Ok(e)
                    }
                    _ => Err("a `(` is not closed".into()),
                }
            }
            Some(t) => Err(format!("expected a number or a name, not {}", shown(&t))),
            None => Err("it ends where a number or a name was expected".into()),
        }
    }
}

fn shown(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("`{n}`"),
        Tok::Name(n) => format!("`{n}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Sym(c) => format!("`{c}`"),
    }
}

/// Parses a requirement, or says what is wrong with it.
pub fn parse(text: &str) -> Result<Gate, String> {
    let fail = |why: String| format!("gate `{text}`: {why}");
    if text.len() > 1000 {
        return Err(fail("it is over 1000 characters".into()));
    }
    let toks = tokens(text).map_err(fail)?;
    let mut p = Parser { toks, at: 0 };
    let left = p.expr().map_err(fail)?;
    let op = match p.peek() {
        Some(Tok::Op(o)) => *o,
        _ => {
            return Err(fail(
                "expected a comparison (>=, <=, >, <, == or !=) after the left side".into(),
            ))
        }
    };
    p.at += 1;
    let right = p.expr().map_err(fail)?;
    if let Some(t) = p.peek() {
        return Err(fail(format!(
            "unexpected {} after the right side",
            shown(t)
        )));
    }
    Ok(Gate {
        text: text.to_string(),
        op,
        left,
        right,
    })
}

/// A name among a run's values: exactly, or the one value whose name ends with `.NAME`.
fn find(values: &Values, name: &str, whose: &str) -> Result<f64, String> {
    if let Some(v) = values.get(name) {
        return Ok(*v);
    }
    let suffix = format!(".{name}");
    let like: Vec<&String> = values.keys().filter(|k| k.ends_with(&suffix)).collect();
    match like.as_slice() {
        [one] => Ok(values[*one]),
        [] => Err(format!(
            "{whose} has no metric `{name}` (it has: {})",
            if values.is_empty() {
                "none".to_string()
            } else {
                values.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )),
        many => Err(format!(
            "`{name}` is ambiguous in {whose}: say which of {}",
            many.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn eval(e: &Expr, run: &Values, baseline: Option<&Values>) -> Result<f64, String> {
    Ok(match e {
        Expr::Num(n) => *n,
        Expr::Name {
            baseline: false,
            name,
        } => find(run, name, "the run")?,
        Expr::Name {
            baseline: true,
            name,
        } => find(
            baseline.ok_or("there is no baseline run to compare with")?,
            name,
            "the baseline run",
        )?,
        Expr::Neg(x) => -eval(x, run, baseline)?,
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval(a, run, baseline)?, eval(b, run, baseline)?);
            match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                _ => a / b,
            }
        }
    })
}

/// Whether the gate refers to the baseline run.
pub fn needs_baseline(g: &Gate) -> bool {
    fn has(e: &Expr) -> bool {
        match e {
            Expr::Name { baseline, .. } => *baseline,
            Expr::Num(_) => false,
            Expr::Neg(x) => has(x),
            Expr::Bin(_, a, b) => has(a) || has(b),
        }
    }
    has(&g.left) || has(&g.right)
}

/// A gate's outcome: its two sides' values (or why they have none), and whether it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub gate: String,
    pub left: Result<f64, String>,
    pub op: &'static str,
    pub right: Result<f64, String>,
    pub holds: bool,
}

pub fn check(g: &Gate, run: &Values, baseline: Option<&Values>) -> Checked {
    let left = eval(&g.left, run, baseline);
    let right = eval(&g.right, run, baseline);
    let holds = match (&left, &right) {
        (Ok(a), Ok(b)) => match g.op {
            ">=" => a >= b,
            "<=" => a <= b,
            ">" => a > b,
            "<" => a < b,
            "==" => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0),
            _ => (a - b).abs() > f64::EPSILON * a.abs().max(b.abs()).max(1.0),
        },
        _ => false,
    };
    Checked {
        gate: g.text.clone(),
        left,
        op: g.op,
        right,
        holds,
    }
}

/// Which run is the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    Run(String),
    Latest {
        /// `None`: any state.
        state: Option<String>,
        /// `None`: any pipeline; `Some(None)`: the checked run's.
        pipeline: Option<Option<String>>,
        experiment: Option<String>,
        labels: Vec<(String, String)>,
    },
}

/// Parses a baseline selector.
pub fn baseline(text: &str) -> Result<Baseline, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let fail = |why: &str| {
        format!(
            "baseline `{text}`: {why} (write a run id, or `latest [succeeded|failed|cancelled|any] run [of this pipeline | of pipeline NAME] [in experiment NAME] [with label K=V [and label K=V]…]`)"
        )
    };
    match words.as_slice() {
        [] => return Err(fail("it is empty")),
        [id] if *id != "latest" => return Ok(Baseline::Run(id.to_string())),
        _ => {}
    }
    let mut w = words.iter().copied().peekable();
    if w.next() != Some("latest") {
        return Err(fail("it starts with neither a run id nor `latest`"));
    }
    let mut state = Some("succeeded".to_string());
    if let Some(s) = w.peek().copied() {
        if ["succeeded", "failed", "cancelled", "any"].contains(&s) {
            state = (s != "any").then(|| s.to_string());
            w.next();
        }
    }
    if w.next() != Some("run") {
        return Err(fail("expected `run` after `latest`"));
    }
    let (mut pipeline, mut experiment, mut labels) = (None, None, Vec::new());
    while let Some(word) = w.next() {
        match (word, w.peek().copied()) {
            ("of", Some("this")) => {
                w.next();
                if w.next() != Some("pipeline") {
                    return Err(fail("expected `of this pipeline`"));
                }
                pipeline = Some(None);
            }
            ("of", Some("pipeline")) => {
                w.next();
                let name = w
                    .next()
                    .ok_or_else(|| fail("`of pipeline` names no pipeline"))?;
                pipeline = Some(Some(name.to_string()));
            }
            ("in", Some("experiment")) => {
                w.next();
                let name = w.next().ok_or_else(|| fail("`in experiment` names none"))?;
                experiment = Some(name.to_string());
            }
            ("with" | "and", Some("label")) => {
                w.next();
                let kv = w.next().ok_or_else(|| fail("`label` gives no K=V"))?;
                let (k, v) = kv
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| fail(&format!("label `{kv}` is not K=V")))?;
                labels.push((k.to_string(), v.to_string()));
            }
            (other, _) => return Err(fail(&format!("unexpected `{other}`"))),
        }
    }
    Ok(Baseline::Latest {
        state,
        pipeline,
        experiment,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, f64)]) -> Values {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn gates_compare_a_run_with_its_baseline() {
        let run = values(&[
            ("evaluate.accuracy", 0.91),
            ("train.loss", 0.2),
            ("evaluate.f1-macro", 0.8),
        ]);
        let base = values(&[("evaluate.accuracy", 0.915)]);
        let g = parse("accuracy >= baseline.accuracy - 0.01").unwrap();
        assert!(needs_baseline(&g));
        let c = check(&g, &run, Some(&base));
        assert!(c.holds, "{c:?}");
        assert_eq!(c.left, Ok(0.91));
        assert!((c.right.clone().unwrap() - 0.905).abs() < 1e-9);
        let strict = parse("evaluate.accuracy > baseline.evaluate.accuracy").unwrap();
        assert!(!check(&strict, &run, Some(&base)).holds);
        assert!(
            check(
                &parse("loss * 2 <= (0.5 - 0.05) * 1e0").unwrap(),
                &run,
                None
            )
            .holds
        );
        assert!(check(&parse("f1-macro >= 0.75").unwrap(), &run, None).holds);
        assert!(check(&parse("-loss < 0").unwrap(), &run, None).holds);
        assert!(check(&parse("loss-0.1 < 0.11").unwrap(), &run, None).holds);
        assert!(!needs_baseline(&parse("loss < 1").unwrap()));
    }

    #[test]
    fn a_name_that_is_missing_or_ambiguous_fails_the_gate_saying_so() {
        let run = values(&[("a.accuracy", 0.9), ("b.accuracy", 0.8)]);
        let c = check(&parse("accuracy >= 0.5").unwrap(), &run, None);
        assert!(!c.holds);
        assert!(c.left.unwrap_err().contains("ambiguous"));
        let c = check(&parse("recall >= 0.5").unwrap(), &run, None);
        assert!(c.left.unwrap_err().contains("no metric `recall`"));
        let c = check(
            &parse("a.accuracy >= baseline.accuracy").unwrap(),
            &run,
            None,
        );
        assert!(c.right.unwrap_err().contains("no baseline"));
    }

    #[test]
    fn bad_gates_are_refused_naming_what_is_wrong() {
        for (g, says) in [
            ("accuracy", "comparison"),
            ("accuracy >= ", "ends"),
            ("accuracy >= 0.9 0.1", "unexpected"),
            ("(accuracy >= 0.9", "not closed"),
            ("accuracy ~ 0.9", "unexpected `~`"),
        ] {
            let e = parse(g).unwrap_err();
            assert!(e.contains(says) && e.contains(g.trim()), "{g}: {e}");
        }
    }

    #[test]
    fn baselines_are_selected_in_words() {
        assert_eq!(baseline("01abc").unwrap(), Baseline::Run("01abc".into()));
        assert_eq!(
            baseline("latest succeeded run of this pipeline with label branch=main").unwrap(),
            Baseline::Latest {
                state: Some("succeeded".into()),
                pipeline: Some(None),
                experiment: None,
                labels: vec![("branch".into(), "main".into())],
            }
        );
        assert_eq!(
            baseline("latest any run of pipeline iris in experiment nightly with label a=1 and label b=2")
                .unwrap(),
            Baseline::Latest {
                state: None,
                pipeline: Some(Some("iris".into())),
                experiment: Some("nightly".into()),
                labels: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            }
        );
        assert!(baseline("latest run of that pipeline")
            .unwrap_err()
            .contains("unexpected `of`"));
        assert!(baseline("latest run with label nope")
            .unwrap_err()
            .contains("not K=V"));
        assert!(baseline("").is_err());
    }
}
