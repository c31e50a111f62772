//! M-Pesa payments: STK Push, the callbacks Safaricom sends (STK result, C2B validation and
//! confirmation), the reconciler, and the ledger they all write to.
//!
//! Money safety comes from three places:
//! * **The database** ([`ledger`] and the `payments` migration): a receipt, or an STK
//!   intent, is credited once whatever delivers it and however often; one pending push per
//!   phone.
//! * **Our own records, not the callback**: callbacks are unsigned, so an STK result is
//!   believed only at the unguessable URL of a pending intent, for that intent's
//!   CheckoutRequestID; an amount other than the price does not buy the plan (it waits in
//!   the wallet). C2B is keyed on the account number (the username), never on the MSISDN,
//!   which Safaricom now hashes.
//! * **Nothing is dropped**: every callback body is stored before it is processed; an STK
//!   push whose callback never comes is asked about by STK Query until a deadline
//!   ([`reconciler`]); a query success is credited on the intent and its receipt filled in
//!   later by the callback or the C2B confirmation of the same payment. A C2B payment
//!   whose confirmation never came is recovered by an operator through Transaction Status
//!   with the receipt the customer holds ([`recovery`]).
//!
//! A credit renews the subscriber in the same transaction, so the snapshot republishes within
//! milliseconds and the next Access-Request is accepted; a customer still online on an
//! expired subscription is disconnected by the enforcement trigger ('reactivated') so the
//! router asks again.

pub mod callbacks;
pub mod config;
pub mod ledger;
pub mod reconciler;
pub mod recovery;
pub mod stk;
pub mod stk_batch;

use std::sync::Arc;

pub use config::MpesaSettings;

/// M-Pesa, when configured: the Daraja client and the settings.
#[derive(Clone, Debug)]
pub struct Mpesa {
    /// Daraja.
    pub client: daraja::Client,
    /// Settings.
    pub settings: Arc<MpesaSettings>,
    /// The worker that handles STK callbacks in batches.
    pub stk_batches: Arc<stk_batch::StkBatches>,
}

impl Mpesa {
    /// A client for the configured Daraja (no network call yet).
    pub fn new(settings: MpesaSettings) -> anyhow::Result<Self> {
        let client = daraja::Client::new(
            settings.environment.clone(),
            settings.shortcode.clone(),
            settings.credentials.clone(),
        )
        .map_err(|e| anyhow::anyhow!("M-Pesa configuration: {e}"))?;
        Ok(Self {
            client,
            settings: Arc::new(settings),
            stk_batches: Arc::default(),
        })
    }

    /// The CallBackURL of an STK push.
    pub fn stk_callback_url(&self, token: &str) -> String {
        format!("{}/pay/cb/stk/{token}", self.settings.public_url)
    }

    /// The ResultURL and QueueTimeOutURL of a Transaction Status request.
    pub fn status_urls(&self, token: &str) -> (String, String) {
        let base = format!("{}/pay/cb/ts/{token}", self.settings.public_url);
        (format!("{base}/result"), format!("{base}/timeout"))
    }

    /// The C2B URLs to register: (confirmation, validation).
    pub fn c2b_urls(&self) -> (String, String) {
        use secrecy::ExposeSecret;
        let base = format!(
            "{}/pay/cb/c2b/{}",
            self.settings.public_url,
            self.settings.c2b_token.expose_secret()
        );
        (format!("{base}/confirmation"), format!("{base}/validation"))
    }
}
