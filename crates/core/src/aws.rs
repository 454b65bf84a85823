//! Amazon EventBridge vocabulary (docs/eventbridge.md) without I/O: regions, account ids,
//! the ARNs a subscription may deliver to, partner event source names, and the entry size
//! rule.

use crate::Destination;

/// Every region EventBridge runs in (commercial, China and GovCloud partitions).
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// The largest PutEvents / PutPartnerEvents entry, in bytes as AWS counts them.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Entries per `PutPartnerEvents` call at most.
pub const MAX_PARTNER_BATCH: usize = 20;

/// Entries per `PutEvents` call at most.
pub const MAX_EVENT_BUS_BATCH: usize = 10;

pub fn is_region(region: &str) -> bool {
    REGIONS.contains(&region)
}

/// An AWS account id: exactly 12 digits.
pub fn is_account(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Is `name` acceptable as one segment of a partner event source name? AWS allows
/// `[.\-_A-Za-z0-9]+` per segment; hookrelay keeps each to 64 characters so the whole name
/// stays far below AWS's 256.
pub fn is_source_segment(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `aws.partner/{partner}/{store}/{name lower-cased}`: the name of a store's partner event
/// source (`createEventSource`; docs/eventbridge.md#partner-event-sources).
pub fn partner_source_name(partner: &str, store: &str, name: &str) -> String {
    format!(
        "aws.partner/{partner}/{store}/{}",
        name.to_ascii_lowercase()
    )
}

/// An event bus a subscription may deliver to with `PutEvents`
/// (`arn:aws:events:REGION:ACCOUNT:event-bus/NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBusArn {
    /// The ARN as given (trimmed).
    pub arn: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

/// Why a text is not an event bus ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("is not an ARN like arn:aws:events:REGION:ACCOUNT:event-bus/NAME")]
    Shape,
    #[error("names the region {0:?}, which is not an AWS region")]
    Region(String),
    #[error("names the account {0:?}; an AWS account id is 12 digits")]
    Account(String),
    #[error("has the partition {found:?}; the region {region} is in {expected:?}")]
    Partition {
        found: String,
        region: String,
        expected: &'static str,
    },
    #[error("names the event bus {0:?}; a bus name is 1-256 characters of [.-_/A-Za-z0-9]")]
    Name(String),
}

impl EventBusArn {
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        let arn = arn.trim();
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition_found), Some("events"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ArnError::Shape);
        };
        let name = parts
            .next()
            .and_then(|resource| resource.strip_prefix("event-bus/"))
            .ok_or(ArnError::Shape)?;
        if !is_region(region) {
            return Err(ArnError::Region(region.to_owned()));
        }
        let expected = partition(region);
        if partition_found != expected {
            return Err(ArnError::Partition {
                found: partition_found.to_owned(),
                region: region.to_owned(),
                expected,
            });
        }
        if !is_account(account) {
            return Err(ArnError::Account(account.to_owned()));
        }
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'));
        if !name_ok {
            return Err(ArnError::Name(name.to_owned()));
        }
        Ok(EventBusArn {
            arn: arn.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl EventBusArn {
    /// The destination of a subscription that delivers to this bus (with `PutEvents`).
    pub fn destination(self) -> Destination {
        Destination::EventBridge {
            arn: self.arn,
            region: self.region,
            partner_source: None,
        }
    }
}

/// The size of a PutEvents / PutPartnerEvents entry as AWS counts it: 14 bytes for `Time`,
/// plus the UTF-8 bytes of `Source`, `DetailType`, `Detail` and each of `Resources`.
pub fn entry_size(source: &str, detail_type: &str, detail: &str, resources: &[String]) -> usize {
    14 + source.len()
        + detail_type.len()
        + detail.len()
        + resources.iter().map(String::len).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_accounts() {
        assert!(is_region("us-east-1"));
        assert!(is_region("eu-west-1"));
        assert!(!is_region("us-east-9"));
        assert!(!is_region("US_EAST_1"));
        assert!(is_account("649666292244"));
        assert!(!is_account("64966629224"));
        assert!(!is_account("64966629224x"));
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("us-west-2"), "aws");
    }

    #[test]
    fn partner_source_names_are_lower_cased() {
        assert_eq!(
            partner_source_name("hookrelay.example", "abc123", "Final-Test-1"),
            "aws.partner/hookrelay.example/abc123/final-test-1"
        );
        assert!(is_source_segment("Final-Test-1"));
        assert!(!is_source_segment("a/b"));
        assert!(!is_source_segment(""));
        assert!(!is_source_segment(&"a".repeat(65)));
    }

    #[test]
    fn event_bus_arns() {
        assert_eq!(
            EventBusArn::parse("arn:aws:events:us-east-1:123456789012:event-bus/orders"),
            Ok(EventBusArn {
                arn: "arn:aws:events:us-east-1:123456789012:event-bus/orders".into(),
                region: "us-east-1".into(),
                account: "123456789012".into(),
                name: "orders".into()
            })
        );
        assert_eq!(
            EventBusArn::parse("arn:aws:events:us-east-1::event-source/aws.partner/x/y/z"),
            Err(ArnError::Shape)
        );
        assert_eq!(
            EventBusArn::parse("arn:aws:events:mars-1:123456789012:event-bus/x"),
            Err(ArnError::Region("mars-1".into()))
        );
        assert_eq!(
            EventBusArn::parse("arn:aws:events:us-east-1:12345:event-bus/x"),
            Err(ArnError::Account("12345".into()))
        );
        assert!(matches!(
            EventBusArn::parse("arn:aws:events:cn-north-1:123456789012:event-bus/x"),
            Err(ArnError::Partition { .. })
        ));
        assert!(
            EventBusArn::parse("arn:aws-cn:events:cn-north-1:123456789012:event-bus/x").is_ok()
        );
        assert_eq!(
            EventBusArn::parse("arn:aws:events:us-east-1:123456789012:event-bus/"),
            Err(ArnError::Name(String::new()))
        );
        assert_eq!(EventBusArn::parse("orders"), Err(ArnError::Shape));
    }

    #[test]
    fn entry_size_counts_like_aws() {
        let resources = vec!["abc".to_owned(), "de".to_owned()];
        assert_eq!(
            entry_size("src", "type", "{}", &resources),
            14 + 3 + 4 + 2 + 5
        );
    }
}
