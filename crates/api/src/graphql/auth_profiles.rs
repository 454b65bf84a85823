//! Buy with Prime auth profiles: reusable OAuth 2.0 client-credentials or HTTP basic-auth
//! configurations for webhook destinations. Secrets go in sealed and never come back out.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use hookrelay_core::ids::{AuthProfileId, StoreHash};
use hookrelay_core::{ids, AuthConfig, AuthProfileRecord};
use hookrelay_store::StoreError;

use super::context::{request_ctx, RequestCtx};
use super::types::{
    connection, connection_type, page_request, KeyValueInput, KeyValueObject, Method,
};
use super::validate;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, InputObject)]
pub struct ClientParametersInput {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Default, InputObject)]
pub struct HttpParametersInput {
    pub body_parameters: Option<Vec<KeyValueInput>>,
    pub header_parameters: Option<Vec<KeyValueInput>>,
}

#[derive(Debug, Clone, InputObject)]
#[graphql(name = "OAuthConfigInput")]
pub struct OAuthConfigInput {
    pub client_parameters: ClientParametersInput,
    pub auth_endpoint: String,
    pub http_method: Option<Method>,
    pub http_parameters: Option<HttpParametersInput>,
}

#[derive(Debug, Clone, InputObject)]
pub struct BasicAuthConfigInput {
    pub username: String,
    pub password: String,
}

/// Exactly one of `oAuthConfig` or `basicAuthConfig`.
#[derive(Debug, Clone, InputObject)]
pub struct AuthConfigInput {
    #[graphql(name = "oAuthConfig")]
    pub o_auth_config: Option<OAuthConfigInput>,
    pub basic_auth_config: Option<BasicAuthConfigInput>,
}

#[derive(Debug, Clone, InputObject)]
pub struct CreateAuthProfileInput {
    /// Becomes the profile's id (unique in the store); generated when absent.
    pub auth_profile_alias_id: Option<String>,
    pub auth_config: AuthConfigInput,
}

#[derive(Debug, Clone, InputObject)]
pub struct UpdateAuthProfileInput {
    pub auth_profile_id: String,
    pub auth_config: AuthConfigInput,
}

#[derive(SimpleObject)]
pub struct CreateAuthProfileResponse {
    pub auth_profile_id: String,
}

#[derive(SimpleObject)]
pub struct UpdateAuthProfileResponse {
    pub auth_profile_id: String,
}

#[derive(SimpleObject)]
pub struct DeletedAuthProfile {
    pub auth_profile_id: String,
}

/// The seed's request selects `authProfile { authProfileId }`, its response shows
/// `authProfileId`: both are here.
#[derive(SimpleObject)]
pub struct DeleteAuthProfileResponse {
    pub auth_profile_id: String,
    pub auth_profile: DeletedAuthProfile,
}

#[derive(SimpleObject)]
pub struct ClientParameters {
    pub client_id: String,
}

#[derive(SimpleObject)]
pub struct HttpParameters {
    pub body_parameters: Vec<KeyValueObject>,
    pub header_parameters: Vec<KeyValueObject>,
}

/// An OAuth configuration without its client secret.
#[derive(SimpleObject)]
#[graphql(name = "OAuthConfig")]
pub struct OAuthConfigView {
    pub client_parameters: ClientParameters,
    pub auth_endpoint: String,
    pub http_method: Method,
    pub http_parameters: HttpParameters,
}

/// A basic-auth configuration without its password.
#[derive(SimpleObject)]
#[graphql(name = "BasicAuthConfig")]
pub struct BasicAuthConfigView {
    pub username: String,
}

#[derive(SimpleObject)]
#[graphql(name = "AuthConfig")]
pub struct AuthConfigView {
    #[graphql(name = "oAuthConfig")]
    pub o_auth_config: Option<OAuthConfigView>,
    pub basic_auth_config: Option<BasicAuthConfigView>,
}

#[derive(SimpleObject)]
pub struct AuthProfile {
    pub auth_profile_id: String,
    /// `OAUTH` or `BASIC`.
    pub auth_type: String,
    pub auth_config: AuthConfigView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

connection_type!(AuthProfileConnection, AuthProfileEdge, AuthProfile);

pub fn seal_context(store: &str, id: &str) -> String {
    hookrelay_core::secrets::auth_config_context(store, id)
}

/// Seals an auth config for the profile `id` of `store`.
pub fn seal(rc: &RequestCtx, id: &str, config: &AuthConfig) -> ApiResult<hookrelay_core::Sealed> {
    let json = serde_json::to_vec(config).map_err(ApiError::internal)?;
    rc.services
        .cipher
        .seal(&seal_context(&rc.store, id), &json)
        .map_err(ApiError::internal)
}

fn open(rc: &RequestCtx, record: &AuthProfileRecord) -> ApiResult<AuthConfig> {
    let json = rc
        .services
        .cipher
        .open(&seal_context(&record.store, &record.id), &record.config)
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&json).map_err(ApiError::internal)
}

fn view(rc: &RequestCtx, record: AuthProfileRecord) -> ApiResult<AuthProfile> {
    let config = open(rc, &record)?;
    let pairs = |v: &[hookrelay_core::KeyValue]| v.iter().map(KeyValueObject::from).collect();
    let (auth_type, auth_config) = match config {
        AuthConfig::OAuth(o) => (
            "OAUTH",
            AuthConfigView {
                o_auth_config: Some(OAuthConfigView {
                    client_parameters: ClientParameters {
                        client_id: o.client_id,
                    },
                    auth_endpoint: o.auth_endpoint,
                    http_method: Method(o.http_method),
                    http_parameters: HttpParameters {
                        body_parameters: pairs(&o.body_parameters),
                        header_parameters: pairs(&o.header_parameters),
                    },
                }),
                basic_auth_config: None,
            },
        ),
        AuthConfig::Basic(b) => (
            "BASIC",
            AuthConfigView {
                o_auth_config: None,
                basic_auth_config: Some(BasicAuthConfigView {
                    username: b.username,
                }),
            },
        ),
    };
    Ok(AuthProfile {
        auth_profile_id: record.id,
        auth_type: auth_type.into(),
        auth_config,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

/// The listable profile `id` if the caller may see it; `AccessDenied` otherwise.
pub async fn visible_profile(rc: &RequestCtx, id: &str) -> ApiResult<AuthProfileRecord> {
    let record = rc
        .services
        .store
        .get_auth_profile(StoreHash(&rc.store), AuthProfileId(id))
        .await?
        .filter(|p| p.inline_for.is_none());
    rc.visible(record, |p| &p.owner_client_id, "auth profile", id)
}

#[derive(Default)]
pub struct AuthProfileQuery;

#[Object]
impl AuthProfileQuery {
    /// One auth profile, without its secrets.
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn auth_profile(
        &self,
        ctx: &Context<'_>,
        auth_profile_id: String,
    ) -> ApiResult<Option<AuthProfile>> {
        let rc = request_ctx(ctx)?;
        let record = visible_profile(rc, &auth_profile_id).await?;
        view(rc, record).map(Some)
    }

    /// The caller's auth profiles (a store admin's: all of the store's).
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn auth_profiles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AuthProfileConnection> {
        let rc = request_ctx(ctx)?;
        let page = page_request(ctx, "/authProfiles", first, after)?;
        let found = rc
            .services
            .store
            .list_auth_profiles(rc.scope(), page)
            .await?;
        connection(found, &page, |r| view(rc, r))
    }
}

#[derive(Default)]
pub struct AuthProfileMutation;

#[Object]
impl AuthProfileMutation {
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn create_auth_profile(
        &self,
        ctx: &Context<'_>,
        input: CreateAuthProfileInput,
    ) -> ApiResult<CreateAuthProfileResponse> {
        let rc = request_ctx(ctx)?;
        let path = "/createAuthProfile/input";
        let id = match input.auth_profile_alias_id {
            Some(alias) if ids::is_valid_user_id(&alias) => alias,
            Some(_) => {
                return Err(ApiError::validation(format!(
                    "{path}/authProfileAliasId must be 1 to 128 characters of letters, digits, '.', '_', ':' or '-'"
                )))
            }
            None => ids::new_id("ap"),
        };
        let config = validate::auth_config(
            &rc.services.policy,
            &format!("{path}/authConfig"),
            input.auth_config,
        )?;
        let now = hookrelay_core::now();
        let record = AuthProfileRecord {
            store: rc.store.clone(),
            id: id.clone(),
            owner_client_id: rc.principal.client_id.clone(),
            kind: config.kind(),
            config: seal(rc, &id, &config)?,
            inline_for: None,
            created_at: now,
            updated_at: now,
        };
        match rc.services.store.insert_auth_profile(record).await {
            Ok(()) => Ok(CreateAuthProfileResponse { auth_profile_id: id }),
            Err(StoreError::Conflict(_)) => Err(ApiError::coded(
                "AlreadyExists",
                format!("{path}/authProfileAliasId {id:?} is already used by an auth profile of this store"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a profile's configuration; every subscription using it uses the new one
    /// from its next attempt on.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn update_auth_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateAuthProfileInput,
    ) -> ApiResult<UpdateAuthProfileResponse> {
        let rc = request_ctx(ctx)?;
        let id = input.auth_profile_id;
        visible_profile(rc, &id).await?;
        let config = validate::auth_config(
            &rc.services.policy,
            "/updateAuthProfile/input/authConfig",
            input.auth_config,
        )?;
        let sealed = seal(rc, &id, &config)?;
        match rc
            .services
            .store
            .update_auth_profile(
                StoreHash(&rc.store),
                AuthProfileId(&id),
                config.kind(),
                sealed,
            )
            .await
        {
            Ok(()) => {
                rc.services
                    .engine
                    .auth_profile_changed(&rc.store, &id)
                    .await;
                Ok(UpdateAuthProfileResponse {
                    auth_profile_id: id,
                })
            }
            Err(StoreError::NotFound) => Err(ApiError::no_such("auth profile", &id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a profile no active subscription uses.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn delete_auth_profile(
        &self,
        ctx: &Context<'_>,
        auth_profile_id: String,
    ) -> ApiResult<DeleteAuthProfileResponse> {
        let rc = request_ctx(ctx)?;
        let id = auth_profile_id;
        visible_profile(rc, &id).await?;
        match rc.services.store.delete_auth_profile(StoreHash(&rc.store), AuthProfileId(&id)).await {
            Ok(()) => {
                rc.services.engine.auth_profile_changed(&rc.store, &id).await;
                Ok(DeleteAuthProfileResponse {
                    auth_profile_id: id.clone(),
                    auth_profile: DeletedAuthProfile { auth_profile_id: id },
                })
            }
            Err(StoreError::InUse(users)) => Err(ApiError::coded(
                "AuthProfileInUse",
                format!(
                    "auth profile {id:?} is used by active subscriptions {}; delete or deactivate them first",
                    users.join(", ")
                ),
            )),
            Err(StoreError::NotFound) => Err(ApiError::no_such("auth profile", &id)),
            Err(e) => Err(e.into()),
        }
    }
}
