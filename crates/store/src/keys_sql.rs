//! The SQL both backends share for [`crate::keys::KeyStore`]: where each sealed column lives.

use crate::keys::SecretColumn;

/// `(table, column)` of a sealed column.
pub(crate) fn place(column: SecretColumn) -> (&'static str, &'static str) {
    match column {
        SecretColumn::SigningSecret => ("subscriptions", "signing_secret"),
        SecretColumn::PreviousSigningSecret => ("subscriptions", "previous_signing_secret"),
        SecretColumn::Destination => ("subscriptions", "destination"),
        SecretColumn::AuthConfig => ("auth_profiles", "config"),
    }
}

/// The key ids as stored in `node_keys.key_ids`.
pub(crate) fn join_ids(key_ids: &[String]) -> String {
    key_ids.join(",")
}

pub(crate) fn split_ids(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
