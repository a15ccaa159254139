//! Secrets the service generates for itself (migrations/0007_service_secrets.sql): created once,
//! with the operating system's randomness, the first time they are asked for, and never changed.

use jiff::Timestamp;
use rusqlite::OptionalExtension;

use super::{ReadTx, StoreError, Tx};

/// The length of every generated secret, in bytes.
pub const SECRET_LEN: usize = 32;

/// [`SECRET_LEN`] bytes from the operating system's randomness (`getrandom(2)` on Linux, which
/// also works where `/dev` is not mounted, as in a minimal container).
pub fn random_bytes() -> Result<[u8; SECRET_LEN], StoreError> {
    let mut bytes = [0u8; SECRET_LEN];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Io {
        path: "getrandom".to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes)
}

impl Tx<'_> {
    /// The secret called `name`, generated and stored now when there is none yet.
    pub fn service_secret(&self, name: &str, now: Timestamp) -> Result<Vec<u8>, StoreError> {
        if let Some(value) = self.stored_secret(name)? {
            return Ok(value);
        }
        let value = random_bytes()?.to_vec();
        self.conn()
            .prepare_cached(
                "INSERT INTO service_secrets (name, value, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(rusqlite::params![name, value, super::ms(now)])?;
        Ok(value)
    }
}

impl ReadTx<'_> {
    /// The secret called `name`, None before it was first generated.
    pub fn stored_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM service_secrets WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }
}
