//! POSTs to the daemon: one attempt at a time, every attempt recorded.

use std::time::Duration;

use axum::http::header;
use chrono::Utc;

use crate::Shared;
use crate::model::{DeliveryAttempt, DeliveryKind};

/// What one POST got back.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// One POST of `body` to `url`, recorded as attempt number `attempt`. `Err` carries why
/// there was no HTTP answer (refused, timed out).
pub(crate) async fn post_once(
    shared: &Shared,
    kind: DeliveryKind,
    url: &str,
    body: &str,
    attempt: u32,
    timeout: Duration,
) -> Result<Reply, String> {
    let sent = shared
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body.to_owned())
        .send()
        .await;
    let result = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(b) => Ok(Reply {
                    status,
                    body: b.to_vec(),
                }),
                Err(e) => Err(format!("reading the reply: {e}")),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let (status, error) = match &result {
        Ok(r) => (Some(r.status), None),
        Err(e) => (None, Some(e.clone())),
    };
    shared.state().deliveries.push(DeliveryAttempt {
        kind,
        url: url.to_owned(),
        body: body.to_owned(),
        attempt,
        status,
        error,
        at: Utc::now(),
    });
    result
}

/// Delivers a notification, retrying a non-2xx answer or no answer as the config's
/// [`crate::RetryPolicy`] says. Returns the last HTTP status, if any came.
pub(crate) async fn deliver(
    shared: &Shared,
    kind: DeliveryKind,
    url: &str,
    body: &str,
) -> Option<u16> {
    let policy = shared.config.retry.clone();
    let mut backoff = policy.initial_backoff;
    let mut last = None;
    for attempt in 1..=policy.max_attempts.max(1) {
        match post_once(
            shared,
            kind,
            url,
            body,
            attempt,
            shared.config.callback_timeout,
        )
        .await
        {
            Ok(r) if (200..300).contains(&r.status) => return Some(r.status),
            Ok(r) => last = Some(r.status),
            Err(_) => {}
        }
        if attempt < policy.max_attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(policy.max_backoff);
        }
    }
    last
}
