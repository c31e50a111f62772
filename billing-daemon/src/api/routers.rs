//! `/api/v1/routers`

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, double_option};
use crate::config::RadiusSettings;
use crate::db::{ROUTER_COLUMNS, Router, router_from_row};
use crate::portal::handlers::{Package, router_packages};

/// A router (NAS) as the API shows it, secret included (the operator needs it).
#[derive(Debug, Serialize, ToSchema)]
pub struct RouterOut {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Source IP of its RADIUS packets.
    #[schema(value_type = String, example = "192.0.2.10")]
    pub ip: IpAddr,
    /// RADIUS shared secret.
    pub secret: String,
    /// NAS-Identifier, if pinned.
    pub nas_identifier: Option<String>,
    /// The router's `/radius incoming` (CoA/Disconnect) port.
    pub coa_port: i32,
}

impl From<Router> for RouterOut {
    fn from(r: Router) -> Self {
        Self {
            id: r.id,
            name: r.name,
            ip: r.ip,
            secret: r.secret.expose_secret().to_owned(),
            nas_identifier: r.nas_identifier,
            coa_port: r.coa_port,
        }
    }
}

/// Body of `POST /routers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterCreate {
    /// Unique name.
    pub name: String,
    /// IPv4 or IPv6 address.
    #[schema(value_type = String)]
    pub ip: String,
    /// Shared secret, 1..128 characters.
    #[schema(value_type = String)]
    pub secret: SecretString,
    /// Optional NAS-Identifier.
    #[serde(default)]
    pub nas_identifier: Option<String>,
    /// Defaults to 3799.
    #[serde(default)]
    pub coa_port: Option<i32>,
}

/// Body of `PATCH /routers/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterPatch {
    /// New name.
    pub name: Option<String>,
    /// New IP.
    pub ip: Option<String>,
    /// New secret.
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretString>,
    /// New NAS-Identifier (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub nas_identifier: Option<Option<String>>,
    /// New CoA port.
    pub coa_port: Option<i32>,
}

fn parse_ip(s: &str) -> Result<IpAddr, ApiError> {
    s.parse()
        .map_err(|_| ApiError::Validation(format!("ip {s:?} is not an IPv4 or IPv6 address")))
}

fn validate(r: &Router) -> Result<(), ApiError> {
    let v = |m: &str| Err(ApiError::Validation(m.to_owned()));
    let n = r.name.chars().count();
    if n == 0 || n > 100 || r.name.trim() != r.name {
        return v("name must be 1..100 characters without leading or trailing spaces");
    }
    let secret = r.secret.expose_secret();
    if secret.is_empty() || secret.len() > 128 || secret.chars().any(char::is_control) {
        return v("secret must be 1..128 characters without control characters");
    }
    if let Some(id) = &r.nas_identifier {
        if id.is_empty() || id.len() > 253 {
            return v("nas_identifier must be 1..253 bytes or null");
        }
    }
    if !(1..=65535).contains(&r.coa_port) {
        return v("coa_port must be 1..65535");
    }
    Ok(())
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("router {id} not found"))
}

async fn fetch(pool: &sqlx::PgPool, id: i64) -> Result<Router, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {ROUTER_COLUMNS} FROM routers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| not_found(id))?;
    Ok(router_from_row(&row)?)
}

/// Register a router.
#[utoipa::path(post, path = "/api/v1/routers", tag = "routers", request_body = RouterCreate,
    responses((status = 201, body = RouterOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(name = %body.name))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RouterCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let r = Router {
        id: 0,
        name: body.name,
        ip: parse_ip(&body.ip)?,
        secret: body.secret,
        nas_identifier: body.nas_identifier,
        coa_port: body.coa_port.unwrap_or(3799),
    };
    validate(&r)?;
    let row = sqlx::query(&format!(
        "INSERT INTO routers (name, ip, secret, nas_identifier, coa_port) VALUES ($1, $2::inet, $3, $4, $5) \
         RETURNING {ROUTER_COLUMNS}"
    ))
    .bind(&r.name)
    .bind(r.ip.to_string())
    .bind(r.secret.expose_secret())
    .bind(&r.nas_identifier)
    .bind(r.coa_port)
    .fetch_one(&st.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(RouterOut::from(router_from_row(&row)?)),
    ))
}

/// List routers.
#[utoipa::path(get, path = "/api/v1/routers", tag = "routers",
    responses((status = 200, body = [RouterOut])), security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>) -> Result<ApiJson<Vec<RouterOut>>, ApiError> {
    let rows = sqlx::query(&format!("SELECT {ROUTER_COLUMNS} FROM routers ORDER BY id"))
        .fetch_all(&st.pool)
        .await?;
    let out = rows
        .iter()
        .map(|r| router_from_row(r).map(RouterOut::from))
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(out))
}

/// Get one router.
#[utoipa::path(get, path = "/api/v1/routers/{id}", tag = "routers", params(("id" = i64, Path)),
    responses((status = 200, body = RouterOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<RouterOut>, ApiError> {
    Ok(ApiJson(fetch(&st.pool, id).await?.into()))
}

/// Change a router.
#[utoipa::path(patch, path = "/api/v1/routers/{id}", tag = "routers", params(("id" = i64, Path)), request_body = RouterPatch,
    responses((status = 200, body = RouterOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(id))]
pub async fn patch(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RouterPatch>,
) -> Result<ApiJson<RouterOut>, ApiError> {
    let mut tx = st.pool.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT {ROUTER_COLUMNS} FROM routers WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found(id))?;
    let mut r = router_from_row(&row)?;
    if let Some(v) = body.name {
        r.name = v;
    }
    if let Some(v) = body.ip {
        r.ip = parse_ip(&v)?;
    }
    if let Some(v) = body.secret {
        r.secret = v;
    }
    if let Some(v) = body.nas_identifier {
        r.nas_identifier = v;
    }
    if let Some(v) = body.coa_port {
        r.coa_port = v;
    }
    validate(&r)?;
    let row = sqlx::query(&format!(
        "UPDATE routers SET name = $2, ip = $3::inet, secret = $4, nas_identifier = $5, coa_port = $6 \
         WHERE id = $1 RETURNING {ROUTER_COLUMNS}"
    ))
    .bind(id)
    .bind(&r.name)
    .bind(r.ip.to_string())
    .bind(r.secret.expose_secret())
    .bind(&r.nas_identifier)
    .bind(r.coa_port)
    .fetch_one(&mut *tx)
    .await?;
    let out = router_from_row(&row)?;
    tx.commit().await?;
    Ok(ApiJson(out.into()))
}

/// Delete a router.
#[utoipa::path(delete, path = "/api/v1/routers/{id}", tag = "routers", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let r = sqlx::query("DELETE FROM routers WHERE id = $1")
        .bind(id)
        .execute(&st.pool)
        .await?;
    if r.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// RouterOS v7 script that points this router at Jasiyo's RADIUS server.
#[utoipa::path(get, path = "/api/v1/routers/{id}/routeros-script", tag = "routers", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn routeros_script(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let r = fetch(&st.pool, id).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        render_script(&r, &st.radius, st.hotspot_page.public_url.as_deref()),
    ))
}

/// Quotes a value for the RouterOS command line.
fn ros_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '?') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The script text (pure, for tests). With the daemon's public URL it also installs the
/// hotspot login page and opens the walled garden to the portal API the page calls.
pub fn render_script(r: &Router, radius: &RadiusSettings, public_url: Option<&str>) -> String {
    let mut script = format!(
        "# Jasiyo: RADIUS setup for router {name} ({ip}), RouterOS v7.\n\
         # Paste into a terminal on the router. Attributes from RADIUS override the default profiles.\n\
         /radius add service=ppp,hotspot address={addr} secret={secret} authentication-port={auth} \
         accounting-port={acct} timeout=3s require-message-auth=yes-for-request-resp comment={comment}\n\
         /ppp aaa set use-radius=yes accounting=yes interim-update=5m\n\
         /ip hotspot profile set [find] use-radius=yes radius-accounting=yes radius-interim-update=5m\n\
         /radius incoming set accept=yes port={coa}\n",
        name = ros_quote(&r.name),
        ip = r.ip,
        addr = radius.public_address,
        secret = ros_quote(r.secret.expose_secret()),
        auth = radius.auth_port,
        acct = radius.acct_port,
        comment = ros_quote("jasiyo"),
        coa = r.coa_port,
    );
    if let Some(host) = public_url.and_then(url_host) {
        let base = public_url.unwrap_or_default().trim_end_matches('/');
        let page = format!("{base}/portal/v1/routers/{}/login.html", r.id);
        // An address goes in dst-address; a name is resolved by the router.
        let ip_match = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => format!("dst-address={host}"),
            _ => format!("dst-host={}", ros_quote(host)),
        };
        script.push_str(&format!(
            "# The hotspot login page: packages, M-Pesa purchase, voucher codes. It goes into the\n\
             # hotspot profile's html-directory (\"hotspot\" by default; use flash/hotspot/login.html\n\
             # on devices whose files live under flash/). Run the fetch again after a change.\n\
             /tool fetch url={page} dst-path=hotspot/login.html\n\
             # Before login, phones must reach the portal API the page calls ({host}).\n\
             /ip hotspot walled-garden add dst-host={quoted_host} comment={comment}\n\
             /ip hotspot walled-garden ip add action=accept {ip_match} comment={comment}\n",
            page = ros_quote(&page),
            quoted_host = ros_quote(host),
            comment = ros_quote("jasiyo portal"),
        ));
    }
    script
}

/// The host of an `http(s)://` URL, without port or brackets (`None` if there is none).
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_and_ports() {
        let r = Router {
            id: 1,
            name: "hq".to_owned(),
            ip: "192.0.2.1".parse().unwrap(),
            secret: SecretString::from("s3\"cr$t"),
            nas_identifier: None,
            coa_port: 3799,
        };
        let radius = RadiusSettings {
            public_address: "198.51.100.7".to_owned(),
            auth_port: 1812,
            acct_port: 1813,
        };
        let s = render_script(&r, &radius, None);
        assert!(s.contains(
            "/radius add service=ppp,hotspot address=198.51.100.7 secret=\"s3\\\"cr\\$t\" authentication-port=1812 accounting-port=1813"
        ));
        assert!(s.contains("/ppp aaa set use-radius=yes accounting=yes interim-update=5m\n"));
        assert!(s.contains("/ip hotspot profile set [find] use-radius=yes"));
        assert!(s.contains("/radius incoming set accept=yes port=3799\n"));
        assert!(
            !s.contains("walled-garden") && !s.contains("/tool fetch"),
            "{s}"
        );
    }

    fn router(id: i64) -> Router {
        Router {
            id,
            name: "tower-1".to_owned(),
            ip: "192.0.2.1".parse().unwrap(),
            secret: SecretString::from("s"),
            nas_identifier: None,
            coa_port: 3799,
        }
    }

    fn radius() -> RadiusSettings {
        RadiusSettings {
            public_address: "198.51.100.7".to_owned(),
            auth_port: 1812,
            acct_port: 1813,
        }
    }

    #[test]
    fn script_installs_the_login_page_and_the_walled_garden() {
        let s = render_script(
            &router(7),
            &radius(),
            Some("https://pay.example.co.ke:8443/"),
        );
        assert!(s.contains(
            "\n/tool fetch url=\"https://pay.example.co.ke:8443/portal/v1/routers/7/login.html\" \
             dst-path=hotspot/login.html\n"
        ), "{s}");
        assert!(s.contains("flash/hotspot/login.html"), "{s}");
        assert!(s.contains(
            "\n/ip hotspot walled-garden add dst-host=\"pay.example.co.ke\" comment=\"jasiyo portal\"\n"
        ), "{s}");
        assert!(
            s.contains(
                "\n/ip hotspot walled-garden ip add action=accept dst-host=\"pay.example.co.ke\" \
             comment=\"jasiyo portal\"\n"
            ),
            "{s}"
        );
        // Every command line is one RouterOS command; comments start with #.
        for line in s.lines() {
            assert!(line.starts_with('#') || line.starts_with('/'), "{line}");
        }
    }

    #[test]
    fn script_with_an_address_uses_dst_address() {
        let s = render_script(&router(3), &radius(), Some("http://203.0.113.5:58080"));
        assert!(
            s.contains("/ip hotspot walled-garden ip add action=accept dst-address=203.0.113.5 "),
            "{s}"
        );
        assert!(
            s.contains("/ip hotspot walled-garden add dst-host=\"203.0.113.5\" "),
            "{s}"
        );
        assert!(s.contains("url=\"http://203.0.113.5:58080/portal/v1/routers/3/login.html\""));
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://a.example/x"), Some("a.example"));
        assert_eq!(url_host("http://u@a.example:80"), Some("a.example"));
        assert_eq!(url_host("http://[2001:db8::1]:8080/"), Some("2001:db8::1"));
        assert_eq!(url_host("ftp://a.example"), None);
        assert_eq!(url_host("https:///x"), None);
    }
}

/// Body of `PUT /routers/{id}/packages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackagesIn {
    /// Plans (serving hotspot logins) the router's hotspot page sells, in the order shown.
    /// Empty: it sells nothing (vouchers typed in still work).
    pub package_ids: Vec<i64>,
}

/// What a router's hotspot page sells.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackagesOut {
    /// The plans, in order.
    pub package_ids: Vec<i64>,
    /// The same, as the page shows them.
    pub packages: Vec<Package>,
}

/// Most packages one page sells.
const MAX_PACKAGES: usize = 50;

async fn packages_of(
    db: impl sqlx::PgExecutor<'_>,
    id: i64,
) -> Result<ApiJson<PackagesOut>, ApiError> {
    let packages = router_packages(db, id).await?;
    Ok(ApiJson(PackagesOut {
        package_ids: packages.iter().map(|p| p.id).collect(),
        packages,
    }))
}

/// The packages this router's hotspot login page sells.
#[utoipa::path(get, path = "/api/v1/routers/{id}/packages", tag = "routers", params(("id" = i64, Path)),
    responses((status = 200, body = PackagesOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_packages(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<PackagesOut>, ApiError> {
    fetch(&st.pool, id).await?;
    packages_of(&st.pool, id).await
}

/// Sets the packages this router's hotspot login page sells, in order (replacing the
/// previous list). Each must be a plan serving hotspot logins.
#[utoipa::path(put, path = "/api/v1/routers/{id}/packages", tag = "routers", params(("id" = i64, Path)),
    request_body = PackagesIn,
    responses((status = 200, body = PackagesOut), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "An unknown plan, a PPPoE-only plan, a repeat, or too many")),
    security(("bearer" = [])))]
pub async fn put_packages(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PackagesIn>,
) -> Result<ApiJson<PackagesOut>, ApiError> {
    let ids = body.package_ids;
    if ids.len() > MAX_PACKAGES {
        return Err(ApiError::Validation(format!(
            "at most {MAX_PACKAGES} packages per router"
        )));
    }
    if let Some((i, dup)) = ids.iter().enumerate().find(|(i, p)| ids[..*i].contains(p)) {
        return Err(ApiError::Validation(format!(
            "package_ids[{i}]: plan {dup} is listed twice"
        )));
    }
    let mut tx = st.pool.begin().await?;
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM routers WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Err(ApiError::NotFound(format!("router {id} not found")));
    }
    let services: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, service FROM plans WHERE id = ANY($1) FOR KEY SHARE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    for plan in &ids {
        match services.iter().find(|(p, _)| p == plan) {
            None => {
                return Err(ApiError::Validation(format!(
                    "plan_id {plan} does not refer to an existing plan"
                )));
            }
            Some((_, service)) if service == "pppoe" => {
                return Err(ApiError::Validation(format!(
                    "plan {plan} is PPPoE only: a hotspot page sells plans serving hotspot logins"
                )));
            }
            Some(_) => {}
        }
    }
    sqlx::query("DELETE FROM router_packages WHERE router_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO router_packages (router_id, plan_id, position) \
         SELECT $1, t.plan, t.n FROM UNNEST($2::bigint[]) WITH ORDINALITY AS t(plan, n)",
    )
    .bind(id)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let out = packages_of(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(out)
}
