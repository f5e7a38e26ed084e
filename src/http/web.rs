//! The web app: the files of `web/`, embedded in the binary at build time and served by
//! the API's own server at `/` — no second server, no build step. Each file is one row of
//! [`ASSETS`] (path, content type, bytes); a test checks the table and the folder agree.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and connections
//! only from this origin; no inline script or style, no frames, no plugins) and an ETag;
//! browsers revalidate (`no-cache`) and get `304 Not Modified` while the binary is the same.
//!
//! Development: with `ORDER_COPILOT_WEB_DIR=web` the same files (only those in the table)
//! are read from that folder on each request, so edits show without a rebuild.

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;

/// One embedded file.
pub struct Asset {
    /// URL path (`/` for the page itself).
    pub url: &'static str,
    /// Path under `web/`.
    pub file: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes, as built into the binary.
    pub body: &'static [u8],
}

macro_rules! assets {
    ($( $url:literal => $file:literal, $ctype:expr; )*) => {
        &[ $( Asset {
            url: $url,
            file: $file,
            content_type: $ctype,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        } ),* ]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the web app.
pub const ASSETS: &[Asset] = assets! {
    "/" => "index.html", "text/html; charset=utf-8";
    "/app.css" => "app.css", "text/css; charset=utf-8";
    "/icon.svg" => "icon.svg", "image/svg+xml";
    "/js/main.js" => "js/main.js", JS;
    "/js/api.js" => "js/api.js", JS;
    "/js/dom.js" => "js/dom.js", JS;
    "/js/queue.js" => "js/queue.js", JS;
    "/js/case.js" => "js/case.js", JS;
    "/js/chat.js" => "js/chat.js", JS;
    "/js/approvals.js" => "js/approvals.js", JS;
    "/js/audit.js" => "js/audit.js", JS;
    "/js/intel.js" => "js/intel.js", JS;
    "/js/charts.js" => "js/charts.js", JS;
};

/// The Content-Security-Policy of every page and asset.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                format!("\"{}\"", hex::encode(&d[..8]))
            })
            .collect()
    })
}

/// The routes of the web app, one per asset.
pub fn routes() -> Router<AppState> {
    let dev_dir = std::env::var_os("ORDER_COPILOT_WEB_DIR").map(PathBuf::from);
    let mut r = Router::new();
    for (i, a) in ASSETS.iter().enumerate() {
        let dir = dev_dir.clone();
        r = r.route(
            a.url,
            get(move |headers: HeaderMap| async move { serve(i, dir.as_deref(), &headers) }),
        );
    }
    r
}

fn serve(i: usize, dev_dir: Option<&std::path::Path>, req: &HeaderMap) -> Response {
    let Some(a) = ASSETS.get(i) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(dir) = dev_dir {
        // Development: always fresh from disk, never cached.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return match std::fs::read(dir.join(a.file)) {
            Ok(body) => (headers, body).into_response(),
            Err(e) => {
                tracing::warn!(file = a.file, error = %e, "web asset unreadable from ORDER_COPILOT_WEB_DIR");
                (StatusCode::NOT_FOUND, headers).into_response()
            }
        };
    }
    let tag = etags().get(i).map(String::as_str).unwrap_or("\"\"");
    if let Ok(v) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, v);
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, a.body).into_response()
}
