//! M-Pesa Express: `processrequest` (the push), `query`, and what the phone does afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use crate::model::{
    AmountFormat, Channel, Delivery, DeliveryKind, LedgerEntry, ResultCode, StkPush, StkState,
};
use crate::wire::{self, ApiError, ApiResult, field, text};
use crate::{Shared, StkEntry, c2b, deliver, oauth};

/// Without `Content-Type: application/json` Daraja blames this field: the misleading
/// message the Express FAQ warns about.
const MISSING_TYPE_FIELD: &str = "BusinessShortCode";

/// Checks `BusinessShortCode`, `Timestamp` and `Password`, shared by push and query.
/// Returns the merchant's index.
fn check_credentials(shared: &Shared, obj: &Map<String, Value>) -> Result<usize, ApiError> {
    let code = field(obj, "BusinessShortCode", wire::is_shortcode)?;
    let (index, merchant) = shared
        .merchant_for_business_shortcode(&code)
        .ok_or_else(|| ApiError::new("500.001.1001", "Merchant does not exist"))?;
    let timestamp = text(obj, "Timestamp").unwrap_or_default();
    let when = wire::parse_timestamp(&timestamp).ok_or_else(|| ApiError::invalid("Timestamp"))?;
    let skew = (Utc::now() - when).abs().to_std().unwrap_or(Duration::MAX);
    if skew > shared.config.timestamp_window {
        return Err(ApiError::invalid("Timestamp"));
    }
    let expected = wire::stk_password(&code, merchant.passkey.expose_secret(), &timestamp);
    if text(obj, "Password").as_deref() != Some(expected.as_str()) {
        return Err(ApiError::new("500.001.1001", "Wrong credentials"));
    }
    Ok(index)
}

pub(crate) async fn push(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let obj = oauth::authorized_body(&shared, &headers, &body, MISSING_TYPE_FIELD)?;
    let index = check_credentials(&shared, &obj)?;
    let merchant = &shared.config.merchants[index];

    let transaction_type = field(&obj, "TransactionType", |t| {
        t == "CustomerPayBillOnline" || t == "CustomerBuyGoodsOnline"
    })?;
    let amount = wire::whole_amount(&obj, "Amount").ok_or_else(|| ApiError::invalid("Amount"))?;
    field(&obj, "PartyA", wire::is_msisdn)?;
    let party_b = field(&obj, "PartyB", wire::is_shortcode)?;
    let phone = field(&obj, "PhoneNumber", wire::is_msisdn)?;
    let callback_url = field(&obj, "CallBackURL", wire::is_acceptable_url)?;
    let account_reference = field(&obj, "AccountReference", |a| {
        !a.is_empty() && a.chars().count() <= 12
    })?;
    let description = field(&obj, "TransactionDesc", |d| {
        !d.is_empty() && d.chars().count() <= 13
    })?;

    let now = Utc::now();
    let mut st = shared.state();
    if st.locked_phones.contains(&phone) {
        return Err(ApiError::new(
            "500.001.1001",
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        ));
    }
    let mut outcome = st
        .scripts
        .get_mut(&phone)
        .and_then(|q| q.pop_front())
        .unwrap_or_else(|| shared.config.default_outcome.clone());
    // M-Pesa refuses before the prompt reaches the phone, whatever the customer would do.
    if transaction_type != merchant.shortcode.transaction_type() {
        outcome.result = ResultCode::Code(2028);
    } else if party_b != merchant.shortcode.party_b() {
        outcome.result = ResultCode::from("SFC_IC0003");
    } else if outcome.result.is_success() && !shared.config.rule17_window.is_zero() {
        let window = chrono::Duration::from_std(shared.config.rule17_window)
            .unwrap_or(chrono::Duration::MAX);
        let repeated = st.ledger.iter().any(|e| {
            e.phone == phone
                && e.amount == amount
                && matches!(e.channel, Channel::Stk { .. })
                && now - e.at < window
        });
        if repeated {
            outcome.result = ResultCode::Code(17);
        }
    }

    let mut checkout_request_id = wire::checkout_request_id(now, &phone);
    let mut bump = now;
    while st.stk.contains_key(&checkout_request_id) {
        bump += chrono::Duration::milliseconds(1);
        checkout_request_id = wire::checkout_request_id(bump, &phone);
    }
    let merchant_request_id = wire::request_id();
    let delay = outcome.delay;
    let release = Arc::new(tokio::sync::Notify::new());
    st.locked_phones.insert(phone.clone());
    st.stk_order.push(checkout_request_id.clone());
    st.stk.insert(
        checkout_request_id.clone(),
        StkEntry {
            push: StkPush {
                merchant_request_id: merchant_request_id.clone(),
                checkout_request_id: checkout_request_id.clone(),
                phone,
                amount,
                account_reference,
                description,
                callback_url,
                business_shortcode: merchant.shortcode.business_shortcode().to_owned(),
                state: StkState::Pending,
                receipt: None,
                requested_at: now,
            },
            outcome,
            held_callback: None,
            release: release.clone(),
        },
    );
    drop(st);

    let task_shared = shared.clone();
    let id = checkout_request_id.clone();
    shared.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = release.notified() => {}
        }
        complete(task_shared, index, id).await;
    });

    Ok(axum::Json(json!({
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResponseCode": "0",
        "ResponseDescription": "Success. Request accepted for processing",
        "CustomerMessage": "Success. Request accepted for processing",
    }))
    .into_response())
}

/// The callback body Daraja POSTs. Built as text because a success callback's `Amount`
/// may be written `1.00`, which a `serde_json::Value` cannot keep.
fn callback_body(
    push: &StkPush,
    result: &ResultCode,
    format: AmountFormat,
    paid: Option<(&str, &str)>,
) -> String {
    let head = format!(
        r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":{},"CheckoutRequestID":{},"ResultCode":{},"ResultDesc":{}"#,
        json!(push.merchant_request_id),
        json!(push.checkout_request_id),
        json!(result),
        json!(result.description()),
    );
    match paid {
        None => format!("{head}}}}}}}"),
        Some((receipt, date)) => {
            let amount = match format {
                AmountFormat::Integer => push.amount.to_string(),
                AmountFormat::Decimal => format!("{}.00", push.amount),
            };
            format!(
                r#"{head},"CallbackMetadata":{{"Item":[{{"Name":"Amount","Value":{amount}}},{{"Name":"MpesaReceiptNumber","Value":{}}},{{"Name":"Balance"}},{{"Name":"TransactionDate","Value":{date}}},{{"Name":"PhoneNumber","Value":{}}}]}}}}}}}}"#,
                json!(receipt),
                push.phone,
            )
        }
    }
}

/// The prompt closes: record the result, release the phone, pay, and notify the daemon.
async fn complete(shared: Arc<Shared>, merchant: usize, checkout_request_id: String) {
    let now = Utc::now();
    let (push, outcome, body, paid_receipt) = {
        let mut st = shared.state();
        let receipt = {
            let Some(entry) = st.stk.get(&checkout_request_id) else {
                return;
            };
            entry.outcome.result.is_success()
        }
        .then(|| st.new_receipt());
        let Some(entry) = st.stk.get_mut(&checkout_request_id) else {
            return;
        };
        entry.push.state = StkState::Completed(entry.outcome.result.clone());
        entry.push.receipt = receipt.clone();
        let push = entry.push.clone();
        let outcome = entry.outcome.clone();
        let date = wire::nairobi_timestamp(now);
        let body = callback_body(
            &push,
            &outcome.result,
            outcome.amount_format,
            receipt.as_deref().map(|r| (r, date.as_str())),
        );
        if outcome.delivery == Delivery::Late {
            entry.held_callback = Some(body.clone());
        }
        st.locked_phones.remove(&push.phone);
        if let Some(receipt) = &receipt {
            st.ledger.push(LedgerEntry {
                receipt: receipt.clone(),
                phone: push.phone.clone(),
                amount: push.amount,
                account_reference: push.account_reference.clone(),
                shortcode: shared.config.merchants[merchant]
                    .shortcode
                    .c2b_shortcode()
                    .to_owned(),
                channel: Channel::Stk {
                    checkout_request_id: push.checkout_request_id.clone(),
                },
                at: now,
            });
            *st.balances.entry(merchant).or_default() += push.amount;
        }
        (push, outcome, body, receipt)
    };

    let url = push.callback_url.as_str();
    let kind = DeliveryKind::StkCallback;
    match &outcome.delivery {
        Delivery::Once => {
            deliver::deliver(&shared, kind, url, &body).await;
        }
        Delivery::Twice => {
            deliver::deliver(&shared, kind, url, &body).await;
            deliver::deliver(&shared, kind, url, &body).await;
        }
        Delivery::TwiceConcurrently => {
            tokio::join!(
                deliver::deliver(&shared, kind, url, &body),
                deliver::deliver(&shared, kind, url, &body)
            );
        }
        Delivery::Never | Delivery::Late => {}
        Delivery::WrongPath => {
            deliver::deliver(&shared, kind, &forged_path(url), &body).await;
        }
        Delivery::ThenConflicting(other) => {
            deliver::deliver(&shared, kind, url, &body).await;
            let conflicting = callback_body(&push, other, outcome.amount_format, None);
            deliver::deliver(&shared, kind, url, &conflicting).await;
        }
    }

    if let Some(receipt) = paid_receipt
        && shared.config.c2b_confirmation_for_stk
    {
        for _ in 0..outcome.c2b_copies {
            c2b::confirm_stk_payment(&shared, merchant, &push, &receipt).await;
        }
    }
}

/// The same URL with its last path segment swapped for a random one of the same length:
/// what a callback to a stale or forged per-intent path looks like.
fn forged_path(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let path = parsed.path().to_owned();
    let (dir, last) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    let mut forged: String = wire::opaque_token()
        .chars()
        .cycle()
        .take(last.len().max(8))
        .collect();
    if forged == last {
        forged.push('x');
    }
    parsed.set_path(&format!("{dir}/{forged}"));
    parsed.to_string()
}

pub(crate) async fn query(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let obj = oauth::authorized_body(&shared, &headers, &body, MISSING_TYPE_FIELD)?;
    spike_arrest(&shared)?;
    let index = check_credentials(&shared, &obj)?;
    let shortcode = shared.config.merchants[index]
        .shortcode
        .business_shortcode();
    let id = text(&obj, "CheckoutRequestID").unwrap_or_default();
    let sandbox_bug = shared.sandbox_query_bug();

    let mut st = shared.state();
    // Another merchant's push is as unknown as one that never existed.
    let entry = st
        .stk
        .get_mut(&id)
        .filter(|e| e.push.business_shortcode == shortcode)
        .ok_or_else(|| ApiError::invalid("CheckoutRequestID"))?;
    let StkState::Completed(result) = entry.push.state.clone() else {
        return Err(ApiError::new(
            "500.001.1001",
            "The transaction is being processed",
        ));
    };
    let reported = if sandbox_bug && result.is_success() {
        ResultCode::Code(1032)
    } else {
        result
    };
    let response = json!({
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successfully",
        "MerchantRequestID": entry.push.merchant_request_id,
        "CheckoutRequestID": entry.push.checkout_request_id,
        "ResultCode": reported.as_text(),
        "ResultDesc": reported.description(),
    });
    // Delivery::Late: the query has now told the daemon the result; the callback follows.
    if let Some(held) = entry.held_callback.take() {
        let url = entry.push.callback_url.clone();
        let task_shared = shared.clone();
        drop(st);
        shared.spawn(async move {
            deliver::deliver(&task_shared, DeliveryKind::StkCallback, &url, &held).await;
        });
    }
    Ok(axum::Json(response).into_response())
}

/// `500.003.02` when STK queries come faster than the configured rate (over the last
/// second), as Daraja's spike arrest does.
fn spike_arrest(shared: &Shared) -> Result<(), ApiError> {
    let Some(limit) = shared.query_rate_limit() else {
        return Ok(());
    };
    let now = Instant::now();
    let mut st = shared.state();
    while st
        .recent_queries
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        st.recent_queries.pop_front();
    }
    if st.recent_queries.len() >= limit as usize {
        return Err(ApiError::new("500.003.02", "Spike arrest violation"));
    }
    st.recent_queries.push_back(now);
    Ok(())
}
