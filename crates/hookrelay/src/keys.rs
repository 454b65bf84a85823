//! Master keys at run time and their rotation (docs/operations.md#rotating-the-master-key).
//!
//! Each node keeps the key the database names as sealing (once a rotation named one) and
//! reports the keys it holds; `rotate-master-key` names the new key only once every live
//! node holds it, then re-seals every stored secret under it, in batches, while the nodes
//! run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use hookrelay_core::secrets::{
    auth_config_context, destination_secret_context, signing_secret_context, Cipher, KeyId,
};
use hookrelay_core::{Destination, Sealed};
use hookrelay_store::{Resealed, SecretColumn, Store, StoredSecret};

use crate::config::{read_key_file, write_key_file, ServeConfig};

/// How often a node reads which key seals and looks for new keys in its key file.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How often a node reports its keys when they have not changed.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The sealing key the database names, parsed.
async fn named_sealing_key(store: &dyn Store) -> Result<Option<KeyId>> {
    match store.sealing_key().await? {
        None => Ok(None),
        Some(text) => KeyId::parse(&text)
            .map(Some)
            .with_context(|| format!("the database names an invalid sealing key id {text:?}")),
    }
}

/// Before a node starts: seal under the key the database names, which the node must hold.
pub async fn adopt_sealing_key(store: &dyn Store, cipher: &Cipher) -> Result<()> {
    if let Some(id) = named_sealing_key(store).await? {
        if !cipher.seal_with(id) {
            bail!(
                "the database seals its secrets under master key {id}, which this node was not \
                 given (it holds {}): give it that key, as HOOKRELAY_MASTER_KEY or in \
                 HOOKRELAY_OTHER_MASTER_KEYS (docs/operations.md#rotating-the-master-key)",
                list(&cipher.key_ids())
            );
        }
    }
    Ok(())
}

/// A running node's side: every [`REFRESH`], loads keys added to its key file, reports
/// its keys, and seals under the key the database names.
pub fn keep(store: Arc<dyn Store>, cipher: Arc<Cipher>, node: String, key_file: Option<PathBuf>) {
    tokio::spawn(async move {
        let mut keeper = Keeper {
            store,
            cipher,
            node,
            key_file,
            file_changed: None,
            reported: None,
        };
        let mut every = tokio::time::interval(REFRESH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            every.tick().await;
            match keeper.tick().await {
                Ok(()) => warned = false,
                // Said once per spell of failures: the database may be down for a while.
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(error = %format!("{e:#}"), "master keys: cannot refresh; retrying");
                }
                Err(_) => {}
            }
        }
    });
}

struct Keeper {
    store: Arc<dyn Store>,
    cipher: Arc<Cipher>,
    node: String,
    key_file: Option<PathBuf>,
    /// The key file's modification time when last read.
    file_changed: Option<SystemTime>,
    /// What was last reported, and when.
    reported: Option<(Vec<KeyId>, Instant)>,
}

impl Keeper {
    async fn tick(&mut self) -> Result<()> {
        if let Some(path) = &self.key_file {
            let changed = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if changed.is_some() && changed != self.file_changed {
                for key in read_key_file(path)? {
                    let id = Cipher::key_id(&key)?;
                    if !self.cipher.holds(id) {
                        self.cipher.add_key(&key)?;
                        tracing::info!(key_id = %id, path = %path.display(), "loaded a new master key from the key file");
                    }
                }
                self.file_changed = changed;
            }
        }
        let held = self.cipher.key_ids();
        let due = match &self.reported {
            Some((ids, at)) => *ids != held || at.elapsed() >= REPORT_EVERY,
            None => true,
        };
        if due {
            let ids: Vec<String> = held.iter().map(ToString::to_string).collect();
            self.store.report_keys(&self.node, &ids).await?;
            self.reported = Some((held, Instant::now()));
        }
        if let Some(id) = named_sealing_key(&*self.store).await? {
            if self.cipher.sealing_key() != id {
                if self.cipher.seal_with(id) {
                    tracing::info!(key_id = %id, "new secrets are sealed under the master key the database names");
                } else {
                    bail!("the database names master key {id} for sealing, which this node was not given; new secrets stay sealed under {}", self.cipher.sealing_key());
                }
            }
        }
        Ok(())
    }
}

fn list(ids: &[KeyId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `rotate-master-key` is asked.
pub struct Rotation {
    pub new_key: String,
    pub batch_size: usize,
    /// How long to wait for every live node to hold the new key.
    pub wait: Duration,
}

/// What a rotation did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rotated {
    pub key_id: String,
    /// Values written under the new key.
    pub resealed: u64,
    /// Values that were sealed under it already.
    pub already: u64,
    pub passes: u32,
    /// The key file, when the keys are kept in one: it now holds the new key only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// Passes at most: each pass re-seals what it finds; a pass that finds nothing ends it.
/// Only values written by nodes that had not yet seen the new key name can need a second.
const MAX_PASSES: u32 = 10;

/// `hookrelay rotate-master-key`: re-seals every stored secret under `rotation.new_key`.
pub async fn rotate(
    config: &ServeConfig,
    store: &dyn Store,
    rotation: Rotation,
) -> Result<Rotated> {
    let cipher = config.cipher()?;
    let new_id = Cipher::key_id(&rotation.new_key).context("--new-key")?;
    cipher.add_key(&rotation.new_key)?;
    let key_file = config.key_file();
    if let Some(path) = &key_file {
        let mut keys = read_key_file(path)?;
        if !keys.iter().any(|k| Cipher::key_id(k).ok() == Some(new_id)) {
            keys.push(rotation.new_key.trim().to_owned());
            write_key_file(path, &keys)?;
            eprintln!("added the new key {new_id} to {}", path.display());
        }
    }
    wait_for_nodes(config, store, new_id, rotation.wait).await?;
    store.set_sealing_key(&new_id.to_string()).await?;
    eprintln!("new secrets are sealed under {new_id} from now on");
    // Nodes read the name every REFRESH: after a few, none seals under the old key. A
    // value sealed just before is found by the next pass.
    tokio::time::sleep(REFRESH * 3).await;

    let started = Instant::now();
    let mut done = Rotated {
        key_id: new_id.to_string(),
        ..Rotated::default()
    };
    let mut unreadable: Vec<String> = Vec::new();
    loop {
        done.passes += 1;
        let mut found = 0u64;
        for column in SecretColumn::ALL {
            let mut after = 0;
            loop {
                let rows = store
                    .sealed_secrets(column, after, rotation.batch_size)
                    .await
                    .with_context(|| format!("reading {column}"))?;
                let Some(last) = rows.last() else { break };
                after = last.seq;
                let mut changes = Vec::new();
                for row in &rows {
                    match reseal(&cipher, new_id, column, row) {
                        Ok(Value::Sealed(new)) => changes.push(Resealed {
                            seq: row.seq,
                            old: row.value.clone(),
                            new,
                        }),
                        Ok(Value::Already) if done.passes == 1 => done.already += 1,
                        Ok(Value::Already | Value::NoSecret) => {}
                        Err(e) if done.passes == 1 => {
                            unreadable.push(format!("{column} of {}: {e:#}", row.id))
                        }
                        Err(_) => {}
                    }
                }
                if changes.is_empty() {
                    continue;
                }
                found += changes.len() as u64;
                let written = store
                    .reseal(column, changes)
                    .await
                    .with_context(|| format!("writing {column}"))?;
                done.resealed += written;
                eprintln!(
                    "pass {}: {column}: {} re-sealed ({} in all, {:.1} s)",
                    done.passes,
                    written,
                    done.resealed,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if found == 0 || done.passes >= MAX_PASSES {
            if found > 0 {
                bail!(
                    "after {MAX_PASSES} passes, secrets are still being sealed under another \
                     key: is a node running that does not hold {new_id}?"
                );
            }
            break;
        }
    }
    if !unreadable.is_empty() {
        bail!(
            "{} stored secrets could not be opened with the keys given and were left as they \
             were; the old key is still needed. The first: {}",
            unreadable.len(),
            unreadable
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if let Some(path) = &key_file {
        write_key_file(path, &[rotation.new_key.trim().to_owned()])?;
        eprintln!("{} now holds the new key only", path.display());
        done.key_file = Some(path.display().to_string());
    }
    Ok(done)
}

/// Waits until every live node reports holding `new_id`; an error naming those that do
/// not after `wait`.
async fn wait_for_nodes(
    config: &ServeConfig,
    store: &dyn Store,
    new_id: KeyId,
    wait: Duration,
) -> Result<()> {
    let wanted = new_id.to_string();
    let deadline = Instant::now() + wait;
    let mut said = None::<Vec<String>>;
    loop {
        let lacking: Vec<String> = store
            .live_node_keys(config.engine.lease_timeout)
            .await?
            .into_iter()
            .filter(|n| !n.key_ids.as_ref().is_some_and(|ids| ids.contains(&wanted)))
            .map(|n| n.node)
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} running node(s) do not hold the new key {new_id} after {} s: {}. Nothing \
                 was re-sealed. Give every node the new key in HOOKRELAY_OTHER_MASTER_KEYS \
                 (keeping its current HOOKRELAY_MASTER_KEY), restart them one at a time, then \
                 run this again (docs/operations.md#rotating-the-master-key)",
                lacking.len(),
                wait.as_secs(),
                lacking.join(", ")
            );
        }
        if said.as_ref() != Some(&lacking) {
            eprintln!(
                "waiting for {} node(s) to hold the new key {new_id}: {}",
                lacking.len(),
                lacking.join(", ")
            );
            said = Some(lacking);
        }
        tokio::time::sleep(REFRESH / 2).await;
    }
}

/// What a stored value becomes.
enum Value {
    /// Re-sealed under the new key: the bytes to write.
    Sealed(Vec<u8>),
    /// Sealed under the new key already.
    Already,
    /// A destination without a secret.
    NoSecret,
}

/// The value re-sealed under `new_id`.
fn reseal(
    cipher: &Cipher,
    new_id: KeyId,
    column: SecretColumn,
    row: &StoredSecret,
) -> Result<Value> {
    let again = |context: &str, sealed: &Sealed| -> Result<Option<Sealed>> {
        if Cipher::sealed_under(sealed) == Some(new_id) {
            return Ok(None);
        }
        let plain = cipher.open(context, sealed)?;
        Ok(Some(cipher.seal_under(new_id, context, &plain)?))
    };
    let of = |sealed: Option<Sealed>| sealed.map_or(Value::Already, |s| Value::Sealed(s.0));
    match column {
        SecretColumn::SigningSecret | SecretColumn::PreviousSigningSecret => {
            let sealed = Sealed(row.value.clone());
            Ok(of(again(
                &signing_secret_context(&row.store, &row.id),
                &sealed,
            )?))
        }
        SecretColumn::AuthConfig => {
            let sealed = Sealed(row.value.clone());
            Ok(of(again(
                &auth_config_context(&row.store, &row.id),
                &sealed,
            )?))
        }
        SecretColumn::Destination => {
            let mut destination: Destination =
                serde_json::from_slice(&row.value).context("the stored destination")?;
            let context = destination_secret_context(&row.store, &row.id);
            let Some(secret) = destination.secret_mut() else {
                return Ok(Value::NoSecret);
            };
            let Some(sealed) = again(&context, &secret.sealed)? else {
                return Ok(Value::Already);
            };
            secret.sealed = sealed;
            Ok(Value::Sealed(serde_json::to_vec(&destination)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookrelay_core::{RabbitMqDestination, SecretUrl};

    #[test]
    fn a_broker_url_is_resealed_inside_its_destination_and_nothing_else_changes() {
        let (old, new) = (Cipher::generate_key(), Cipher::generate_key());
        let cipher = Cipher::from_keys(&[&old, &new]).unwrap();
        let new_id = Cipher::key_id(&new).unwrap();
        let context = destination_secret_context("shop", "sub_1");
        let url = "amqp://user:pw@127.0.0.1:5672/%2f";
        let destination = Destination::RabbitMq(RabbitMqDestination {
            url: SecretUrl {
                shown: "amqp://user:****@127.0.0.1:5672/%2f".into(),
                sealed: cipher.seal(&context, url.as_bytes()).unwrap(),
            },
            exchange: "events".into(),
            routing_key: "orders".into(),
        });
        let row = StoredSecret {
            seq: 1,
            store: "shop".into(),
            id: "sub_1".into(),
            value: serde_json::to_vec(&destination).unwrap(),
        };
        let Value::Sealed(bytes) =
            reseal(&cipher, new_id, SecretColumn::Destination, &row).unwrap()
        else {
            panic!("not re-sealed");
        };
        let mut after: Destination = serde_json::from_slice(&bytes).unwrap();
        let secret = after.secret_mut().unwrap().clone();
        assert_eq!(Cipher::sealed_under(&secret.sealed), Some(new_id));
        let alone = Cipher::from_base64(&new).unwrap();
        assert_eq!(
            alone.open(&context, &secret.sealed).unwrap(),
            url.as_bytes()
        );
        let Destination::RabbitMq(d) = &after else {
            panic!()
        };
        assert_eq!(
            (d.exchange.as_str(), d.routing_key.as_str()),
            ("events", "orders")
        );
        assert_eq!(secret.shown, "amqp://user:****@127.0.0.1:5672/%2f");
        // Once under the new key, it is left as it is; a webhook has no secret.
        let again = StoredSecret {
            value: bytes,
            ..row.clone()
        };
        assert!(matches!(
            reseal(&cipher, new_id, SecretColumn::Destination, &again).unwrap(),
            Value::Already
        ));
        let webhook = StoredSecret {
            value: br#"{"kind":"webhook","url":"https://x.example","method":"POST","auth_profile_id":null,"headers":[]}"#.to_vec(),
            ..row
        };
        assert!(matches!(
            reseal(&cipher, new_id, SecretColumn::Destination, &webhook).unwrap(),
            Value::NoSecret
        ));
    }
}
