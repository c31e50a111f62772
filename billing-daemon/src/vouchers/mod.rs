//! Hotspot vouchers, the daemon's side. A voucher is a subscriber row named by its lookup
//! name (see `jasiyo_snapshot::voucher`) with an empty password, its code sealed for
//! printing ([`codes`]), and `activated_at` set at its first accepted login.
//!
//! * [`key`]: the key file shared with radiusd.
//! * [`create_batch`]: draws, seals and inserts a batch in one transaction.
//! * [`activate`]: the journal consumer's half of a first use.
//! * [`STATE_SQL`]: the state of a voucher, computed (never stored, so it cannot go stale).
//! * [`print`]: the printable page, the PDF and the CSV of a batch.

pub mod codes;
pub mod key;
pub mod print;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use jasiyo_snapshot::voucher::VoucherKey;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use utoipa::ToSchema;

use crate::accounting::AuthResult;
use crate::domain::Mac;
use codes::CodeGenerator;

pub use jasiyo_snapshot::voucher::FIRST_USE_REASON;

/// The expiry of a voucher nobody has used and whose batch has no end date.
pub const NEVER: &str = "9999-12-31T00:00:00Z";

/// Most vouchers in one batch (the schema says the same).
pub const MAX_BATCH: i64 = 100_000;

/// A voucher's state, as SQL over `subscribers s` joined with `voucher_batches b`. Revoked
/// first (the batch); unpaid (bought on the login page, the payment not in yet: suspended
/// until it is); revoked (the voucher suspended on its own); then unused (never logged in,
/// still valid); exhausted (an allowance used up) before expired, so a voucher used up keeps
/// saying so after its validity ends.
pub const STATE_SQL: &str = "CASE \
    WHEN b.revoked_at IS NOT NULL THEN 'revoked' \
    WHEN b.origin = 'portal' AND b.paid_at IS NULL THEN 'unpaid' \
    WHEN s.status = 'suspended' THEN 'revoked' \
    WHEN s.activated_at IS NULL AND s.expires_at > now() THEN 'unused' \
    WHEN s.activated_at IS NOT NULL \
         AND (s.data_remaining_bytes = 0 OR s.time_remaining_seconds = 0) THEN 'exhausted' \
    WHEN s.expires_at <= now() THEN 'expired' \
    ELSE 'active' END";

/// What [`STATE_SQL`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoucherState {
    /// Bought on the hotspot login page, its payment not in yet: not usable.
    Unpaid,
    /// Never used, still valid.
    Unused,
    /// In use: activated, allowances and validity left.
    Active,
    /// Its data or time allowance is used up.
    Exhausted,
    /// Its validity ended (from first use, or the batch's end date).
    Expired,
    /// Its batch was revoked (or it was suspended).
    Revoked,
}

impl VoucherState {
    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Unpaid,
        Self::Unused,
        Self::Active,
        Self::Exhausted,
        Self::Expired,
        Self::Revoked,
    ];

    /// As in [`STATE_SQL`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Unused => "unused",
            Self::Active => "active",
            Self::Exhausted => "exhausted",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// From [`STATE_SQL`]'s text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Made by the operator to be printed and sold.
    Printed,
    /// Bought on the hotspot login page.
    Portal,
}

impl Origin {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Printed => "printed",
            Self::Portal => "portal",
        }
    }
}

/// A batch to make, validated by [`NewBatch::check`].
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// The package.
    pub plan_id: i64,
    /// How many vouchers.
    pub count: i64,
    /// Printed in front of every code (`A-Z0-9`, up to 8).
    pub prefix: String,
    /// Random symbols after the prefix.
    pub code_length: usize,
    /// No voucher of the batch is valid after this, used or not.
    pub valid_until: Option<DateTime<Utc>>,
    /// The operator's note.
    pub note: Option<String>,
    /// Printed or portal.
    pub origin: Origin,
}

/// Why a batch cannot be made as asked.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The request breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The code space is so full that fresh codes keep colliding.
    #[error("could not draw enough unused codes: use a longer code_length or another prefix")]
    Exhausted,
    /// Postgres.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The OS random number generator.
    #[error("the OS random number generator failed: {0}")]
    Random(#[from] std::io::Error),
}

impl NewBatch {
    /// Checks the request (the prefix is upper-cased first). Nothing is written before this
    /// passes.
    pub fn check(&mut self, now: DateTime<Utc>) -> Result<(), BatchError> {
        let bad = |m: String| Err(BatchError::Invalid(m));
        if !(1..=MAX_BATCH).contains(&self.count) {
            return bad(format!("count must be 1..{MAX_BATCH}"));
        }
        self.prefix = self.prefix.to_ascii_uppercase();
        if self.prefix.len() > 8 || !self.prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad("prefix must be up to 8 letters and digits".to_owned());
        }
        if !(6..=24).contains(&self.code_length) {
            return bad("code_length must be 6..24".to_owned());
        }
        if self.valid_until.is_some_and(|v| v <= now) {
            return bad("valid_until must be in the future".to_owned());
        }
        if let Some(note) = &self.note {
            if note.chars().count() > 200 || note.chars().any(char::is_control) {
                return bad(
                    "note must be up to 200 characters without control characters".to_owned(),
                );
            }
        }
        Ok(())
    }
}

/// A batch as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Batch {
    /// Id.
    pub id: i64,
    /// The package (a plan).
    pub plan_id: i64,
    /// Its name.
    pub plan_name: String,
    /// Price of one voucher, KES (fixed when the batch was made).
    pub price_kes: i64,
    /// Vouchers made.
    pub count: i32,
    /// Code prefix.
    pub prefix: String,
    /// Random symbols per code.
    pub code_length: i32,
    /// Latest validity of any voucher of the batch; null = only the plan's duration counts.
    pub valid_until: Option<DateTime<Utc>>,
    /// printed or portal.
    pub origin: Origin,
    /// Operator's note.
    pub note: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Vouchers per state (every state present, 0 included).
    #[schema(value_type = Object, example = json!({"unpaid": 0, "unused": 98, "active": 2, "exhausted": 0, "expired": 0, "revoked": 0}))]
    pub states: BTreeMap<VoucherState, i64>,
}

/// Selects batches with their per-state counts, followed by `rest` (a WHERE on `b`, an
/// ORDER).
pub fn batch_select(rest: &str) -> String {
    format!(
        "SELECT b.id, b.plan_id, p.name AS plan_name, \
         COALESCE(b.price_kes, p.price_kes) AS price_kes, b.count, b.prefix, b.code_length, \
         b.valid_until, b.origin, b.note, b.created_at, b.revoked_at, \
         COALESCE((SELECT jsonb_object_agg(st, n) FROM ( \
             SELECT {STATE_SQL} AS st, count(*) AS n \
               FROM subscribers s WHERE s.voucher_batch_id = b.id GROUP BY 1) c), '{{}}') AS states \
         FROM voucher_batches b JOIN plans p ON p.id = b.plan_id {rest}"
    )
}

/// Reads a row of [`batch_select`].
pub fn batch_from_row(row: &sqlx::postgres::PgRow) -> Result<Batch, sqlx::Error> {
    let origin: String = row.try_get("origin")?;
    let counts: sqlx::types::Json<BTreeMap<String, i64>> = row.try_get("states")?;
    let mut states: BTreeMap<VoucherState, i64> =
        VoucherState::ALL.into_iter().map(|s| (s, 0)).collect();
    for (k, n) in counts.0 {
        if let Some(s) = VoucherState::parse(&k) {
            states.insert(s, n);
        }
    }
    Ok(Batch {
        id: row.try_get("id")?,
        plan_id: row.try_get("plan_id")?,
        plan_name: row.try_get("plan_name")?,
        price_kes: row.try_get("price_kes")?,
        count: row.try_get("count")?,
        prefix: row.try_get("prefix")?,
        code_length: row.try_get("code_length")?,
        valid_until: row.try_get("valid_until")?,
        origin: if origin == "portal" {
            Origin::Portal
        } else {
            Origin::Printed
        },
        note: row.try_get("note")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        states,
    })
}

/// One batch by id, or None.
pub async fn fetch_batch(conn: &mut PgConnection, id: i64) -> Result<Option<Batch>, sqlx::Error> {
    let row = sqlx::query(&batch_select("WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(batch_from_row).transpose()
}

/// Rounds of drawing before [`BatchError::Exhausted`]: a round redraws only the codes that
/// collided, so even a code space one half full needs a handful.
const DRAW_ROUNDS: usize = 20;

/// Makes a batch in the caller's transaction: the batch row, then `count` vouchers whose
/// codes are fresh draws from the OS CSPRNG, unique across the system (a code whose lookup
/// name is already a username, in this batch or any other, is drawn again), each stored as
/// its lookup name and sealed code. Returns the batch id and the codes in voucher order.
/// The plan must exist and serve hotspot logins. A portal batch's vouchers are made
/// suspended: not usable until their payment comes (see `payments::ledger`).
pub async fn create_batch(
    conn: &mut PgConnection,
    key: &VoucherKey,
    mut req: NewBatch,
) -> Result<(i64, Vec<String>), BatchError> {
    req.check(Utc::now())?;
    let plan = sqlx::query(
        "SELECT price_kes, service, data_cap_bytes, time_allowance_seconds FROM plans WHERE id = $1",
    )
    .bind(req.plan_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        BatchError::Invalid(format!(
            "plan_id {} does not refer to an existing plan",
            req.plan_id
        ))
    })?;
    let service: String = plan.try_get("service")?;
    if service == "pppoe" {
        return Err(BatchError::Invalid(
            "the plan is PPPoE only: a voucher's plan must serve hotspot logins".to_owned(),
        ));
    }
    let price: i64 = plan.try_get("price_kes")?;
    let data: Option<i64> = plan.try_get("data_cap_bytes")?;
    let time: Option<i64> = plan.try_get("time_allowance_seconds")?;
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO voucher_batches (plan_id, count, prefix, code_length, valid_until, origin, note, price_kes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(req.plan_id)
    .bind(i32::try_from(req.count).unwrap_or(i32::MAX))
    .bind(&req.prefix)
    .bind(i32::try_from(req.code_length).unwrap_or(i32::MAX))
    .bind(req.valid_until)
    .bind(req.origin.as_str())
    .bind(&req.note)
    .bind(price)
    .fetch_one(&mut *conn)
    .await?;
    // Unused: valid until the batch's end date, or for ever until first use.
    let expires_at = match req.valid_until {
        Some(v) => v,
        None => NEVER.parse().expect("a valid date"),
    };
    let count = usize::try_from(req.count).unwrap_or(0);
    let mut draw = CodeGenerator::new();
    let mut codes: Vec<String> = Vec::with_capacity(count);
    let mut names: HashSet<String> = HashSet::with_capacity(count);
    for _ in 0..DRAW_ROUNDS {
        let need = count - codes.len();
        if need == 0 {
            break;
        }
        let mut round_codes = Vec::with_capacity(need);
        let mut round_names = Vec::with_capacity(need);
        let mut sealed = Vec::with_capacity(need);
        while round_codes.len() < need {
            let code = draw.code(&req.prefix, req.code_length)?;
            let name = key
                .lookup_name(&code)
                .expect("a drawn code is always a valid code");
            if names.contains(&name) || round_names.contains(&name) {
                continue;
            }
            sealed.push(codes::seal(key.print_key(), &name, &code)?);
            round_codes.push(code);
            round_names.push(name);
        }
        // A username taken by another batch (or a concurrent one) is skipped here and its
        // code drawn again in the next round.
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO subscribers (username, password, plan_id, status, expires_at, \
               data_remaining_bytes, time_remaining_seconds, voucher_batch_id, voucher_code_sealed) \
             SELECT t.u, '', $3, $8, $4, $5, $6, $7, t.sealed \
               FROM UNNEST($1::text[], $2::bytea[]) WITH ORDINALITY AS t(u, sealed, n) ORDER BY t.n \
             ON CONFLICT (username) DO NOTHING RETURNING username",
        )
        .bind(&round_names)
        .bind(&sealed)
        .bind(req.plan_id)
        .bind(expires_at)
        .bind(data)
        .bind(time)
        .bind(batch_id)
        .bind(match req.origin {
            Origin::Printed => "active",
            Origin::Portal => "suspended",
        })
        .fetch_all(&mut *conn)
        .await?;
        let inserted: HashSet<String> = inserted.into_iter().collect();
        for (code, name) in round_codes.into_iter().zip(round_names) {
            if inserted.contains(&name) {
                codes.push(code);
                names.insert(name);
            }
        }
    }
    if codes.len() < count {
        return Err(BatchError::Exhausted);
    }
    Ok((batch_id, codes))
}

/// The first use of each voucher among `auths` ([`FIRST_USE_REASON`], accepted): sets
/// `activated_at` to the login's time and `expires_at` to the end of its validity (the
/// plan's duration from then, but never past the batch's `valid_until`), and binds the
/// device's MAC when the plan says so. Only a voucher not yet activated changes: when two
/// routers report the same voucher's first use, in one batch or in two transactions at
/// once, the earliest in the batch wins and the other finds it activated. Returns how many
/// vouchers were activated.
pub async fn activate(conn: &mut PgConnection, auths: &[AuthResult]) -> Result<u64, sqlx::Error> {
    // The earliest first use per voucher in this batch.
    let mut first: BTreeMap<&str, (DateTime<Utc>, Option<String>)> = BTreeMap::new();
    for a in auths
        .iter()
        .filter(|a| a.accepted && a.reason.as_deref() == Some(FIRST_USE_REASON))
    {
        let mac = a
            .calling_station_id
            .as_deref()
            .and_then(|m| m.parse::<Mac>().ok())
            .map(|m| m.to_string());
        let e = first
            .entry(a.username.as_str())
            .or_insert((a.at, mac.clone()));
        if a.at < e.0 {
            *e = (a.at, mac);
        }
    }
    if first.is_empty() {
        return Ok(0);
    }
    let mut names = Vec::with_capacity(first.len());
    let mut ats = Vec::with_capacity(first.len());
    let mut macs = Vec::with_capacity(first.len());
    for (name, (at, mac)) in first {
        names.push(name);
        ats.push(at);
        macs.push(mac);
    }
    let done = sqlx::query(
        "UPDATE subscribers s SET activated_at = t.at, \
           expires_at = LEAST(t.at + make_interval(secs => p.duration_seconds), \
                              COALESCE(b.valid_until, 'infinity')), \
           voucher_mac = CASE WHEN p.bind_first_mac THEN t.mac::macaddr ELSE s.voucher_mac END \
         FROM UNNEST($1::text[], $2::timestamptz[], $3::text[]) AS t(u, at, mac), \
              voucher_batches b, plans p \
         WHERE s.username = t.u AND s.activated_at IS NULL \
           AND b.id = s.voucher_batch_id AND p.id = s.plan_id",
    )
    .bind(names)
    .bind(ats)
    .bind(macs)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// What the API needs for vouchers: the key, and the name printed on them.
#[derive(Debug, Clone)]
pub struct VoucherConfig {
    /// From the key file.
    pub key: VoucherKey,
    /// Setting `isp_name`.
    pub isp_name: String,
}
