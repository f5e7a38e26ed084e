//! A typed Odoo client over HTTP or HTTPS (reqwest from [`crate::outbound`]: rustls with the
//! platform's roots, plus a private CA from [`ClientOptions::ca_file`] for installations
//! behind a company CA).
//!
//! `/jsonrpc` `execute_kw` for Odoo 16–18 and JSON-2 (`/json/2/<model>/<method>`, bearer API
//! key) for 19+, chosen by probing the server version. Every call has a timeout, goes
//! through a concurrency limit, and is retried with backoff on transport failures only —
//! and a call that changes data only when the request never left (a refused connection),
//! so a write is never sent twice. The API key never appears in logs or `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::wire::{self, OdooError, Record};

/// A secret that prints as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Base URL (`http://odoo.internal:8069`).
    pub url: String,
    /// Database name.
    pub db: String,
    /// Login of the integration user.
    pub login: String,
    /// Its API key (used as the password on `/jsonrpc`, as a bearer token on JSON-2).
    pub api_key: Secret,
}

/// Timeouts, retries and the concurrency limit.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Extra attempts after a transport failure.
    pub retries: u32,
    /// First backoff; doubles per attempt.
    pub backoff: Duration,
    /// A PEM file of extra CA certificates to trust for `https://` (a company CA), besides
    /// the platform's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            concurrency: 4,
            retries: 3,
            backoff: Duration::from_millis(200),
            ca_file: None,
        }
    }
}

/// Which API the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `/jsonrpc` `execute_kw` (Odoo 16–18; deprecated in 19).
    JsonRpc,
    /// `/json/2/<model>/<method>` (Odoo 19+).
    Json2,
}

/// The probed server version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    /// Major version (17 for `17.0-20240709`).
    pub major: u32,
    /// The full version string.
    pub text: String,
}

/// The positional parameter names of the methods we call, for JSON-2's named bodies.
pub(crate) fn arg_names(method: &str) -> &'static [&'static str] {
    match method {
        "search_read" | "search_count" | "search" => &["domain"],
        "read_group" => &["domain", "fields", "groupby"],
        "fields_get" => &["allfields"],
        "read" => &["ids", "fields"],
        "write" => &["ids", "vals"],
        "create" => &["vals_list"],
        "name_search" => &["name"],
        "activity_schedule" => &["ids", "act_type_xmlid"],
        _ => &["ids"],
    }
}

/// Methods that change nothing, safe to retry after a timeout.
fn is_read(method: &str) -> bool {
    matches!(
        method,
        "search_read"
            | "search_count"
            | "search"
            | "read"
            | "read_group"
            | "fields_get"
            | "name_search"
    )
}

/// A connected client.
pub struct OdooClient {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
    opts: ClientOptions,
    version: ServerVersion,
    protocol: Protocol,
    uid: i64,
    limit: Semaphore,
    calls: AtomicU64,
    next_id: AtomicU64,
}

impl fmt::Debug for OdooClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OdooClient")
            .field("url", &self.base)
            .field("db", &self.creds.db)
            .field("login", &self.creds.login)
            .field("api_key", &self.creds.api_key)
            .field("version", &self.version.text)
            .field("protocol", &self.protocol)
            .field("uid", &self.uid)
            .finish()
    }
}

/// What went wrong sending one request, and whether it certainly never reached the server.
struct SendError {
    error: OdooError,
    not_sent: bool,
}

impl OdooClient {
    /// Probe the version, pick the protocol, and log in (JSON-RPC) or identify the key's
    /// user (JSON-2).
    pub async fn connect(creds: Credentials, opts: ClientOptions) -> Result<OdooClient, OdooError> {
        let base = creds.url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(OdooError::Transport(format!(
                "the Odoo URL must start with http:// or https:// (got {})",
                wire::truncate(&base, 60)
            )));
        }
        let mut builder = crate::outbound::client_builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)));
        if let Some(path) = &opts.ca_file {
            builder = builder.tls_certs_merge(read_ca_file(path)?);
        }
        let http = builder.build().map_err(|e| {
            OdooError::Tls(format!(
                "cannot set up the HTTP client{}: {}",
                opts.ca_file
                    .as_ref()
                    .map(|p| format!(" with the CA file {}", p.display()))
                    .unwrap_or_default(),
                error_chain(&e)
            ))
        })?;
        let mut c = OdooClient {
            http,
            base,
            limit: Semaphore::new(opts.concurrency.max(1)),
            creds,
            opts,
            version: ServerVersion {
                major: 0,
                text: String::new(),
            },
            protocol: Protocol::JsonRpc,
            uid: 0,
            calls: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        };
        c.version = c.probe_version().await?;
        if c.version.major < 16 {
            return Err(OdooError::Decode(format!(
                "Odoo {} is not supported (16 or later)",
                c.version.text
            )));
        }
        if c.version.major >= 19 {
            c.protocol = Protocol::Json2;
            let me = c
                .search_read(
                    "res.users",
                    json!([["login", "=", c.creds.login]]),
                    &["id"],
                    None,
                    0,
                    Some(1),
                )
                .await?;
            c.uid = me
                .first()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    OdooError::AccessDenied(format!(
                        "the API key does not belong to the user {}",
                        c.creds.login
                    ))
                })?;
        } else {
            let uid = c
                .rpc(
                    "common",
                    "login",
                    json!([c.creds.db, c.creds.login, c.creds.api_key.expose()]),
                    true,
                )
                .await?;
            c.uid = uid.as_i64().ok_or_else(|| {
                OdooError::AccessDenied(format!(
                    "login {} with its API key was refused by database {}",
                    c.creds.login, c.creds.db
                ))
            })?;
        }
        tracing::info!(url = %c.base, db = %c.creds.db, login = %c.creds.login, version = %c.version.text, protocol = ?c.protocol, uid = c.uid, "connected to Odoo");
        Ok(c)
    }

    async fn probe_version(&self) -> Result<ServerVersion, OdooError> {
        match self.rpc("common", "version", json!([]), true).await {
            Ok(v) => parse_version(&v),
            Err(OdooError::Http { status: 404, .. }) => {
                // /jsonrpc is gone (Odoo 22+): JSON-2 servers answer GET /web/version.
                let v = self.get_json("/web/version").await?;
                parse_version(&v)
            }
            Err(e) => Err(e),
        }
    }

    /// The server version.
    pub fn version(&self) -> &ServerVersion {
        &self.version
    }

    /// The protocol in use.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The integration user's id.
    pub fn uid(&self) -> i64 {
        self.uid
    }

    /// The base URL (no credentials in it).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The database name.
    pub fn db(&self) -> &str {
        &self.creds.db
    }

    /// HTTP requests sent so far (retries included).
    pub fn rpc_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Call `model.method` with positional `args` and keyword `kwargs`.
    pub async fn call(
        &self,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, OdooError> {
        let read = is_read(method);
        match self.protocol {
            Protocol::JsonRpc => {
                let params = json!([
                    self.creds.db,
                    self.uid,
                    self.creds.api_key.expose(),
                    model,
                    method,
                    args,
                    kwargs
                ]);
                self.rpc("object", "execute_kw", params, read).await
            }
            Protocol::Json2 => {
                let mut body = kwargs;
                for (name, v) in arg_names(method).iter().zip(args) {
                    body.insert((*name).to_string(), v);
                }
                self.json2(model, method, Value::Object(body), read).await
            }
        }
    }

    /// `search_read` of one page.
    pub async fn search_read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        order: Option<&str>,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<Record>, OdooError> {
        let mut kw = Map::new();
        kw.insert("fields".into(), json!(fields));
        if offset > 0 {
            kw.insert("offset".into(), json!(offset));
        }
        if let Some(l) = limit {
            kw.insert("limit".into(), json!(l));
        }
        if let Some(o) = order {
            kw.insert("order".into(), json!(o));
        }
        wire::records(self.call(model, "search_read", vec![domain], kw).await?)
    }

    /// Every record matching `domain`, read in pages of `page` ordered by id (stable under
    /// concurrent inserts, which land after the last page).
    pub async fn search_read_all(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        page: usize,
    ) -> Result<Vec<Record>, OdooError> {
        let page = page.max(1);
        let mut out = Vec::new();
        loop {
            let batch = self
                .search_read(
                    model,
                    domain.clone(),
                    fields,
                    Some("id"),
                    out.len(),
                    Some(page),
                )
                .await?;
            let n = batch.len();
            out.extend(batch);
            if n < page {
                return Ok(out);
            }
        }
    }

    /// The id of the first record matching `domain`, if any.
    pub async fn first_id(&self, model: &str, domain: Value) -> Result<Option<i64>, OdooError> {
        let rows = self
            .search_read(model, domain, &["id"], None, 0, Some(1))
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_i64))
    }

    /// `search_count`.
    pub async fn search_count(&self, model: &str, domain: Value) -> Result<i64, OdooError> {
        let v = self
            .call(model, "search_count", vec![domain], Map::new())
            .await?;
        v.as_i64()
            .ok_or_else(|| OdooError::Decode("search_count did not return a number".into()))
    }

    /// `read_group` (rows carry `__count` when `lazy` is false).
    pub async fn read_group(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        groupby: &[&str],
        lazy: bool,
    ) -> Result<Vec<Record>, OdooError> {
        let mut kw = Map::new();
        kw.insert("lazy".into(), json!(lazy));
        wire::records(
            self.call(
                model,
                "read_group",
                vec![domain, json!(fields), json!(groupby)],
                kw,
            )
            .await?,
        )
    }

    /// `fields_get`: the fields this user may read, with their type and relation.
    pub async fn fields_get(&self, model: &str) -> Result<Map<String, Value>, OdooError> {
        let mut kw = Map::new();
        kw.insert("attributes".into(), json!(["type", "relation", "string"]));
        match self.call(model, "fields_get", vec![], kw).await? {
            Value::Object(o) => Ok(o),
            _ => Err(OdooError::Decode(
                "fields_get did not return an object".into(),
            )),
        }
    }

    /// `read` of records by id (missing ids are simply absent).
    pub async fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: &[&str],
    ) -> Result<Vec<Record>, OdooError> {
        let mut kw = Map::new();
        kw.insert("fields".into(), json!(fields));
        wire::records(self.call(model, "read", vec![json!(ids)], kw).await?)
    }

    /// `create` one record; its id.
    pub async fn create(&self, model: &str, vals: Value) -> Result<i64, OdooError> {
        let v = self.call(model, "create", vec![vals], Map::new()).await?;
        wire::record_id(&v)
            .or_else(|| {
                v.as_array()
                    .and_then(|a| a.first())
                    .and_then(wire::record_id)
            })
            .ok_or_else(|| OdooError::Decode(format!("create returned {v}")))
    }

    /// `write` values on records.
    pub async fn write(&self, model: &str, ids: &[i64], vals: Value) -> Result<(), OdooError> {
        let v = self
            .call(model, "write", vec![json!(ids), vals], Map::new())
            .await?;
        if v == Value::Bool(true) {
            Ok(())
        } else {
            Err(OdooError::Decode(format!("write returned {v}")))
        }
    }

    async fn rpc(
        &self,
        service: &str,
        method: &str,
        args: Value,
        retry_on_timeout: bool,
    ) -> Result<Value, OdooError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "method": "call", "params": {"service": service, "method": method, "args": args}, "id": id});
        let url = format!("{}/jsonrpc", self.base);
        let v = self
            .with_retries(method, retry_on_timeout, || async {
                let resp = self.send(self.http.post(&url).json(&body)).await?;
                let status = resp.status().as_u16();
                if status != 200 {
                    return Err(SendError {
                        error: OdooError::Http {
                            status,
                            body: wire::truncate(&resp.text().await.unwrap_or_default(), 200),
                        },
                        not_sent: false,
                    });
                }
                resp.json::<Value>().await.map_err(|e| SendError {
                    error: OdooError::Decode(e.to_string()),
                    not_sent: false,
                })
            })
            .await?;
        wire::jsonrpc_result(v)
    }

    async fn json2(
        &self,
        model: &str,
        method: &str,
        body: Value,
        retry_on_timeout: bool,
    ) -> Result<Value, OdooError> {
        let url = format!("{}/json/2/{model}/{method}", self.base);
        self.with_retries(method, retry_on_timeout, || async {
            let req = self
                .http
                .post(&url)
                .bearer_auth(self.creds.api_key.expose())
                .header("X-Odoo-Database", &self.creds.db)
                .json(&body);
            let resp = self.send(req).await?;
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 200 {
                Ok(v)
            } else {
                Err(SendError {
                    error: wire::json2_error(status, &v),
                    not_sent: false,
                })
            }
        })
        .await
    }

    async fn get_json(&self, path: &str) -> Result<Value, OdooError> {
        let url = format!("{}{path}", self.base);
        self.with_retries("version", true, || async {
            let resp = self.send(self.http.get(&url)).await?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(SendError {
                    error: OdooError::Http {
                        status,
                        body: String::new(),
                    },
                    not_sent: false,
                });
            }
            resp.json::<Value>().await.map_err(|e| SendError {
                error: OdooError::Decode(e.to_string()),
                not_sent: false,
            })
        })
        .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        let _permit = self.limit.acquire().await.map_err(|_| SendError {
            error: OdooError::Transport("client closed".into()),
            not_sent: true,
        })?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        req.send().await.map_err(|e| {
            let not_sent = e.is_connect();
            // reqwest errors name the URL, which carries no credentials here.
            let error = if e.is_timeout() {
                OdooError::Timeout(self.opts.timeout.as_secs())
            } else if is_tls_failure(&e) {
                let hint = if self.opts.ca_file.is_some() {
                    "is the CA file the one that signed Odoo's certificate?"
                } else {
                    "a certificate from a private CA needs ODOO_CA_FILE (--odoo-ca-file)"
                };
                OdooError::Tls(format!("{} ({hint})", error_chain(&e)))
            } else {
                OdooError::Transport(error_chain(&e))
            };
            SendError { error, not_sent }
        })
    }

    async fn with_retries<F, Fut>(
        &self,
        what: &str,
        retry_on_timeout: bool,
        mut attempt: F,
    ) -> Result<Value, OdooError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Value, SendError>>,
    {
        let mut n = 0;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(SendError { error, not_sent }) => {
                    let retry = error.is_transient() && (not_sent || retry_on_timeout);
                    if !retry || n >= self.opts.retries {
                        return Err(error);
                    }
                    let wait = self.opts.backoff * 2u32.saturating_pow(n);
                    tracing::warn!(method = what, attempt = n + 1, error = %error, wait_ms = wait.as_millis() as u64, "Odoo call failed; retrying");
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
            }
        }
    }
}

/// The CA certificates in a PEM file, with errors that name the file.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, OdooError> {
    let pem = std::fs::read(path)
        .map_err(|e| OdooError::Tls(format!("cannot read the CA file {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        OdooError::Tls(format!(
            "the CA file {} is not valid PEM: {}",
            path.display(),
            error_chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(OdooError::Tls(format!(
            "the CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// An error and its sources, `: `-separated (reqwest's own text stops at "error sending
/// request", hiding the cause). `io::Error` hides a wrapped error from `source()` but
/// prints it, so a TLS failure's rustls text still shows.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

/// Whether the request failed in the TLS handshake (an untrusted certificate, a name
/// mismatch, no common protocol) rather than on the network: retrying cannot help.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return true;
        }
        // The rustls error arrives as io::Error(Other, io::Error(InvalidData, rustls::Error)),
        // and io::Error's source() skips the error it wraps: unwrap those by hand.
        next = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    false
}

/// Parse `common.version` (`server_version_info: [17,0,0,"final",0,""]`) or `/web/version`
/// (`version_info`).
fn parse_version(v: &Value) -> Result<ServerVersion, OdooError> {
    let info = v
        .get("server_version_info")
        .or_else(|| v.get("version_info"))
        .and_then(Value::as_array)
        .ok_or_else(|| OdooError::Decode("no server_version_info in the version answer".into()))?;
    let major = match info.first() {
        Some(Value::Number(n)) => n.as_u64().map(|m| m as u32),
        // SaaS builds say "saas~17"; keep the digits.
        Some(Value::String(s)) => s
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok(),
        _ => None,
    }
    .ok_or_else(|| OdooError::Decode("unreadable server_version_info".into()))?;
    let text = v
        .get("server_version")
        .or_else(|| v.get("version"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(ServerVersion { major, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials {
            url: "http://x".into(),
            db: "d".into(),
            login: "bot".into(),
            api_key: Secret::new("very-secret-key"),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("very-secret-key"), "{s}");
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn versions() {
        let v = parse_version(&json!({"server_version": "17.0-20240709", "server_version_info": [17, 0, 0, "final", 0, ""]})).unwrap_or_else(|_| ServerVersion { major: 0, text: String::new() });
        assert_eq!(v.major, 17);
        let v = parse_version(
            &json!({"version": "saas~18.2", "version_info": ["saas~18", 2, 0, "final", 0, ""]}),
        );
        assert_eq!(v.map(|v| v.major), Ok(18));
        assert!(parse_version(&json!({})).is_err());
    }

    #[test]
    fn json2_names() {
        assert_eq!(arg_names("read_group"), &["domain", "fields", "groupby"]);
        assert_eq!(arg_names("message_post"), &["ids"]);
        assert!(is_read("search_read") && !is_read("write"));
    }
}
