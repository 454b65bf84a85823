//! What rotating the master key asks of a database (docs/operations.md#rotating-the-master-key):
//! which key seals, which keys each node holds, and every sealed value, read and written
//! back in batches.

use async_trait::async_trait;

use crate::Result;

/// A column that holds sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretColumn {
    /// `subscriptions.signing_secret`.
    SigningSecret,
    /// `subscriptions.previous_signing_secret` (set while a rotated secret still signs).
    PreviousSigningSecret,
    /// `subscriptions.destination`: the destination's JSON, whose broker URL is sealed.
    Destination,
    /// `auth_profiles.config`.
    AuthConfig,
}

impl SecretColumn {
    pub const ALL: [SecretColumn; 4] = [
        SecretColumn::SigningSecret,
        SecretColumn::PreviousSigningSecret,
        SecretColumn::Destination,
        SecretColumn::AuthConfig,
    ];

    /// `(table, column)` where the values are.
    pub fn place(self) -> (&'static str, &'static str) {
        match self {
            SecretColumn::SigningSecret => ("subscriptions", "signing_secret"),
            SecretColumn::PreviousSigningSecret => ("subscriptions", "previous_signing_secret"),
            SecretColumn::Destination => ("subscriptions", "destination"),
            SecretColumn::AuthConfig => ("auth_profiles", "config"),
        }
    }
}

/// `table.column`, for messages.
impl std::fmt::Display for SecretColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (table, column) = self.place();
        write!(f, "{table}.{column}")
    }
}

/// One stored value of a [`SecretColumn`].
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// The row's sequence number: the order of [`KeyStore::sealed_secrets`].
    pub seq: i64,
    pub store: String,
    /// The subscription's or auth profile's id (what the value is sealed for).
    pub id: String,
    /// The sealed bytes; for [`SecretColumn::Destination`], the JSON text.
    pub value: Vec<u8>,
}

/// A value to write back in place of the one read, if the row still holds that one.
#[derive(Debug, Clone)]
pub struct Resealed {
    pub seq: i64,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// A node alive in the database and the key ids it said it holds (`None`: it said
/// nothing, e.g. a node still starting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKeys {
    pub node: String,
    pub key_ids: Option<Vec<String>>,
}

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The id of the master key the database says seals new values, once a rotation
    /// named one.
    async fn sealing_key(&self) -> Result<Option<String>>;
    async fn set_sealing_key(&self, key_id: &str) -> Result<()>;
    /// Records the key ids `node` holds (and forgets those of nodes that are gone).
    async fn report_keys(&self, node: &str, key_ids: &[String]) -> Result<()>;
    /// Every node whose heartbeat is younger than `within`, with the keys it reported.
    async fn live_node_keys(&self, within: std::time::Duration) -> Result<Vec<NodeKeys>>;
    /// Up to `limit` values of `column` of rows after `after` (a `seq`), in `seq` order.
    async fn sealed_secrets(
        &self,
        column: SecretColumn,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredSecret>>;
    /// Writes each new value where the row still holds the old one, all in one
    /// transaction; returns how many were written (a row changed meanwhile is not).
    async fn reseal(&self, column: SecretColumn, changes: Vec<Resealed>) -> Result<u64>;
}
