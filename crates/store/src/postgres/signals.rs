//! Messages between the nodes on one database, over `LISTEN`/`NOTIFY` on one channel.
//!
//! A payload is `{node} {kind} {args}`: the sender (nodes ignore their own), then `w`
//! (wake), `s {subscription}` or `a {store} {auth profile}`. Ids and store hashes hold no
//! spaces. NOTIFY is delivered only to listeners connected at the time, so when the
//! listening connection is lost the node is told to resync (forget its caches and look for
//! due work); polling covers the gap meanwhile.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::PgStore;
use crate::{Result, Signal};

const CHANNEL: &str = "hookrelay";

fn encode(from: &str, signal: &Signal) -> String {
    match signal {
        Signal::Wake | Signal::Resync => format!("{from} w"),
        Signal::Subscription(id) => format!("{from} s {id}"),
        Signal::AuthProfile { store, id } => format!("{from} a {store} {id}"),
    }
}

fn decode(payload: &str) -> Option<(&str, Signal)> {
    let mut parts = payload.split(' ');
    let from = parts.next()?;
    let signal = match (parts.next()?, parts.next(), parts.next()) {
        ("w", None, None) => Signal::Wake,
        ("s", Some(id), None) => Signal::Subscription(id.to_owned()),
        ("a", Some(store), Some(id)) => Signal::AuthProfile {
            store: store.to_owned(),
            id: id.to_owned(),
        },
        _ => return None,
    };
    Some((from, signal))
}

impl PgStore {
    pub(crate) async fn notify(&self, from: &str, signal: &Signal) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(encode(from, signal))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Listens on its own connection until the receiver is dropped.
    pub(crate) async fn subscribe(&self, node: &str) -> Result<mpsc::UnboundedReceiver<Signal>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let node = node.to_owned();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = listener.try_recv() => next,
                    _ = tx.closed() => return,
                };
                let signal = match next {
                    Ok(Some(n)) => match decode(n.payload()) {
                        Some((from, _)) if from == node => continue,
                        Some((_, signal)) => signal,
                        None => {
                            tracing::warn!(payload = n.payload(), "unknown notification");
                            continue;
                        }
                    },
                    // The connection was lost; the next call reconnects and listens again.
                    Ok(None) => Signal::Resync,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other nodes failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Signal::Resync
                    }
                };
                if tx.send(signal).is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for signal in [
            Signal::Wake,
            Signal::Subscription("sub_01J".into()),
            Signal::AuthProfile {
                store: "abc123".into(),
                id: "ap_1".into(),
            },
        ] {
            let payload = encode("node_1", &signal);
            assert_eq!(decode(&payload), Some(("node_1", signal)));
        }
        assert_eq!(decode("node_1 x"), None);
        assert_eq!(decode("node_1 s"), None);
    }
}
