//! API tokens: random, shown once, stored as SHA-256.

use rand::RngCore;
use sqlx::PgPool;

use crate::api::token_hash;

/// Creates a token named `name`, stores its hash and returns the token (shown once).
pub async fn create(pool: &PgPool, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 100,
        "token name must be 1..100 characters"
    );
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("jsy_{}", hex::encode(bytes));
    sqlx::query("INSERT INTO api_tokens (name, token_sha256) VALUES ($1, $2)")
        .bind(name)
        .bind(&token_hash(&token)[..])
        .execute(pool)
        .await?;
    Ok(token)
}
