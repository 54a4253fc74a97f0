//! The agent's two background tasks: the watch of its node's ENINode, which keeps the store
//! and says when it changed, and the status writer, which applies the latest reports.

use futures::StreamExt;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::pin::pin;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

use crate::api::ENINode;
use crate::manager::agent::Retry;
use crate::manager::report::Reports;
use crate::manager::status::StatusWriter;

/// How long the status writer waits after a change for more to come.
const STATUS_BATCH: Duration = Duration::from_millis(100);

/// Keeps `writer`'s store in step with the ENINode of `node` (a watch selecting that one
/// object by name: the agent receives no other node's changes); `changed` turns true once
/// it is listed and is touched at every change after that (several changes may be seen as
/// one).
pub async fn watch_eninode(
    api: Api<ENINode>,
    node: String,
    writer: Writer<ENINode>,
    changed: watch::Sender<bool>,
) {
    let selector = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let events = watcher(api, selector)
        .default_backoff()
        // The agent never reads managedFields.
        .modify(|eninode| eninode.managed_fields_mut().clear())
        .reflect(writer);
    let mut events = pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                changed.send_replace(true);
            }
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                changed.send_if_modified(|listed| *listed);
            }
            Ok(_) => {}
            // The watcher retries with backoff by itself.
            Err(error) => warn!(label = "watch", "watching the ENINode: {error}"),
        }
    }
}

/// Writes the latest reports whenever they change, retrying failures with backoff.
pub async fn write_status(
    mut writer: StatusWriter,
    store: Store<ENINode>,
    mut reports: watch::Receiver<Reports>,
    retry: Retry,
) {
    let mut delay = retry.initial;
    loop {
        let latest = reports.borrow_and_update().clone();
        let state = store.state();
        let result = writer
            .write(state.first().map(AsRef::as_ref), &latest)
            .await;
        if let Err(error) = &result {
            warn!(label = error.label(), "{error}");
        }
        if result.is_ok() {
            delay = retry.initial;
            if reports.changed().await.is_err() {
                return;
            }
            // Let a burst of changes (many ENIs hot-plugged at once) go out in one write.
            tokio::time::sleep(STATUS_BATCH).await;
        } else {
            tokio::select! {
                changed = reports.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(retry.max);
        }
    }
}
