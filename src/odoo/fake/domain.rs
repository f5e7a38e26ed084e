//! Odoo domains for the fake: parsing prefix notation (`&`, `|`, `!`, implicit AND),
//! validating leaves the way Odoo does (with its error texts), and evaluating them on
//! records, following many2one paths (`order_id.state`).

use std::cmp::Ordering;

use serde_json::Value;

use super::{Db, Fault, Kind};

/// A parsed domain.
#[derive(Debug, Clone)]
pub enum Dom {
    /// Always true.
    True,
    /// Always false.
    False,
    /// Both.
    And(Box<Dom>, Box<Dom>),
    /// Either.
    Or(Box<Dom>, Box<Dom>),
    /// Negation.
    Not(Box<Dom>),
    /// `(path, op, value)`.
    Leaf(Vec<String>, String, Value),
}

const OPS: &[&str] = &[
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "in",
    "not in",
    "like",
    "ilike",
    "not like",
    "not ilike",
    "=like",
    "=ilike",
    "child_of",
    "parent_of",
    "=?",
];

/// Python's repr of a JSON value, as Odoo prints leaves in its messages.
pub fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!("[{}]", a.iter().map(py).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => v.to_string(),
    }
}

fn leaf_repr(a: &[Value]) -> String {
    format!("({})", a.iter().map(py).collect::<Vec<_>>().join(", "))
}

/// Parse and validate a domain on `model`.
pub fn parse(db: &Db, model: &str, d: &Value) -> Result<Dom, Fault> {
    let syntax = || Fault::value(format!("Domain {} is syntactically not correct.", py(d)));
    let Some(items) = d.as_array() else {
        return Err(syntax());
    };
    let mut stack: Vec<Dom> = Vec::new();
    for item in items.iter().rev() {
        match item.as_str() {
            Some("&") | Some("|") => {
                let (Some(a), Some(b)) = (stack.pop(), stack.pop()) else {
                    return Err(syntax());
                };
                stack.push(if item == "&" {
                    Dom::And(Box::new(a), Box::new(b))
                } else {
                    Dom::Or(Box::new(a), Box::new(b))
                });
            }
            Some("!") => {
                let a = stack.pop().ok_or_else(syntax)?;
                stack.push(Dom::Not(Box::new(a)));
            }
            _ => {
                let Some(leaf) = item.as_array().filter(|l| l.len() == 3) else {
                    return Err(syntax());
                };
                stack.push(parse_leaf(db, model, leaf)?);
            }
        }
    }
    let mut out = Dom::True;
    while let Some(x) = stack.pop() {
        out = match out {
            Dom::True => x,
            o => Dom::And(Box::new(o), Box::new(x)),
        };
    }
    Ok(out)
}

fn parse_leaf(db: &Db, model: &str, leaf: &[Value]) -> Result<Dom, Fault> {
    if let (Some(a), Some("="), Some(b)) = (leaf[0].as_i64(), leaf[1].as_str(), leaf[2].as_i64()) {
        return Ok(if a == b { Dom::True } else { Dom::False });
    }
    let (Some(path), Some(op)) = (leaf[0].as_str(), leaf[1].as_str()) else {
        return Err(Fault::value(format!("Invalid leaf {}", leaf_repr(leaf))));
    };
    if !OPS.contains(&op) {
        return Err(Fault::value(format!("Invalid leaf {}", leaf_repr(leaf))));
    }
    // Every step of the path must be a field; all but the last a many2one.
    let mut m = model.to_string();
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    for (i, p) in parts.iter().enumerate() {
        let Some(f) = db.field(&m, p) else {
            return Err(Fault::value(format!(
                "Invalid field {m}.{p} in leaf {}",
                leaf_repr(leaf)
            )));
        };
        if i + 1 < parts.len() {
            match (&f.kind, &f.relation) {
                (Kind::M2o, Some(r)) => m = r.clone(),
                _ => {
                    return Err(Fault::value(format!(
                        "Invalid field {m}.{p} in leaf {}",
                        leaf_repr(leaf)
                    )));
                }
            }
        }
    }
    Ok(Dom::Leaf(parts, op.to_string(), leaf[2].clone()))
}

/// Whether a record of `model` matches.
pub fn eval(db: &Db, model: &str, rec: &serde_json::Map<String, Value>, d: &Dom) -> bool {
    match d {
        Dom::True => true,
        Dom::False => false,
        Dom::And(a, b) => eval(db, model, rec, a) && eval(db, model, rec, b),
        Dom::Or(a, b) => eval(db, model, rec, a) || eval(db, model, rec, b),
        Dom::Not(a) => !eval(db, model, rec, a),
        Dom::Leaf(path, op, v) => {
            let mut m = model;
            let mut r = rec;
            for p in &path[..path.len() - 1] {
                let Some(f) = db.field(m, p) else {
                    return false;
                };
                let Some(rel) = f.relation.as_deref() else {
                    return false;
                };
                let Some(next) = r
                    .get(p.as_str())
                    .and_then(Value::as_i64)
                    .and_then(|id| db.models.get(rel).and_then(|t| t.rows.get(&id)))
                else {
                    // An empty many2one: every further field is empty.
                    return compare(db, rel, &Value::Bool(false), op, v, None);
                };
                m = rel;
                r = next;
            }
            let last = path[path.len() - 1].as_str();
            let field = db.field(m, last);
            let kind = field.map(|f| f.kind);
            let walk = field.and_then(|f| f.relation.as_deref()).unwrap_or(m);
            let value = db.raw_ref(m, r, last);
            compare(db, walk, &value, op, v, kind)
        }
    }
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Bool(false) | Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(xs), y) if !y.is_array() => xs.iter().any(|x| same(x, y)),
        _ => a == b,
    }
}

/// Order two field values the way Odoo's SQL would (empty first).
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (x, y) if empty(x) && !empty(y) => Ordering::Less,
        (x, y) if !empty(x) && empty(y) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

fn compare(db: &Db, model: &str, value: &Value, op: &str, v: &Value, kind: Option<Kind>) -> bool {
    let x2m = matches!(kind, Some(Kind::O2m) | Some(Kind::M2m));
    match op {
        "=" | "=?" if empty(v) => empty(value),
        "!=" if empty(v) => !empty(value),
        "=" | "=?" => same(value, v),
        "!=" => !same(value, v),
        "in" => v.as_array().is_some_and(|l| {
            l.iter().any(|x| {
                if empty(x) {
                    empty(value)
                } else {
                    same(value, x)
                }
            })
        }),
        "not in" => !v.as_array().is_some_and(|l| {
            l.iter().any(|x| {
                if empty(x) {
                    empty(value)
                } else {
                    same(value, x)
                }
            })
        }),
        "<" | ">" | "<=" | ">=" => {
            if empty(value) || x2m {
                return false;
            }
            let o = cmp_values(value, v);
            match op {
                "<" => o == Ordering::Less,
                ">" => o == Ordering::Greater,
                "<=" => o != Ordering::Greater,
                _ => o != Ordering::Less,
            }
        }
        "like" | "ilike" | "not like" | "not ilike" | "=like" | "=ilike" => {
            let hay = value.as_str().unwrap_or("");
            let needle = v.as_str().unwrap_or("");
            let ci = op.contains("ilike");
            let (h, n) = if ci {
                (hay.to_lowercase(), needle.to_lowercase())
            } else {
                (hay.to_string(), needle.to_string())
            };
            let hit = if op.starts_with('=') {
                h == n.replace('%', "")
            } else {
                h.contains(&n)
            };
            if op.starts_with("not") { !hit } else { hit }
        }
        "child_of" | "parent_of" => {
            let targets: Vec<i64> = match v {
                Value::Array(a) => a.iter().filter_map(Value::as_i64).collect(),
                x => x.as_i64().into_iter().collect(),
            };
            let Some(mut id) = value.as_i64() else {
                return false;
            };
            // Walk up the parent chain (parent_id, or location_id for locations).
            for _ in 0..32 {
                if targets.contains(&id) {
                    return true;
                }
                let parent = db
                    .models
                    .get(model)
                    .and_then(|t| t.rows.get(&id))
                    .and_then(|r| {
                        r.get("parent_id")
                            .or_else(|| r.get("location_id"))
                            .and_then(Value::as_i64)
                    });
                match parent {
                    Some(p) => id = p,
                    None => return false,
                }
            }
            false
        }
        _ => false,
    }
}
