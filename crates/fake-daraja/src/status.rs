//! Transaction Status: accepted synchronously, answered later by a POST to `ResultURL`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::config::StatusMode;
use crate::model::{DeliveryKind, LedgerEntry};
use crate::wire::{self, ApiError, ApiResult, field, text};
use crate::{Shared, deliver, oauth};

/// `ResultCode` for a receipt M-Pesa does not know. Safaricom's reference does not name
/// the code, so this one is the fake's choice (any non-zero code is a failure).
pub const STATUS_NOT_FOUND_CODE: i64 = 1;

pub(crate) async fn query(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let obj = oauth::authorized_body(&shared, &headers, &body, "Initiator")?;
    let initiator = field(&obj, "Initiator", |s| !s.is_empty())?;
    let credential = field(&obj, "SecurityCredential", |s| !s.is_empty())?;
    if text(&obj, "CommandID").as_deref() != Some("TransactionStatusQuery") {
        return Err(ApiError::invalid("CommandID"));
    }
    let transaction_id = text(&obj, "TransactionID").unwrap_or_default();
    let original_conversation_id = text(&obj, "OriginalConversationID").unwrap_or_default();
    if transaction_id.is_empty() && original_conversation_id.is_empty() {
        return Err(ApiError::invalid("TransactionID"));
    }
    let party_a = text(&obj, "PartyA").unwrap_or_default();
    shared
        .merchant_answering_to(&party_a)
        .ok_or_else(|| ApiError::invalid("PartyA"))?;
    if !matches!(
        text(&obj, "IdentifierType").as_deref(),
        Some("1" | "2" | "4")
    ) {
        return Err(ApiError::invalid("IdentifierType"));
    }
    let result_url = field(&obj, "ResultURL", wire::is_acceptable_url)?;
    let timeout_url = field(&obj, "QueueTimeOutURL", wire::is_acceptable_url)?;
    let occasion = text(&obj, "Occasion").unwrap_or_default();

    // A wrong operator is refused asynchronously, like a wrong PIN: result 2001.
    let initiator_ok =
        shared.config.initiator.as_ref().is_none_or(|i| {
            i.name == initiator && i.security_credential.expose_secret() == credential
        });
    let now = Utc::now();
    let conversation_id = wire::conversation_id(now);
    let originator_id = wire::request_id();
    let found = shared
        .state()
        .ledger
        .iter()
        .find(|e| !transaction_id.is_empty() && e.receipt == transaction_id)
        .cloned();

    let ids = Ids {
        conversation_id: conversation_id.clone(),
        originator_id: originator_id.clone(),
        transaction_id,
        occasion,
    };
    let mode = shared.status_mode();
    let task_shared = shared.clone();
    shared.spawn(async move {
        match mode {
            StatusMode::Silent => {}
            StatusMode::QueueTimeout => {
                let body = result_body(&ids, 1, "The request timed out in the queue", None);
                deliver::deliver(
                    &task_shared,
                    DeliveryKind::StatusTimeout,
                    &timeout_url,
                    &body,
                )
                .await;
            }
            StatusMode::Answer => {
                let body = match (initiator_ok, &found) {
                    (false, _) => {
                        result_body(&ids, 2001, "The initiator information is invalid.", None)
                    }
                    (true, Some(entry)) => result_body(
                        &ids,
                        0,
                        "The service request is processed successfully.",
                        Some(entry),
                    ),
                    (true, None) => result_body(
                        &ids,
                        STATUS_NOT_FOUND_CODE,
                        "The transaction could not be found.",
                        None,
                    ),
                };
                deliver::deliver(&task_shared, DeliveryKind::StatusResult, &result_url, &body)
                    .await;
            }
        }
    });

    Ok(axum::Json(json!({
        "OriginatorConversationID": originator_id,
        "ConversationID": conversation_id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
    .into_response())
}

struct Ids {
    conversation_id: String,
    originator_id: String,
    transaction_id: String,
    occasion: String,
}

/// The `{"Result": {...}}` document of mpesa-daraja.md §2.8.
fn result_body(ids: &Ids, code: i64, desc: &str, entry: Option<&LedgerEntry>) -> String {
    let mut result = json!({
        "ConversationID": ids.conversation_id,
        "OriginatorConversationID": ids.originator_id,
        "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": ids.occasion}},
        "ResultCode": code,
        "ResultDesc": desc,
        "ResultType": 0,
        "TransactionID": ids.transaction_id,
    });
    if let Some(e) = entry {
        let time = wire::nairobi_timestamp(e.at);
        result["ResultParameters"] = json!({"ResultParameter": [
            {"Key": "DebitPartyName", "Value": format!("{} - JOHN DOE", e.phone)},
            {"Key": "CreditPartyName", "Value": format!("{} - JASIYO TEST", e.shortcode)},
            {"Key": "TransactionStatus", "Value": "Completed"},
            {"Key": "Amount", "Value": e.amount.to_string()},
            {"Key": "ReceiptNo", "Value": e.receipt},
            {"Key": "InitiatedTime", "Value": time},
            {"Key": "FinalisedTime", "Value": time},
        ]});
    }
    let doc: Value = json!({ "Result": result });
    doc.to_string()
}
