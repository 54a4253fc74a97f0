//! Hooks: whoever plays the nodes (the sandbox, a test) learns when an ENI becomes `attached`
//! to an instance and when it is detached from it; a guest that releases its devices itself
//! learns of each detach waiting for it. In process, or by an HTTP POST of JSON.

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

/// A detach that waits for the guest to release the device, on an instance whose guest holds
/// its detaches (`Simulator::hold_detaches`). The guest answers with `Simulator::release` or
/// `POST /_sim/release {"attachment_id": …}`; until then the attachment stays `detaching`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachRequest {
    pub instance_id: String,
    pub attachment_id: String,
    pub network_interface_id: String,
    pub mac_address: String,
    pub device_index: i64,
    pub network_card_index: i64,
}

impl DetachRequest {
    pub fn new(eni: &Eni, attachment: &Attachment) -> DetachRequest {
        DetachRequest {
            instance_id: attachment.instance_id.clone(),
            attachment_id: attachment.id.clone(),
            network_interface_id: eni.id.clone(),
            mac_address: eni.mac.clone(),
            device_index: attachment.device_index,
            network_card_index: attachment.card_index,
        }
    }
}

pub type Hook<T = AttachmentEvent> = Box<dyn Fn(T) + Send + Sync>;

/// A hook that POSTs each event as JSON to `url` (`http://host:port/path`), one at a time and
/// in order. Must be called inside a tokio runtime.
pub fn http_hook<T: Serialize + Send + 'static>(url: &str) -> Result<Hook<T>, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!("{url}: not an http://host:port/path URL"));
    }
    let (sender, mut events) = mpsc::unbounded_channel::<T>();
    let url = url.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let body = serde_json::to_string(&event).expect("events serialize");
            match http_request("POST", &url, &body).await {
                Ok((200..=299, _)) => {}
                Ok((status, _)) => eprintln!("ec2sim: hook {url}: answered {status}"),
                Err(error) => eprintln!("ec2sim: hook {url}: {error}"),
            }
        }
    });
    Ok(Box::new(move |event| {
        // The receiver lives as long as the runtime; after that nobody is listening anyway.
        let _ = sender.send(event);
    }))
}

/// One HTTP/1.1 request on a fresh connection; the answer's status and body. Enough for
/// hooks and the control endpoint, which speak small JSON documents.
pub async fn http_request(method: &str, url: &str, body: &str) -> std::io::Result<(u16, String)> {
    let invalid =
        |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{url}: {why}"));
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let authority = match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) => authority.as_str(),
        _ => return Err(invalid("not an http://host:port/path URL")),
    };
    let path = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut stream = TcpStream::connect(authority).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok());
    let status =
        status.ok_or_else(|| std::io::Error::other(format!("{url}: not an HTTP answer")))?;
    Ok((status, body.to_owned()))
}
