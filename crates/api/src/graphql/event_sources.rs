//! Amazon EventBridge in the API (docs/eventbridge.md): partner event sources
//! (`webhook { createEventSource, deleteEventSource }`, `store { eventSources }`) and the
//! EventBridge destinations both styles share.
//!
//! AWS is called before anything is stored, so a refusal leaves nothing behind; when the
//! write after a successful call fails, the source is deleted at AWS again.

use async_graphql::resolver_utils::EnumType;
use async_graphql::{Enum, InputObject, SimpleObject, ID};
use chrono::{DateTime, Utc};
use hookrelay_core::aws::{self, EventBusArn};
use hookrelay_core::ids::{EventSourceId, StoreHash};
use hookrelay_core::{ids, Destination, EventSourceRecord};
use hookrelay_delivery::eventbridge::AwsError;
use hookrelay_store::{Conflict, StoreError};

use super::context::RequestCtx;
use super::types::connection_type;
use crate::error::{ApiError, ApiResult};

/// Every EventBridge region, as BigCommerce's enum writes them (`US_EAST_1`).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum EventSourceRegion {
    UsEast1,
    UsEast2,
    UsWest1,
    UsWest2,
    AfSouth1,
    ApEast1,
    ApEast2,
    ApSouth1,
    ApSouth2,
    ApSoutheast1,
    ApSoutheast2,
    ApSoutheast3,
    ApSoutheast4,
    ApSoutheast5,
    ApSoutheast7,
    ApNortheast1,
    ApNortheast2,
    ApNortheast3,
    CaCentral1,
    CaWest1,
    CnNorth1,
    CnNorthwest1,
    EuCentral1,
    EuCentral2,
    EuWest1,
    EuWest2,
    EuWest3,
    EuSouth1,
    EuSouth2,
    EuNorth1,
    IlCentral1,
    MeSouth1,
    MeCentral1,
    MxCentral1,
    SaEast1,
    UsGovEast1,
    UsGovWest1,
}

impl EventSourceRegion {
    /// `US_EAST_1` → `us-east-1`.
    pub fn region(self) -> String {
        Self::items()
            .iter()
            .find(|item| item.value == self)
            .map(|item| item.name.to_ascii_lowercase().replace('_', "-"))
            .unwrap_or_default()
    }

    /// `us-east-1` → `US_EAST_1`.
    pub fn from_region(region: &str) -> Option<Self> {
        let name = region.to_ascii_uppercase().replace('-', "_");
        Self::items()
            .iter()
            .find(|item| item.name == name)
            .map(|item| item.value)
    }
}

#[derive(Debug, Clone, InputObject)]
pub struct CreateEventSourceInput {
    /// The AWS account (12 digits) that will receive the events.
    pub aws_account: String,
    /// Becomes part of the partner event source name, lower-cased.
    pub event_source_name: String,
    pub event_source_region: EventSourceRegion,
    /// The app the source is for: the caller's own client id (a store admin may name
    /// another client of the store).
    pub client_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct EventSource {
    pub id: ID,
    pub aws_account: String,
    /// The ARN AWS answered: the destination of `createEventBridgeWebhook`.
    pub arn: String,
    /// The name as given, lower-cased (`final-test-1`).
    pub event_source_name: String,
    pub event_source_region: Option<EventSourceRegion>,
    /// The full partner event source name (`aws.partner/{partner}/{store}/{name}`): the
    /// `EventSourceName` (and `Name`) of the event bus the AWS customer associates with it.
    pub partner_event_source_name: String,
    pub client_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<EventSourceRecord> for EventSource {
    fn from(s: EventSourceRecord) -> Self {
        EventSource {
            id: ID(s.id),
            aws_account: s.aws_account,
            arn: s.arn,
            event_source_name: s.name,
            event_source_region: EventSourceRegion::from_region(&s.region),
            partner_event_source_name: s.source_name,
            client_id: s.owner_client_id,
            created_at: s.created_at,
        }
    }
}

connection_type!(EventSourceConnection, EventSourceEdge, EventSource);

#[derive(SimpleObject)]
pub struct CreateEventSourceResult {
    pub event_source: EventSource,
}

#[derive(SimpleObject)]
pub struct DeleteEventSourceResult {
    pub id: ID,
}

/// A failed AWS call as the caller sees it (docs/api.md#errors: `UpstreamError` with AWS's
/// error code, or hookrelay's when AWS did not answer).
pub fn upstream(path: &str, operation: &str, e: AwsError) -> ApiError {
    ApiError::Upstream {
        message: format!("{path}: {operation} failed: {}: {}", e.code, e.message),
        code: e.code,
    }
}

/// A partner event source name that is taken; `code` is `AlreadyExists`
/// (`createEventSource`) or `DestinationNameAlreadyExists` (`createEventSubscription`).
pub fn source_taken(code: &'static str, field: &str, source_name: &str) -> ApiError {
    ApiError::coded(
        code,
        format!("{field}: the event source {source_name} already exists"),
    )
}

/// What a new partner event source is to be.
pub struct SourceRequest<'a> {
    /// Where the request's fields are, for messages (`/webhook/createEventSource/input`).
    pub path: &'a str,
    /// The field names of the account and name inside `path`.
    pub account_field: &'a str,
    pub name_field: &'a str,
    pub account: &'a str,
    pub name: &'a str,
    pub region: String,
    pub owner: String,
    /// The subscription that will own the source (`createEventSubscription`).
    pub subscription_id: Option<String>,
    /// The error code for a name that is taken.
    pub taken_code: &'static str,
}

/// Checks the request, then makes the partner event source at AWS. The record is not
/// stored yet: the caller stores it (alone, or with its subscription) and calls
/// [`forget_at_aws`] if that fails.
pub async fn make_at_aws(rc: &RequestCtx, req: SourceRequest<'_>) -> ApiResult<EventSourceRecord> {
    let path = req.path;
    if !aws::is_account(req.account) {
        return Err(ApiError::validation(format!(
            "{path}/{} must be a 12-digit AWS account id, got {:?}",
            req.account_field, req.account
        )));
    }
    if !aws::is_source_segment(req.name) {
        return Err(ApiError::validation(format!(
            "{path}/{} must be 1-64 characters of letters, digits, '.', '-' and '_', got {:?}",
            req.name_field, req.name
        )));
    }
    let source_name = aws::partner_source_name(&rc.services.partner_name, &rc.store, req.name);
    let name_field = format!("{path}/{}", req.name_field);
    let taken = || source_taken(req.taken_code, &name_field, &source_name);
    if rc
        .services
        .store
        .event_source_name_taken(&source_name)
        .await?
    {
        return Err(taken());
    }
    let arn = rc
        .services
        .eventbridge
        .create_partner_event_source(&req.region, &source_name, req.account)
        .await
        .map_err(|e| match e.code.as_str() {
            "ResourceAlreadyExistsException" if req.taken_code != "AlreadyExists" => taken(),
            _ => upstream(path, "CreatePartnerEventSource", e),
        })?;
    tracing::info!(store = %rc.store, source = %source_name, %arn, account = req.account, "created partner event source");
    Ok(EventSourceRecord {
        store: rc.store.clone(),
        id: ids::new_id("es"),
        owner_client_id: req.owner,
        aws_account: req.account.to_owned(),
        name: req.name.to_ascii_lowercase(),
        source_name,
        region: req.region,
        arn,
        subscription_id: req.subscription_id,
        created_at: hookrelay_core::now(),
    })
}

/// Deletes at AWS a source whose record could not be stored (best effort: logged).
pub async fn forget_at_aws(rc: &RequestCtx, source: &EventSourceRecord) {
    if let Err(e) = rc
        .services
        .eventbridge
        .delete_partner_event_source(&source.region, &source.source_name, &source.aws_account)
        .await
    {
        tracing::error!(source = %source.source_name, error = %e, "cannot delete a partner event source that was not stored; delete it by hand");
    }
}

/// Deletes a source at AWS (before its record goes).
pub async fn delete_at_aws(
    rc: &RequestCtx,
    path: &str,
    source: &EventSourceRecord,
) -> ApiResult<()> {
    rc.services
        .eventbridge
        .delete_partner_event_source(&source.region, &source.source_name, &source.aws_account)
        .await
        .map_err(|e| upstream(path, "DeletePartnerEventSource", e))?;
    tracing::info!(store = %rc.store, source = %source.source_name, "deleted partner event source");
    Ok(())
}

/// `createEventSource`: make the source at AWS, then store it.
pub async fn create(rc: &RequestCtx, input: CreateEventSourceInput) -> ApiResult<EventSource> {
    let path = "/webhook/createEventSource/input";
    let owner = owner_for(rc, path, input.client_id)?;
    let source = make_at_aws(
        rc,
        SourceRequest {
            path,
            account_field: "awsAccount",
            name_field: "eventSourceName",
            account: &input.aws_account,
            name: &input.event_source_name,
            region: input.event_source_region.region(),
            owner,
            subscription_id: None,
            taken_code: "AlreadyExists",
        },
    )
    .await?;
    match rc.services.store.insert_event_source(source.clone()).await {
        Ok(()) => Ok(source.into()),
        Err(e) => {
            forget_at_aws(rc, &source).await;
            Err(match e {
                StoreError::Conflict(Conflict::EventSource) => source_taken(
                    "AlreadyExists",
                    &format!("{path}/eventSourceName"),
                    &source.source_name,
                ),
                e => e.into(),
            })
        }
    }
}

/// `deleteEventSource`: refused while a subscription delivers to it; deleted at AWS, then
/// here.
pub async fn delete(rc: &RequestCtx, id: &str) -> ApiResult<()> {
    let path = "/webhook/deleteEventSource";
    let source = visible_source(rc, id).await?;
    let in_use = |users: Vec<String>| {
        ApiError::coded(
            "EventSourceInUse",
            format!(
                "{path}: event source {id} is the destination of {}; delete those webhooks first",
                users.join(", ")
            ),
        )
    };
    let users = rc
        .services
        .store
        .event_source_users(StoreHash(&rc.store), EventSourceId(id))
        .await?;
    if !users.is_empty() {
        return Err(in_use(users));
    }
    delete_at_aws(rc, path, &source).await?;
    match rc
        .services
        .store
        .delete_event_source(StoreHash(&rc.store), EventSourceId(id))
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::InUse(users)) => Err(in_use(users)),
        Err(StoreError::NotFound) => Err(ApiError::no_such("event source", id)),
        Err(e) => Err(e.into()),
    }
}

/// A listable event source the caller may see, or `AccessDenied`.
async fn visible_source(rc: &RequestCtx, id: &str) -> ApiResult<EventSourceRecord> {
    let record = rc
        .services
        .store
        .get_event_source(StoreHash(&rc.store), EventSourceId(id))
        .await?
        .filter(|s| s.subscription_id.is_none());
    rc.visible(record, |s| &s.owner_client_id, "event source", id)
}

/// The owner of a new event source: the caller, or (for a store admin) the client it names.
fn owner_for(rc: &RequestCtx, path: &str, client_id: Option<String>) -> ApiResult<String> {
    match client_id {
        None => Ok(rc.principal.client_id.clone()),
        Some(id) if id == rc.principal.client_id => Ok(id),
        Some(id) if rc.sees_all() && ids::is_valid_user_id(&id) => Ok(id),
        Some(id) => Err(ApiError::validation(format!(
            "{path}/clientId {id:?} is not the client id of this token; leave it out or give {:?}",
            rc.principal.client_id
        ))),
    }
}

/// The destination of a BigCommerce-style EventBridge webhook: one of the store's event
/// sources (by the ARN `createEventSource` answered), or an event bus ARN.
pub async fn destination_for_arn(rc: &RequestCtx, path: &str, arn: &str) -> ApiResult<Destination> {
    let arn = arn.trim();
    if let Some(source) = rc
        .services
        .store
        .event_source_by_arn(StoreHash(&rc.store), arn)
        .await?
    {
        if source.subscription_id.is_none() {
            return Ok(source.destination());
        }
    }
    if arn.contains(":event-source/") {
        return Err(ApiError::validation(format!(
            "{path} {arn:?} is not the ARN of an event source of this store (createEventSource makes one)"
        )));
    }
    match EventBusArn::parse(arn) {
        Ok(bus) => Ok(bus.destination()),
        Err(e) => Err(ApiError::validation(format!(
            "{path} must be the ARN of one of this store's event sources or of an event bus; {arn:?} {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_maps_both_ways() {
        let items = EventSourceRegion::items();
        assert_eq!(items.len(), aws::REGIONS.len());
        for item in items {
            let region = item.value.region();
            assert!(aws::is_region(&region), "{region}");
            assert_eq!(EventSourceRegion::from_region(&region), Some(item.value));
        }
        assert_eq!(EventSourceRegion::UsEast1.region(), "us-east-1");
        assert_eq!(EventSourceRegion::from_region("mars-1"), None);
    }
}
