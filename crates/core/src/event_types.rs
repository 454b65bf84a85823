//! The event-type catalog and wildcard matching.
//!
//! Types are BigCommerce scopes (`store/order/created`) or Buy with Prime descriptors
//! (`ORDER_CONFIRMED`). A subscription may name a wildcard scope `prefix/*`, which matches
//! every type under `prefix/`.

use std::collections::BTreeSet;

/// Buy with Prime event descriptors (the published list, deprecated names included so
/// that existing integrations keep working).
pub const BUY_WITH_PRIME_TYPES: &[&str] = &[
    "BUYABILITY_CHANGED",
    "DELIVERY_CANCELLED",
    "DELIVERY_COMPLETED",
    "DELIVERY_IN_TRANSIT",
    "INVENTORY_CHANGED",
    "ITEM_CANCELLED",
    "ITEM_DELIVERED",
    "ITEM_IN_TRANSIT",
    "ORDER_CONFIRMED",
    "PACKAGE_DELIVERED",
    "PACKAGE_DELIVERY_CANCELLED",
    "PACKAGE_DELIVERY_IN_TRANSIT",
    "PACKAGE_TRACKER_MILESTONE_CHANGED",
    "PERSONAL_DATA_DELETION_TASK_COMPLETED",
    "PERSONAL_DATA_DELETION_TASK_FAILED",
    "PERSONAL_DATA_RETRIEVAL_TASK_COMPLETED",
    "PERSONAL_DATA_RETRIEVAL_TASK_FAILED",
    "REFUND_REQUESTED",
    "RETURN_COMPLETED",
    "RETURN_DELIVERY_COMPLETED",
    "RETURN_DELIVERY_FAILED",
    "RETURN_DELIVERY_IN_TRANSIT",
    "RETURN_ITEM_GRADED",
    "RETURN_PACKAGE_DELIVERED",
    "RETURN_PACKAGE_DELIVERY_FAILED",
    "RETURN_PACKAGE_IN_TRANSIT",
    "RETURN_STARTED",
];

/// BigCommerce webhook scopes.
pub const BIGCOMMERCE_TYPES: &[&str] = &[
    "store/app/uninstalled",
    "store/brand/metafield/created",
    "store/brand/metafield/deleted",
    "store/brand/metafield/updated",
    "store/cart/abandoned",
    "store/cart/converted",
    "store/cart/couponApplied",
    "store/cart/created",
    "store/cart/deleted",
    "store/cart/lineItem/created",
    "store/cart/lineItem/deleted",
    "store/cart/lineItem/updated",
    "store/cart/updated",
    "store/category/created",
    "store/category/deleted",
    "store/category/metafield/created",
    "store/category/metafield/deleted",
    "store/category/metafield/updated",
    "store/category/updated",
    "store/channel/created",
    "store/channel/updated",
    "store/customer/address/created",
    "store/customer/address/deleted",
    "store/customer/address/updated",
    "store/customer/created",
    "store/customer/deleted",
    "store/customer/payment/instrument/default/updated",
    "store/customer/updated",
    "store/information/updated",
    "store/order/archived",
    "store/order/created",
    "store/order/message/created",
    "store/order/refund/created",
    "store/order/statusUpdated",
    "store/order/transaction/created",
    "store/order/updated",
    "store/product/created",
    "store/product/deleted",
    "store/product/inventory/order/updated",
    "store/product/inventory/updated",
    "store/product/updated",
    "store/shipment/created",
    "store/shipment/deleted",
    "store/shipment/updated",
    "store/sku/created",
    "store/sku/deleted",
    "store/sku/inventory/order/updated",
    "store/sku/inventory/updated",
    "store/sku/updated",
    "store/subscriber/created",
    "store/subscriber/deleted",
    "store/subscriber/updated",
];

/// hookrelay's own events (docs/delivery.md#operational-events): published by the
/// delivery engine into the store they concern, never by publishers; `hookrelay/*`
/// matches them all.
pub const OPERATIONAL_TYPES: &[&str] = &[
    "hookrelay/delivery/failed",
    "hookrelay/destination/blocked",
    "hookrelay/destination/unblocked",
    "hookrelay/subscription/deactivated",
    "hookrelay/subscription/reactivated",
];

/// The prefix of every operational event type.
pub const OPERATIONAL_PREFIX: &str = "hookrelay/";

/// The set of event types hookrelay accepts.
#[derive(Debug, Clone)]
pub struct Catalog {
    types: BTreeSet<String>,
}

/// Why a name is not an acceptable subscription type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error("is empty")]
    Empty,
    #[error("{0:?} is not a known event type")]
    Unknown(String),
    #[error("{0:?} is a wildcard that matches no known event type")]
    EmptyWildcard(String),
}

impl Catalog {
    /// Both vendors' published lists plus `extra` (from the operator's config).
    pub fn with_defaults<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut types: BTreeSet<String> = BUY_WITH_PRIME_TYPES
            .iter()
            .chain(BIGCOMMERCE_TYPES)
            .chain(OPERATIONAL_TYPES)
            .map(|s| s.to_string())
            .collect();
        types.extend(extra.into_iter().map(Into::into));
        Catalog { types }
    }

    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(String::as_str)
    }

    /// Is `name` a concrete type of the catalog (what an event may be published as)?
    pub fn is_known(&self, name: &str) -> bool {
        self.types.contains(name)
    }

    /// Checks a type a subscription names: a known type, or a wildcard `prefix/*` that
    /// covers at least one known type.
    pub fn check_subscribable(&self, name: &str) -> Result<(), EventTypeError> {
        if name.is_empty() {
            return Err(EventTypeError::Empty);
        }
        if self.types.contains(name) {
            return Ok(());
        }
        match wildcard_prefix(name) {
            Some(prefix) if self.types.iter().any(|t| t.starts_with(prefix)) => Ok(()),
            Some(_) => Err(EventTypeError::EmptyWildcard(name.to_string())),
            None => Err(EventTypeError::Unknown(name.to_string())),
        }
    }
}

/// For `store/order/*`, the prefix `store/order/`; `None` for a concrete type.
fn wildcard_prefix(pattern: &str) -> Option<&str> {
    pattern
        .strip_suffix('*')
        .filter(|prefix| prefix.ends_with('/') && !prefix.contains('*'))
}

/// Does a subscription type (`pattern`, concrete or wildcard) match the event type `event`?
pub fn matches(pattern: &str, event: &str) -> bool {
    match wildcard_prefix(pattern) {
        Some(prefix) => event.len() > prefix.len() && event.starts_with(prefix),
        None => pattern == event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_under_their_prefix_only() {
        assert!(matches("store/order/*", "store/order/created"));
        assert!(matches("store/order/*", "store/order/refund/created"));
        assert!(!matches("store/order/*", "store/orders/created"));
        assert!(!matches("store/order/*", "store/order/"));
        assert!(matches("ORDER_CONFIRMED", "ORDER_CONFIRMED"));
        assert!(!matches("ORDER_CONFIRMED", "ORDER_CONFIRMED_X"));
    }

    #[test]
    fn catalog_checks() {
        let c = Catalog::with_defaults(["custom/thing/happened"]);
        assert!(c.check_subscribable("store/category/updated").is_ok());
        assert!(c.check_subscribable("store/order/*").is_ok());
        assert!(c.check_subscribable("custom/*").is_ok());
        assert!(c.check_subscribable("REFUND_REQUESTED").is_ok());
        assert!(c.check_subscribable("hookrelay/*").is_ok());
        for t in OPERATIONAL_TYPES {
            assert!(c.is_known(t) && matches("hookrelay/*", t), "{t}");
        }
        assert_eq!(
            c.check_subscribable("store/nothing/*"),
            Err(EventTypeError::EmptyWildcard("store/nothing/*".into()))
        );
        assert_eq!(
            c.check_subscribable("store/order/exploded"),
            Err(EventTypeError::Unknown("store/order/exploded".into()))
        );
        assert_eq!(c.check_subscribable(""), Err(EventTypeError::Empty));
        assert!(c.check_subscribable("store/order*").is_err());
    }
}
