//! What both backends share for [`crate::keys::KeyStore`]: how `node_keys.key_ids` is
//! written.

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
