//! The process's AWS configuration: the official SDK with the standard chain
//! (`AWS_REGION`, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, profiles, SSO, web
//! identity, container and instance roles, `AWS_ENDPOINT_URL`), loaded once on first use
//! and shared by every AWS destination (EventBridge, SQS, SNS) and the API (event sources).
//!
//! Loading is lazy so that a node that never talks to AWS never looks for credentials or a
//! region (the instance metadata lookup can take seconds off EC2). Each service keeps one
//! SDK client per region, built from the shared configuration: clients pool their
//! connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_eventbridge::config::timeout::TimeoutConfig;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

/// Connecting to AWS never waits longer than this.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An AWS call that did not succeed, in the words and code AWS used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// AWS's error code (`ResourceAlreadyExistsException`, `ThrottlingException`…), or
    /// `RequestTimeout` / `ConnectionError` / `CredentialsError` / `InvalidResponse` /
    /// `RequestNotSent` when there was no answer from AWS to take one from.
    pub code: String,
    pub message: String,
    /// The HTTP status AWS answered with, when it answered.
    pub status: Option<u16>,
}

impl AwsError {
    pub fn from_sdk<E>(e: SdkError<E>, timeout: Duration) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (code, status) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("UnknownError").to_owned();
                let message = se
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| describe(se.err()));
                return AwsError {
                    code,
                    message,
                    status: Some(se.raw().status().as_u16()),
                };
            }
            SdkError::TimeoutError(_) => {
                return AwsError {
                    code: "RequestTimeout".into(),
                    message: format!("no answer from AWS within {}s", timeout.as_secs_f64()),
                    status: None,
                }
            }
            SdkError::DispatchFailure(_) => ("ConnectionError", None),
            SdkError::ResponseError(r) => ("InvalidResponse", Some(r.raw().status().as_u16())),
            _ => ("RequestNotSent", None),
        };
        let mut message = describe(&e);
        let code = if caused_by::<CredentialsError>(&e) {
            message.push_str(
                " (hookrelay finds AWS credentials through the standard chain: \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or a container or instance role)",
            );
            "CredentialsError"
        } else {
            code
        };
        AwsError {
            code: code.into(),
            message,
            status,
        }
    }
}

/// Whether an `E` is somewhere in the source chain of `e`.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |err| err.source()).any(|err| err.is::<E>())
}

/// The `Display` texts of an error and its sources, joined: readable, and without the
/// `Debug` dumps of raw responses that the SDK's own context display appends. A layer
/// whose text its parent already carries is left out.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// The shared configuration.
pub struct Aws {
    timeout: Duration,
    config: OnceCell<aws_config::SdkConfig>,
}

impl Aws {
    /// `timeout` bounds each HTTP attempt to AWS (the SDK retries throttling and 5xx
    /// answers itself, a few times, with backoff).
    pub fn new(timeout: Duration) -> Self {
        Aws {
            timeout,
            config: OnceCell::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.config
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(self.timeout.min(MAX_CONNECT_TIMEOUT))
                    .operation_attempt_timeout(self.timeout)
                    .operation_timeout(self.timeout * 4)
                    .build();
                aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .timeout_config(timeouts)
                    .load()
                    .await
            })
            .await
    }

    /// The error of a failed call.
    pub fn error<E>(&self, e: SdkError<E>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        AwsError::from_sdk(e, self.timeout)
    }
}

/// One SDK client per region, made on first use from the shared configuration.
pub struct Clients<C> {
    aws: std::sync::Arc<Aws>,
    make: fn(&aws_config::SdkConfig, &str) -> C,
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> Clients<C> {
    /// `make` builds a service's client for a region (`Client::from_conf` over the shared
    /// configuration with the region set).
    pub fn new(aws: std::sync::Arc<Aws>, make: fn(&aws_config::SdkConfig, &str) -> C) -> Self {
        Clients {
            aws,
            make,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn aws(&self) -> &Aws {
        &self.aws
    }

    pub async fn get(&self, region: &str) -> C {
        if let Some(client) = self.lock().get(region) {
            return client.clone();
        }
        let client = (self.make)(self.aws.sdk_config().await, region);
        self.lock()
            .entry(region.to_owned())
            .or_insert(client)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, C>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}
