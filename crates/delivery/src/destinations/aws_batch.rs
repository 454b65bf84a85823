//! What the AWS batch destinations (SQS, SNS) share: messages sized and split into calls
//! that AWS will take, each call's answer matched back to its messages by entry id, and
//! the reading of AWS's error codes.

use std::future::Future;
use std::time::Duration;

use hookrelay_store::ClaimedDelivery;

use super::{Action, Answer, Failure, Message, Sent, Verdict};
use crate::aws::AwsError;

pub use super::UNSENDABLE;

/// Codes of throttling: retried, and they slow the lane down.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "Throttled",
    "RequestThrottled",
    "KmsThrottled",
    "KMSThrottling",
];

/// The body of a batch kind's `send`: SQS's and SNS's generated types share no trait, so
/// this is written once as a macro over their names. Each message becomes an `$entry`
/// (its body set with `$body`, the attributes of [`attributes`] as `$attribute`s, and on
/// FIFO targets the group and deduplication ids), the calls are made with `$call`, and
/// each answer is read back by entry id (`$ok_id`: the id of an accepted entry).
macro_rules! send_batch {
    (
        batch: $batch:expr,
        max_bytes: $max:expr,
        aws: $aws:expr,
        what: $what:expr,
        entry: $entry:ident . $body:ident,
        attribute: $attribute:ident,
        call: |$entries:ident| $call:expr,
        accepted: |$ok:ident| $ok_id:expr $(,)?
    ) => {{
        use $crate::destinations::aws_batch;
        let prepared = aws_batch::prepare($batch, $max, |i, message, text| {
            let delivery = message.delivery;
            let attributes = aws_batch::attributes(delivery)
                .into_iter()
                .filter_map(|(name, value)| {
                    // Only fails without a data type, which is set.
                    let value = $attribute::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .ok()?;
                    Some((name.to_owned(), value))
                })
                .collect();
            let mut entry = $entry::builder()
                .id(i.to_string())
                .$body(text)
                .set_message_attributes(Some(attributes));
            if message.config.fifo {
                let event = &delivery.event;
                entry = entry
                    .message_group_id(match &event.ordering_key {
                        Some(key) => aws_batch::key_group_id(key),
                        None => aws_batch::group_id(&event.store, &event.event_type),
                    })
                    .message_deduplication_id(&delivery.id);
            }
            entry.build().map_err(|e| e.to_string())
        });
        let aws = $aws;
        aws_batch::send($what, prepared, |$entries| {
            let call = $call;
            async move {
                let clock = std::time::Instant::now();
                let out = call.send().await.map_err(|e| aws.error(e))?;
                let accepted = out
                    .successful()
                    .iter()
                    .filter_map(|$ok| {
                        let body = serde_json::json!({ "MessageId": $ok.message_id() });
                        Some(($ok_id?.to_owned(), body.to_string()))
                    })
                    .collect();
                let refused = out
                    .failed()
                    .iter()
                    .map(|bad| aws_batch::Refusal {
                        id: bad.id().to_owned(),
                        code: bad.code().to_owned(),
                        message: bad.message().unwrap_or_default().to_owned(),
                    })
                    .collect();
                Ok((accepted, refused, clock.elapsed()))
            }
        })
        .await
    }};
}
pub(crate) use send_batch;

/// A message AWS refused, as its answer names it.
pub struct Refusal {
    pub id: String,
    pub code: String,
    pub message: String,
}

/// The messages of a batch made into entries and split into calls.
pub struct Prepared<E> {
    /// One per message: `Some` for those that were not sent (and why).
    pub answers: Vec<Option<Answer>>,
    /// Each call's entries, with the index of each entry's message.
    pub calls: Vec<Vec<(usize, E)>>,
}

/// Makes each message's entry with `build(id, message, body)` (the id is the message's
/// index, unique in the batch) and splits them into calls of at most `max_bytes` of
/// bodies. A message whose body cannot be made, or alone is over `max_bytes`, is not sent.
pub fn prepare<C, E>(
    batch: &[Message<'_, C>],
    max_bytes: usize,
    mut build: impl FnMut(usize, &Message<'_, C>, String) -> Result<E, String>,
) -> Prepared<E> {
    let mut answers = Vec::with_capacity(batch.len());
    let mut calls: Vec<Vec<(usize, E)>> = Vec::new();
    let mut size = 0;
    for (i, message) in batch.iter().enumerate() {
        let body = match message
            .body()
            .and_then(|b| String::from_utf8(b).map_err(|e| format!("event data: {e}")))
        {
            Ok(body) => body,
            Err(why) => {
                answers.push(Some(Answer::unsent(UNSENDABLE, why)));
                continue;
            }
        };
        // AWS counts the attributes (names, types and values) in the size.
        let len = body.len()
            + attributes(message.delivery)
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>();
        if len > max_bytes {
            answers.push(Some(Answer::unsent(
                UNSENDABLE,
                format!(
                    "event too large: the message is {len} bytes with its attributes, the limit is {max_bytes}"
                ),
            )));
            continue;
        }
        match build(i, message, body) {
            Ok(entry) => {
                if calls.is_empty() || size + len > max_bytes {
                    calls.push(Vec::new());
                    size = 0;
                }
                size += len;
                if let Some(call) = calls.last_mut() {
                    call.push((i, entry));
                }
                answers.push(None);
            }
            Err(why) => answers.push(Some(Answer::unsent(UNSENDABLE, why))),
        }
    }
    Prepared { answers, calls }
}

/// What a batch came to when nothing could be sent.
pub fn nothing_sent(answers: Vec<Option<Answer>>) -> Sent {
    Sent {
        verdict: Verdict::NotSent,
        rtt: None,
        answers: answers.into_iter().flatten().collect(),
    }
}

/// One call's answer: the accepted entries (id, what the log keeps), the refused ones,
/// and the round trip.
pub type CallAnswer = (Vec<(String, String)>, Vec<Refusal>, Duration);

/// Makes each call of `prepared` in turn and matches the answers to the messages. An
/// entry the answer does not mention counts as refused (to be sent again). `what` names
/// the call and its target in the reason of a failed call (`SendMessageBatch to …`).
pub async fn send<E, F>(
    what: &str,
    prepared: Prepared<E>,
    mut call: impl FnMut(Vec<E>) -> F,
) -> Sent
where
    F: Future<Output = Result<CallAnswer, AwsError>>,
{
    let Prepared { mut answers, calls } = prepared;
    if calls.is_empty() {
        return nothing_sent(answers);
    }
    let mut verdict = Verdict::Succeeded;
    let mut rtt = None;
    for entries in calls {
        let (indices, entries): (Vec<usize>, Vec<E>) = entries.into_iter().unzip();
        match call(entries).await {
            Ok((accepted, refused, took)) => {
                rtt = Some(rtt.map_or(took, |r: Duration| r.max(took)));
                for (id, body) in accepted {
                    if let Some(slot) = slot(&mut answers, &indices, &id) {
                        *slot = Some(Answer::Delivered {
                            status: Some(200),
                            body: Some(body),
                        });
                    }
                }
                for r in refused {
                    if let Some(slot) = slot(&mut answers, &indices, &r.id) {
                        let body = serde_json::json!({ "Code": r.code, "Message": r.message });
                        *slot = Some(Answer::Refused(Failure {
                            status: Some(200),
                            reason: format!("entry refused: {}: {}", r.code, r.message),
                            code: r.code,
                            body: Some(body.to_string()),
                            retry_after: None,
                        }));
                    }
                }
            }
            Err(e) => {
                verdict = worse(verdict, verdict_of(&e));
                let mut failure = Failure::new(&e.code, format!("{what} failed: {e}"));
                failure.status = e.status;
                for i in indices {
                    answers[i] = Some(Answer::Refused(failure.clone()));
                }
            }
        }
    }
    let answers = answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| Answer::unsent("Unanswered", "AWS did not answer for this entry"))
        })
        .collect();
    Sent {
        verdict,
        rtt,
        answers,
    }
}

/// The answer slot of entry `id` of a call whose entries are the messages `indices`.
fn slot<'a>(
    answers: &'a mut [Option<Answer>],
    indices: &[usize],
    id: &str,
) -> Option<&'a mut Option<Answer>> {
    let i: usize = id.parse().ok()?;
    indices.contains(&i).then(|| answers.get_mut(i))?
}

/// Whose failure a failed call was: an answer that refuses the request (a queue that
/// does not exist, access denied) is the destination's; no answer, a 5xx or throttling
/// is the lane's, and slows it down.
fn verdict_of(e: &AwsError) -> Verdict {
    match e.status {
        Some(status) if (400..500).contains(&status) && !THROTTLING.contains(&e.code.as_str()) => {
            Verdict::EndpointFailed
        }
        _ => Verdict::HostFailed,
    }
}

fn worse(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::HostFailed, _) | (_, Verdict::HostFailed) => Verdict::HostFailed,
        (Verdict::EndpointFailed, _) | (_, Verdict::EndpointFailed) => Verdict::EndpointFailed,
        _ => a,
    }
}

/// Gives up on the codes in `permanent`; retries the rest.
pub fn classify(permanent: &[&str], failure: &Failure) -> Action {
    if permanent.contains(&failure.code.as_str()) {
        Action::GiveUp
    } else {
        super::retry(failure)
    }
}

/// A FIFO message group: the event's store and type (at most 128 characters).
pub fn group_id(store: &str, event_type: &str) -> String {
    let mut id = format!("{store}:{event_type}");
    if id.len() > 128 {
        let mut end = 128;
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        id.truncate(end);
    }
    id
}

/// The FIFO message group of an event with an ordering key: the key itself when SQS and
/// SNS take it as a group id (1-128 printable ASCII characters), else `sha256:` and the
/// hex of its SHA-256, so that one key is always one group.
pub fn key_group_id(key: &str) -> String {
    if key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic()) {
        return key.to_owned();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The message attributes of a delivery: its event type and its id.
pub fn attributes(delivery: &ClaimedDelivery) -> [(&'static str, &str); 2] {
    [
        ("event-type", &delivery.event.event_type),
        ("webhook-id", &delivery.id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_throttling_are_told_apart() {
        let e = |code: &str, status| AwsError {
            code: code.into(),
            message: String::new(),
            status,
        };
        assert_eq!(
            verdict_of(&e("AWS.SimpleQueueService.NonExistentQueue", Some(400))),
            Verdict::EndpointFailed
        );
        assert_eq!(
            verdict_of(&e("RequestThrottled", Some(400))),
            Verdict::HostFailed
        );
        assert_eq!(
            verdict_of(&e("InternalError", Some(500))),
            Verdict::HostFailed
        );
        assert_eq!(verdict_of(&e("ConnectionError", None)), Verdict::HostFailed);
    }

    #[test]
    fn group_ids_are_bounded() {
        assert_eq!(group_id("abc", "order.created"), "abc:order.created");
        assert_eq!(group_id("s", &"é".repeat(100)).len(), 128);
    }

    #[test]
    fn ordering_keys_are_groups_as_they_are_or_hashed() {
        assert_eq!(key_group_id("order-1001"), "order-1001");
        assert_eq!(key_group_id(&"k".repeat(128)), "k".repeat(128));
        let long = key_group_id(&"k".repeat(129));
        assert!(long.starts_with("sha256:") && long.len() == 71, "{long}");
        let spaced = key_group_id("order 1001");
        assert!(spaced.starts_with("sha256:"));
        assert_ne!(spaced, key_group_id("order 1002"));
        assert_eq!(key_group_id("é"), key_group_id("é"));
    }
}
