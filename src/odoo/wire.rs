//! Odoo's wire format, decoded once: `false` for empty values, `[id, "name"]` many2one
//! pairs, naive-UTC datetime strings, floats for money, recordsets serialised as
//! `"model(id,)"`, and error objects (HTTP 200 with `error.data.name` on `/jsonrpc`, HTTP
//! 4xx/5xx with a top-level `name` on JSON-2). Nothing outside [`crate::odoo`] sees these
//! shapes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Map, Value};

/// One record as Odoo sends it.
pub type Record = Map<String, Value>;

/// What went wrong talking to Odoo. Messages are the server's own text (safe to show: they
/// never contain our credentials) or a description of the transport failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OdooError {
    /// Bad login or API key (`odoo.exceptions.AccessDenied`, or `login` answering `false`).
    #[error("Odoo refused the credentials: {0}")]
    AccessDenied(String),
    /// The user lacks the rights for a model, record or field (`odoo.exceptions.AccessError`).
    #[error("Odoo access error: {0}")]
    AccessError(String),
    /// A constraint refused the change (`ValidationError`).
    #[error("Odoo validation error: {0}")]
    Validation(String),
    /// A business rule refused the operation (`UserError`, e.g. an unknown model).
    #[error("Odoo refused: {0}")]
    UserError(String),
    /// The record does not exist (`MissingError`).
    #[error("Odoo record missing: {0}")]
    MissingRecord(String),
    /// A bad field name or domain (`builtins.ValueError`).
    #[error("Odoo rejected the query: {0}")]
    BadQuery(String),
    /// The method does not exist or is private (`builtins.AttributeError`).
    #[error("Odoo has no such method: {0}")]
    UnknownMethod(String),
    /// The database does not exist (`psycopg2.OperationalError`).
    #[error("Odoo database unavailable: {0}")]
    UnknownDatabase(String),
    /// Any other server-side exception: its class name and message.
    #[error("Odoo error {name}: {message}")]
    Server {
        /// Python exception class.
        name: String,
        /// Its message.
        message: String,
    },
    /// The request did not reach Odoo or its answer did not come back.
    #[error("cannot reach Odoo: {0}")]
    Transport(String),
    /// TLS could not be set up: an unreadable or invalid CA file, or a handshake that
    /// failed (an untrusted certificate, a name mismatch). Not retried.
    #[error("TLS with Odoo failed: {0}")]
    Tls(String),
    /// No answer within the timeout.
    #[error("Odoo did not answer within {0} s")]
    Timeout(u64),
    /// An HTTP status without an Odoo error body.
    #[error("Odoo answered HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// An answer whose shape we do not understand.
    #[error("unexpected answer from Odoo: {0}")]
    Decode(String),
}

impl OdooError {
    /// Map a server exception class name and message to a typed error.
    pub fn from_server(name: &str, message: &str) -> OdooError {
        let m = message.trim().to_string();
        match name {
            "odoo.exceptions.AccessDenied" => OdooError::AccessDenied(m),
            "odoo.exceptions.AccessError" => OdooError::AccessError(m),
            "odoo.exceptions.ValidationError" => OdooError::Validation(m),
            "odoo.exceptions.UserError" => OdooError::UserError(m),
            "odoo.exceptions.MissingError" => OdooError::MissingRecord(m),
            "builtins.ValueError" => OdooError::BadQuery(m),
            "builtins.AttributeError" => OdooError::UnknownMethod(m),
            "psycopg2.OperationalError" => OdooError::UnknownDatabase(m),
            _ => OdooError::Server {
                name: name.to_string(),
                message: m,
            },
        }
    }

    /// Whether a retry may help (the request may not have reached Odoo, or Odoo was busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, OdooError::Transport(_) | OdooError::Timeout(_))
            || matches!(self, OdooError::Http { status, .. } if matches!(status, 502..=504))
    }
}

/// Decode a `/jsonrpc` answer: the `result`, or the typed error of its `error` object.
pub fn jsonrpc_result(body: Value) -> Result<Value, OdooError> {
    let Value::Object(mut o) = body else {
        return Err(OdooError::Decode("the answer is not a JSON object".into()));
    };
    if let Some(err) = o.remove("error") {
        return Err(error_object(&err));
    }
    match o.remove("result") {
        Some(v) => Ok(v),
        // Odoo leaves `result` out when the method returned None (seen on the real 17 and
        // 18 servers, e.g. `stock.quant.action_apply_inventory`): a JSON-RPC answer with
        // neither is a successful call with nothing to say.
        None if o.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => Ok(Value::Null),
        None => Err(OdooError::Decode(
            "the answer has neither result nor error".into(),
        )),
    }
}

/// The typed error of a JSON-RPC `error` object (`{"code","message","data":{"name","message"}}`).
pub fn error_object(err: &Value) -> OdooError {
    let data = &err["data"];
    match (data["name"].as_str(), data["message"].as_str()) {
        (Some(name), Some(message)) => OdooError::from_server(name, message),
        _ => OdooError::Server {
            name: "unknown".into(),
            message: err["message"]
                .as_str()
                .unwrap_or("Odoo Server Error")
                .to_string(),
        },
    }
}

/// The typed error of a JSON-2 error body (`{"name","message","arguments","context","debug"}`).
pub fn json2_error(status: u16, body: &Value) -> OdooError {
    match (body["name"].as_str(), body["message"].as_str()) {
        (Some(name), Some(message)) => OdooError::from_server(name, message),
        _ => OdooError::Http {
            status,
            body: truncate(&body.to_string(), 200),
        },
    }
}

/// At most `n` bytes of `s`, cut at a character boundary.
pub fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

static FALSE: Value = Value::Bool(false);

/// A field of a record; `false` (Odoo's empty) when the record does not carry it. Indexing a
/// map with `[]` would panic on a missing key.
pub fn get<'a>(r: &'a Record, field: &str) -> &'a Value {
    r.get(field).unwrap_or(&FALSE)
}

/// A many2one value: `[id, "name"]` (or `[id, false]`), `false` for empty. Webhook payloads
/// send many2one values as a bare id, which is accepted too.
pub fn m2o(v: &Value) -> Option<(i64, Option<&str>)> {
    match v {
        Value::Array(a) if !a.is_empty() => a[0]
            .as_i64()
            .map(|id| (id, a.get(1).and_then(Value::as_str))),
        Value::Number(n) => n.as_i64().map(|id| (id, None)),
        _ => None,
    }
}

/// The id of a many2one value.
pub fn m2o_id(v: &Value) -> Option<i64> {
    m2o(v).map(|(id, _)| id)
}

/// A string, `None` for Odoo's `false` (and for an empty string).
pub fn opt_str(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// A number as a decimal (`false` and missing are zero, as Odoo means them).
pub fn dec(v: &Value) -> Decimal {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(Decimal::from)
            .or_else(|| n.as_f64().and_then(Decimal::from_f64))
            .map(|d| d.normalize())
            .unwrap_or(Decimal::ZERO),
        _ => Decimal::ZERO,
    }
}

/// An integer (`false` is `None`).
pub fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// A list of ids (one2many / many2many); `false` is empty.
pub fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// A datetime (`"YYYY-MM-DD HH:MM:SS"`, naive UTC) or date (`"YYYY-MM-DD"`, midnight UTC).
pub fn datetime(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Format a time the way Odoo writes datetimes.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The id of a created or returned record: a bare integer, or a recordset serialised as a
/// string (`"mail.message(407,)"`), which methods wrapped by automations return.
pub fn record_id(v: &Value) -> Option<i64> {
    if let Some(id) = v.as_i64() {
        return Some(id);
    }
    let s = v.as_str()?;
    let inner = s.split_once('(')?.1.strip_suffix(')')?;
    inner.split(',').next()?.trim().parse().ok()
}

/// Records of a `search_read`/`read` answer.
pub fn records(v: Value) -> Result<Vec<Record>, OdooError> {
    let Value::Array(items) = v else {
        return Err(OdooError::Decode("expected a list of records".into()));
    };
    items
        .into_iter()
        .map(|x| match x {
            Value::Object(o) => Ok(o),
            _ => Err(OdooError::Decode("expected a record object".into())),
        })
        .collect()
}

/// Plain text of an HTML body (tags dropped, the common entities decoded).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Keyword arguments of `message_post` for an HTML body: a comment (notifies followers) or
/// an internal note. `body_is_html` keeps Odoo from escaping the HTML.
pub fn message_post_kwargs(body_html: &str, note: bool) -> Map<String, Value> {
    let mut kw = Map::new();
    kw.insert("body".into(), Value::String(body_html.to_string()));
    kw.insert("message_type".into(), Value::String("comment".into()));
    let subtype = if note {
        "mail.mt_note"
    } else {
        "mail.mt_comment"
    };
    kw.insert("subtype_xmlid".into(), Value::String(subtype.into()));
    kw.insert("body_is_html".into(), Value::Bool(true));
    kw
}

/// Escape text for an HTML body.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values() {
        assert_eq!(
            m2o(&json!([10, "Deco Addict"])),
            Some((10, Some("Deco Addict")))
        );
        assert_eq!(m2o(&json!([406, false])), Some((406, None)));
        assert_eq!(m2o(&json!(false)), None);
        assert_eq!(m2o(&json!(43)), Some((43, None)));
        assert_eq!(opt_str(&json!(false)), None);
        assert_eq!(dec(&json!(2576.0)).to_string(), "2576");
        assert_eq!(dec(&json!(79.8)).to_string(), "79.8");
        assert_eq!(
            datetime(&json!("2026-01-08 09:30:00")).map(format_datetime),
            Some("2026-01-08 09:30:00".to_string())
        );
        assert!(datetime(&json!("2026-12-26")).is_some());
        assert_eq!(datetime(&json!(false)), None);
        assert_eq!(record_id(&json!("mail.message(407,)")), Some(407));
        assert_eq!(record_id(&json!(460)), Some(460));
        assert_eq!(record_id(&json!("nonsense")), None);
    }

    #[test]
    fn errors() {
        let e = jsonrpc_result(
            json!({"jsonrpc":"2.0","id":1,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.AccessDenied","message":"Access Denied"}}}),
        );
        assert_eq!(e, Err(OdooError::AccessDenied("Access Denied".into())));
        assert_eq!(
            jsonrpc_result(json!({"id":1,"result":false})),
            Ok(json!(false))
        );
        // A method that returned None (the real server omits `result`).
        assert_eq!(
            jsonrpc_result(json!({"jsonrpc":"2.0","id":1})),
            Ok(Value::Null)
        );
        assert!(matches!(
            jsonrpc_result(json!({"id":1})),
            Err(OdooError::Decode(_))
        ));
        assert!(matches!(
            json2_error(
                404,
                &json!({"name":"odoo.exceptions.MissingError","message":"gone"})
            ),
            OdooError::MissingRecord(_)
        ));
        assert!(OdooError::Timeout(5).is_transient());
        assert!(!OdooError::AccessError("x".into()).is_transient());
    }

    #[test]
    fn html() {
        assert_eq!(
            html_to_text("<p>qty &lt; 5 &amp; late</p>"),
            "qty < 5 & late"
        );
        assert_eq!(escape_html("a<b & c"), "a&lt;b &amp; c");
    }
}
