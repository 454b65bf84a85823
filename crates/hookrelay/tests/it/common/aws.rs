//! The AWS side of the EventBridge tests: the emulator (moto_server, which `scripts/test`
//! starts and names in `HOOKRELAY_TEST_AWS_ENDPOINT`), the environment that points a
//! hookrelay server at it, and AWS customers with their own SDK clients.
//!
//! Each test plays a customer in an AWS account of its own: moto keeps accounts apart by
//! the `x-moto-account-id` header, so tests that run at the same time on one emulator never
//! see each other's events. hookrelay itself runs as the emulator's default account
//! (123456789012), like a SaaS partner with its own credentials; nothing in hookrelay
//! knows about the header.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_eventbridge::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_eventbridge::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_eventbridge::error::BoxError;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::Value;

use super::{Options, Server, Token};

pub const REGION: &str = "us-east-1";
/// The emulator's own account: hookrelay's credentials map to it.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The emulator's URL. Without it the test fails: it never passes by skipping.
pub fn endpoint() -> String {
    std::env::var("HOOKRELAY_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "HOOKRELAY_TEST_AWS_ENDPOINT is not set: run the suite with ./scripts/test, which \
             installs moto_server and starts it, or start `moto_server -H 127.0.0.1 -p PORT` \
             and set HOOKRELAY_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT"
        )
    })
}

/// The environment of a hookrelay server that talks to the AWS at `endpoint` through the
/// standard AWS configuration chain, and nothing of the developer's own AWS setup.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/hookrelay-tests"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/hookrelay-tests",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Test server options (http and loopback allowed) plus the AWS environment and `args`.
pub fn server_options(endpoint: &str, args: &[&str]) -> Options {
    let mut options = Options::default();
    options.args.extend(args.iter().map(|a| a.to_string()));
    options.envs.extend(aws_env(endpoint));
    options
}

/// `createEventSource` for `account`; returns the `eventSource` answered (with `id arn
/// eventSourceName eventSourceRegion partnerEventSourceName`).
pub async fn create_event_source(
    server: &Server,
    client: &Token,
    account: &str,
    name: &str,
    region: &str,
) -> Value {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ webhook {{ createEventSource(input: {{ awsAccount: "{account}",
                    eventSourceName: "{name}", eventSourceRegion: {region} }}) {{ eventSource {{
                    id arn eventSourceName eventSourceRegion partnerEventSourceName }} }} }} }}"#
            ),
        )
        .await;
    data["webhook"]["createEventSource"]["eventSource"].clone()
}

/// `createEventBridgeWebhook`; returns the webhook's id.
pub async fn eventbridge_webhook(
    server: &Server,
    client: &Token,
    scope: &str,
    destination: &str,
) -> String {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ webhook {{ createEventBridgeWebhook(input: {{ scope: "{scope}",
                    destination: "{destination}" }}) {{ webhook {{ id destination }} }} }} }}"#
            ),
        )
        .await;
    let webhook = &data["webhook"]["createEventBridgeWebhook"]["webhook"];
    assert_eq!(webhook["destination"], destination);
    webhook["id"].as_str().expect("webhook id").to_owned()
}

/// A new 12-digit account id, different for every call in this process (and, through the
/// time, across processes). Also a suffix for names that must not repeat on an emulator
/// that outlives a test run (moto never forgets a partner event source).
pub fn fresh_account() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let pid = std::process::id() as u64;
    format!(
        "{:012}",
        (nanos / 1000 + pid * 7919 + n * 104_729) % 1_000_000_000_000
    )
    .replace(DEFAULT_ACCOUNT, "210987654321")
}

/// Sends every request as the given moto account.
#[derive(Debug)]
struct MotoAccount(String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "MotoAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// An AWS customer: an account with its EventBridge, SQS and SNS clients.
pub struct Customer {
    pub account: String,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
}

/// A queue and its ARN.
pub struct Queue {
    pub url: String,
    pub arn: String,
}

impl Customer {
    /// A customer in an account of its own.
    pub async fn new(endpoint: &str) -> Customer {
        Self::in_account(endpoint, fresh_account()).await
    }

    /// A customer in the emulator's default account (where hookrelay's `PutEvents` lands:
    /// moto does not carry events to another account's bus).
    pub async fn default_account(endpoint: &str) -> Customer {
        Self::in_account(endpoint, DEFAULT_ACCOUNT.to_owned()).await
    }

    async fn in_account(endpoint: &str, account: String) -> Customer {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await;
        let events = aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(MotoAccount(account.clone()))
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(MotoAccount(account.clone()))
            .build();
        let sns = aws_sdk_sns::config::Builder::from(&sdk)
            .interceptor(MotoAccount(account.clone()))
            .build();
        Customer {
            account,
            events: aws_sdk_eventbridge::Client::from_conf(events),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            sns: aws_sdk_sns::Client::from_conf(sns),
        }
    }

    pub async fn queue(&self, name: &str) -> Queue {
        self.queue_with(name, &[]).await
    }

    /// A FIFO queue (`name` ends in `.fifo`), without content-based deduplication: only
    /// a `MessageDeduplicationId` deduplicates.
    pub async fn fifo_queue(&self, name: &str) -> Queue {
        assert!(
            name.ends_with(".fifo"),
            "FIFO queue names end in .fifo: {name}"
        );
        self.queue_with(name, &[(QueueAttributeName::FifoQueue, "true")])
            .await
    }

    async fn queue_with(&self, name: &str, attributes: &[(QueueAttributeName, &str)]) -> Queue {
        let url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes((!attributes.is_empty()).then(|| {
                attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            }))
            .send()
            .await
            .expect("CreateQueue")
            .queue_url()
            .expect("queue url")
            .to_owned();
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes");
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("queue arn")
            .to_owned();
        Queue { url, arn }
    }

    /// A rule on `bus` with `pattern`, targeting `queue`.
    pub async fn route(&self, bus: &str, rule: &str, pattern: &str, queue: &Queue) {
        self.events
            .put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(pattern)
            .state(aws_sdk_eventbridge::types::RuleState::Enabled)
            .description("hookrelay test rule")
            .send()
            .await
            .expect("PutRule");
        self.events
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id(format!("{rule}-queue"))
                    .arn(&queue.arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("PutTargets");
    }

    /// What the guides have the customer do with a partner event source: associate an
    /// event bus with it, and route the events matching `pattern` to a new SQS queue.
    ///
    /// On AWS the rule goes on that partner bus. moto delivers partner events to the
    /// account's default bus instead, and cannot address a partner bus in a rule (it keeps
    /// only the part of a bus name after its last `/`), so the rule goes on the default bus.
    pub async fn route_source_to_queue(
        &self,
        source_name: &str,
        pattern: &str,
        queue: &str,
    ) -> Queue {
        self.events
            .create_event_bus()
            .name(source_name)
            .event_source_name(source_name)
            .send()
            .await
            .expect("CreateEventBus for the partner event source");
        let queue = self.queue(queue).await;
        self.route("default", "partner-events", pattern, &queue)
            .await;
        queue
    }

    /// Reads messages until `n` arrived or 30 s passed; returns their bodies as JSON.
    pub async fn receive(&self, queue: &Queue, n: usize) -> Vec<Value> {
        bodies(self.receive_messages(queue, n).await)
    }

    /// Whatever arrives in the next `wait`.
    pub async fn receive_for(&self, queue: &Queue, wait: Duration) -> Vec<Value> {
        bodies(self.receive_messages_for(queue, wait).await)
    }

    /// The state of the partner event source `name` as this customer sees it.
    pub async fn event_source_state(&self, name: &str) -> Option<String> {
        let out = self
            .events
            .describe_event_source()
            .name(name)
            .send()
            .await
            .ok()?;
        out.state().map(|s| s.as_str().to_owned())
    }
}

/// The bodies of `messages`.
fn bodies(messages: Vec<SqsMessage>) -> Vec<Value> {
    messages.into_iter().map(|m| m.body).collect()
}

/// A message as a queue gave it: its body as JSON, its string message attributes and
/// the system attributes SQS keeps (`MessageGroupId`, `MessageDeduplicationId`…).
#[derive(Debug, Clone)]
pub struct SqsMessage {
    pub message_id: String,
    pub body: Value,
    pub attributes: HashMap<String, String>,
    pub system: HashMap<String, String>,
}

impl SqsMessage {
    /// A string message attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// A system attribute (`MessageGroupId`…).
    pub fn system(&self, name: &str) -> Option<&str> {
        self.system.get(name).map(String::as_str)
    }
}

impl Customer {
    /// Reads messages, with every message and system attribute, deleting them, until `n`
    /// arrived or 30 s passed.
    pub async fn receive_messages(&self, queue: &Queue, n: usize) -> Vec<SqsMessage> {
        self.receive_messages_until(queue, n, Duration::from_secs(30))
            .await
    }

    /// Whatever arrives in the next `wait`, with its attributes (deleted as read).
    pub async fn receive_messages_for(&self, queue: &Queue, wait: Duration) -> Vec<SqsMessage> {
        self.receive_messages_until(queue, usize::MAX, wait).await
    }

    /// Reads messages until `n` arrived or `wait` passed.
    async fn receive_messages_until(
        &self,
        queue: &Queue,
        n: usize,
        wait: Duration,
    ) -> Vec<SqsMessage> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            got.extend(self.receive_messages_once(queue).await);
        }
        got
    }

    async fn receive_messages_once(&self, queue: &Queue) -> Vec<SqsMessage> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            // No long polling: moto's spins without sleeping and starves its other threads.
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage");
        let mut got = Vec::new();
        let mut handles = Vec::new();
        for (i, message) in out.messages().iter().enumerate() {
            let body = message.body().expect("message body");
            let attributes = message
                .message_attributes()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                .collect();
            let system = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            got.push(SqsMessage {
                message_id: message.message_id().unwrap_or_default().to_owned(),
                body: serde_json::from_str(body).expect("message body is JSON"),
                attributes,
                system,
            });
            if let Some(handle) = message.receipt_handle() {
                handles.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("delete entry"),
                );
            }
        }
        if handles.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&queue.url)
                .set_entries(Some(handles))
                .send()
                .await
                .expect("DeleteMessageBatch");
            assert!(deleted.failed().is_empty(), "{:?}", deleted.failed());
        }
        got
    }

    /// The messages a queue holds, visible or in flight (`ApproximateNumberOfMessages` and
    /// `…NotVisible`), without receiving any.
    pub async fn queue_depth(&self, queue: &Queue) -> usize {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attributes = out.attributes().expect("queue attributes");
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|name| {
            attributes
                .get(name)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// A new SNS topic (a FIFO topic when `name` ends in `.fifo`); returns its ARN.
    pub async fn topic(&self, name: &str) -> String {
        let mut create = self.sns.create_topic().name(name);
        if name.ends_with(".fifo") {
            create = create.attributes("FifoTopic", "true");
        }
        create
            .send()
            .await
            .expect("CreateTopic")
            .topic_arn()
            .expect("topic arn")
            .to_owned()
    }

    /// Subscribes `queue` to `topic_arn` with raw message delivery: the queue gets each
    /// message as published, its message attributes as SQS message attributes.
    pub async fn subscribe_queue(&self, topic_arn: &str, queue: &Queue) {
        self.sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue.arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("Subscribe");
    }
}

/// `eventSubscription(subscriptionId:)` with its status and destination (every AWS kind's
/// fields).
pub async fn event_subscription(server: &Server, client: &Token, id: &str) -> Value {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"{{ eventSubscription(subscriptionId: "{id}") {{ subscriptionId status
                    eventSubscriptionDetails {{ eventType destination {{ __typename
                    ... on SqsData {{ queueUrl region }} ... on SnsData {{ topicArn }} }} }} }} }}"#
            ),
        )
        .await;
    data["eventSubscription"].clone()
}
