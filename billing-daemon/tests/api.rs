//! REST API tests: auth, CRUD, error bodies, renew arithmetic. Each test gets its own database
//! (`#[sqlx::test]` needs DATABASE_URL pointing at a Postgres where it may create databases).

mod common;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use common::TestApp;
use serde_json::json;
use sqlx::PgPool;

fn ts(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[sqlx::test]
async fn every_endpoint_needs_a_token(pool: PgPool) {
    let app = TestApp::new(pool).await;
    for (method, uri) in [
        ("GET", "/api/v1/plans"),
        ("POST", "/api/v1/plans"),
        ("GET", "/api/v1/plans/1"),
        ("DELETE", "/api/v1/routers/1"),
        ("GET", "/api/v1/routers/1/routeros-script"),
        ("GET", "/api/v1/subscribers"),
        ("POST", "/api/v1/subscribers/alice/renew"),
    ] {
        let r = app.send(method, uri, None, None).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let r = app.send(method, uri, None, Some("jsy_wrong")).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // A correct token works; the OpenAPI document and /healthz need none.
    assert_eq!(app.get("/api/v1/plans").await.status, StatusCode::OK);
    let r = app.send("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["paths"]["/api/v1/subscribers/{username}/renew"]["post"].is_object());
    let r = app.send("GET", "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["snapshot_generation"], 1);
}

#[sqlx::test]
async fn tokens_are_stored_hashed(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, billing_daemon::api::token_hash(&app.token).to_vec());
    assert!(!String::from_utf8_lossy(&stored).contains(&app.token));
}

#[sqlx::test]
async fn plan_crud_and_errors(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let body = json!({
        "name": "Biz 10M", "rate_limit": "2M/10M 4M/20M 1500k/8M 16/16 8 1M/5M", "price_kes": 3000,
        "duration_seconds": 2_592_000, "data_cap_bytes": null, "ip_pool": "biz", "service": "pppoe"
    });
    let r = app.post("/api/v1/plans", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let plan = r.json();
    let id = plan["id"].as_i64().unwrap();
    assert_eq!(plan["rate_limit"], "2M/10M 4M/20M 1500k/8M 16/16 8 1M/5M");
    assert_eq!(plan["service"], "pppoe");
    assert_eq!(plan["ip_pool"], "biz");

    app.post("/api/v1/plans", &body)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    for bad in [
        json!({"name": "x", "rate_limit": "5M/5M 10M 4M 16 9", "price_kes": 1, "duration_seconds": 1}),
        json!({"name": "x", "rate_limit": "5M/5M 10M 4M 16 8 6M", "price_kes": 1, "duration_seconds": 1}),
        json!({"name": "x", "rate_limit": "5 Mbps", "price_kes": 1, "duration_seconds": 1}),
        json!({"name": "x", "rate_limit": "5M", "price_kes": 1, "duration_seconds": 0}),
        json!({"name": "x", "rate_limit": "5M", "price_kes": -1, "duration_seconds": 1}),
        json!({"name": "x", "rate_limit": "5M", "price_kes": 1, "duration_seconds": 1, "service": "dialup"}),
        json!({"name": "x", "rate_limit": "5M", "price_kes": 1}),
        json!({"name": "x", "rate_limit": "5M", "price_kes": 1, "duration_seconds": 1, "colour": "red"}),
    ] {
        app.post("/api/v1/plans", &bad)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let r = app
        .send(
            "POST",
            "/api/v1/plans",
            Some("{\"name\": "),
            Some(&app.token),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "malformed_json");

    let r = app.get(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(r.json()["name"], "Biz 10M");
    app.get("/api/v1/plans/999999")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/plans/abc")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");

    let r = app
        .patch(
            &format!("/api/v1/plans/{id}"),
            &json!({"price_kes": 3500, "ip_pool": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["price_kes"], 3500);
    assert!(r.json()["ip_pool"].is_null());
    assert_eq!(r.json()["name"], "Biz 10M");
    app.patch(&format!("/api/v1/plans/{id}"), &json!({"rate_limit": ""}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let list = app.get("/api/v1/plans").await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    // In use -> 409; unused -> 204; gone -> 404.
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "u1", "password": "p", "plan_id": id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.delete(&format!("/api/v1/plans/{id}"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        app.delete("/api/v1/subscribers/u1").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/api/v1/plans/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    app.delete(&format!("/api/v1/plans/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn router_crud_and_script(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let r = app
        .post(
            "/api/v1/routers",
            &json!({"name": "hq", "ip": "192.0.2.1", "secret": "s3cret", "nas_identifier": "HQ-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let router = r.json();
    let id = router["id"].as_i64().unwrap();
    assert_eq!(router["ip"], "192.0.2.1");
    assert_eq!(router["secret"], "s3cret");
    assert_eq!(router["nas_identifier"], "HQ-1");

    app.post(
        "/api/v1/routers",
        &json!({"name": "other", "ip": "192.0.2.1", "secret": "x"}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
    app.post(
        "/api/v1/routers",
        &json!({"name": "bad", "ip": "192.0.2.300", "secret": "x"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/api/v1/routers",
        &json!({"name": "bad", "ip": "192.0.2.3", "secret": ""}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let r = app
        .get(&format!("/api/v1/routers/{id}/routeros-script"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.as_deref().unwrap().starts_with("text/plain"));
    assert!(r.text.contains(
        "/radius add service=ppp,hotspot address=198.51.100.7 secret=\"s3cret\" authentication-port=11812 accounting-port=11813"
    ), "{}", r.text);
    assert!(
        r.text
            .contains("/ppp aaa set use-radius=yes accounting=yes interim-update=")
    );
    assert!(
        r.text
            .contains("/ip hotspot profile set [find] use-radius=yes")
    );
    assert!(r.text.contains("/radius incoming set accept=yes port=3799"));
    // With a public URL: the hotspot login page and the walled garden for its API.
    assert!(
        r.text.contains(&format!(
            "/tool fetch url=\"https://pay.example.co.ke/portal/v1/routers/{id}/login.html\" \
             dst-path=hotspot/login.html"
        )),
        "{}",
        r.text
    );
    assert!(
        r.text.contains(
            "/ip hotspot walled-garden ip add action=accept dst-host=\"pay.example.co.ke\""
        )
    );

    let r = app
        .patch(
            &format!("/api/v1/routers/{id}"),
            &json!({"ip": "2001:db8::1", "nas_identifier": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["ip"], "2001:db8::1");
    assert!(r.json()["nas_identifier"].is_null());
    assert_eq!(
        app.get("/api/v1/routers")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.delete(&format!("/api/v1/routers/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&format!("/api/v1/routers/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn subscriber_defaults_and_crud(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let plan = app.plan("Hotspot 1 day", 86_400, Some(2_000_000_000)).await;
    let before = Utc::now();
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "dave", "password": "pw", "plan_id": plan, "mac": "aa-bb-cc-dd-ee-0f", "static_ip": "10.1.2.3"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let s = r.json();
    assert_eq!(s["status"], "active");
    assert_eq!(s["mac"], "AA:BB:CC:DD:EE:0F");
    assert_eq!(s["static_ip"], "10.1.2.3");
    assert_eq!(s["data_remaining_bytes"], 2_000_000_000_i64);
    let exp = ts(&s["expires_at"]);
    assert!(exp >= before + Duration::seconds(86_400) - Duration::seconds(1));
    assert!(exp <= Utc::now() + Duration::seconds(86_400));

    // Explicit values win over plan defaults.
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "erin", "password": "pw", "plan_id": plan, "status": "suspended",
                    "expires_at": "2030-01-01T00:00:00Z", "data_remaining_bytes": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["expires_at"], "2030-01-01T00:00:00Z");
    assert!(r.json()["data_remaining_bytes"].is_null());

    // Errors.
    let dup = json!({"username": "dave", "password": "pw", "plan_id": plan});
    app.post("/api/v1/subscribers", &dup)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    let mac_taken =
        json!({"username": "x1", "password": "pw", "plan_id": plan, "mac": "AA:BB:CC:DD:EE:0F"});
    app.post("/api/v1/subscribers", &mac_taken)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    for bad in [
        json!({"username": "x2", "password": "pw", "plan_id": plan + 1000}),
        json!({"username": "has space", "password": "pw", "plan_id": plan}),
        json!({"username": "", "password": "pw", "plan_id": plan}),
        json!({"username": "x".repeat(65), "password": "pw", "plan_id": plan}),
        json!({"username": "x3", "password": "", "plan_id": plan}),
        json!({"username": "x4", "password": "pw", "plan_id": plan, "mac": "AABBCCDDEEFF"}),
        json!({"username": "x5", "password": "pw", "plan_id": plan, "static_ip": "2001:db8::1"}),
        json!({"username": "x6", "password": "pw", "plan_id": plan, "expires_at": "tomorrow"}),
        json!({"username": "x7", "password": "pw", "plan_id": plan, "data_remaining_bytes": -1}),
    ] {
        app.post("/api/v1/subscribers", &bad)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.get("/api/v1/subscribers/nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    // Filters.
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(app.get("/api/v1/subscribers").await.json()),
        ["dave", "erin"]
    );
    assert_eq!(
        names(app.get("/api/v1/subscribers?status=suspended").await.json()),
        ["erin"]
    );
    assert_eq!(
        names(app.get("/api/v1/subscribers?status=active").await.json()),
        ["dave"]
    );
    assert_eq!(
        names(app.get("/api/v1/subscribers?search=AV").await.json()),
        ["dave"]
    );
    assert_eq!(
        names(
            app.get(&format!("/api/v1/subscribers?plan_id={plan}"))
                .await
                .json()
        )
        .len(),
        2
    );
    assert!(names(app.get("/api/v1/subscribers?search=%25").await.json()).is_empty());
    app.get("/api/v1/subscribers?status=bogus")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/subscribers?plan_id=x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");

    // Suspend / resume / patch / delete.
    assert_eq!(
        app.post_empty("/api/v1/subscribers/dave/suspend")
            .await
            .json()["status"],
        "suspended"
    );
    assert_eq!(
        app.post_empty("/api/v1/subscribers/dave/resume")
            .await
            .json()["status"],
        "active"
    );
    app.post_empty("/api/v1/subscribers/nobody/suspend")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let r = app
        .patch(
            "/api/v1/subscribers/dave",
            &json!({"mac": null, "password": "new", "expires_at": "2031-05-06T07:08:09+03:00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json()["mac"].is_null());
    assert_eq!(r.json()["password"], "new");
    assert_eq!(r.json()["expires_at"], "2031-05-06T04:08:09Z");
    assert_eq!(r.json()["static_ip"], "10.1.2.3");
    app.patch("/api/v1/subscribers/dave", &json!({"plan_id": 424242}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.patch("/api/v1/subscribers/dave", &json!({"username": "erin"}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        app.delete("/api/v1/subscribers/dave").await.status,
        StatusCode::NO_CONTENT
    );
    app.delete("/api/v1/subscribers/dave")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn renew_extends_from_the_later_of_now_and_expiry(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let plan = app.plan("Week", 7 * 86_400, Some(10_000)).await;
    let future = "2040-01-01T00:00:00Z";
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "early", "password": "pw", "plan_id": plan, "expires_at": future, "data_remaining_bytes": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.post_empty("/api/v1/subscribers/early/renew").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["expires_at"], "2040-01-08T00:00:00Z");
    assert_eq!(r.json()["data_remaining_bytes"], 10_000);

    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "late", "password": "pw", "plan_id": plan, "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let before = Utc::now();
    let r = app.post_empty("/api/v1/subscribers/late/renew").await;
    let after = Utc::now();
    let exp = ts(&r.json()["expires_at"]);
    assert!(
        exp >= before + Duration::days(7) - Duration::seconds(1),
        "{exp}"
    );
    assert!(exp <= after + Duration::days(7), "{exp}");
    app.post_empty("/api/v1/subscribers/nobody/renew")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn unknown_routes_and_methods_answer_json(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.get("/api/v1/nothing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.send("PUT", "/api/v1/plans", None, Some(&app.token))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let r = app
        .send("POST", "/api/v1/plans", None, Some(&app.token))
        .await;
    r.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}
