//! Unit tests of the public API: compile, evaluate, and the error messages.

use super::*;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn schema() -> Schema {
    Schema::new()
        .field("order.amount_untaxed", FieldType::Number)
        .field("order.state", FieldType::String)
        .field("customer.tier", FieldType::String)
        .field("customer.has_credit_limit", FieldType::Bool)
        .field("line.discount_pct", FieldType::Number)
        .field("line.margin_pct", FieldType::Number)
        .field("product.category", FieldType::String)
        .field("line.hours_to_promise", FieldType::Number)
        .field("line.open_qty", FieldType::Number)
        .field("t.a", FieldType::Bool)
        .field("t.b", FieldType::Bool)
        .field("t.n", FieldType::Number)
        .field("t.m", FieldType::Number)
        .field("t.s", FieldType::String)
}

fn compile(src: &str) -> Expr {
    Expr::compile(src, &schema()).unwrap_or_else(|e| panic!("`{src}` failed: {e}"))
}

fn err(src: &str) -> String {
    match Expr::compile(src, &schema()) {
        Ok(_) => panic!("`{src}` compiled but should not"),
        Err(e) => e.to_string(),
    }
}

fn row(pairs: &[(&str, Value<'static>)]) -> Vec<Value<'static>> {
    let s = schema();
    let mut values = vec![Value::Null; s.len()];
    for (path, value) in pairs {
        values[s.id(path).unwrap().index()] = *value;
    }
    values
}

fn eval_with(src: &str, pairs: &[(&str, Value<'static>)]) -> Option<bool> {
    compile(src).eval(&row(pairs))
}

fn ev(src: &str) -> Option<bool> {
    eval_with(src, &[])
}

fn tri(v: Option<bool>) -> Value<'static> {
    v.into()
}

// ---- schema & api ----

#[test]
fn schema_ids_are_dense_in_insertion_order() {
    let s = Schema::new()
        .field("a.x", FieldType::Number)
        .field("a.y", FieldType::String)
        .field("a.x", FieldType::Bool);
    assert_eq!(s.id("a.x"), Some(FieldId(0)));
    assert_eq!(s.id("a.y"), Some(FieldId(1)));
    assert_eq!(s.id("a.z"), None);
    assert_eq!(s.len(), 2);
    let fields: Vec<_> = s.fields().collect();
    assert_eq!(
        fields,
        vec![("a.x", FieldType::Bool), ("a.y", FieldType::String)]
    );
    assert_eq!(s.name(FieldId(1)), Some("a.y"));
    assert_eq!(s.field_type(FieldId(7)), None);
}

#[test]
fn expr_is_clone_debug_send_sync() {
    fn assert_traits<T: Clone + fmt::Debug + Send + Sync + 'static>() {}
    assert_traits::<Expr>();
    assert_traits::<Schema>();
    assert_traits::<ExprError>();
}

#[test]
fn source_fields_used_and_display() {
    let src = "line.open_qty > 0 and order.state == 'sale' and line.open_qty < 10 or is_null(t.n)";
    let e = compile(src);
    assert_eq!(e.source(), src);
    assert_eq!(e.to_string(), src);
    let s = schema();
    let expected: Vec<FieldId> = ["line.open_qty", "order.state", "t.n"]
        .iter()
        .map(|p| s.id(p).unwrap())
        .collect();
    assert_eq!(e.fields_used(), expected);
    assert!(compile("1 < 2").fields_used().is_empty());
}

#[test]
fn product_examples() {
    let a = compile(
        "order.amount_untaxed > 50000 and customer.tier == 'C' and not customer.has_credit_limit",
    );
    let hit = row(&[
        ("order.amount_untaxed", Value::Num(d("60000"))),
        ("customer.tier", Value::Str("C")),
        ("customer.has_credit_limit", Value::Bool(false)),
    ]);
    assert!(a.eval_bool(&hit));
    let unknown_limit = row(&[
        ("order.amount_untaxed", Value::Num(d("60000"))),
        ("customer.tier", Value::Str("C")),
    ]);
    assert!(!a.eval_bool(&unknown_limit));
    assert_eq!(a.eval(&unknown_limit), None);

    let b = compile(
        "line.discount_pct >= 25 or (line.margin_pct < 8 and product.category in ['Fasteners', 'Safety'])",
    );
    assert!(b.eval_bool(&row(&[("line.discount_pct", Value::Num(d("25")))])));
    assert!(b.eval_bool(&row(&[
        ("line.discount_pct", Value::Num(d("3"))),
        ("line.margin_pct", Value::Num(d("7.99"))),
        ("product.category", Value::Str("Safety")),
    ])));
    assert!(!b.eval_bool(&row(&[
        ("line.discount_pct", Value::Num(d("3"))),
        ("line.margin_pct", Value::Num(d("7.99"))),
        ("product.category", Value::Str("Tools")),
    ])));
    // Null discount but the right-hand side is true: `null or true` = true.
    assert!(b.eval_bool(&row(&[
        ("line.margin_pct", Value::Num(d("1"))),
        ("product.category", Value::Str("Fasteners")),
    ])));

    let c = compile("line.hours_to_promise < 48 and line.open_qty > 0 and order.state == \"sale\"");
    assert!(c.eval_bool(&row(&[
        ("line.hours_to_promise", Value::Num(d("47.5"))),
        ("line.open_qty", Value::Num(d("1"))),
        ("order.state", Value::Str("sale")),
    ])));
    assert!(!c.eval_bool(&row(&[
        ("line.hours_to_promise", Value::Num(d("47.5"))),
        ("line.open_qty", Value::Num(d("0"))),
        ("order.state", Value::Str("sale")),
    ])));
}

// ---- precedence ----

#[test]
fn arithmetic_precedence_and_associativity() {
    assert_eq!(ev("1 + 2 * 3 == 7"), Some(true));
    assert_eq!(ev("(1 + 2) * 3 == 9"), Some(true));
    assert_eq!(ev("10 - 4 - 3 == 3"), Some(true));
    assert_eq!(ev("100 / 10 / 5 == 2"), Some(true));
    assert_eq!(ev("2 * 3 - 4 / 2 == 4"), Some(true));
    assert_eq!(ev("-2 * -3 == 6"), Some(true));
    assert_eq!(ev("- 2 - 3 == -5"), Some(true));
    assert_eq!(ev("--2 == 2"), Some(true));
    assert_eq!(ev("-(2 - 3) == 1"), Some(true));
    assert_eq!(ev("1 + 2 > 2 + 0"), Some(true));
    assert_eq!(ev("12.5 * 2 == 25"), Some(true));
    assert_eq!(ev("1.0 == 1"), Some(true));
}

#[test]
fn logical_precedence() {
    // `and` binds tighter than `or`.
    assert_eq!(ev("true or false and false"), Some(true));
    assert_eq!(ev("(true or false) and false"), Some(false));
    // `not` binds tighter than `and`/`or`...
    assert_eq!(ev("not true or true"), Some(true));
    assert_eq!(ev("not false and false"), Some(false));
    // ...but looser than comparisons.
    assert_eq!(ev("not 1 > 2"), Some(true));
    assert_eq!(ev("not 1 + 1 == 2"), Some(false));
    assert_eq!(ev("not not true"), Some(true));
    // comparisons bind tighter than `and`.
    assert_eq!(ev("1 < 2 and 2 < 3"), Some(true));
    assert_eq!(ev("(1 < 2) == (2 < 3)"), Some(true));
    assert_eq!(ev("(not true) == false"), Some(true));
}

// ---- three-valued logic & null ----

#[test]
fn three_valued_logic_tables() {
    let vals = [Some(true), Some(false), None];
    for a in vals {
        for b in vals {
            let r = [("t.a", tri(a)), ("t.b", tri(b))];
            let and = match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            let or = match (a, b) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            assert_eq!(eval_with("t.a and t.b", &r), and, "{a:?} and {b:?}");
            assert_eq!(eval_with("t.a or t.b", &r), or, "{a:?} or {b:?}");
            assert_eq!(eval_with("not t.a", &r), a.map(|x| !x), "not {a:?}");
            let eq = a.zip(b).map(|(x, y)| x == y);
            assert_eq!(eval_with("t.a == t.b", &r), eq);
            assert_eq!(eval_with("t.a != t.b", &r), eq.map(|x| !x));
        }
    }
    assert_eq!(ev("false and null"), Some(false));
    assert_eq!(ev("null and false"), Some(false));
    assert_eq!(ev("true or null"), Some(true));
    assert_eq!(ev("null or true"), Some(true));
    assert_eq!(ev("true and null"), None);
    assert_eq!(ev("not null"), None);
}

#[test]
fn null_propagates_through_comparisons_and_arithmetic() {
    let empty: [(&str, Value<'static>); 0] = [];
    for src in [
        "t.n > 5",
        "t.n <= 5",
        "t.n == t.n",
        "t.n + 1 > 0",
        "-t.n < 0",
        "abs(t.n) >= 0",
        "min(t.n, 1) < 10",
        "max(1, t.n) > 0",
        "t.s == 'x'",
        "lower(t.s) == 'x'",
        "contains(t.s, 'x')",
        "starts_with('abc', t.s)",
        "t.n in [1, 2]",
        "t.n not in [1, 2]",
        "t.s in ['a']",
        "t.s not in ['a']",
        "t.n + null > 0",
    ] {
        assert_eq!(eval_with(src, &empty), None, "{src}");
        // `not` of null stays null: the negated rule does not fire either.
        let negated = format!("not ({src})");
        assert_eq!(eval_with(&negated, &empty), None, "{negated}");
        assert!(!compile(&negated).eval_bool(&row(&empty)));
    }
}

#[test]
fn is_null_tests_missingness() {
    assert_eq!(ev("is_null(t.n)"), Some(true));
    assert_eq!(ev("is_null(t.s) and is_null(t.a)"), Some(true));
    assert_eq!(
        eval_with("is_null(t.n)", &[("t.n", Value::Num(d("0")))]),
        Some(false)
    );
    assert_eq!(
        eval_with("not is_null(t.s)", &[("t.s", Value::Str(""))]),
        Some(true)
    );
    assert_eq!(ev("is_null(null)"), Some(true));
    assert_eq!(ev("is_null(1 / 0)"), Some(true));
    assert_eq!(ev("is_null(t.n > 1)"), Some(true));
    assert_eq!(
        eval_with("is_null(t.n) or t.n > 10", &[("t.n", Value::Num(d("11")))]),
        Some(true)
    );
}

#[test]
fn division_by_zero_and_overflow_are_null() {
    assert_eq!(ev("1 / 0 > 0"), None);
    assert_eq!(ev("1 / 0 == 1 / 0"), None);
    assert_eq!(
        eval_with(
            "t.n / t.m > 0",
            &[("t.n", Value::Num(d("5"))), ("t.m", Value::Num(d("0")))]
        ),
        None
    );
    assert_eq!(ev("79228162514264337593543950335 + 1 > 0"), None);
    assert_eq!(ev("79228162514264337593543950335 * 2 > 0"), None);
    assert_eq!(ev("-79228162514264337593543950335 - 1 < 0"), None);
    assert_eq!(ev("-79228162514264337593543950335 < 0"), Some(true));
    let big = [
        ("t.n", Value::Num(Decimal::MAX)),
        ("t.m", Value::Num(Decimal::MAX)),
    ];
    assert_eq!(eval_with("t.n * t.m > 0", &big), None);
    assert_eq!(eval_with("t.n / 0.0000000001 > 0", &big), None);
    assert_eq!(eval_with("abs(-t.n) == t.n", &big), Some(true));
}

#[test]
fn wrongly_typed_record_values_read_as_null() {
    assert_eq!(eval_with("t.n > 1", &[("t.n", Value::Str("5"))]), None);
    assert_eq!(eval_with("t.s == 'x'", &[("t.s", Value::Bool(true))]), None);
    assert_eq!(eval_with("t.a", &[("t.a", Value::Num(d("1")))]), None);
    // A record shorter than the schema reads as null too.
    let short: Vec<Value<'static>> = Vec::new();
    assert_eq!(compile("is_null(t.s)").eval(&short), Some(true));
}

// ---- in / not in ----

#[test]
fn membership() {
    let n = |v: &str| [("t.n", Value::Num(d(v)))];
    assert_eq!(eval_with("t.n in [1, 2.5, -3]", &n("2.50")), Some(true));
    assert_eq!(eval_with("t.n in [1, 2.5, -3]", &n("-3")), Some(true));
    assert_eq!(eval_with("t.n in [1, 2.5, -3]", &n("3")), Some(false));
    assert_eq!(eval_with("t.n not in [1, 2.5, -3]", &n("3")), Some(true));
    assert_eq!(eval_with("t.n not in [1, 2.5]", &n("1")), Some(false));
    assert_eq!(eval_with("t.n + 1 in [2]", &n("1")), Some(true));
    assert_eq!(eval_with("t.n in []", &n("1")), Some(false));
    assert_eq!(eval_with("t.n not in []", &n("1")), Some(true));
    assert_eq!(eval_with("t.n in [1, 2,]", &n("2")), Some(true));
    let s = |v: &'static str| [("t.s", Value::Str(v))];
    assert_eq!(eval_with("t.s in ['a', \"b\"]", &s("b")), Some(true));
    assert_eq!(eval_with("t.s in ['a', 'b']", &s("B")), Some(false));
    assert_eq!(eval_with("lower(t.s) in ['a', 'b']", &s("B")), Some(true));
    assert_eq!(eval_with("t.s not in ['a', 'b']", &s("c")), Some(true));
    let b = |v: bool| [("t.a", Value::Bool(v))];
    assert_eq!(eval_with("t.a in [true]", &b(true)), Some(true));
    assert_eq!(eval_with("t.a in [true]", &b(false)), Some(false));
    assert_eq!(eval_with("t.a not in [true]", &b(false)), Some(true));
    // `not in` vs prefix `not`: `not t.n in [1]` is `not (t.n in [1])`.
    assert_eq!(eval_with("not t.n in [1]", &n("1")), Some(false));
}

// ---- functions ----

#[test]
fn functions() {
    assert_eq!(ev("abs(-3.5) == 3.5"), Some(true));
    assert_eq!(ev("abs(2) == 2"), Some(true));
    assert_eq!(ev("min(2, -1) == -1"), Some(true));
    assert_eq!(ev("max(2, -1) == 2"), Some(true));
    assert_eq!(ev("lower('AbC') == 'abc'"), Some(true));
    assert_eq!(ev("lower('ÄÖÜ') == 'äöü'"), Some(true));
    assert_eq!(ev("contains('Fasteners', 'ten')"), Some(true));
    assert_eq!(ev("contains('Fasteners', 'TEN')"), Some(false));
    assert_eq!(ev("contains('abc', '')"), Some(true));
    assert_eq!(ev("starts_with('Fasteners', 'Fast')"), Some(true));
    assert_eq!(ev("starts_with('Fast', 'Fasteners')"), Some(false));
    assert_eq!(ev("'b' > 'a' and 'a' < 'ab'"), Some(true));

    let s = |v: &'static str| [("t.s", Value::Str(v))];
    assert_eq!(
        eval_with("lower(t.s) == 'safety'", &s("SaFeTy")),
        Some(true)
    );
    assert_eq!(
        eval_with("lower(t.s) == lower('SAFETY')", &s("Safety")),
        Some(true)
    );
    assert_eq!(eval_with("lower(t.s) < 'b'", &s("B")), Some(false));
    assert_eq!(eval_with("lower(t.s) < 'c'", &s("B")), Some(true));
    assert_eq!(
        eval_with("contains(lower(t.s), 'ten')", &s("FASTENERS")),
        Some(true)
    );
    assert_eq!(
        eval_with("contains(lower(t.s), 'xyz')", &s("FASTENERS")),
        Some(false)
    );
    assert_eq!(eval_with("contains(lower(t.s), '')", &s("")), Some(true));
    assert_eq!(
        eval_with("contains(t.s, lower('ERS'))", &s("fasteners")),
        Some(true)
    );
    assert_eq!(
        eval_with("starts_with(lower(t.s), 'fast')", &s("FASTENERS")),
        Some(true)
    );
    assert_eq!(
        eval_with("starts_with(lower(t.s), 'fasx')", &s("FASTENERS")),
        Some(false)
    );
    assert_eq!(
        eval_with("contains(lower(t.s), 'straße')", &s("GROSSE STRAßE")),
        Some(true)
    );
}

#[test]
fn string_escapes() {
    assert_eq!(
        eval_with(r#"t.s == 'it\'s'"#, &[("t.s", Value::Str("it's"))]),
        Some(true)
    );
    assert_eq!(
        eval_with(
            r#"t.s == "say \"hi\"""#,
            &[("t.s", Value::Str("say \"hi\""))]
        ),
        Some(true)
    );
    assert_eq!(
        eval_with(r"t.s == 'a\\b'", &[("t.s", Value::Str("a\\b"))]),
        Some(true)
    );
    assert_eq!(
        eval_with(r"t.s == 'a\tb\n'", &[("t.s", Value::Str("a\tb\n"))]),
        Some(true)
    );
    assert_eq!(
        eval_with("t.s == \"it's\"", &[("t.s", Value::Str("it's"))]),
        Some(true)
    );
}

// ---- errors ----

#[test]
fn unknown_field_suggests_the_closest() {
    assert_eq!(
        err("order.amount_untax > 5"),
        "at column 1: unknown field `order.amount_untax` (did you mean `order.amount_untaxed`?)"
    );
    assert_eq!(
        err("line.open_qty > 0 and customer.teir == 'C'"),
        "at column 23: unknown field `customer.teir` (did you mean `customer.tier`?)"
    );
    assert_eq!(
        err("amount_untaxed > 5"),
        "at column 1: unknown field `amount_untaxed` (did you mean `order.amount_untaxed`?)"
    );
    assert_eq!(
        err("warehouse.zone == 'A'"),
        "at column 1: unknown field `warehouse.zone`"
    );
    assert_eq!(
        err("t.a AND t.b"),
        "at column 5: expected an operator (such as `and`, `or`, `==`, `<`, `in` or `+`) or the end of the expression, found `AND` (keywords are lowercase: write `and`)"
    );
    assert_eq!(
        err("t.a == TRUE"),
        "at column 8: unknown field `TRUE` (keywords are lowercase: write `true`)"
    );
    assert_eq!(
        err("lower == 'x'"),
        "at column 1: unknown field `lower` (`lower` is a function: call it as `lower(...)`)"
    );
    let empty = Schema::new();
    assert_eq!(
        Expr::compile("x.y", &empty).unwrap_err().to_string(),
        "at column 1: unknown field `x.y` (no fields are declared)"
    );
}

#[test]
fn unknown_function_and_arity() {
    assert_eq!(
        err("lowr(t.s) == 'a'"),
        "at column 1: unknown function `lowr` (did you mean `lower`?)"
    );
    assert_eq!(
        err("frobnicate(t.s)"),
        "at column 1: unknown function `frobnicate`; the functions are abs, min, max, is_null, lower, contains, starts_with"
    );
    assert_eq!(
        err("t.n > 0 and min(t.n) > 1"),
        "at column 13: `min` takes 2 arguments, but 1 was given"
    );
    assert_eq!(
        err("abs(1, 2) > 0"),
        "at column 1: `abs` takes 1 argument, but 2 were given"
    );
    assert_eq!(
        err("is_null()"),
        "at column 1: `is_null` takes 1 argument, but 0 were given"
    );
    assert_eq!(
        err("order.total(1) > 0"),
        "at column 1: unknown function `order.total`; the functions are abs, min, max, is_null, lower, contains, starts_with"
    );
}

#[test]
fn type_errors() {
    assert_eq!(
        err("customer.tier == 5"),
        "at column 15: cannot compare `customer.tier` (a string) with `5` (a number)"
    );
    assert_eq!(
        err("t.n < 'x'"),
        "at column 5: cannot compare `t.n` (a number) with `'x'` (a string)"
    );
    assert_eq!(
        err("t.n and t.a"),
        "at column 1: `and` combines conditions (bools), but `t.n` is a number"
    );
    assert_eq!(
        err("t.a or t.s"),
        "at column 8: `or` combines conditions (bools), but `t.s` is a string"
    );
    assert_eq!(
        err("t.s + 1 > 0"),
        "at column 1: `+` needs numbers on both sides, but `t.s` is a string"
    );
    assert_eq!(
        err("(t.n + 1) * t.a > 0"),
        "at column 13: `*` needs numbers on both sides, but `t.a` is a bool"
    );
    assert_eq!(
        err("-t.s == 'x'"),
        "at column 2: unary `-` needs a number, but `t.s` is a string"
    );
    assert_eq!(
        err("not t.n"),
        "at column 5: `not` needs a condition (bool), but `t.n` is a number"
    );
    assert_eq!(
        err("t.a < t.b"),
        "at column 5: `<` cannot order conditions (bools); only numbers and strings can be ordered"
    );
    assert_eq!(
        err("abs('x') > 0"),
        "at column 5: `abs` needs a number, but `'x'` is a string"
    );
    assert_eq!(
        err("lower(t.n) == 'x'"),
        "at column 7: `lower` needs a string, but `t.n` is a number"
    );
    assert_eq!(
        err("contains(t.s, 1)"),
        "at column 15: `contains` needs strings, but `1` is a number"
    );
    assert_eq!(
        err("t.s in ['a', 5]"),
        "at column 14: list element `5` is a number, but `t.s` is a string; list elements must have the type of the value being tested"
    );
    assert_eq!(
        err("t.n in [1, null]"),
        "at column 12: `null` in a list never matches; use `is_null(...)` to test for a missing value"
    );
    assert_eq!(
        err("t.n == null"),
        "at column 8: comparing with `null` using `==` never matches (the result is always null); use `is_null(...)` to test for a missing value"
    );
    assert_eq!(
        err("null in [1]"),
        "at column 1: testing `null` for list membership never matches (the result is always null); use `is_null(...)` to test for a missing value"
    );
}

#[test]
fn top_level_must_be_bool() {
    assert_eq!(
        err("order.amount_untaxed * 2"),
        "at column 1: the expression must be a condition (true or false), but it is a number; compare it with something, e.g. `... > 0`"
    );
    assert_eq!(
        err("lower(t.s)"),
        "at column 1: the expression must be a condition (true or false), but it is a string; compare it with something, e.g. `... == 'value'`"
    );
    assert_eq!(
        err("null"),
        "at column 1: the expression must be a condition (true or false), but it is `null`"
    );
    assert_eq!(ev("true"), Some(true));
    assert!(err("(null)").ends_with("but it is `null`"));
    assert_eq!(ev("null or false"), None);
}

#[test]
fn syntax_errors() {
    assert_eq!(
        err(""),
        "at column 1: the expression is empty; expected a condition such as `order.amount_untaxed > 1000`"
    );
    assert_eq!(
        err("   "),
        "at column 1: the expression is empty; expected a condition such as `order.amount_untaxed > 1000`"
    );
    assert_eq!(
        err("t.s == 'abc"),
        "at column 8: unterminated string: no closing ' for the string that starts here"
    );
    assert_eq!(
        err(r"t.s == 'a\qb'"),
        r#"at column 10: unknown escape `\q` in string; use `\\`, `\'`, `\"`, `\n` or `\t`"#
    );
    assert_eq!(
        err("t.n = 5"),
        "at column 5: found `=`; use `==` to compare values"
    );
    assert_eq!(
        err("t.a && t.b"),
        "at column 5: found `&`; use `and` to combine conditions"
    );
    assert_eq!(
        err("t.a || t.b"),
        "at column 5: found `|`; use `or` to combine conditions"
    );
    assert_eq!(
        err("!t.a"),
        "at column 1: found `!`; use `not` to negate a condition"
    );
    assert_eq!(
        err("t.n <> 5"),
        "at column 5: found `<>`; use `!=` for \"not equal\""
    );
    assert_eq!(err("t.n > 5 $"), "at column 9: unexpected character `$`");
    assert_eq!(
        err("t.s == 'é' and t.n > 5 €"),
        "at column 24: unexpected character `€`"
    );
    assert_eq!(
        err("(t.n > 5 and t.a"),
        "at column 17: expected `)` to close the `(` at column 1, found the end of the expression"
    );
    assert_eq!(
        err("t.n > 5)"),
        "at column 8: found `)` without a matching `(`"
    );
    assert_eq!(
        err("t.n > "),
        "at column 7: expected an operand (a field, a literal, a function call or `(`), found the end of the expression"
    );
    assert_eq!(
        err("t.n > and"),
        "at column 7: expected an operand (a field, a literal, a function call or `(`), found keyword `and`"
    );
    assert_eq!(
        err("t.a == not t.b"),
        "at column 8: expected an operand (a field, a literal, a function call or `(`), found keyword `not`; to negate part of a comparison, wrap it in parentheses: `(not ...)`"
    );
    assert_eq!(
        err("t.n > 5 t.a"),
        "at column 9: expected an operator (such as `and`, `or`, `==`, `<`, `in` or `+`) or the end of the expression, found `t.a`"
    );
    assert_eq!(
        err("1 < t.n < 3"),
        "at column 9: comparisons cannot be chained: found `<` after a complete comparison; combine them with `and`, e.g. `a < b and b < c`"
    );
    assert_eq!(
        err("t.n == 1 in [1]"),
        "at column 10: comparisons cannot be chained: found keyword `in` after a complete comparison; combine them with `and`, e.g. `a < b and b < c`"
    );
    assert_eq!(
        err("t.n in 1, 2"),
        "at column 8: expected `[` to start a list after `in`, found number `1`"
    );
    assert_eq!(
        err("t.n not in (1)"),
        "at column 12: expected `[` to start a list after `not in`, found `(`"
    );
    assert_eq!(
        err("t.n in [1 2]"),
        "at column 11: expected `,` or `]` in the list, found number `2`"
    );
    assert_eq!(
        err("t.n in [t.m]"),
        "at column 9: expected a literal (a number, a string, `true` or `false`) in the list, found `t.m`"
    );
    assert_eq!(
        err("min(1 2) > 0"),
        "at column 7: expected `,` or `)` after argument 1 of `min(...)`, found number `2`"
    );
    assert_eq!(
        err("t.n > 12."),
        "at column 10: expected digits after the decimal point in `12.`, found the end of the expression"
    );
    assert_eq!(
        err("t.n > 12abc"),
        "at column 7: invalid number `12abc`; names cannot start with a digit"
    );
    assert_eq!(
        err("order. amount > 1"),
        "at column 7: expected a field name after `order.`, found a space"
    );
    assert_eq!(
        err("t.n > 1234567890123456789012345678901234567890"),
        "at column 7: number `1234567890123456789012345678901234567890` does not fit in a decimal (at most 28 significant digits)"
    );
}

#[test]
fn error_positions_count_characters_and_lines() {
    let e = Expr::compile("t.s == 'ü' and bogus.f", &schema()).unwrap_err();
    assert_eq!(e.column, 16);
    assert_eq!(e.offset, 16);
    assert_eq!(e.line, 1);
    let e = Expr::compile("t.n > 1\n  and bogus.f", &schema()).unwrap_err();
    assert_eq!((e.line, e.column), (2, 7));
    assert_eq!(
        e.to_string(),
        "at line 2, column 7: unknown field `bogus.f`"
    );
    // Multi-line sources (TOML """ strings) otherwise compile fine.
    assert_eq!(ev("1 < 2\n\tand\r\n 2 < 3"), Some(true));
}

// ---- bounds ----

#[test]
fn length_limit() {
    let mut ok = String::from("t.n > 0");
    while ok.len() + " or t.n > 0".len() <= MAX_SOURCE_LEN {
        ok.push_str(" or t.n > 0");
    }
    ok.push_str(&" ".repeat(MAX_SOURCE_LEN - ok.len()));
    assert_eq!(ok.len(), MAX_SOURCE_LEN);
    assert!(Expr::compile(&ok, &schema()).is_ok());
    let too_long = format!("{ok} ");
    assert_eq!(
        err(&too_long),
        "at column 1: the expression is too long: 4097 bytes, the limit is 4096"
    );
}

#[test]
fn depth_limit() {
    let nested = |n: usize| format!("{}t.a{}", "(".repeat(n), ")".repeat(n));
    assert!(Expr::compile(&nested(MAX_DEPTH - 1), &schema()).is_ok());
    let msg = err(&nested(MAX_DEPTH));
    assert!(
        msg.ends_with("the expression is nested too deeply (more than 64 levels); simplify it"),
        "{msg}"
    );

    let nots = |n: usize| format!("{}t.a", "not ".repeat(n));
    assert!(Expr::compile(&nots(MAX_DEPTH - 1), &schema()).is_ok());
    assert!(err(&nots(MAX_DEPTH)).contains("nested too deeply"));

    let negs = |n: usize| format!("{}1 > 0", "-".repeat(n));
    assert!(Expr::compile(&negs(MAX_DEPTH - 2), &schema()).is_ok());
    assert!(err(&negs(MAX_DEPTH)).contains("nested too deeply"));

    let calls = |n: usize| format!("{}1{} > 0", "abs(".repeat(n), ")".repeat(n));
    assert!(Expr::compile(&calls(30), &schema()).is_ok());
    assert!(err(&calls(MAX_DEPTH)).contains("nested too deeply"));

    // Long left-deep operator chains count as nesting too...
    let sum = |n: usize| format!("t.n{} > 0", " + 1".repeat(n));
    assert!(Expr::compile(&sum(MAX_DEPTH - 3), &schema()).is_ok());
    assert!(err(&sum(MAX_DEPTH)).contains("nested too deeply"));
    // ...but `and`/`or` chains are flat and only bounded by the length limit.
    let ors = vec!["t.n == 1"; 300].join(" or ");
    assert!(ors.len() <= MAX_SOURCE_LEN);
    assert_eq!(eval_with(&ors, &[("t.n", Value::Num(d("1")))]), Some(true));
}

#[test]
fn adversarial_nesting_does_not_overflow_the_stack() {
    for src in [
        "(".repeat(100_000),
        "(".repeat(4000),
        "not ".repeat(1000),
        "-".repeat(4000),
        "abs(".repeat(1000),
        format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
        format!("t.n{}", "+1".repeat(2000)),
        format!("t.s{}", " in [1]".repeat(500)),
        "[".repeat(4000),
    ] {
        let _ = Expr::compile(&src, &schema());
    }
}

mod props;
