//! The agent's two background tasks: the NodeENI watch, which keeps the store and says when
//! it changed, and the status writer, which applies the latest reports.

use futures::StreamExt;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::pin::pin;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

use crate::api::NodeENI;
use crate::manager::agent::Retry;
use crate::manager::report::Reports;
use crate::manager::status::StatusWriter;

/// How long the status writer waits after a change for more to come.
const STATUS_BATCH: Duration = Duration::from_millis(100);

/// Keeps `writer`'s store in step with the NodeENIs; `changed` turns true once they are
/// listed and is touched at every change after that (several changes may be seen as one).
pub async fn watch_nodeenis(
    api: Api<NodeENI>,
    writer: Writer<NodeENI>,
    changed: watch::Sender<bool>,
) {
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        // The agent never reads managedFields; not keeping them saves most of the memory.
        .modify(|nodeeni| nodeeni.managed_fields_mut().clear())
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
            Err(error) => warn!(label = "watch", "watching NodeENIs: {error}"),
        }
    }
}

/// Writes the latest reports whenever they change, retrying failures with backoff.
pub async fn write_status(
    mut writer: StatusWriter,
    store: Store<NodeENI>,
    mut reports: watch::Receiver<Reports>,
    retry: Retry,
) {
    let mut delay = retry.initial;
    loop {
        let latest = reports.borrow_and_update().clone();
        let state = store.state();
        let errors = writer.write(state.iter().map(AsRef::as_ref), &latest).await;
        for error in &errors {
            warn!(label = error.label(), "{error}");
        }
        if errors.is_empty() {
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
