//! The HTTP API (axum): thin handlers that extract, call one [`App`] use-case and map the
//! result. Request ids, tracing spans, body limits, timeouts, metrics and authentication
//! are layers here; status codes are chosen only in [`error`].
//!
//! Stable paths: `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /api/openapi.json`,
//! the web app at `/` ([`web`]), and everything under `/api/` (bearer token required, 401
//! without one). The route table
//! [`ROUTES`] is the single list that builds the OpenAPI document; a test checks every
//! route answers.

mod chat;
pub mod error;
mod handlers;
mod metrics;
mod openapi;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::app::limits::RateClass;
use crate::app::{App, Authenticated, User};
use crate::copilot::Copilot;
use error::{ApiError, REQUEST_ID};
pub use metrics::Metrics;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Use-cases.
    pub app: Arc<App>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// The copilot behind `/api/chat`.
    pub copilot: Arc<Copilot>,
}

impl AppState {
    /// State over an app and its copilot, with fresh metrics.
    pub fn new(app: Arc<App>, copilot: Arc<Copilot>) -> AppState {
        AppState {
            app,
            metrics: Arc::new(Metrics::default()),
            copilot,
        }
    }
}

/// One documented route: method, path (axum syntax), summary, whether it needs a token.
pub struct RouteDoc {
    /// HTTP method.
    pub method: &'static str,
    /// Path.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Needs `Authorization: Bearer …`.
    pub auth: bool,
}

/// Every route of the API.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "get",
        path: "/healthz",
        summary: "Liveness: the process answers",
        auth: false,
    },
    RouteDoc {
        method: "get",
        path: "/readyz",
        summary: "Readiness: database reachable and a scan completed",
        auth: false,
    },
    RouteDoc {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        auth: false,
    },
    RouteDoc {
        method: "get",
        path: "/api/openapi.json",
        summary: "This document",
        auth: false,
    },
    RouteDoc {
        method: "get",
        path: "/api/me",
        summary: "The signed-in user, role and permissions",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/exceptions",
        summary: "The ranked exception queue (filters: status (active, all, or one status), kind, owner, severity, warehouse, tier, customer (name contains), order, product, ids (comma-separated, at most 100), opened_from and opened_to (dates, inclusive); sort: score, revenue, oldest, updated; limit (at most 500), offset)",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/exceptions/facets",
        summary: "How many active cases each value of the queue's filters (kind, owner, severity, warehouse, tier) has",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/cases/{id}",
        summary: "One case with evidence, recommendations, approvals and history",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/cases/{id}/acknowledge",
        summary: "Take ownership of a case",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/cases/{id}/resolve",
        summary: "Resolve a case with an outcome",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/cases/{id}/dismiss",
        summary: "Dismiss a case with a reason",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/cases/{id}/actions",
        summary: "Request one of the case's recommended actions (creates an approval request); `message` is the exact text sent when the action contacts a customer (required) or supplier",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/approvals",
        summary: "Approval requests (status, mine=true for the caller's inbox)",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/approvals/{id}",
        summary: "One approval request",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/approvals/{id}/approve",
        summary: "Approve: answers at once (`approved`, or `pending` while more approvers are needed); the server's worker then executes the action exactly once (`executing` → `executed` or `failed`, in `execution` and the case history)",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/approvals/{id}/reject",
        summary: "Reject",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/audit",
        summary: "Search the audit log (kind, actor, case_id, conversation_id, since, after_seq, limit)",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/audit/verify",
        summary: "Verify the audit log's hash chain",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/orders/{order}/explain",
        summary: "Everything that blocks or threatens an order",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/chat",
        summary: "Ask the copilot; the answer streams as Server-Sent Events (conversation, retrieving, tool_call, tool_result, text_delta, approval_requested, notice, done, error). Body: message, conversation_id, order",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/conversations/{id}",
        summary: "A copilot conversation with its turns and their events (owner only)",
        auth: true,
    },
    RouteDoc {
        method: "post",
        path: "/api/scan",
        summary: "Scan the source now",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/status",
        summary: "Source, last scan, staleness and case counts",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/intelligence/trends",
        summary: "Exceptions detected per day or week (by=kind|customer|supplier|warehouse|route, days=1..730, bucket=day|week)",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/intelligence/at-risk",
        summary: "Revenue and margin at risk this month (by=customer|supplier|warehouse, limit<=100)",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/intelligence/backlog",
        summary: "Open exceptions per kind, cycle time (p50, p90 hours), daily opened/closed/open",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/intelligence/recommendations",
        summary: "Per kind: recommendations proposed, accepted, overridden, dismissed",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/intelligence/change-patterns",
        summary: "Key accounts by how often they change orders: share changed, changes per order, days to first change, recent changes (limit<=100)",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/predictions",
        summary: "Recorded predictions, most probable first (kind=late_fulfillment|supplier_delay|credit_hold|order_change, limit<=500), with outcomes once known",
        auth: true,
    },
    RouteDoc {
        method: "get",
        path: "/api/models",
        summary: "Models in use: version, hold-out evaluation against the baseline, calibration, governance (precision at threshold, false positives, acceptance, overrides), input drift",
        auth: true,
    },
];

/// Build the router.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// Build the router with extra routes outside `/api` (the Odoo webhook), which bring their
/// own state and authentication and share the body limit, timeout and request logging.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let api = Router::new()
        .route("/me", get(handlers::me))
        .route("/exceptions", get(handlers::list_exceptions))
        .route("/exceptions/facets", get(handlers::exception_facets))
        .route("/cases/{id}", get(handlers::get_case))
        .route("/cases/{id}/acknowledge", post(handlers::acknowledge))
        .route("/cases/{id}/resolve", post(handlers::resolve))
        .route("/cases/{id}/dismiss", post(handlers::dismiss))
        .route("/cases/{id}/actions", post(handlers::request_action))
        .route("/approvals", get(handlers::list_approvals))
        .route("/approvals/{id}", get(handlers::get_approval))
        .route("/approvals/{id}/approve", post(handlers::approve))
        .route("/approvals/{id}/reject", post(handlers::reject))
        .route("/audit", get(handlers::audit_search))
        .route("/audit/verify", get(handlers::audit_verify))
        .route("/orders/{order}/explain", get(handlers::explain))
        .route("/chat", post(chat::chat))
        .route("/conversations/{id}", get(chat::conversation))
        .route("/scan", post(handlers::scan))
        .route("/status", get(handlers::status))
        .route("/intelligence/trends", get(handlers::intel_trends))
        .route("/intelligence/at-risk", get(handlers::intel_at_risk))
        .route("/intelligence/backlog", get(handlers::intel_backlog))
        .route(
            "/intelligence/recommendations",
            get(handlers::intel_recommendations),
        )
        .route(
            "/intelligence/change-patterns",
            get(handlers::intel_change_patterns),
        )
        .route("/predictions", get(handlers::predictions))
        .route("/models", get(handlers::models))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/api/openapi.json", get(handlers::openapi))
        .merge(web::routes())
        .nest("/api", api)
        .merge(extra.with_state(()))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .with_state(state)
}

fn valid_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Request id, tracing span and metrics around every request.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| valid_request_id(s))
        .map(str::to_string)
        .unwrap_or_else(|| crate::app::new_id("req"));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    // The span is attached to the future (not entered across an await), so every event
    // logged while handling the request carries its request id.
    let mut resp = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span))
        .await;
    let elapsed = started.elapsed();
    state
        .metrics
        .observe(method.as_str(), &route, resp.status().as_u16(), elapsed);
    tracing::info!(request_id = %id, %method, route = %route, status = resp.status().as_u16(), ms = elapsed.as_secs_f64() * 1000.0, "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Bearer-token authentication for `/api/*` (except the OpenAPI document, routed outside).
async fn authenticate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = peer.ip();
    if state.app.rate_limited(ip) {
        return ApiError::RateLimited.into_response();
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256);
    let path = req.uri().path().to_string();
    let Some(token) = token else {
        state.app.login_failed(ip, &path, "missing token").await;
        return ApiError::Unauthorized("missing bearer token".into()).into_response();
    };
    let user = match state.app.authenticate(token).await {
        Ok(Authenticated::User(user)) => user,
        Ok(Authenticated::Expired { name, at }) => {
            state.app.login_failed(ip, &path, "expired token").await;
            return ApiError::Unauthorized(format!(
                "the token of {name} expired on {}; ask an administrator for a new one",
                at.format("%Y-%m-%d %H:%M UTC")
            ))
            .into_response();
        }
        Ok(Authenticated::Unknown) => {
            state
                .app
                .login_failed(ip, &path, "unknown or revoked token")
                .await;
            return ApiError::Unauthorized("unknown or revoked token".into()).into_response();
        }
        Err(e) => return ApiError::App(e).into_response(),
    };
    // Nested under `/api`, the request's own path has lost its prefix; the matched route
    // has it.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string());
    let class = if route.as_deref().unwrap_or(&path) == "/api/chat" {
        RateClass::Chat
    } else {
        RateClass::Api
    };
    if let Err(l) = state.app.check_rate(&user, class) {
        return ApiError::Limited(l).into_response();
    }
    req.extensions_mut().insert::<User>(user.clone());
    withhold(&state, &user, next.run(req).await).await
}

/// Largest JSON answer the data-access filter reads back (every bounded API answer fits).
const FILTER_LIMIT: usize = 64 * 1024 * 1024;

/// Every JSON answer of `/api/*` passes the one data-access filter for its user
/// ([`App::withhold`](crate::app::App::withhold)); the chat stream is filtered where its
/// turn runs, before anything streams.
async fn withhold(state: &AppState, user: &User, resp: Response) -> Response {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json || state.app.sees_all(&user.role) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FILTER_LIMIT).await else {
        return ApiError::App(crate::app::AppError::Internal(
            "an answer was too large to filter".into(),
        ))
        .into_response();
    };
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    state.app.withhold(&user.role, &mut v).await;
    let out = serde_json::to_vec(&v).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

/// [`run_with`] and an offline copilot.
pub async fn run(
    app: Arc<App>,
    writer: crate::store::audit::AuditWriter,
    listener: tokio::net::TcpListener,
    scan_every: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let copilot = Copilot::offline(app.clone()).map_err(std::io::Error::other)?;
    run_with(
        app,
        Arc::new(copilot),
        writer,
        listener,
        scan_every,
        Router::new(),
        shutdown,
    )
    .await
}

/// Run the server with a copilot and extra routes outside `/api` (see [`router_with`]):
/// scans on an interval, the API until `shutdown` resolves, then finish in-flight
/// requests, stop scanning and flush the audit log before returning — nothing
/// acknowledged is lost.
pub async fn run_with(
    app: Arc<App>,
    copilot: Arc<Copilot>,
    writer: crate::store::audit::AuditWriter,
    listener: tokio::net::TcpListener,
    scan_every: Duration,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let scanner = {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(scan_every) => {
                        if let Err(e) = app.scan("system").await {
                            app.counters.scan_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::error!(error = %e, "scheduled scan failed; serving the last good scan");
                        }
                    }
                    _ = stop_rx.changed() => break,
                }
            }
        })
    };
    let state = AppState::new(app.clone(), copilot);
    let served = serve_with(listener, state, extra, shutdown).await;
    tracing::info!("shutting down: in-flight requests finished");
    let _ = stop_tx.send(true);
    let _ = scanner.await;
    // The writer acknowledges in order: once this event is on disk, all before it are.
    if let Err(e) = app
        .audit
        .append(crate::store::audit::AuditEvent::new(
            "server.stopped",
            "system",
            serde_json::json!({}),
        ))
        .await
    {
        tracing::error!(error = %e, "could not record the stop");
    }
    writer.finish().await;
    served
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// [`serve`] with extra routes (see [`router_with`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router_with(state, extra).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
