//! Scripted behaviour and the records a test inspects afterwards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// An M-Pesa Express result code. Daraja sends numbers, but `"SFC_IC0003"` has been seen as
/// a string, so both shapes exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ResultCode {
    Code(i64),
    Text(String),
}

impl ResultCode {
    pub fn is_success(&self) -> bool {
        *self == ResultCode::Code(0)
    }

    /// The `ResultDesc` Daraja sends with the code (mpesa-daraja.md §2.4).
    pub(crate) fn description(&self) -> &'static str {
        match self {
            ResultCode::Code(0) => "The service request is processed successfully.",
            ResultCode::Code(1) => "The balance is insufficient for the transaction.",
            ResultCode::Code(17) => "Rule limited.",
            ResultCode::Code(1019) => "Transaction has expired",
            ResultCode::Code(1025) => "Unable to send push request",
            ResultCode::Code(1032) => "Request cancelled by user",
            ResultCode::Code(1037) => "DS timeout user cannot be reached",
            ResultCode::Code(2001) => "The initiator information is invalid.",
            ResultCode::Code(2028) => {
                "The request is not permitted according to product assignment"
            }
            ResultCode::Text(t) if t == "SFC_IC0003" => "Operator does not exist",
            _ => "The transaction failed.",
        }
    }

    /// How STK Query prints the code: always a string.
    pub(crate) fn as_text(&self) -> String {
        match self {
            ResultCode::Code(c) => c.to_string(),
            ResultCode::Text(t) => t.clone(),
        }
    }
}

impl From<i64> for ResultCode {
    fn from(code: i64) -> Self {
        ResultCode::Code(code)
    }
}

impl From<&str> for ResultCode {
    fn from(code: &str) -> Self {
        ResultCode::Text(code.to_owned())
    }
}

/// How the STK callback for a push reaches the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Once,
    /// The same body twice, one after the other.
    Twice,
    /// The same body twice at the same time.
    TwiceConcurrently,
    Never,
    /// Held back until an STK Query has reported the final result, then sent.
    Late,
    /// Sent to the CallBackURL with its last path segment replaced by a forged one.
    WrongPath,
    /// The real callback, then a second one for the same push with this (conflicting)
    /// result, e.g. a failure after a success.
    ThenConflicting(ResultCode),
}

/// How the `Amount` item of a success callback is written: Daraja sends both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountFormat {
    /// `"Value":1`
    Integer,
    /// `"Value":1.00`
    Decimal,
}

/// What the customer's phone does with one STK push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: ResultCode,
    /// Time from the push being accepted to the result being known.
    pub delay: Duration,
    pub delivery: Delivery,
    pub amount_format: AmountFormat,
    /// How many C2B confirmations a paid push also produces when the config's
    /// `c2b_confirmation_for_stk` is on: Safaricom documents one, and documents no retry
    /// policy, so a test may want none or a duplicate.
    pub c2b_copies: u8,
}

impl Outcome {
    /// Paid after 50 ms, callback delivered once, amount written `1.00`.
    pub fn success() -> Self {
        Outcome {
            result: ResultCode::Code(0),
            delay: Duration::from_millis(50),
            delivery: Delivery::Once,
            amount_format: AmountFormat::Decimal,
            c2b_copies: 1,
        }
    }

    /// Fails with `code` (1, 17, 1032, 1037, 2001, "SFC_IC0003", ...) after 50 ms.
    pub fn failing(code: impl Into<ResultCode>) -> Self {
        Outcome {
            result: code.into(),
            ..Outcome::success()
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    pub fn with_c2b_copies(mut self, copies: u8) -> Self {
        self.c2b_copies = copies;
        self
    }

    pub fn with_amount_format(mut self, format: AmountFormat) -> Self {
        self.amount_format = format;
        self
    }
}

/// How a payment reached the merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    Stk { checkout_request_id: String },
    C2b,
}

/// One completed payment: money moved from `phone` to the merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The M-Pesa receipt (`MpesaReceiptNumber` = C2B `TransID`).
    pub receipt: String,
    pub phone: String,
    pub amount: u64,
    /// STK `AccountReference` or C2B `BillRefNumber`, as sent.
    pub account_reference: String,
    /// The number the customer paid to (paybill or till).
    pub shortcode: String,
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryKind {
    StkCallback,
    C2bValidation,
    C2bConfirmation,
    StatusResult,
    StatusTimeout,
}

/// One POST the fake made to the daemon.
#[derive(Clone, Debug)]
pub struct DeliveryAttempt {
    pub kind: DeliveryKind,
    pub url: String,
    /// The exact bytes sent (kept as text so `1.00` stays `1.00`).
    pub body: String,
    /// 1 for the first try of a notification, 2.. for retries.
    pub attempt: u32,
    /// The daemon's HTTP status, or `None` when it could not be reached in time.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl DeliveryAttempt {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One API call the fake received (headers are not kept: they carry secrets).
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: String,
    /// The HTTP status the fake answered.
    pub status: u16,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StkState {
    /// The prompt is open on the phone.
    Pending,
    Completed(ResultCode),
}

/// An accepted STK push as the fake saw it.
#[derive(Clone, Debug)]
pub struct StkPush {
    pub merchant_request_id: String,
    pub checkout_request_id: String,
    pub phone: String,
    pub amount: u64,
    pub account_reference: String,
    pub description: String,
    pub callback_url: String,
    pub business_shortcode: String,
    pub state: StkState,
    /// Set when the push was paid.
    pub receipt: Option<String>,
    pub requested_at: DateTime<Utc>,
}

/// The end of a C2B payment started with [`crate::FakeDaraja::pay_c2b`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum C2bOutcome {
    /// Money moved; the confirmation was sent to the registered URL, if any.
    Completed { trans_id: String },
    /// The daemon's validation reply refused it with this `ResultCode`.
    Rejected { result_code: String },
    /// Validation could not be reached in time and the registration said `Cancelled`.
    Cancelled,
}
