//! The REST API under `/api/v1`, plus `/healthz`.
//!
//! Every `/api/v1` endpoint except `openapi.json` needs `Authorization: Bearer <token>`; tokens
//! are created with `billing-daemon token create` and only their SHA-256 is stored.

pub mod accounting;
pub mod enforcement;
pub mod error;
pub mod extract;
pub mod payments;
pub mod plans;
pub mod routers;
pub mod subscribers;
pub mod vouchers;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use std::sync::Arc;

use crate::accounting::consumer::JournalStats;
use crate::config::RadiusSettings;
use crate::hotspot_page::PageSettings;
use crate::payments::Mpesa;
use crate::portal::Portal;
use crate::publisher::SnapshotHandle;
use crate::vouchers::VoucherConfig;
use error::{ApiError, error_response};

/// Shared state of the HTTP handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Database.
    pub pool: PgPool,
    /// The publisher (for `/healthz`).
    pub snapshot: SnapshotHandle,
    /// RADIUS address for RouterOS scripts.
    pub radius: RadiusSettings,
    /// The journal consumer's counters (for `/healthz`), when it runs.
    pub journal: Option<Arc<JournalStats>>,
    /// M-Pesa, when configured.
    pub mpesa: Option<Mpesa>,
    /// The voucher key and what is printed on vouchers (None: voucher endpoints answer 503).
    pub vouchers: Option<VoucherConfig>,
    /// What the hotspot login page bakes in (public URL, ISP name).
    pub hotspot_page: PageSettings,
    /// The public portal's rate limits and snapshot reader.
    pub portal: Arc<Portal>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Jasiyo billing API", description = "ISP billing for MikroTik routers: plans, routers (NAS), subscribers, sessions and usage, and the Disconnect/CoA enforcement log."),
    paths(
        plans::create, plans::list, plans::get, plans::patch, plans::delete,
        routers::create, routers::list, routers::get, routers::patch, routers::delete, routers::routeros_script,
        subscribers::create, subscribers::list, subscribers::get, subscribers::patch, subscribers::delete,
        subscribers::suspend, subscribers::resume, subscribers::renew,
        accounting::online, accounting::subscriber_sessions, accounting::usage, accounting::auth_log,
        enforcement::log, enforcement::get, enforcement::disconnect,
        payments::start_stk, payments::intents, payments::intent, payments::list, payments::get,
        payments::cash, payments::daily, payments::register_c2b,
        payments::recover, payments::recovery, payments::recoveries,
        vouchers::create, vouchers::list, vouchers::get, vouchers::revoke, vouchers::print_html,
        vouchers::print_pdf, vouchers::codes_csv, vouchers::vouchers, vouchers::sales,
        crate::hotspot_page::login_page,
        routers::get_packages, routers::put_packages,
        crate::portal::handlers::packages, crate::portal::handlers::purchase,
        crate::portal::handlers::poll,
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// A list endpoint's `limit` query parameter: `default` when absent, else 1..=`max`.
pub(crate) fn limit(l: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let l = l.unwrap_or(default);
    if !(1..=max).contains(&l) {
        return Err(ApiError::Validation(format!("limit must be 1..{max}")));
    }
    Ok(l)
}

/// A report's days: `to` defaults to today (UTC), `from` to 30 days before `to`.
pub(crate) fn days(
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    (from.unwrap_or(to - chrono::Duration::days(30)), to)
}

/// The id of the subscriber a path or body names by username, or 404.
pub(crate) async fn subscriber_id<'e>(
    db: impl sqlx::PgExecutor<'e>,
    username: &str,
) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT id FROM subscribers WHERE username = $1")
        .bind(username)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("subscriber {username:?} not found")))
}

/// SHA-256 of a token, as stored in `api_tokens.token_sha256`.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Builds the whole HTTP application.
pub fn app(state: AppState) -> axum::Router {
    let api = axum::Router::new()
        .route("/plans", post(plans::create).get(plans::list))
        .route(
            "/plans/{id}",
            get(plans::get).patch(plans::patch).delete(plans::delete),
        )
        .route("/routers", post(routers::create).get(routers::list))
        .route(
            "/routers/{id}",
            get(routers::get)
                .patch(routers::patch)
                .delete(routers::delete),
        )
        .route(
            "/routers/{id}/routeros-script",
            get(routers::routeros_script),
        )
        .route(
            "/routers/{id}/packages",
            get(routers::get_packages).put(routers::put_packages),
        )
        .route(
            "/subscribers",
            post(subscribers::create).get(subscribers::list),
        )
        .route(
            "/subscribers/{username}",
            get(subscribers::get)
                .patch(subscribers::patch)
                .delete(subscribers::delete),
        )
        .route(
            "/subscribers/{username}/suspend",
            post(subscribers::suspend),
        )
        .route("/subscribers/{username}/resume", post(subscribers::resume))
        .route("/subscribers/{username}/renew", post(subscribers::renew))
        .route("/sessions", get(accounting::online))
        .route(
            "/subscribers/{username}/sessions",
            get(accounting::subscriber_sessions),
        )
        .route("/subscribers/{username}/usage", get(accounting::usage))
        .route("/auth-log", get(accounting::auth_log))
        .route("/sessions/{id}/disconnect", post(enforcement::disconnect))
        .route("/enforcement-log", get(enforcement::log))
        .route("/enforcement-log/{id}", get(enforcement::get))
        .route("/payments", get(payments::list).post(payments::cash))
        .route("/payments/stk", post(payments::start_stk))
        .route("/payments/daily", get(payments::daily))
        .route("/payments/c2b/register", post(payments::register_c2b))
        .route("/payments/recover", post(payments::recover))
        .route("/payments/recoveries", get(payments::recoveries))
        .route("/payments/recoveries/{id}", get(payments::recovery))
        .route("/payments/{id}", get(payments::get))
        .route("/payment-intents", get(payments::intents))
        .route("/payment-intents/{id}", get(payments::intent))
        .route(
            "/voucher-batches",
            post(vouchers::create).get(vouchers::list),
        )
        .route("/voucher-batches/{id}", get(vouchers::get))
        .route("/voucher-batches/{id}/revoke", post(vouchers::revoke))
        .route("/voucher-batches/{id}/print", get(vouchers::print_html))
        .route("/voucher-batches/{id}/print.pdf", get(vouchers::print_pdf))
        .route("/voucher-batches/{id}/codes.csv", get(vouchers::codes_csv))
        .route("/vouchers", get(vouchers::vouchers))
        .route("/vouchers/sales", get(vouchers::sales))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route("/openapi.json", get(openapi_json));
    // Safaricom's callbacks: no bearer token (Daraja sends none); see payments::callbacks.
    let callbacks = axum::Router::new()
        .route("/stk/{token}", post(crate::payments::callbacks::stk_result))
        .route(
            "/c2b/{token}/validation",
            post(crate::payments::callbacks::c2b_validation),
        )
        .route(
            "/c2b/{token}/confirmation",
            post(crate::payments::callbacks::c2b_confirmation),
        )
        .route(
            "/ts/{token}/result",
            post(crate::payments::recovery::result),
        )
        .route(
            "/ts/{token}/timeout",
            post(crate::payments::recovery::timeout),
        );
    // The hotspot login page: no token (RouterOS fetches it, see routers::render_script).
    let page = axum::Router::new().route(
        "/routers/{router_id}/login.html",
        get(crate::hotspot_page::login_page),
    );
    axum::Router::new()
        .nest("/api/v1", api)
        .nest("/pay/cb", callbacks)
        // The hotspot login page's API: no bearer token, CORS open (see crate::portal);
        // and the page itself (no CORS needed).
        .nest("/portal/v1", crate::portal::routes().merge(page))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Spans name the route, not the URI: paths carry secrets (callback and poll tokens).
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("<no route>", axum::extract::MatchedPath::as_str);
    tracing::debug_span!("request", method = %req.method(), route)
}

async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

async fn healthz(State(st): State<AppState>) -> Response {
    let generation = st.snapshot.generation();
    let status = if generation == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    // The journal numbers are what the benchmark reads for the ingest lag.
    let journal = st.journal.as_ref().map(|j| j.status());
    (
        status,
        Json(serde_json::json!({ "snapshot_generation": generation, "journal": journal })),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub(crate) async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// Bearer-token check. The presented token is hashed and looked up by its hash, so the
/// comparison never touches the secret itself and its timing reveals nothing about it.
async fn require_token(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer <token> header",
        ))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "Authorization header must be \"Bearer <token>\"",
        ))?;
    let hash = token_hash(token);
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_sha256 = $1")
            .bind(&hash[..])
            .fetch_optional(&st.pool)
            .await?;
    if found.is_none() {
        return Err(ApiError::Unauthorized("unknown or revoked token"));
    }
    Ok(next.run(req).await)
}
