//! Identifiers. Generated ids are prefixed ULIDs (`sub_01J…`): the prefix tells what an id
//! names when it shows up in a log, and ULIDs sort by creation time.
//!
//! The `Store` signatures take ids as typed newtypes, so that swapped arguments do not
//! compile:
//!
//! ```compile_fail
//! use hookrelay_core::ids::{StoreHash, SubscriptionId};
//! fn get_subscription(_store: StoreHash<'_>, _id: SubscriptionId<'_>) {}
//! get_subscription(SubscriptionId("sub_1"), StoreHash("abc123"));
//! ```
//!
//! ```
//! use hookrelay_core::ids::{StoreHash, SubscriptionId};
//! fn get_subscription(_store: StoreHash<'_>, _id: SubscriptionId<'_>) {}
//! get_subscription(StoreHash("abc123"), SubscriptionId("sub_1"));
//! ```

use ulid::Ulid;

/// Borrowed id newtypes for the `Store` signatures: a `SubscriptionId` cannot be passed
/// where a `StoreHash` or a `DeliveryId` is asked for, so swapped arguments do not
/// compile. They cost nothing: each is a `&str`, built at the call (`SubscriptionId(&id)`).
macro_rules! id_types {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name<'a>(pub &'a str);

        impl<'a> $name<'a> {
            pub fn as_str(self) -> &'a str {
                self.0
            }
        }

        impl std::fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
    )*};
}

id_types! {
    /// A store's hash (`abc123`).
    StoreHash;
    /// A subscription's id (`sub_…`), of either style.
    SubscriptionId;
    /// A delivery's id (`dlv_…`): the `webhook-id` its requests carry.
    DeliveryId;
    /// An auth profile's id: chosen by its maker, or `ap_…`.
    AuthProfileId;
    /// An event source's id.
    EventSourceId;
}

/// A new id with the given prefix, e.g. `new_id("sub")` → `sub_01JD…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Ulid::new())
}

/// Is `hash` a valid store hash (`[a-z0-9]{1,32}`)?
pub fn is_valid_store_hash(hash: &str) -> bool {
    !hash.is_empty()
        && hash.len() <= 32
        && hash
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Is `id` acceptable as a user-chosen id (auth profile alias, client id)?
/// 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_unique() {
        let a = new_id("sub");
        let b = new_id("sub");
        assert!(a.starts_with("sub_"));
        assert_eq!(a.len(), 4 + 26);
        assert_ne!(a, b);
    }

    #[test]
    fn store_hash_rules() {
        assert!(is_valid_store_hash("abc123"));
        assert!(!is_valid_store_hash(""));
        assert!(!is_valid_store_hash("ABC"));
        assert!(!is_valid_store_hash(&"a".repeat(33)));
        assert!(!is_valid_store_hash("a/b"));
    }

    #[test]
    fn user_id_rules() {
        assert!(is_valid_user_id("example-authprofilealiasid"));
        assert!(!is_valid_user_id("has space"));
        assert!(!is_valid_user_id(""));
    }
}
