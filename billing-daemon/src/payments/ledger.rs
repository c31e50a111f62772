//! The ledger: recording a payment and what it buys, once.
//!
//! Every channel (STK callback, STK Query, C2B confirmation, cash) ends here, inside the
//! caller's transaction. The database's unique constraints decide duplicates (a receipt, or
//! an STK intent, is credited once), so two deliveries racing each other cannot both
//! credit: the loser's INSERT finds the winner's row. What the money does is
//! [`apply_amount`]: a payment that covers the plan's price (with what the wallet holds)
//! renews it and the rest stays in the wallet; a smaller one waits in the wallet. A voucher
//! bought on the hotspot login page (a portal batch not paid yet) is the payer of its own
//! purchase: covering its price makes it usable (active, as an unused voucher, its batch
//! paid) instead of extending it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::domain::renewed_expiry;

/// What a payment does to a subscriber (plain arithmetic, unit-tested).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Application {
    /// Renew the plan.
    pub renew: bool,
    /// Change of the wallet balance (negative: the wallet paid part of the price).
    pub wallet_delta: i64,
}

/// `amount` arrives for a plan costing `price` while the wallet holds `wallet`: renew when
/// the two together cover the price, keeping the rest; otherwise keep it all.
pub fn apply_amount(price: i64, amount: i64, wallet: i64) -> Application {
    if wallet + amount >= price {
        Application {
            renew: true,
            wallet_delta: amount - price,
        }
    } else {
        Application {
            renew: false,
            wallet_delta: amount,
        }
    }
}

/// Where the money came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// M-Pesa Express (STK Push).
    Stk,
    /// Paybill/till payment the customer started (C2B confirmation).
    C2b,
    /// Entered by an operator.
    Cash,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stk => "stk",
            Self::C2b => "c2b",
            Self::Cash => "cash",
        }
    }
}

/// A payment to record.
#[derive(Clone, Debug)]
pub struct NewPayment<'a> {
    /// Channel.
    pub channel: Channel,
    /// M-Pesa receipt (None for cash, or an STK success known only from a query).
    pub receipt: Option<&'a str>,
    /// The STK intent it pays.
    pub intent_id: Option<i64>,
    /// Who pays (None: the account number matched nobody).
    pub subscriber_id: Option<i64>,
    /// The plan bought (None: the subscriber's current plan).
    pub plan_id: Option<i64>,
    /// Whole shillings.
    pub amount_kes: i64,
    /// Phone (STK) or the opaque MSISDN field (C2B).
    pub msisdn: Option<&'a str>,
    /// BillRefNumber as typed (C2B).
    pub bill_ref: Option<&'a str>,
    /// When M-Pesa says it was paid (or now).
    pub paid_at: DateTime<Utc>,
    /// Free text (cash entries).
    pub note: Option<&'a str>,
}

/// The result of [`record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new payment, applied.
    New {
        /// The payment row.
        payment_id: i64,
        /// renewed, wallet or unmatched.
        applied: &'static str,
    },
    /// Its receipt or intent was already credited: nothing changed.
    Duplicate {
        /// The payment that has it.
        payment_id: i64,
    },
}

/// Locks a subscriber's row before looking for one of their payments in the ledger.
///
/// A push known paid only from STK Query has no receipt, and its C2B copy has no intent:
/// each side looks for the other before crediting. Under READ COMMITTED two such
/// transactions running at once would each miss the other's uncommitted row and both
/// credit. The two searches (`stk::c2b_copy_of`, `callbacks::attach_to_queried_push`) take
/// this lock first, so the second waits and its next statement sees what the first
/// committed. (`record` locks the same row again later; a lock already held is kept.)
///
/// NO KEY UPDATE, here and in `lock_payer`: payments wait for each other, but rows that only
/// reference the subscriber (a new push's intent, a session) are not held up.
pub async fn lock_subscriber(
    conn: &mut PgConnection,
    subscriber_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM subscribers WHERE id = $1 FOR NO KEY UPDATE")
        .bind(subscriber_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The subscriber a payment is for, locked, and the plan it buys.
struct Payer {
    id: i64,
    expires_at: DateTime<Utc>,
    wallet: i64,
    plan_id: i64,
    price: i64,
    duration_seconds: i64,
    data_cap_bytes: Option<i64>,
    time_allowance_seconds: Option<i64>,
    /// A voucher bought on the login page and not paid yet: its batch, and the expiry it
    /// gets once paid (unused: the batch's end date, or never).
    unpaid_voucher: Option<(i64, DateTime<Utc>)>,
}

/// Locks the subscriber (so concurrent payments for one customer apply in turn) and reads
/// the plan bought (`plan_id`, or theirs), in one round trip. None: no such subscriber.
async fn lock_payer(
    conn: &mut PgConnection,
    subscriber_id: i64,
    plan_id: Option<i64>,
) -> Result<Option<Payer>, sqlx::Error> {
    Ok(lock_payers(conn, &[subscriber_id], &[plan_id])
        .await?
        .into_iter()
        .next())
}

/// [`lock_payer`] for several subscribers in one round trip, locked in id order. Payers
/// that do not exist are left out.
async fn lock_payers(
    conn: &mut PgConnection,
    subscriber_ids: &[i64],
    plan_ids: &[Option<i64>],
) -> Result<Vec<Payer>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.id, s.expires_at, s.wallet_balance_kes, p.id AS plan_id, p.price_kes, \
                p.duration_seconds, p.data_cap_bytes, p.time_allowance_seconds, \
                CASE WHEN b.origin = 'portal' AND b.paid_at IS NULL AND b.revoked_at IS NULL \
                     THEN b.id END AS unpaid_batch, \
                COALESCE(b.valid_until, $3::timestamptz) AS unused_expiry \
           FROM UNNEST($1::bigint[], $2::bigint[]) AS t(sid, pid) \
           JOIN subscribers s ON s.id = t.sid \
           LEFT JOIN plans p ON p.id = COALESCE(t.pid, s.plan_id) \
           LEFT JOIN voucher_batches b ON b.id = s.voucher_batch_id \
          ORDER BY s.id FOR NO KEY UPDATE OF s",
    )
    .bind(subscriber_ids)
    .bind(plan_ids)
    .bind(crate::vouchers::NEVER)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let unpaid_voucher = match r.try_get::<Option<i64>, _>("unpaid_batch")? {
                Some(batch) => Some((batch, r.try_get("unused_expiry")?)),
                None => None,
            };
            // plans.id is a foreign key of both: a missing plan is a broken database, not a
            // payment to keep unmatched.
            let Some(plan_id) = r.try_get::<Option<i64>, _>("plan_id")? else {
                return Err(sqlx::Error::RowNotFound);
            };
            Ok(Payer {
                id: r.try_get("id")?,
                expires_at: r.try_get("expires_at")?,
                wallet: r.try_get("wallet_balance_kes")?,
                plan_id,
                price: r.try_get("price_kes")?,
                duration_seconds: r.try_get("duration_seconds")?,
                data_cap_bytes: r.try_get("data_cap_bytes")?,
                time_allowance_seconds: r.try_get("time_allowance_seconds")?,
                unpaid_voucher,
            })
        })
        .collect()
}

/// Several STK payments in one go, for a burst of callbacks: the rows [`record`] would
/// write, in a handful of statements instead of a handful per payment. Only the plain case
/// is done here: the payment covers the plan's price exactly (nothing to or from the
/// wallet), the payer is not an unpaid voucher, and neither the receipt nor the intent is
/// in the ledger yet. For the others the answer is None and nothing of theirs is written:
/// the caller records them one by one with [`record`].
///
/// Every payment must have an intent, and no two may share a subscriber, an intent or a
/// receipt (one subscriber's renewals build on each other, so they go one by one).
pub async fn record_plain_renewals(
    conn: &mut PgConnection,
    ps: &[NewPayment<'_>],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let subscribers: Vec<i64> = ps.iter().filter_map(|p| p.subscriber_id).collect();
    let plans: Vec<Option<i64>> = ps
        .iter()
        .filter(|p| p.subscriber_id.is_some())
        .map(|p| p.plan_id)
        .collect();
    let payers: HashMap<i64, Payer> = lock_payers(conn, &subscribers, &plans)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let now = Utc::now();
    // The plain ones, with the subscriber's new expiry.
    let plain: Vec<(&NewPayment<'_>, &Payer, DateTime<Utc>)> = ps
        .iter()
        .filter(|p| p.intent_id.is_some())
        .filter_map(|p| {
            let s = payers.get(&p.subscriber_id?)?;
            let app = apply_amount(s.price, p.amount_kes, s.wallet);
            (app.renew && app.wallet_delta == 0 && s.unpaid_voucher.is_none())
                .then(|| (p, s, renewed_expiry(now, s.expires_at, s.duration_seconds)))
        })
        .collect();
    let mut done = vec![None; ps.len()];
    if plain.is_empty() {
        return Ok(done);
    }
    let inserted: Vec<(i64, i64)> = sqlx::query_as(
        "INSERT INTO payments (paid_at, channel, receipt, intent_id, subscriber_id, amount_kes, \
                               msisdn, bill_ref, applied, note, plan_id, expires_at) \
         SELECT t.paid_at, t.channel, t.receipt, t.intent_id, t.subscriber_id, t.amount_kes, \
                t.msisdn, t.bill_ref, 'renewed', t.note, t.plan_id, t.expires_at \
           FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
                       $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[], \
                       $11::timestamptz[]) \
                AS t(paid_at, channel, receipt, intent_id, subscriber_id, amount_kes, msisdn, \
                     bill_ref, note, plan_id, expires_at) \
         ON CONFLICT DO NOTHING RETURNING intent_id, id",
    )
    .bind(plain.iter().map(|(p, _, _)| p.paid_at).collect::<Vec<_>>())
    .bind(
        plain
            .iter()
            .map(|(p, _, _)| p.channel.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(plain.iter().map(|(p, _, _)| p.receipt).collect::<Vec<_>>())
    .bind(
        plain
            .iter()
            .map(|(p, _, _)| p.intent_id)
            .collect::<Vec<_>>(),
    )
    .bind(plain.iter().map(|(_, s, _)| s.id).collect::<Vec<_>>())
    .bind(
        plain
            .iter()
            .map(|(p, _, _)| p.amount_kes)
            .collect::<Vec<_>>(),
    )
    .bind(plain.iter().map(|(p, _, _)| p.msisdn).collect::<Vec<_>>())
    .bind(plain.iter().map(|(p, _, _)| p.bill_ref).collect::<Vec<_>>())
    .bind(plain.iter().map(|(p, _, _)| p.note).collect::<Vec<_>>())
    .bind(plain.iter().map(|(_, s, _)| s.plan_id).collect::<Vec<_>>())
    .bind(plain.iter().map(|(_, _, e)| *e).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let inserted: HashMap<i64, i64> = inserted.into_iter().collect();
    if inserted.is_empty() {
        return Ok(done);
    }
    // Renew those written (a conflict means the receipt or intent was in the ledger: the
    // caller's one-by-one path says what it is a duplicate of).
    let renewed: Vec<&(&NewPayment<'_>, &Payer, DateTime<Utc>)> = plain
        .iter()
        .filter(|(p, _, _)| p.intent_id.is_some_and(|i| inserted.contains_key(&i)))
        .collect();
    sqlx::query(
        "UPDATE subscribers s SET plan_id = t.plan_id, expires_at = t.expires_at, \
                data_remaining_bytes = t.data, time_remaining_seconds = t.time \
           FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bigint[], $5::bigint[]) \
                AS t(id, plan_id, expires_at, data, time) \
          WHERE s.id = t.id",
    )
    .bind(renewed.iter().map(|(_, s, _)| s.id).collect::<Vec<_>>())
    .bind(
        renewed
            .iter()
            .map(|(_, s, _)| s.plan_id)
            .collect::<Vec<_>>(),
    )
    .bind(renewed.iter().map(|(_, _, e)| *e).collect::<Vec<_>>())
    .bind(
        renewed
            .iter()
            .map(|(_, s, _)| s.data_cap_bytes)
            .collect::<Vec<_>>(),
    )
    .bind(
        renewed
            .iter()
            .map(|(_, s, _)| s.time_allowance_seconds)
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    for (slot, p) in done.iter_mut().zip(ps) {
        *slot = p.intent_id.and_then(|i| inserted.get(&i).copied());
    }
    Ok(done)
}

/// Records a payment and applies it, unless its receipt or intent is already in the ledger.
pub async fn record(conn: &mut PgConnection, p: &NewPayment<'_>) -> Result<Recorded, sqlx::Error> {
    let payer = match p.subscriber_id {
        Some(id) => lock_payer(conn, id, p.plan_id).await?,
        None => None,
    };
    // What the money does is decided before the row is written, so the row is written
    // once, complete; if it turns out to be a duplicate, none of it is applied.
    let application = payer.as_ref().map(|s| {
        let app = apply_amount(s.price, p.amount_kes, s.wallet);
        // An unpaid voucher is not renewed but made usable, as unused: its validity starts
        // at its first login.
        let expiry = app.renew.then(|| match s.unpaid_voucher {
            Some((_, unused_expiry)) => unused_expiry,
            None => renewed_expiry(Utc::now(), s.expires_at, s.duration_seconds),
        });
        (app, expiry)
    });
    let applied = match application {
        Some((app, _)) if app.renew => "renewed",
        Some(_) => "wallet",
        None => "unmatched",
    };
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO payments (paid_at, channel, receipt, intent_id, subscriber_id, amount_kes, \
                               msisdn, bill_ref, applied, note, plan_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(p.paid_at)
    .bind(p.channel.as_str())
    .bind(p.receipt)
    .bind(p.intent_id)
    .bind(payer.as_ref().map(|s| s.id))
    .bind(p.amount_kes)
    .bind(p.msisdn)
    .bind(p.bill_ref)
    .bind(applied)
    .bind(p.note)
    .bind(payer.as_ref().map(|s| s.plan_id))
    .bind(application.and_then(|(_, expiry)| expiry))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(payment_id) = inserted else {
        let existing: i64 = sqlx::query_scalar(
            "SELECT id FROM payments WHERE receipt = $1 OR intent_id = $2 ORDER BY id LIMIT 1",
        )
        .bind(p.receipt)
        .bind(p.intent_id)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Recorded::Duplicate {
            payment_id: existing,
        });
    };
    let (Some(s), Some((app, expiry))) = (payer, application) else {
        return Ok(Recorded::New {
            payment_id,
            applied,
        });
    };
    match (expiry, s.unpaid_voucher) {
        (Some(expiry), Some((batch, _))) => {
            sqlx::query(
                "UPDATE subscribers SET status = 'active', expires_at = $2, \
                        wallet_balance_kes = wallet_balance_kes + $3 \
                  WHERE id = $1",
            )
            .bind(s.id)
            .bind(expiry)
            .bind(app.wallet_delta)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE voucher_batches SET paid_at = now() WHERE id = $1")
                .bind(batch)
                .execute(&mut *conn)
                .await?;
        }
        (Some(expiry), None) => {
            sqlx::query(
                "UPDATE subscribers SET plan_id = $2, expires_at = $3, data_remaining_bytes = $4, \
                        time_remaining_seconds = $5, wallet_balance_kes = wallet_balance_kes + $6 \
                  WHERE id = $1",
            )
            .bind(s.id)
            .bind(s.plan_id)
            .bind(expiry)
            .bind(s.data_cap_bytes)
            .bind(s.time_allowance_seconds)
            .bind(app.wallet_delta)
            .execute(&mut *conn)
            .await?;
        }
        (None, _) => {
            sqlx::query(
                "UPDATE subscribers SET wallet_balance_kes = wallet_balance_kes + $2 WHERE id = $1",
            )
            .bind(s.id)
            .bind(app.wallet_delta)
            .execute(&mut *conn)
            .await?;
        }
    }
    if app.wallet_delta != 0 {
        let reason = match (app.renew, app.wallet_delta > 0) {
            (true, true) => "paid more than the price: the rest kept",
            (true, false) => "the wallet paid part of the price",
            (false, _) => "less than the price: kept until it covers a renewal",
        };
        sqlx::query(
            "INSERT INTO wallet_entries (subscriber_id, amount_kes, payment_id, reason) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(s.id)
        .bind(app.wallet_delta)
        .bind(payment_id)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Recorded::New {
        payment_id,
        applied,
    })
}

/// Whether a C2B notification's `MSISDN` can be `phone` (`2547…`). Safaricom sends it
/// hashed (SHA-256 hex; which spelling of the number is hashed is not documented, so the
/// three usual ones are tried) or masked (`2547 ***** 126`); anything else, or an empty
/// field, cannot rule the phone out.
pub fn opaque_msisdn_may_be(opaque: &str, phone: &str) -> bool {
    use sha2::{Digest, Sha256};
    let opaque = opaque.trim();
    if opaque.len() == 64 && opaque.bytes().all(|b| b.is_ascii_hexdigit()) {
        let local = phone.strip_prefix("254").map(|rest| format!("0{rest}"));
        let spellings = [Some(phone.to_owned()), Some(format!("+{phone}")), local];
        return spellings
            .into_iter()
            .flatten()
            .any(|s| hex::encode(Sha256::digest(s.as_bytes())).eq_ignore_ascii_case(opaque));
    }
    let compact: String = opaque.chars().filter(|c| !c.is_whitespace()).collect();
    if let (Some(first), Some(last)) = (compact.find('*'), compact.rfind('*')) {
        let (head, tail) = (&compact[..first], &compact[last + 1..]);
        return phone.len() >= head.len() + tail.len()
            && phone.starts_with(head)
            && phone.ends_with(tail);
    }
    if !compact.is_empty() && compact.bytes().all(|b| b.is_ascii_digit()) {
        return compact == phone;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_msisdns() {
        use sha2::{Digest, Sha256};
        let phone = "254712345678";
        let hashed = hex::encode(Sha256::digest(phone.as_bytes()));
        assert!(opaque_msisdn_may_be(&hashed, phone));
        assert!(opaque_msisdn_may_be(&hashed.to_uppercase(), phone));
        let local = hex::encode(Sha256::digest(b"0712345678"));
        assert!(opaque_msisdn_may_be(&local, phone));
        assert!(!opaque_msisdn_may_be(&hashed, "254712345679"));
        assert!(opaque_msisdn_may_be("2547 ***** 678", phone));
        assert!(opaque_msisdn_may_be("25471****678", phone));
        assert!(!opaque_msisdn_may_be("2547 ***** 679", phone));
        assert!(opaque_msisdn_may_be("254712345678", phone));
        assert!(!opaque_msisdn_may_be("254712345670", phone));
        assert!(opaque_msisdn_may_be("", phone));
    }

    #[test]
    fn the_price_renews() {
        assert_eq!(
            apply_amount(1000, 1000, 0),
            Application {
                renew: true,
                wallet_delta: 0
            }
        );
    }

    #[test]
    fn more_renews_and_keeps_the_rest() {
        assert_eq!(
            apply_amount(1000, 1500, 0),
            Application {
                renew: true,
                wallet_delta: 500
            }
        );
    }

    #[test]
    fn less_waits_in_the_wallet_until_it_covers_the_price() {
        assert_eq!(
            apply_amount(1000, 400, 0),
            Application {
                renew: false,
                wallet_delta: 400
            }
        );
        assert_eq!(
            apply_amount(1000, 600, 400),
            Application {
                renew: true,
                wallet_delta: -400
            }
        );
        assert_eq!(
            apply_amount(1000, 100, 400),
            Application {
                renew: false,
                wallet_delta: 100
            }
        );
    }
}
