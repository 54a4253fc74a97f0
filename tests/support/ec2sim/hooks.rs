//! Attachment hooks: whoever plays the nodes (the sandbox, a test) learns when an ENI becomes
//! `attached` to an instance and when it is detached from it, in process or by an HTTP POST.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::state::{Attachment, Eni};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentEvent {
    pub kind: AttachmentEventKind,
    pub instance_id: String,
    pub network_interface_id: String,
    pub mac_address: String,
    pub device_index: i64,
    pub network_card_index: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentEventKind {
    Attached,
    Detached,
}

impl AttachmentEvent {
    pub fn new(kind: AttachmentEventKind, eni: &Eni, attachment: &Attachment) -> AttachmentEvent {
        AttachmentEvent {
            kind,
            instance_id: attachment.instance_id.clone(),
            network_interface_id: eni.id.clone(),
            mac_address: eni.mac.clone(),
            device_index: attachment.device_index,
            network_card_index: attachment.card_index,
        }
    }
}

pub type Hook = Box<dyn Fn(AttachmentEvent) + Send + Sync>;

/// A hook that POSTs each event as JSON to `url` (`http://host:port/path`), one at a time and
/// in order. Must be called inside a tokio runtime.
pub fn http_hook(url: &str) -> Result<Hook, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let authority = match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) => authority.to_string(),
        _ => return Err(format!("{url}: not an http://host:port/path URL")),
    };
    let path = uri.path().to_owned();
    let (sender, mut events) = mpsc::unbounded_channel::<AttachmentEvent>();
    let url = url.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Err(error) = post_json(&authority, &path, &event).await {
                eprintln!("ec2sim: attachment hook {url}: {error}");
            }
        }
    });
    Ok(Box::new(move |event| {
        // The receiver lives as long as the runtime; after that nobody is listening anyway.
        let _ = sender.send(event);
    }))
}

async fn post_json(authority: &str, path: &str, event: &AttachmentEvent) -> std::io::Result<()> {
    let body = serde_json::to_string(event)?;
    let mut stream = TcpStream::connect(authority).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or_default();
    if status_line
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.starts_with('2'))
    {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answered {status_line:?}")))
    }
}
