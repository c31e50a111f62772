//! C2B: URL registration, the sandbox `simulate`, and the validation -> confirmation run a
//! payment goes through.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::Utc;
use serde_json::{Value, json};

use crate::config::Mode;
use crate::model::{C2bOutcome, Channel, DeliveryKind, LedgerEntry, StkPush};
use crate::wire::{self, ApiError, ApiResult, field, text};
use crate::{Registration, Shared, deliver, oauth};

/// Names a C2B notification carries. M-Pesa reports the payer's registered name; the fake
/// uses one fixed name so tests can assert on it.
const FIRST_NAME: &str = "JOHN";

pub(crate) async fn register(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let obj = oauth::authorized_body(&shared, &headers, &body, "ShortCode")?;
    let code = text(&obj, "ShortCode").unwrap_or_default();
    let (index, _) = shared
        .merchant_answering_to(&code)
        .ok_or_else(|| ApiError::invalid("ShortCode"))?;
    // Sentence case only, as Daraja insists.
    let cancel_on_timeout = match text(&obj, "ResponseType").as_deref() {
        Some("Completed") => false,
        Some("Cancelled") => true,
        _ => return Err(ApiError::invalid("ResponseType")),
    };
    let confirmation_url = field(&obj, "ConfirmationURL", wire::is_acceptable_url)?;
    let validation_url = field(&obj, "ValidationURL", wire::is_acceptable_url)?;

    let mut st = shared.state();
    if shared.config.mode == Mode::Production && st.registrations.contains_key(&index) {
        return Err(ApiError::new("500.003.1001", "Urls are already registered"));
    }
    st.registrations.insert(
        index,
        Registration {
            confirmation_url,
            validation_url,
            cancel_on_timeout,
        },
    );
    Ok(axum::Json(json!({
        // Daraja's spelling.
        "OriginatorCoversationID": wire::request_id(),
        "ResponseCode": "0",
        "ResponseDescription": "Success",
    }))
    .into_response())
}

pub(crate) async fn simulate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let obj = oauth::authorized_body(&shared, &headers, &body, "ShortCode")?;
    if shared.config.mode == Mode::Production {
        // "Simulation is not supported on production."
        return Err(ApiError::new("404.001.01", "Resource not found"));
    }
    let code = text(&obj, "ShortCode").unwrap_or_default();
    let (index, merchant) = shared
        .merchant_answering_to(&code)
        .ok_or_else(|| ApiError::invalid("ShortCode"))?;
    if text(&obj, "CommandID").as_deref() != Some(merchant.shortcode.transaction_type()) {
        return Err(ApiError::invalid("CommandID"));
    }
    let amount = wire::whole_amount(&obj, "Amount").ok_or_else(|| ApiError::invalid("Amount"))?;
    let phone = field(&obj, "Msisdn", wire::is_msisdn)?;
    let bill_ref = text(&obj, "BillRefNumber").unwrap_or_default();
    if bill_ref.chars().count() > 20 {
        return Err(ApiError::invalid("BillRefNumber"));
    }

    let task_shared = shared.clone();
    shared.spawn(async move {
        run_payment(&task_shared, index, &bill_ref, amount, &phone).await;
    });
    Ok(axum::Json(json!({
        "OriginatorCoversationID": wire::request_id(),
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
    .into_response())
}

/// One payment as C2B notifications describe it.
struct Payment<'a> {
    merchant: usize,
    trans_id: &'a str,
    amount: u64,
    bill_ref: &'a str,
    phone: &'a str,
}

/// The validation/confirmation payload: every value a string, `MSISDN` hashed or masked,
/// `OrgAccountBalance` blank in validation (`balance` None).
fn notification(
    shared: &Shared,
    p: &Payment<'_>,
    balance: Option<u64>,
    third_party: &str,
) -> String {
    let shortcode = &shared.config.merchants[p.merchant].shortcode;
    json!({
        "TransactionType": shortcode.c2b_type(),
        "TransID": p.trans_id,
        "TransTime": wire::nairobi_timestamp(Utc::now()),
        "TransAmount": format!("{}.00", p.amount),
        "BusinessShortCode": shortcode.c2b_shortcode(),
        "BillRefNumber": p.bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": balance.map(|b| format!("{b}.00")).unwrap_or_default(),
        "ThirdPartyTransID": third_party,
        "MSISDN": wire::opaque_msisdn(p.phone, shared.config.c2b_msisdn),
        "FirstName": FIRST_NAME,
        "MiddleName": "",
        "LastName": "",
    })
    .to_string()
}

/// Sends the confirmation for `p` to the merchant's registered URL, if there is one.
async fn confirm(shared: &Shared, p: &Payment<'_>, third_party: &str) {
    let (registration, balance) = {
        let st = shared.state();
        (
            st.registrations.get(&p.merchant).cloned(),
            st.balances.get(&p.merchant).copied().unwrap_or_default(),
        )
    };
    let Some(reg) = registration else {
        return;
    };
    let body = notification(shared, p, Some(balance), third_party);
    deliver::deliver(
        shared,
        DeliveryKind::C2bConfirmation,
        &reg.confirmation_url,
        &body,
    )
    .await;
}

/// What the daemon's validation answer means. `None`: no usable answer, so M-Pesa applies
/// the registered `ResponseType`.
fn read_validation_reply(reply: &deliver::Reply) -> Option<Result<String, String>> {
    if !(200..300).contains(&reply.status) {
        return None;
    }
    let v: Value = serde_json::from_slice(&reply.body).ok()?;
    let code = match v.get("ResultCode")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if code == "0" {
        let third_party = v
            .get("ThirdPartyTransID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Some(Ok(third_party))
    } else {
        Some(Err(code))
    }
}

/// One customer-initiated payment, start to end.
pub(crate) async fn run_payment(
    shared: &Shared,
    merchant_index: usize,
    bill_ref: &str,
    amount: u64,
    phone: &str,
) -> C2bOutcome {
    let (trans_id, registration) = {
        let mut st = shared.state();
        (
            st.new_receipt(),
            st.registrations.get(&merchant_index).cloned(),
        )
    };
    let payment = Payment {
        merchant: merchant_index,
        trans_id: &trans_id,
        amount,
        bill_ref,
        phone,
    };

    let mut third_party = String::new();
    if let Some(reg) = &registration
        && shared.config.c2b_external_validation
    {
        let body = notification(shared, &payment, None, "");
        let reply = deliver::post_once(
            shared,
            DeliveryKind::C2bValidation,
            &reg.validation_url,
            &body,
            1,
            shared.config.c2b_validation_timeout,
        )
        .await;
        match reply.ok().as_ref().and_then(read_validation_reply) {
            Some(Ok(id)) => third_party = id,
            Some(Err(result_code)) => return C2bOutcome::Rejected { result_code },
            None if reg.cancel_on_timeout => return C2bOutcome::Cancelled,
            None => {}
        }
    }

    {
        let mut st = shared.state();
        st.ledger.push(LedgerEntry {
            receipt: trans_id.clone(),
            phone: phone.to_owned(),
            amount,
            account_reference: bill_ref.to_owned(),
            shortcode: shared.config.merchants[merchant_index]
                .shortcode
                .c2b_shortcode()
                .to_owned(),
            channel: Channel::C2b,
            at: Utc::now(),
        });
        *st.balances.entry(merchant_index).or_default() += amount;
    }
    confirm(shared, &payment, &third_party).await;
    C2bOutcome::Completed { trans_id }
}

/// The C2B confirmation M-Pesa also sends for a paid STK push: same `TransID` as the
/// callback's receipt, `BillRefNumber` = the push's `AccountReference`. No validation: the
/// customer already approved the prompt.
pub(crate) async fn confirm_stk_payment(
    shared: &Shared,
    merchant_index: usize,
    push: &StkPush,
    receipt: &str,
) {
    let payment = Payment {
        merchant: merchant_index,
        trans_id: receipt,
        amount: push.amount,
        bill_ref: &push.account_reference,
        phone: &push.phone,
    };
    confirm(shared, &payment, "").await;
}
