//! The engine's metrics (`/metrics`, docs/operations.md#health-and-metrics), through the
//! `metrics` facade; the binary installs the Prometheus recorder.

use hookrelay_store::Backlog;
use metrics::{counter, gauge, histogram};

pub const EVENTS_ACCEPTED: &str = "hookrelay_events_accepted_total";
pub const DELIVERIES: &str = "hookrelay_deliveries_total";
pub const ATTEMPTS: &str = "hookrelay_attempts_total";
pub const ATTEMPT_SECONDS: &str = "hookrelay_attempt_duration_seconds";
pub const BACKLOG: &str = "hookrelay_deliveries_backlog";
pub const HELD: &str = "hookrelay_deliveries_held";
pub const BREAKERS_OPEN: &str = "hookrelay_breakers_open";
pub const BREAKER_OPENED: &str = "hookrelay_breaker_opened_total";
pub const DEACTIVATED: &str = "hookrelay_subscriptions_deactivated_total";
pub const DESTINATION_REQUESTS: &str = "hookrelay_destination_requests_total";
pub const DESTINATION_MESSAGES: &str = "hookrelay_destination_messages_total";
pub const PRUNED: &str = "hookrelay_events_pruned_total";
pub const LEASES_LOST: &str = "hookrelay_leases_lost_total";
pub const LANE_IN_FLIGHT: &str = "hookrelay_host_in_flight";
pub const LANE_LIMIT: &str = "hookrelay_host_in_flight_limit";
pub const LANE_RTT: &str = "hookrelay_host_rtt_seconds";
pub const LANE_BREAKER_OPEN: &str = "hookrelay_host_breaker_open";

/// The `level` label of the breaker metrics: a whole host (lane), or one endpoint (URL).
pub const HOST: &str = "host";
pub const ENDPOINT: &str = "endpoint";

/// Buckets of the attempt latency histogram, in seconds.
pub const ATTEMPT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Describes every metric, so that each appears with help text.
pub fn describe() {
    metrics::describe_counter!(EVENTS_ACCEPTED, "Events accepted by ingest (committed).");
    metrics::describe_counter!(
        LEASES_LOST,
        "Times another node took this node's deliveries after it was silent past the lease."
    );
    metrics::describe_counter!(
        DELIVERIES,
        "Delivery state changes by outcome: created, succeeded, retry, failed, released, dropped."
    );
    metrics::describe_counter!(
        ATTEMPTS,
        "Delivery attempts (webhook requests, EventBridge entries) by result."
    );
    metrics::describe_histogram!(ATTEMPT_SECONDS, "Duration of one attempt, in seconds.");
    metrics::describe_gauge!(
        BACKLOG,
        "Deliveries waiting in the database: due, scheduled (later), parked, in_flight."
    );
    metrics::describe_gauge!(HELD, "Deliveries this node holds in memory.");
    metrics::describe_gauge!(
        BREAKERS_OPEN,
        "Open circuit breakers by level: host (the whole host is paused) or endpoint (one URL)."
    );
    metrics::describe_counter!(
        BREAKER_OPENED,
        "Times a circuit breaker opened, by level (host, endpoint)."
    );
    metrics::describe_gauge!(
        LANE_IN_FLIGHT,
        "Requests in flight per destination host (host:port, or EventBridge region and call)."
    );
    metrics::describe_gauge!(
        LANE_LIMIT,
        "The adaptive in-flight limit per destination host."
    );
    metrics::describe_gauge!(
        LANE_RTT,
        "The smoothed round trip per destination host, in seconds."
    );
    metrics::describe_gauge!(
        LANE_BREAKER_OPEN,
        "1 while a destination host's own breaker is open, else 0."
    );
    metrics::describe_counter!(
        DEACTIVATED,
        "Subscriptions deactivated after the last retry failed."
    );
    metrics::describe_counter!(
        DESTINATION_REQUESTS,
        "Requests (a batch is one) by destination kind and result: succeeded, endpoint_failed, host_failed, not_sent."
    );
    metrics::describe_counter!(
        DESTINATION_MESSAGES,
        "Messages by destination kind and result: accepted, refused (to be retried), given_up (permanent error), gone (the destination is gone; the subscription is deactivated)."
    );
    metrics::describe_counter!(
        PRUNED,
        "Events deleted (with their deliveries and attempts) after the retention period."
    );
}

pub fn pruned(n: u64) {
    counter!(PRUNED).increment(n);
}

pub fn destination_request(kind: &'static str, verdict: crate::destinations::Verdict) {
    use crate::destinations::Verdict;
    let result = match verdict {
        Verdict::Succeeded => "succeeded",
        Verdict::EndpointFailed => "endpoint_failed",
        Verdict::HostFailed => "host_failed",
        Verdict::NotSent => "not_sent",
    };
    counter!(DESTINATION_REQUESTS, "kind" => kind, "result" => result).increment(1);
}

pub fn destination_messages(kind: &'static str, result: &'static str) {
    counter!(DESTINATION_MESSAGES, "kind" => kind, "result" => result).increment(1);
}

pub fn events_accepted(n: usize) {
    counter!(EVENTS_ACCEPTED).increment(n as u64);
}

pub fn deliveries_created(n: usize) {
    counter!(DELIVERIES, "outcome" => "created").increment(n as u64);
}

pub fn delivered(outcome: &'static str) {
    counter!(DELIVERIES, "outcome" => outcome).increment(1);
}

pub fn leases_lost() {
    counter!(LEASES_LOST).increment(1);
}

pub fn released() {
    counter!(DELIVERIES, "outcome" => "released").increment(1);
}

pub fn attempt(success: bool, duration_ms: u64) {
    let result = if success { "success" } else { "failure" };
    counter!(ATTEMPTS, "result" => result).increment(1);
    histogram!(ATTEMPT_SECONDS).record(duration_ms as f64 / 1000.0);
}

pub fn breaker_opened(level: &'static str) {
    counter!(BREAKER_OPENED, "level" => level).increment(1);
}

pub fn breakers_open(hosts: usize, endpoints: usize) {
    gauge!(BREAKERS_OPEN, "level" => HOST).set(hosts as f64);
    gauge!(BREAKERS_OPEN, "level" => ENDPOINT).set(endpoints as f64);
}

/// One lane's gauges. Lanes that went idle stop being refreshed, and the exporter drops
/// gauges left unrefreshed (the binary sets that up), so the series do not pile up.
pub fn lane(
    name: &str,
    in_flight: usize,
    limit: usize,
    rtt: Option<std::time::Duration>,
    open: bool,
) {
    let host = name.to_owned();
    gauge!(LANE_IN_FLIGHT, "host" => host.clone()).set(in_flight as f64);
    gauge!(LANE_LIMIT, "host" => host.clone()).set(limit as f64);
    if let Some(rtt) = rtt {
        gauge!(LANE_RTT, "host" => host.clone()).set(rtt.as_secs_f64());
    }
    gauge!(LANE_BREAKER_OPEN, "host" => host).set(if open { 1.0 } else { 0.0 });
}

pub fn deactivated(n: usize) {
    counter!(DEACTIVATED).increment(n as u64);
}

pub fn held(n: usize) {
    gauge!(HELD).set(n as f64);
}

pub fn backlog(b: Backlog) {
    gauge!(BACKLOG, "state" => "due").set(b.due as f64);
    gauge!(BACKLOG, "state" => "scheduled").set(b.scheduled as f64);
    gauge!(BACKLOG, "state" => "parked").set(b.parked as f64);
    gauge!(BACKLOG, "state" => "waiting").set(b.waiting as f64);
    gauge!(BACKLOG, "state" => "in_flight").set(b.in_flight as f64);
}
