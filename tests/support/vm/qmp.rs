//! A QEMU Machine Protocol client over QEMU's Unix socket (`-qmp unix:<path>,server=on`):
//! JSON commands one at a time, answers in order, asynchronous events (`DEVICE_DELETED`…)
//! broadcast to whoever listens. The protocol: QEMU's docs/interop/qmp-spec.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{broadcast, oneshot};

type Answer = Result<Value, String>;

pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    /// Senders of the commands sent and not answered yet, oldest first.
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<Answer>>>>,
    events: broadcast::Sender<Value>,
    reader: tokio::task::JoinHandle<()>,
}

impl Qmp {
    /// Connects (retrying while QEMU has not created the socket yet, up to `timeout`) and
    /// leaves capabilities negotiation mode. The reader runs on the current tokio runtime.
    pub async fn connect(socket: &Path, timeout: Duration) -> std::io::Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket).await {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        // The greeting: {"QMP": {"version": …, "capabilities": […]}}.
        lines.next_line().await?;
        let waiting: Arc<Mutex<VecDeque<oneshot::Sender<Answer>>>> = Arc::default();
        let (events, _) = broadcast::channel(256);
        let reader = tokio::spawn(read_answers(lines, Arc::clone(&waiting), events.clone()));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            waiting,
            events,
            reader,
        };
        qmp.execute("qmp_capabilities", json!({}))
            .await
            .map_err(std::io::Error::other)?;
        Ok(qmp)
    }

    /// Runs `command` with `arguments`; QEMU's `return` value, or its error's description.
    pub async fn execute(&self, command: &str, arguments: Value) -> Result<Value, String> {
        let message = json!({"execute": command, "arguments": arguments}).to_string() + "\n";
        let (sender, answer) = oneshot::channel();
        {
            let mut writer = self.writer.lock().await;
            self.waiting.lock().expect("qmp").push_back(sender);
            writer
                .write_all(message.as_bytes())
                .await
                .map_err(|e| format!("{command}: {e}"))?;
        }
        answer
            .await
            .map_err(|_| format!("{command}: QEMU closed its QMP socket"))?
            .map_err(|error| format!("{command}: {error}"))
    }

    /// Events from now on (subscribe before the command whose event is awaited).
    pub fn events(&self) -> broadcast::Receiver<Value> {
        self.events.subscribe()
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_answers(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<Answer>>>>,
    events: broadcast::Sender<Value>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let answer = if let Some(value) = message.get("return") {
            Ok(value.clone())
        } else if let Some(error) = message.get("error") {
            Err(error["desc"].as_str().unwrap_or("an error").to_owned())
        } else {
            // {"event": …, "data": …, "timestamp": …}; nobody listening is fine.
            let _ = events.send(message);
            continue;
        };
        if let Some(sender) = waiting.lock().expect("qmp").pop_front() {
            let _ = sender.send(answer);
        }
    }
}
