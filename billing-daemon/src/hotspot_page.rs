//! The MikroTik hotspot login page (`assets/hotspot/login.html`), rendered per router.
//!
//! The page is one self-contained file that RouterOS serves from its hotspot directory
//! (the RouterOS script fetches it from `GET /portal/v1/routers/{id}/login.html`). It lists
//! the router's packages from the portal API, takes an M-Pesa number, polls the purchase
//! and logs in with the voucher code it gets, or with a code the customer types. The
//! daemon bakes in three things only: its public URL (where phones reach the portal API),
//! the router's id and the ISP's name. RouterOS's own `$(...)` variables are left for the
//! router to fill in; the page works unrendered too (code form only).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::api::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiPath;

/// The page as shipped.
pub const TEMPLATE: &str = include_str!("../assets/hotspot/login.html");

/// The placeholder the settings replace: `var JASIYO = null; /*jasiyo-portal*/`.
const SLOT: &str = "null; /*jasiyo-portal*/";

/// The RouterOS variables the page uses (`$(name)`); RouterOS would substitute any other
/// `$(` in the file too, so the page has no other.
pub const ROUTEROS_VARIABLES: &[&str] = &[
    "link-login-only",
    "link-orig-esc",
    "chap-id",
    "chap-challenge",
    "mac",
    "error",
];

/// What the login page needs from the daemon's settings.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// Where phones reach this daemon (`JASIYO_PUBLIC_URL`, no trailing slash); `None`:
    /// the page is not served (503).
    pub public_url: Option<String>,
    /// The ISP's name (`JASIYO_ISP_NAME`), shown until the packages come.
    pub isp_name: String,
}

/// The page for `router_id`, talking to the portal API at `public_url` (pure).
pub fn render(public_url: &str, router_id: i64, isp_name: &str) -> String {
    let settings = serde_json::json!({
        "api": public_url.trim_end_matches('/'),
        "router": router_id,
        "isp": isp_name,
    });
    TEMPLATE.replacen(SLOT, &format!("{};", script_json(&settings)), 1)
}

/// JSON safe inside an HTML `<script>` that RouterOS serves: no `</script>` or `<!--`,
/// no line terminators JavaScript rejects in strings, and no `$` (RouterOS would read
/// `$(` as one of its variables).
fn script_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '$' => out.push_str("\\u0024"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The hotspot login page for this router, with the portal settings baked in.
#[utoipa::path(get, path = "/portal/v1/routers/{router_id}/login.html", tag = "portal", params(("router_id" = i64, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn login_page(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(public_url) = st.hotspot_page.public_url.as_deref() else {
        return Err(ApiError::Unavailable(
            "the hotspot login page needs JASIYO_PUBLIC_URL: the address phones on the \
             hotspot reach this daemon at"
                .to_owned(),
        ));
    };
    crate::portal::handlers::router_exists(&st, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(public_url, id, &st.hotspot_page.isp_name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `$(...)` in `page`.
    fn variables(page: &str) -> Vec<&str> {
        page.match_indices("$(")
            .map(|(at, _)| {
                let rest = &page[at + 2..];
                &rest[..rest.find(')').unwrap_or(rest.len())]
            })
            .collect()
    }

    #[test]
    fn settings_are_baked_in_once() {
        let page = render("https://pay.example.co.ke/", 42, "Mtaani Net");
        let line = page
            .lines()
            .find(|l| l.starts_with("var JASIYO = "))
            .expect("settings line");
        let json = line
            .strip_prefix("var JASIYO = ")
            .and_then(|l| l.strip_suffix(';'))
            .expect("var JASIYO = {...};");
        let settings: serde_json::Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(
            settings,
            serde_json::json!({"api": "https://pay.example.co.ke", "router": 42, "isp": "Mtaani Net"})
        );
        assert!(!page.contains("jasiyo-portal"));
        assert_eq!(
            page.lines().count(),
            TEMPLATE.lines().count(),
            "only the settings line changes"
        );
    }

    #[test]
    fn the_template_has_its_slot_once() {
        assert_eq!(TEMPLATE.matches(SLOT).count(), 1);
    }

    #[test]
    fn hostile_settings_cannot_leave_the_script_or_reach_routeros() {
        let page = render(
            "https://x.example/</script><script>alert(1)</script>",
            1,
            "$(mac) & <b>\u{2028}",
        );
        let line = page
            .lines()
            .find(|l| l.starts_with("var JASIYO = {"))
            .expect("settings line");
        for bad in ["</", "<b>", "$(", "&", "\u{2028}"] {
            assert!(!line.contains(bad), "{bad:?} in {line}");
        }
        assert!(line.contains(r"\u003c/script\u003e"), "{line}");
        assert!(line.contains(r"\u0024(mac) \u0026 "), "{line}");
    }

    #[test]
    fn only_known_routeros_variables() {
        let page = render("https://pay.example.co.ke", 7, "ISP");
        let found = variables(&page);
        for v in &found {
            assert!(
                ROUTEROS_VARIABLES.contains(v),
                "unknown RouterOS variable $({v})"
            );
        }
        for v in ROUTEROS_VARIABLES {
            assert!(found.contains(v), "$({v}) not used");
        }
    }

    /// Cheap Android browsers: ES5 only. A coarse check of what the page must not use.
    #[test]
    fn scripts_are_es5() {
        let mut scripts = TEMPLATE.split("<script>").skip(1);
        let mut n = 0;
        for script in scripts.by_ref() {
            let code = script.split("</script>").next().unwrap_or_default();
            n += 1;
            for bad in [
                "=>",
                "let ",
                "const ",
                "`",
                "fetch(",
                "class ",
                "async ",
                "await ",
                "...",
                "Promise",
                "\"use strict\"",
                "'use strict'",
            ] {
                assert!(!code.contains(bad), "{bad:?} in the page's script");
            }
        }
        assert_eq!(n, 3);
        assert!(
            !TEMPLATE.contains("src=") && !TEMPLATE.contains("href="),
            "no external files"
        );
        assert!(
            TEMPLATE.len() < 16 * 1024,
            "small: {} bytes",
            TEMPLATE.len()
        );
    }
}
