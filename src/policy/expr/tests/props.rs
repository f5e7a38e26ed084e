//! Property tests: any generated expression compiles or fails cleanly, and
//! evaluation agrees with a reference interpreter.

use super::*;
use proptest::prelude::*;
use proptest::sample::select;

const NUM_FIELDS: [&str; 3] = ["o.n1", "o.n2", "c.n3"];
const STR_FIELDS: [&str; 2] = ["o.s1", "c.s2"];
const BOOL_FIELDS: [&str; 2] = ["o.b1", "c.b2"];

fn prop_schema() -> Schema {
    let mut s = Schema::new();
    for f in NUM_FIELDS {
        s = s.field(f, FieldType::Number);
    }
    for f in STR_FIELDS {
        s = s.field(f, FieldType::String);
    }
    for f in BOOL_FIELDS {
        s = s.field(f, FieldType::Bool);
    }
    s
}

/// Generated expression tree, printed with minimal parentheses.
#[derive(Debug, Clone)]
enum T {
    Num(Decimal),
    Str(String),
    Bool(bool),
    Null,
    Field(&'static str),
    Not(Box<T>),
    Neg(Box<T>),
    And(Box<T>, Box<T>),
    Or(Box<T>, Box<T>),
    Cmp(&'static str, Box<T>, Box<T>),
    In(bool, Box<T>, Vec<T>),
    Arith(&'static str, Box<T>, Box<T>),
    Call(&'static str, Vec<T>),
    Paren(Box<T>),
}

fn b(t: T) -> Box<T> {
    Box::new(t)
}

fn prec(t: &T) -> u8 {
    match t {
        T::Or(..) => 1,
        T::And(..) => 2,
        T::Not(_) => 3,
        T::Cmp(..) | T::In(..) => 4,
        T::Arith("+" | "-", ..) => 5,
        T::Arith(..) => 6,
        T::Neg(_) => 7,
        T::Num(v) if v.is_sign_negative() => 7,
        _ => 8,
    }
}

fn print_child(t: &T, min: u8, out: &mut String) {
    if prec(t) < min {
        out.push('(');
        print(t, out);
        out.push(')');
    } else {
        print(t, out);
    }
}

fn print(t: &T, out: &mut String) {
    match t {
        T::Num(v) => out.push_str(&v.to_string()),
        T::Str(s) => {
            out.push('\'');
            out.push_str(&s.replace('\\', "\\\\").replace('\'', "\\'"));
            out.push('\'');
        }
        T::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        T::Null => out.push_str("null"),
        T::Field(f) => out.push_str(f),
        T::Not(a) => {
            out.push_str("not ");
            print_child(a, 3, out);
        }
        T::Neg(a) => {
            out.push('-');
            print_child(a, 7, out);
        }
        T::And(l, r) => {
            print_child(l, 2, out);
            out.push_str(" and ");
            print_child(r, 3, out);
        }
        T::Or(l, r) => {
            print_child(l, 1, out);
            out.push_str(" or ");
            print_child(r, 2, out);
        }
        T::Cmp(op, l, r) => {
            print_child(l, 5, out);
            out.push_str(&format!(" {op} "));
            print_child(r, 5, out);
        }
        T::In(negated, l, items) => {
            print_child(l, 5, out);
            out.push_str(if *negated { " not in [" } else { " in [" });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print(item, out);
            }
            out.push(']');
        }
        T::Arith(op, l, r) => {
            let p = prec(t);
            print_child(l, p, out);
            out.push_str(&format!(" {op} "));
            print_child(r, p + 1, out);
        }
        T::Call(f, args) => {
            out.push_str(f);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print(a, out);
            }
            out.push(')');
        }
        T::Paren(a) => {
            out.push('(');
            print(a, out);
            out.push(')');
        }
    }
}

fn collect_fields(t: &T, out: &mut Vec<&'static str>) {
    match t {
        T::Field(f) => {
            if !out.contains(f) {
                out.push(f);
            }
        }
        T::Num(_) | T::Str(_) | T::Bool(_) | T::Null => {}
        T::Not(a) | T::Neg(a) | T::Paren(a) => collect_fields(a, out),
        T::And(l, r) | T::Or(l, r) | T::Cmp(_, l, r) | T::Arith(_, l, r) => {
            collect_fields(l, out);
            collect_fields(r, out);
        }
        T::In(_, l, items) => {
            collect_fields(l, out);
            items.iter().for_each(|i| collect_fields(i, out));
        }
        T::Call(_, args) => args.iter().for_each(|a| collect_fields(a, out)),
    }
}

// ---- reference interpreter (allocating, obviously-correct) ----

#[derive(Debug, Clone, PartialEq)]
enum R {
    Null,
    N(Decimal),
    S(String),
    B(bool),
}

#[derive(Debug, Clone)]
struct Data {
    n: [Option<Decimal>; 3],
    s: [Option<String>; 2],
    b: [Option<bool>; 2],
}

impl Data {
    fn lookup(&self, f: &str) -> R {
        if let Some(i) = NUM_FIELDS.iter().position(|x| *x == f) {
            return self.n[i].map_or(R::Null, R::N);
        }
        if let Some(i) = STR_FIELDS.iter().position(|x| *x == f) {
            return self.s[i].clone().map_or(R::Null, R::S);
        }
        let i = BOOL_FIELDS.iter().position(|x| *x == f).unwrap();
        self.b[i].map_or(R::Null, R::B)
    }

    fn values(&self) -> Vec<Value<'_>> {
        let mut v = Vec::new();
        v.extend(self.n.iter().map(|x| Value::from(*x)));
        v.extend(self.s.iter().map(|x| Value::from(x.as_deref())));
        v.extend(self.b.iter().map(|x| Value::from(*x)));
        v
    }
}

fn reference(t: &T, data: &Data) -> R {
    let ev = |x: &T| reference(x, data);
    match t {
        T::Num(v) => R::N(*v),
        T::Str(s) => R::S(s.clone()),
        T::Bool(v) => R::B(*v),
        T::Null => R::Null,
        T::Field(f) => data.lookup(f),
        T::Paren(a) => ev(a),
        T::Not(a) => match ev(a) {
            R::B(v) => R::B(!v),
            _ => R::Null,
        },
        T::Neg(a) => match ev(a) {
            R::N(v) => R::N(-v),
            _ => R::Null,
        },
        T::And(l, r) => match (ev(l), ev(r)) {
            (R::B(false), _) | (_, R::B(false)) => R::B(false),
            (R::B(true), R::B(true)) => R::B(true),
            _ => R::Null,
        },
        T::Or(l, r) => match (ev(l), ev(r)) {
            (R::B(true), _) | (_, R::B(true)) => R::B(true),
            (R::B(false), R::B(false)) => R::B(false),
            _ => R::Null,
        },
        T::Arith(op, l, r) => match (ev(l), ev(r)) {
            (R::N(a), R::N(b)) => {
                let v = match *op {
                    "+" => a.checked_add(b),
                    "-" => a.checked_sub(b),
                    "*" => a.checked_mul(b),
                    _ => a.checked_div(b),
                };
                v.map_or(R::Null, R::N)
            }
            _ => R::Null,
        },
        T::Cmp(op, l, r) => {
            let ord = match (ev(l), ev(r)) {
                (R::N(a), R::N(b)) => a.cmp(&b),
                (R::S(a), R::S(b)) => a.cmp(&b),
                (R::B(a), R::B(b)) => a.cmp(&b),
                _ => return R::Null,
            };
            R::B(match *op {
                "==" => ord.is_eq(),
                "!=" => ord.is_ne(),
                "<" => ord.is_lt(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        T::In(negated, l, items) => {
            let v = ev(l);
            if v == R::Null {
                return R::Null;
            }
            let found = items.iter().any(|i| ev(i) == v);
            R::B(found != *negated)
        }
        T::Call(f, args) => {
            let vals: Vec<R> = args.iter().map(ev).collect();
            match (*f, vals.as_slice()) {
                ("is_null", [v]) => R::B(*v == R::Null),
                ("abs", [R::N(a)]) => R::N(a.abs()),
                ("min", [R::N(a), R::N(b)]) => R::N(*a.min(b)),
                ("max", [R::N(a), R::N(b)]) => R::N(*a.max(b)),
                ("lower", [R::S(s)]) => R::S(s.to_lowercase()),
                ("contains", [R::S(h), R::S(n)]) => R::B(h.contains(n.as_str())),
                ("starts_with", [R::S(s), R::S(p)]) => R::B(s.starts_with(p.as_str())),
                _ => R::Null,
            }
        }
    }
}

// ---- generators ----

const DECIMALS: [&str; 11] = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "0.5",
    "-2.25",
    "7.5",
    "100",
    "0.001",
    "100000000000000000000",
];
const STRINGS: [&str; 12] = [
    "", "a", "A", "b", "ab", "aB", "Ab", "BA", "it's", "Ä", "ä", "x\\y",
];
const CMP_OPS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];

fn dec() -> impl Strategy<Value = Decimal> {
    select(DECIMALS.to_vec()).prop_map(d)
}

fn string() -> impl Strategy<Value = String> {
    select(STRINGS.to_vec()).prop_map(str::to_owned)
}

fn num_expr() -> BoxedStrategy<T> {
    let leaf = prop_oneof![
        dec().prop_map(T::Num),
        select(NUM_FIELDS.to_vec()).prop_map(T::Field)
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            1 => inner.clone().prop_map(|a| T::Neg(b(a))),
            6 => (select(vec!["+", "-", "*", "/"]), inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| T::Arith(op, b(l), b(r))),
            1 => (select(vec!["+", "*"]), inner.clone()).prop_map(|(op, l)| T::Arith(op, b(l), b(T::Null))),
            1 => inner.clone().prop_map(|a| T::Call("abs", vec![a])),
            1 => (select(vec!["min", "max"]), inner.clone(), inner.clone())
                .prop_map(|(f, l, r)| T::Call(f, vec![l, r])),
            1 => inner.prop_map(|a| T::Paren(b(a))),
        ]
    })
    .boxed()
}

fn str_expr() -> BoxedStrategy<T> {
    let leaf = prop_oneof![
        string().prop_map(T::Str),
        select(STR_FIELDS.to_vec()).prop_map(T::Field)
    ];
    let lower = |a: T| T::Call("lower", vec![a]);
    prop_oneof![
        3 => leaf.clone(),
        3 => leaf.clone().prop_map(lower),
        1 => leaf.clone().prop_map(move |a| lower(lower(a))),
        1 => leaf.prop_map(move |a| T::Paren(b(lower(a)))),
    ]
    .boxed()
}

fn bool_expr() -> BoxedStrategy<T> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(T::Bool),
        select(BOOL_FIELDS.to_vec()).prop_map(T::Field),
        (select(CMP_OPS.to_vec()), num_expr(), num_expr()).prop_map(|(op, l, r)| T::Cmp(
            op,
            b(l),
            b(r)
        )),
        (select(CMP_OPS.to_vec()), str_expr(), str_expr()).prop_map(|(op, l, r)| T::Cmp(
            op,
            b(l),
            b(r)
        )),
        (
            any::<bool>(),
            num_expr(),
            prop::collection::vec(dec().prop_map(T::Num), 0..4)
        )
            .prop_map(|(neg, l, items)| T::In(neg, b(l), items)),
        (
            any::<bool>(),
            str_expr(),
            prop::collection::vec(string().prop_map(T::Str), 0..4)
        )
            .prop_map(|(neg, l, items)| T::In(neg, b(l), items)),
        (
            select(vec!["contains", "starts_with"]),
            str_expr(),
            str_expr()
        )
            .prop_map(|(f, l, r)| T::Call(f, vec![l, r])),
        prop_oneof![num_expr(), str_expr(), Just(T::Null)]
            .prop_map(|a| T::Call("is_null", vec![a])),
    ];
    leaf.prop_recursive(4, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| T::Not(b(a))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| T::And(b(l), b(r))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| T::Or(b(l), b(r))),
            (select(vec!["==", "!="]), inner.clone(), inner.clone()).prop_map(|(op, l, r)| T::Cmp(
                op,
                b(l),
                b(r)
            )),
            (
                any::<bool>(),
                inner.clone(),
                prop::collection::vec(any::<bool>().prop_map(T::Bool), 0..3)
            )
                .prop_map(|(neg, l, items)| T::In(neg, b(l), items)),
            inner.clone().prop_map(|a| T::And(b(a), b(T::Null))),
            inner.clone().prop_map(|a| T::Or(b(T::Null), b(a))),
            Just(T::Not(b(T::Null))),
            inner.clone().prop_map(|a| T::Call("is_null", vec![a])),
            inner.prop_map(|a| T::Paren(b(a))),
        ]
    })
    .boxed()
}

fn data() -> impl Strategy<Value = Data> {
    let num = prop::option::weighted(0.9, dec()).boxed();
    let text = prop_oneof![string(), "[aAbBÄä'\\\\]{0,4}"];
    let s = prop::option::weighted(0.9, text).boxed();
    let bl = prop::option::weighted(0.8, any::<bool>());
    (
        [num.clone(), num.clone(), num],
        [s.clone(), s],
        [bl.clone(), bl],
    )
        .prop_map(|(n, s, b)| Data { n, s, b })
}

const SOUP: [&str; 44] = [
    "o.n1",
    "o.s1",
    "c.b2",
    "zz",
    "1",
    "0",
    "2.5",
    "-",
    "+",
    "*",
    "/",
    "(",
    ")",
    "[",
    "]",
    ",",
    "and",
    "or",
    "not",
    "in",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "'x'",
    "\"y\"",
    "'",
    "abs(",
    "min(",
    "lower(",
    "is_null(",
    "contains(",
    "true",
    "false",
    "null",
    "=",
    "!",
    "&",
    ".",
    "é",
    "\\",
    "99999999999999999999999999999",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compile_never_panics_on_arbitrary_text(src in any::<String>()) {
        let _ = Expr::compile(&src, &prop_schema());
    }

    #[test]
    fn compile_never_panics_on_token_soup(
        toks in prop::collection::vec(select(SOUP.to_vec()), 0..40),
        spaced in any::<bool>(),
        rows in prop::collection::vec(data(), 1..3),
    ) {
        let src = toks.join(if spaced { " " } else { "" });
        match Expr::compile(&src, &prop_schema()) {
            Ok(e) => {
                for r in &rows {
                    let _ = e.eval_bool(&r.values());
                }
            }
            Err(err) => {
                prop_assert!(err.column >= 1 && err.line >= 1);
                prop_assert!(err.offset <= src.len());
                prop_assert!(!err.message.is_empty());
            }
        }
    }

    #[test]
    fn compiled_arithmetic_matches_reference(
        tree in num_expr(),
        rows in prop::collection::vec(data(), 1..4),
    ) {
        let mut printed = String::new();
        print(&tree, &mut printed);
        let schema = prop_schema();
        for r in &rows {
            // `<tree> == <reference value>` must hold exactly (or `is_null(<tree>)`).
            let src = match reference(&tree, r) {
                R::N(v) => format!("{printed} == {v}"),
                R::Null => format!("is_null({printed})"),
                other => return Err(TestCaseError::fail(format!("reference gave {other:?}"))),
            };
            let expr = match Expr::compile(&src, &schema) {
                Ok(e) => e,
                Err(e) => return Err(TestCaseError::fail(format!("`{src}` did not compile: {e}"))),
            };
            prop_assert_eq!(expr.eval(&r.values()), Some(true), "`{}` on {:?}", src, r);
        }
    }

    #[test]
    fn string_operations_match_reference(
        op in select(vec!["contains", "starts_with", "==", "!=", "<", ">=", "in", "not in"]),
        l in str_expr(),
        r in str_expr(),
        extra in string(),
        rows in prop::collection::vec(data(), 1..4),
    ) {
        let tree = match op {
            "contains" | "starts_with" => T::Call(op, vec![l, r]),
            "in" | "not in" => match r {
                T::Str(_) => T::In(op == "not in", b(l), vec![r, T::Str(extra)]),
                _ => T::In(op == "not in", b(l), vec![T::Str(extra)]),
            },
            _ => T::Cmp(op, b(l), b(r)),
        };
        let mut src = String::new();
        print(&tree, &mut src);
        let expr = match Expr::compile(&src, &prop_schema()) {
            Ok(e) => e,
            Err(e) => return Err(TestCaseError::fail(format!("`{src}` did not compile: {e}"))),
        };
        for r in &rows {
            let expected = match reference(&tree, r) {
                R::B(v) => Some(v),
                _ => None,
            };
            prop_assert_eq!(expr.eval(&r.values()), expected, "`{}` on {:?}", src, r);
        }
    }

    #[test]
    fn compiled_evaluation_matches_reference(
        tree in bool_expr(),
        rows in prop::collection::vec(data(), 1..4),
    ) {
        let mut src = String::new();
        print(&tree, &mut src);
        prop_assume!(src.len() <= MAX_SOURCE_LEN);
        let schema = prop_schema();
        let expr = match Expr::compile(&src, &schema) {
            Ok(e) => e,
            Err(e) => return Err(TestCaseError::fail(format!("`{src}` did not compile: {e}"))),
        };
        let mut names = Vec::new();
        collect_fields(&tree, &mut names);
        let ids: Vec<FieldId> = names.iter().map(|n| schema.id(n).unwrap()).collect();
        prop_assert_eq!(expr.fields_used(), ids);
        for r in &rows {
            let expected = match reference(&tree, r) {
                R::B(v) => Some(v),
                R::Null => None,
                other => return Err(TestCaseError::fail(format!("reference gave {other:?} for `{src}`"))),
            };
            let values = r.values();
            prop_assert_eq!(expr.eval(&values), expected, "`{}` on {:?}", src, r);
            prop_assert_eq!(expr.eval_bool(&values), expected == Some(true));
        }
    }
}
