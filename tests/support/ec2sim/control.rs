//! The control endpoint, JSON under `/_sim/`: statistics, configuration, injected faults,
//! reset, attachment hooks, and guests that hold and release detaches, for callers outside
//! the process.

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::faults::NextFault;
use super::hooks::http_hook;
use super::server::{Shared, lock};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/config", get(config).post(set_config))
        .route("/faults", post(add_fault))
        .route("/reset", post(reset))
        .route("/hooks", post(add_hook))
        .route("/guests", post(add_guest))
        .route("/release", post(release))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(lock(&shared.control).stats.clone()).into_response()
}

async fn config(State(shared): State<Arc<Shared>>) -> Response {
    Json(lock(&shared.control).config.clone()).into_response()
}

/// The body is a JSON merge patch of the configuration: `{"throttle": {"enabled": false}}`.
async fn set_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch = match parse::<serde_json::Value>(&body) {
        Ok(patch) => patch,
        Err(error) => return bad_request(&error),
    };
    let mut control = lock(&shared.control);
    match control.config.patched(&patch) {
        Ok(config) => {
            control.set_config(config.clone());
            Json(config).into_response()
        }
        Err(error) => bad_request(&error.to_string()),
    }
}

async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<NextFault>(&body) {
        Ok(fault) => {
            lock(&shared.control).faults.inject(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => bad_request(&error),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct HookRequest {
    url: String,
}

async fn add_hook(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match parse::<HookRequest>(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(&error),
    };
    match http_hook(&request.url) {
        Ok(hook) => {
            (shared.hooks.write().unwrap_or_else(PoisonError::into_inner)).push(hook);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => bad_request(&error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestRequest {
    instance_id: String,
    /// Where each detach the guest holds is POSTed; none: the guest watches for `detaching`.
    url: Option<String>,
}

/// `{"instance_id": "i-…", "url": "http://…"}`: the instance's guest holds its detaches.
async fn add_guest(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match parse::<GuestRequest>(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(&error),
    };
    let hook = match request.url.as_deref().map(http_hook).transpose() {
        Ok(hook) => hook,
        Err(error) => return bad_request(&error),
    };
    match shared.hold_detaches(&request.instance_id, hook) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error_answer(StatusCode::NOT_FOUND, &error.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    attachment_id: String,
}

/// `{"attachment_id": "eni-attach-…"}`: the guest has released the device.
async fn release(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match parse::<ReleaseRequest>(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(&error),
    };
    match shared.release(&request.attachment_id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error_answer(StatusCode::NOT_FOUND, &error),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|error| error.to_string())
}

fn bad_request(message: &str) -> Response {
    error_answer(StatusCode::BAD_REQUEST, message)
}

fn error_answer(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (status, Json(body)).into_response()
}
