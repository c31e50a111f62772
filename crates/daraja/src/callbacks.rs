//! What Daraja POSTs to the daemon, parsed without I/O.
//!
//! Safaricom's payloads differ from its own documentation in small ways that break strict
//! parsers: numbers arrive as strings and strings as numbers, `ResultCode` is sometimes a
//! string such as `"SFC_IC0003"`, metadata items are a list looked up by `Name` (their order
//! is not promised) and the `Balance` item comes without a `Value`, amounts are `1` or
//! `"1.00"`, and a one-element list may come as a bare object. The parsers here read the
//! JSON as a tree and accept all of those, but they never round money: an amount with a
//! non-zero fraction is an error, not a truncation.
//!
//! Parsing says nothing about authenticity: callbacks are not signed, so the caller must
//! still check the CheckoutRequestID, the amount and the receipt against its own records.

use serde_json::{Map, Value, json};

use crate::types::ResultCode;

/// Why a callback body could not be read. The body itself is not included: the caller
/// stores the raw bytes before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// An STK Push result, as POSTed to the push's CallBackURL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StkCallback {
    pub merchant_request_id: String,
    pub checkout_request_id: String,
    pub result_code: ResultCode,
    pub result_desc: String,
    /// `Some` exactly when the result code is success: a success callback without an
    /// amount and a receipt is refused as a [`ParseError`] rather than credited blind.
    pub paid: Option<StkPaid>,
}

/// The metadata of a successful STK payment. Note there is no account reference: Daraja
/// does not echo it, so the payment is matched through the CheckoutRequestID only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StkPaid {
    pub amount_kes: u64,
    /// `MpesaReceiptNumber`, e.g. `NLJ7RT61SV`; see [`looks_like_receipt`].
    pub receipt: String,
    /// `TransactionDate` as `YYYYMMDDHHmmss` (sent as a number), Nairobi time.
    pub transaction_date: Option<String>,
    /// `PhoneNumber` as sent (a number such as 254708374149).
    pub phone: Option<String>,
}

/// Parse the body Safaricom POSTs to an STK CallBackURL:
/// `{"Body":{"stkCallback":{MerchantRequestID, CheckoutRequestID, ResultCode, ResultDesc,
/// CallbackMetadata?:{Item:[{Name, Value?}]}}}}`.
pub fn parse_stk_callback(body: &[u8]) -> Result<StkCallback, ParseError> {
    let root = parse_object(body)?;
    let body = object_at(&root, "Body", "Body")?;
    let cb = object_at(body, "stkCallback", "Body.stkCallback")?;
    let result_code = result_code_at(cb, "ResultCode", "Body.stkCallback.ResultCode")?;
    let paid = if result_code.is_success() {
        Some(stk_paid(cb)?)
    } else {
        // A failure may still carry metadata; it credits nothing, so it is not read.
        None
    };
    Ok(StkCallback {
        merchant_request_id: required_text(
            cb,
            "MerchantRequestID",
            "Body.stkCallback.MerchantRequestID",
        )?,
        checkout_request_id: required_text(
            cb,
            "CheckoutRequestID",
            "Body.stkCallback.CheckoutRequestID",
        )?,
        result_code,
        result_desc: optional_text(cb.get("ResultDesc")).unwrap_or_default(),
        paid,
    })
}

fn stk_paid(cb: &Map<String, Value>) -> Result<StkPaid, ParseError> {
    const META: &str = "Body.stkCallback.CallbackMetadata";
    let meta = object_at(cb, "CallbackMetadata", META)?;
    let items = one_or_many(meta.get("Item")).ok_or(ParseError::Missing(
        "Body.stkCallback.CallbackMetadata.Item",
    ))?;
    // Items by name: their order differs between senders, and optional items
    // (Balance) come and go.
    let item = |name: &str| {
        items.iter().find_map(|item| {
            let item = item.as_object()?;
            let n = item.get("Name")?.as_str()?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| item.get("Value"))
        })
    };
    let amount = item("Amount")
        .flatten()
        .ok_or(ParseError::Missing("CallbackMetadata Amount"))?;
    let amount_kes = whole_shillings(amount, "CallbackMetadata Amount")?;
    let receipt = optional_text(item("MpesaReceiptNumber").flatten())
        .ok_or(ParseError::Missing("CallbackMetadata MpesaReceiptNumber"))?;
    Ok(StkPaid {
        amount_kes,
        receipt,
        transaction_date: optional_text(item("TransactionDate").flatten()),
        phone: optional_text(item("PhoneNumber").flatten()),
    })
}

/// A C2B validation request or confirmation (the same shape; in validation the balance is
/// blank). Text fields Daraja left out are empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2bPayment {
    /// The M-Pesa receipt (`TransID`); the same value as an STK payment's receipt when the
    /// confirmation echoes an STK payment.
    pub trans_id: String,
    /// "Pay Bill" or "Buy Goods".
    pub trans_type: String,
    /// `YYYYMMDDHHmmss`, Nairobi time.
    pub trans_time: String,
    pub amount_kes: u64,
    pub business_shortcode: String,
    /// What the customer typed as account (empty for Buy Goods); see
    /// [`C2bPayment::account_key`].
    pub bill_ref_number: String,
    pub invoice_number: String,
    pub org_account_balance: String,
    pub third_party_trans_id: String,
    /// `MSISDN`: nowadays a SHA-256 hex or a masked number, never a usable phone number or
    /// an identity. Kept only as data.
    pub msisdn_opaque: String,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
}

impl C2bPayment {
    /// `BillRefNumber` as a lookup key: customers type it by hand, so surrounding spaces
    /// and letter case do not count.
    pub fn account_key(&self) -> String {
        self.bill_ref_number.trim().to_lowercase()
    }
}

/// Parse a C2B validation or confirmation body. Values are documented as strings; numbers
/// are accepted too. `TransID` and `TransAmount` are required.
pub fn parse_c2b(body: &[u8]) -> Result<C2bPayment, ParseError> {
    let o = parse_object(body)?;
    let text = |key: &str| optional_text(o.get(key)).unwrap_or_default();
    let amount = o
        .get("TransAmount")
        .filter(|v| !v.is_null())
        .ok_or(ParseError::Missing("TransAmount"))?;
    Ok(C2bPayment {
        trans_id: required_text(&o, "TransID", "TransID")?,
        trans_type: text("TransactionType"),
        trans_time: text("TransTime"),
        amount_kes: whole_shillings(amount, "TransAmount")?,
        business_shortcode: text("BusinessShortCode"),
        bill_ref_number: text("BillRefNumber"),
        invoice_number: text("InvoiceNumber"),
        org_account_balance: text("OrgAccountBalance"),
        third_party_trans_id: text("ThirdPartyTransID"),
        msisdn_opaque: text("MSISDN"),
        first_name: text("FirstName"),
        middle_name: text("MiddleName"),
        last_name: text("LastName"),
    })
}

/// The asynchronous answer to a Transaction Status request, POSTed to its ResultURL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionStatusResult {
    pub conversation_id: String,
    pub originator_conversation_id: String,
    pub result_code: ResultCode,
    pub result_desc: String,
    pub transaction_id: Option<String>,
    /// `ReceiptNo`: the receipt that was asked about.
    pub receipt: Option<String>,
    pub amount_kes: Option<u64>,
    /// `TransactionStatus`, e.g. "Completed".
    pub transaction_status: Option<String>,
    /// `DebitPartyName`, e.g. "254708374149 - John Doe".
    pub debit_party_name: Option<String>,
    pub initiated_time: Option<String>,
    pub finalised_time: Option<String>,
    /// Every `ResultParameter` as key and value (as text), including the ones above.
    pub parameters: Vec<(String, Option<String>)>,
}

impl TransactionStatusResult {
    /// The query succeeded and the transaction it found is completed: money was received.
    pub fn is_completed(&self) -> bool {
        self.result_code.is_success()
            && self
                .transaction_status
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("completed"))
    }
}

/// Parse `{"Result":{ConversationID, OriginatorConversationID, ResultCode, ResultDesc,
/// TransactionID?, ResultParameters?:{ResultParameter:[{Key, Value?}]}}}`. A failed query
/// (e.g. unknown receipt) has a non-zero result code and usually no parameters.
pub fn parse_transaction_status_result(body: &[u8]) -> Result<TransactionStatusResult, ParseError> {
    let root = parse_object(body)?;
    let r = object_at(&root, "Result", "Result")?;
    let mut parameters = Vec::new();
    if let Some(params) = r.get("ResultParameters").and_then(Value::as_object) {
        for p in one_or_many(params.get("ResultParameter")).unwrap_or_default() {
            let Some(p) = p.as_object() else { continue };
            let Some(key) = optional_text(p.get("Key")) else {
                continue;
            };
            parameters.push((key, optional_text(p.get("Value"))));
        }
    }
    let param = |name: &str| {
        parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.clone())
    };
    let amount_kes = match param("Amount") {
        Some(a) => Some(whole_shillings(
            &Value::String(a),
            "ResultParameter Amount",
        )?),
        None => None,
    };
    Ok(TransactionStatusResult {
        conversation_id: optional_text(r.get("ConversationID")).unwrap_or_default(),
        originator_conversation_id: optional_text(r.get("OriginatorConversationID"))
            .unwrap_or_default(),
        result_code: result_code_at(r, "ResultCode", "Result.ResultCode")?,
        result_desc: optional_text(r.get("ResultDesc")).unwrap_or_default(),
        transaction_id: optional_text(r.get("TransactionID")),
        receipt: param("ReceiptNo"),
        amount_kes,
        transaction_status: param("TransactionStatus"),
        debit_party_name: param("DebitPartyName"),
        initiated_time: param("InitiatedTime"),
        finalised_time: param("FinalisedTime"),
        parameters,
    })
}

/// Whether a receipt has the usual M-Pesa shape, ten upper-case letters and digits. The
/// format is inferred from examples, not documented, so use it to flag, not to drop money.
pub fn looks_like_receipt(receipt: &str) -> bool {
    receipt.len() == 10
        && receipt
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The C2B validation reject codes Daraja knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum C2bRejectCode {
    InvalidMsisdn,
    /// Unknown account number: what to answer for an unknown username.
    InvalidAccountNumber,
    InvalidAmount,
    InvalidKycDetails,
    InvalidShortcode,
    OtherError,
}

impl C2bRejectCode {
    pub fn code(self) -> &'static str {
        match self {
            C2bRejectCode::InvalidMsisdn => "C2B00011",
            C2bRejectCode::InvalidAccountNumber => "C2B00012",
            C2bRejectCode::InvalidAmount => "C2B00013",
            C2bRejectCode::InvalidKycDetails => "C2B00014",
            C2bRejectCode::InvalidShortcode => "C2B00015",
            C2bRejectCode::OtherError => "C2B00016",
        }
    }
}

/// Validation reply: let the payment through.
pub fn validation_accept() -> Value {
    json!({ "ResultCode": "0", "ResultDesc": "Accepted" })
}

/// Validation reply that lets the payment through and asks Daraja to echo `id` as the
/// confirmation's `ThirdPartyTransID`.
pub fn validation_accept_with_id(third_party_trans_id: &str) -> Value {
    json!({ "ResultCode": "0", "ResultDesc": "Accepted", "ThirdPartyTransID": third_party_trans_id })
}

/// Validation reply: refuse the payment (the customer's money is not taken).
pub fn validation_reject(code: C2bRejectCode) -> Value {
    json!({ "ResultCode": code.code(), "ResultDesc": "Rejected" })
}

/// Acknowledgement of a C2B confirmation (and a fine answer to any other callback).
pub fn confirmation_ack() -> Value {
    json!({ "ResultCode": 0, "ResultDesc": "Success" })
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ParseError::Invalid {
            field: "body",
            reason: format!("expected a JSON object, got {}", kind(&other)),
        }),
        Err(e) => Err(ParseError::NotJson(e.to_string())),
    }
}

fn object_at<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a Map<String, Value>, ParseError> {
    match o.get(key) {
        None | Some(Value::Null) => Err(ParseError::Missing(path)),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(ParseError::Invalid {
            field: path,
            reason: format!("expected an object, got {}", kind(other)),
        }),
    }
}

fn result_code_at(
    o: &Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<ResultCode, ParseError> {
    let v = o
        .get(key)
        .filter(|v| !v.is_null())
        .ok_or(ParseError::Missing(path))?;
    ResultCode::from_json(v).ok_or_else(|| ParseError::Invalid {
        field: path,
        reason: format!("not a result code: {v}"),
    })
}

fn required_text(
    o: &Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<String, ParseError> {
    optional_text(o.get(key)).ok_or(ParseError::Missing(path))
}

/// A scalar as text, trimmed; `None` for absent, null, empty, or a list/object.
fn optional_text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A list, or a single element where Daraja collapsed a one-element list.
fn one_or_many(v: Option<&Value>) -> Option<Vec<Value>> {
    match v? {
        Value::Array(items) => Some(items.clone()),
        Value::Object(_) => Some(vec![v?.clone()]),
        _ => None,
    }
}

/// An amount in whole shillings from `1`, `1.0`, `"1"` or `"1.00"`. M-Pesa moves whole
/// shillings; a real fraction means the body is not what we think it is, so it is refused
/// rather than rounded.
fn whole_shillings(v: &Value, field: &'static str) -> Result<u64, ParseError> {
    let invalid = |reason: String| ParseError::Invalid { field, reason };
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(u);
            }
            match n.as_f64() {
                // Below 2^53 every whole f64 is exact.
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9_007_199_254_740_992.0 => {
                    Ok(f as u64)
                }
                _ => Err(invalid(format!("{n} is not a whole number of shillings"))),
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
            let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
            if whole.is_empty() || !digits(whole) || !digits(fraction) {
                return Err(invalid(format!("{s:?} is not an amount")));
            }
            if fraction.bytes().any(|b| b != b'0') {
                return Err(invalid(format!("{s:?} is not a whole number of shillings")));
            }
            whole
                .parse()
                .map_err(|_| invalid(format!("{s:?} is out of range")))
        }
        other => Err(invalid(format!("expected an amount, got {}", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The success sample of the Daraja docs, with the Balance item that has no Value.
    const STK_SUCCESS: &str = r#"{"Body":{"stkCallback":{
        "MerchantRequestID":"29115-34620561-1",
        "CheckoutRequestID":"ws_CO_191220191020363925",
        "ResultCode":0,
        "ResultDesc":"The service request is processed successfully.",
        "CallbackMetadata":{"Item":[
            {"Name":"Amount","Value":1.00},
            {"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},
            {"Name":"Balance"},
            {"Name":"TransactionDate","Value":20191219102115},
            {"Name":"PhoneNumber","Value":254708374149}]}}}}"#;

    const STK_CANCELLED: &str = r#"{"Body":{"stkCallback":{
        "MerchantRequestID":"29115-34620561-1",
        "CheckoutRequestID":"ws_CO_191220191020363925",
        "ResultCode":1032,
        "ResultDesc":"Request cancelled by user"}}}"#;

    #[test]
    fn stk_success_sample() {
        let cb = parse_stk_callback(STK_SUCCESS.as_bytes()).unwrap();
        assert_eq!(cb.merchant_request_id, "29115-34620561-1");
        assert_eq!(cb.checkout_request_id, "ws_CO_191220191020363925");
        assert_eq!(cb.result_code, ResultCode::Code(0));
        assert_eq!(
            cb.paid,
            Some(StkPaid {
                amount_kes: 1,
                receipt: "NLJ7RT61SV".into(),
                transaction_date: Some("20191219102115".into()),
                phone: Some("254708374149".into()),
            })
        );
        assert!(looks_like_receipt(&cb.paid.unwrap().receipt));
    }

    #[test]
    fn stk_failure_sample_has_no_payment() {
        let cb = parse_stk_callback(STK_CANCELLED.as_bytes()).unwrap();
        assert_eq!(cb.result_code, ResultCode::Code(1032));
        assert_eq!(cb.result_desc, "Request cancelled by user");
        assert_eq!(cb.paid, None);
    }

    #[test]
    fn stk_string_result_code_and_shuffled_string_items() {
        let body = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c",
            "ResultCode":"SFC_IC0003","ResultDesc":"Operator does not exist"}}}"#;
        let cb = parse_stk_callback(body.as_bytes()).unwrap();
        assert_eq!(cb.result_code, ResultCode::Text("SFC_IC0003".into()));
        assert!(cb.paid.is_none());

        // Items in another order, values as strings, a name in another case, and
        // ResultCode as the string "0".
        let body = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c",
            "ResultCode":"0","ResultDesc":"ok","CallbackMetadata":{"Item":[
              {"Name":"PhoneNumber","Value":"254712345678"},
              {"Name":"mpesareceiptnumber","Value":" QWE1RT2YU3 "},
              {"Name":"Amount","Value":"250.00"}]}}}}"#;
        let paid = parse_stk_callback(body.as_bytes()).unwrap().paid.unwrap();
        assert_eq!(paid.amount_kes, 250);
        assert_eq!(paid.receipt, "QWE1RT2YU3");
        assert_eq!(paid.phone.as_deref(), Some("254712345678"));
        assert_eq!(paid.transaction_date, None);
    }

    #[test]
    fn stk_single_item_as_object() {
        let body = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c",
            "ResultCode":0,"CallbackMetadata":{"Item":{"Name":"Amount","Value":5}}}}}"#;
        // Amount alone is not enough to credit: the receipt is the idempotency key.
        assert_eq!(
            parse_stk_callback(body.as_bytes()),
            Err(ParseError::Missing("CallbackMetadata MpesaReceiptNumber"))
        );
    }

    #[test]
    fn stk_success_without_money_facts_is_refused() {
        let no_meta = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c","ResultCode":0}}}"#;
        assert_eq!(
            parse_stk_callback(no_meta.as_bytes()),
            Err(ParseError::Missing("Body.stkCallback.CallbackMetadata"))
        );
        let no_amount = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c","ResultCode":0,
            "CallbackMetadata":{"Item":[{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},{"Name":"Amount"}]}}}}"#;
        assert_eq!(
            parse_stk_callback(no_amount.as_bytes()),
            Err(ParseError::Missing("CallbackMetadata Amount"))
        );
    }

    #[test]
    fn stk_fractional_or_negative_amounts_are_refused() {
        for amount in [
            "1.5", "\"1.50\"", "-1", "\"-1\"", "\"1e3\"", "\"\"", "null", "[1]", "true",
        ] {
            let body = format!(
                r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":"m","CheckoutRequestID":"c","ResultCode":0,
                "CallbackMetadata":{{"Item":[{{"Name":"Amount","Value":{amount}}},
                {{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"}}]}}}}}}}}"#
            );
            let got = parse_stk_callback(body.as_bytes());
            assert!(got.is_err(), "amount {amount} accepted: {got:?}");
        }
    }

    #[test]
    fn malformed_stk_bodies() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::NotJson(String::new())),
            ("{", ParseError::NotJson(String::new())),
            ("not json", ParseError::NotJson(String::new())),
            (
                "[]",
                ParseError::Invalid {
                    field: "body",
                    reason: String::new(),
                },
            ),
            ("{}", ParseError::Missing("Body")),
            ("{\"Body\":null}", ParseError::Missing("Body")),
            ("{\"Body\":{}}", ParseError::Missing("Body.stkCallback")),
            (
                "{\"Body\":{\"stkCallback\":\"x\"}}",
                ParseError::Invalid {
                    field: "Body.stkCallback",
                    reason: String::new(),
                },
            ),
            (
                r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c"}}}"#,
                ParseError::Missing("Body.stkCallback.ResultCode"),
            ),
            (
                r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","ResultCode":1}}}"#,
                ParseError::Missing("Body.stkCallback.CheckoutRequestID"),
            ),
            (
                r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"","ResultCode":1}}}"#,
                ParseError::Missing("Body.stkCallback.CheckoutRequestID"),
            ),
            (
                r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c","ResultCode":{}}}}"#,
                ParseError::Invalid {
                    field: "Body.stkCallback.ResultCode",
                    reason: String::new(),
                },
            ),
        ];
        for (body, want) in cases {
            let got = parse_stk_callback(body.as_bytes()).expect_err(body);
            // Compare the variant and field, not the wording of serde's messages.
            let same = match (&got, want) {
                (ParseError::NotJson(_), ParseError::NotJson(_)) => true,
                (ParseError::Invalid { field: a, .. }, ParseError::Invalid { field: b, .. }) => {
                    a == b
                }
                (a, b) => a == b,
            };
            assert!(same, "{body}: got {got:?}, want {want:?}");
        }
        // Bytes that are not UTF-8.
        assert!(matches!(
            parse_stk_callback(&[0xff, 0xfe, b'{']),
            Err(ParseError::NotJson(_))
        ));
    }

    // The C2B sample of the Daraja docs (v2, masked MSISDN).
    const C2B_SAMPLE: &str = r#"{ "TransactionType":"Pay Bill", "TransID":"RKL51ZDR4F", "TransTime":"20231121121325",
        "TransAmount":"5.00", "BusinessShortCode":"600966", "BillRefNumber":"Sample Transaction",
        "InvoiceNumber":"", "OrgAccountBalance":"25.00", "ThirdPartyTransID":"",
        "MSISDN":"2547 ***** 126", "FirstName":"NICHOLAS", "MiddleName":"", "LastName":"" }"#;

    #[test]
    fn c2b_sample() {
        let p = parse_c2b(C2B_SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.trans_id, "RKL51ZDR4F");
        assert_eq!(p.trans_type, "Pay Bill");
        assert_eq!(p.trans_time, "20231121121325");
        assert_eq!(p.amount_kes, 5);
        assert_eq!(p.business_shortcode, "600966");
        assert_eq!(p.bill_ref_number, "Sample Transaction");
        assert_eq!(p.account_key(), "sample transaction");
        assert_eq!(p.org_account_balance, "25.00");
        assert_eq!(p.msisdn_opaque, "2547 ***** 126");
        assert_eq!(p.first_name, "NICHOLAS");
        assert_eq!(p.invoice_number, "");
        assert_eq!(p.third_party_trans_id, "");
    }

    #[test]
    fn c2b_numbers_hash_and_missing_fields() {
        let body = r#"{"TransactionType":"Buy Goods","TransID":"SAB1CD2EF3","TransTime":20240101120000,
            "TransAmount":100,"BusinessShortCode":5000001,"BillRefNumber":"  Alice01 ",
            "MSISDN":"94c392c311d522da950619227b3361752a42042db7e1e699b26e628305c68a88"}"#;
        let p = parse_c2b(body.as_bytes()).unwrap();
        assert_eq!(p.amount_kes, 100);
        assert_eq!(p.trans_time, "20240101120000");
        assert_eq!(p.business_shortcode, "5000001");
        assert_eq!(p.account_key(), "alice01");
        assert_eq!(p.msisdn_opaque.len(), 64);
        assert_eq!(p.last_name, "");
        assert_eq!(p.org_account_balance, "");
    }

    #[test]
    fn c2b_bad_bodies() {
        assert!(matches!(parse_c2b(b"<xml/>"), Err(ParseError::NotJson(_))));
        assert_eq!(
            parse_c2b(br#"{"TransAmount":"5"}"#),
            Err(ParseError::Missing("TransID"))
        );
        assert_eq!(
            parse_c2b(br#"{"TransID":"RKL51ZDR4F"}"#),
            Err(ParseError::Missing("TransAmount"))
        );
        assert!(matches!(
            parse_c2b(br#"{"TransID":"RKL51ZDR4F","TransAmount":"5.50"}"#),
            Err(ParseError::Invalid {
                field: "TransAmount",
                ..
            })
        ));
        assert!(matches!(
            parse_c2b(br#"{"TransID":"RKL51ZDR4F","TransAmount":"KES 5"}"#),
            Err(ParseError::Invalid { .. })
        ));
    }

    // The Transaction Status result sample of the Daraja docs.
    const STATUS_SAMPLE: &str = r#"{"Result":{"ConversationID":"AG_20180223_0000493344ae97d86f75","OriginatorConversationID":"3213-416199-2",
 "ReferenceData":{"ReferenceItem":{"Key":"Occasion"}},"ResultCode":0,"ResultDesc":"The service request is processed successfully.",
 "ResultParameters":{"ResultParameter":[{"Key":"DebitPartyName","Value":"254708374149 - John Doe"},
  {"Key":"TransactionStatus","Value":"Completed"},{"Key":"Amount","Value":"300"},{"Key":"ReceiptNo","Value":"MBN31H462N"},
  {"Key":"InitiatedTime","Value":"20180223054112"},{"Key":"FinalisedTime","Value":"20180223054112"}]},
 "ResultType":0,"TransactionID":"MBN0000000"}}"#;

    #[test]
    fn transaction_status_sample() {
        let r = parse_transaction_status_result(STATUS_SAMPLE.as_bytes()).unwrap();
        assert_eq!(r.conversation_id, "AG_20180223_0000493344ae97d86f75");
        assert_eq!(r.originator_conversation_id, "3213-416199-2");
        assert!(r.result_code.is_success());
        assert_eq!(r.receipt.as_deref(), Some("MBN31H462N"));
        assert_eq!(r.amount_kes, Some(300));
        assert_eq!(r.transaction_status.as_deref(), Some("Completed"));
        assert_eq!(
            r.debit_party_name.as_deref(),
            Some("254708374149 - John Doe")
        );
        assert_eq!(r.initiated_time.as_deref(), Some("20180223054112"));
        assert_eq!(r.finalised_time.as_deref(), Some("20180223054112"));
        assert_eq!(r.transaction_id.as_deref(), Some("MBN0000000"));
        assert_eq!(r.parameters.len(), 6);
        assert!(r.is_completed());
    }

    #[test]
    fn transaction_status_failure_and_odd_shapes() {
        let body = r#"{"Result":{"ConversationID":"AG_1","OriginatorConversationID":"o","ResultCode":"R000001",
            "ResultDesc":"The transaction receipt number does not exist."}}"#;
        let r = parse_transaction_status_result(body.as_bytes()).unwrap();
        assert_eq!(r.result_code, ResultCode::Text("R000001".into()));
        assert!(!r.is_completed());
        assert_eq!(r.receipt, None);
        assert!(r.parameters.is_empty());

        // One parameter collapsed to an object, a number value, a parameter without Value.
        let body = r#"{"Result":{"ResultCode":0,"ResultParameters":{"ResultParameter":
            {"Key":"Amount","Value":150}}}}"#;
        let r = parse_transaction_status_result(body.as_bytes()).unwrap();
        assert_eq!(r.amount_kes, Some(150));
        assert!(!r.is_completed()); // no TransactionStatus

        let body = r#"{"Result":{"ResultCode":0,"ResultParameters":{"ResultParameter":[
            {"Key":"Amount","Value":"1.25"}]}}}"#;
        assert!(parse_transaction_status_result(body.as_bytes()).is_err());
        assert_eq!(
            parse_transaction_status_result(b"{}"),
            Err(ParseError::Missing("Result"))
        );
        assert_eq!(
            parse_transaction_status_result(br#"{"Result":{}}"#),
            Err(ParseError::Missing("Result.ResultCode"))
        );
    }

    #[test]
    fn replies_have_daraja_shapes() {
        assert_eq!(
            validation_accept(),
            json!({"ResultCode":"0","ResultDesc":"Accepted"})
        );
        assert_eq!(
            validation_accept_with_id("intent-7")["ThirdPartyTransID"],
            "intent-7"
        );
        assert_eq!(
            validation_reject(C2bRejectCode::InvalidAccountNumber),
            json!({"ResultCode":"C2B00012","ResultDesc":"Rejected"})
        );
        assert_eq!(C2bRejectCode::InvalidAmount.code(), "C2B00013");
        assert_eq!(
            confirmation_ack(),
            json!({"ResultCode":0,"ResultDesc":"Success"})
        );
    }

    #[test]
    fn receipt_shape() {
        assert!(looks_like_receipt("NLJ7RT61SV"));
        assert!(!looks_like_receipt("nlj7rt61sv"));
        assert!(!looks_like_receipt("NLJ7RT61S"));
        assert!(!looks_like_receipt("NLJ7RT61SV1"));
        assert!(!looks_like_receipt("NLJ7RT-1SV"));
    }
}
