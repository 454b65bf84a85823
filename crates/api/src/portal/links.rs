//! Portal links and sessions (docs/portal.md): who may open the portal, for whom, and
//! for how long. The CLI (`hookrelay portal link`), the GraphQL `createPortalLink` and the
//! portal's own routes all come here; the store keeps only hashes of the secrets.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookrelay_core::{secrets, Principal, Role};
use hookrelay_store::portal::{Grant, LinkState, NewPortalLink, NewPortalSession, Redeemed};
use hookrelay_store::{Store, StoreError};

/// A link's life when none is asked for.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest life a link may be given.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// A session ends this long after it began, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// ... or after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// How stale a session's last-seen time may get before a request writes it again (so that
/// a busy page does not write on every request).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The client id a store link or operator link acts under (what its records are owned by).
pub const PORTAL_CLIENT_ID: &str = "portal";

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("ttl must be at least 1 second and at most 24h")]
    BadTtl,
    #[error("unknown store {0:?}")]
    UnknownStore(String),
    #[error("client {0:?} is not an active client of this store")]
    UnknownClient(String),
    #[error("client {0:?} has role {1}; portal links are for client and store-admin clients")]
    ClientRole(String, &'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whom a new link is for.
#[derive(Debug, Clone)]
pub enum LinkFor {
    /// A store, as its administrator (`client_id: None`) or as one of its API clients.
    Store {
        store: String,
        client_id: Option<String>,
    },
    /// The operator console.
    Admin,
}

/// A link as handed to the platform: open `url` before `expires_at`, once.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The path of a link (after the public URL); the secret is its last segment.
pub const OPEN_PATH: &str = "/portal/open/";

/// Makes a single-use link for `who`, valid for `ttl` (default 15 minutes, at most 24 h).
pub async fn create_link(
    store: &dyn Store,
    public_url: &str,
    who: LinkFor,
    ttl: Option<Duration>,
) -> Result<PortalLink, LinkError> {
    let ttl = ttl.unwrap_or(DEFAULT_LINK_TTL);
    if ttl < Duration::from_secs(1) || ttl > MAX_LINK_TTL {
        return Err(LinkError::BadTtl);
    }
    let grant = match who {
        LinkFor::Admin => Grant {
            role: Role::Admin,
            store: None,
            client_id: None,
        },
        LinkFor::Store {
            store: hash,
            client_id,
        } => {
            if !store.store_exists(&hash).await? {
                return Err(LinkError::UnknownStore(hash));
            }
            let role = match &client_id {
                None => Role::StoreAdmin,
                Some(id) => {
                    let client = store
                        .list_clients()
                        .await?
                        .into_iter()
                        .find(|c| {
                            &c.client_id == id
                                && c.revoked_at.is_none()
                                && c.store.as_deref() == Some(hash.as_str())
                        })
                        .ok_or_else(|| LinkError::UnknownClient(id.clone()))?;
                    if !matches!(client.role, Role::Client | Role::StoreAdmin) {
                        return Err(LinkError::ClientRole(id.clone(), client.role.as_str()));
                    }
                    client.role
                }
            };
            Grant {
                role,
                store: Some(hash),
                client_id,
            }
        }
    };
    let secret = secrets::new_portal_link_secret();
    let created_at = Utc::now();
    let expires_at = created_at + chrono::Duration::from_std(ttl).map_err(|_| LinkError::BadTtl)?;
    store
        .insert_portal_link(NewPortalLink {
            link_hash: secrets::hash_token(&secret),
            grant,
            created_at,
            expires_at,
        })
        .await?;
    Ok(PortalLink {
        url: format!("{}{OPEN_PATH}{secret}", public_url.trim_end_matches('/')),
        expires_at,
    })
}

/// What a link is worth now, without using it.
pub async fn link_state(store: &dyn Store, secret: &str) -> Result<LinkState, StoreError> {
    store
        .portal_link_state(&secrets::hash_token(secret), Utc::now())
        .await
}

/// A session opened from a link.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenedSession {
    pub session: String,
    pub expires_at: DateTime<Utc>,
    pub idle_timeout_seconds: u64,
    #[serde(flatten)]
    pub who: Who,
}

/// Whom a session acts for, as the portal shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Who {
    pub role: &'static str,
    pub store: Option<String>,
    pub client_id: Option<String>,
}

impl From<&Grant> for Who {
    fn from(g: &Grant) -> Self {
        Who {
            role: g.role.as_str(),
            store: g.store.clone(),
            client_id: g.client_id.clone(),
        }
    }
}

/// Uses the link and opens a session, or says why not.
pub async fn redeem(
    store: &dyn Store,
    secret: &str,
) -> Result<Result<OpenedSession, LinkState>, StoreError> {
    let session = secrets::new_portal_session();
    let created_at = Utc::now();
    let expires_at = created_at + chrono::Duration::from_std(SESSION_LIFETIME).unwrap_or_default();
    let answer = store
        .redeem_portal_link(
            &secrets::hash_token(secret),
            NewPortalSession {
                session_hash: secrets::hash_token(&session),
                created_at,
                expires_at,
            },
        )
        .await?;
    Ok(match answer {
        Redeemed::Session(grant) => Ok(OpenedSession {
            session,
            expires_at,
            idle_timeout_seconds: SESSION_IDLE.as_secs(),
            who: Who::from(&grant),
        }),
        Redeemed::Refused(state) => Err(state),
    })
}

/// A live session: whom it acts for, as the API's principal, and when it ends.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub principal: Principal,
    pub who: Who,
    pub expires_at: DateTime<Utc>,
}

/// The session of `token` if it is still good (and notes that it was used).
pub async fn session(store: &dyn Store, token: &str) -> Result<Option<LiveSession>, StoreError> {
    let hash = secrets::hash_token(token);
    let now = Utc::now();
    let idle_since = now - chrono::Duration::from_std(SESSION_IDLE).unwrap_or_default();
    let Some(found) = store.portal_session(&hash, now, idle_since).await? else {
        return Ok(None);
    };
    if now - found.last_seen_at > chrono::Duration::from_std(TOUCH_EVERY).unwrap_or_default() {
        store.touch_portal_session(&hash, now).await?;
    }
    let grant = found.grant;
    Ok(Some(LiveSession {
        principal: Principal {
            client_id: grant
                .client_id
                .clone()
                .unwrap_or_else(|| PORTAL_CLIENT_ID.to_owned()),
            role: grant.role,
            store: grant.store.clone(),
        },
        who: Who::from(&grant),
        expires_at: found.expires_at,
    }))
}

/// Ends the session of `token` (logging out).
pub async fn end(store: &dyn Store, token: &str) -> Result<(), StoreError> {
    store.end_portal_session(&secrets::hash_token(token)).await
}
