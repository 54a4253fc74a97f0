//! The HTTP side: EC2 Query requests on any path but `/_sim/`, served through throttling,
//! injected faults and latency, then the action (or its dry run); attachment events and
//! detach requests go to the hooks once the world is unlocked.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::actions::{self, Ctx, Handler, Pending};
use super::config::SimConfig;
use super::control;
use super::error::ApiError;
use super::faults::Faults;
use super::hooks::{AttachmentEvent, DetachRequest, Hook};
use super::query::Params;
use super::state::{World, instance_not_found};
use super::throttle::{self, Throttle};
use super::xml::{self, Xml};

/// Everything a simulator holds, shared by its HTTP handlers, its timers and its Rust handle.
pub struct Shared {
    pub world: Mutex<World>,
    pub control: Mutex<Control>,
    pub hooks: RwLock<Vec<Hook>>,
    /// Instance ID → the hook of its guest, which releases the devices of detaches it holds.
    pub guests: RwLock<HashMap<String, Hook<DetachRequest>>>,
    requests: AtomicU64,
}

/// The knobs and counters around the world.
#[derive(Default)]
pub struct Control {
    pub config: SimConfig,
    pub throttle: Throttle,
    pub faults: Faults,
    pub stats: Stats,
}

impl Control {
    /// A new configuration; the throttle buckets start full under it.
    pub fn set_config(&mut self, config: SimConfig) {
        self.config = config;
        self.throttle = Throttle::default();
    }
}

/// Calls per action: all of them, those throttled, those answered with another error, those
/// answered DryRunOperation; and the DetachNetworkInterface calls that asked for `Force`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub actions: BTreeMap<String, ActionStats>,
    /// DetachNetworkInterface calls with `Force=true`, whatever their answer (dry runs too).
    #[serde(default)]
    pub forced_detach_calls: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionStats {
    pub calls: u64,
    pub throttled: u64,
    /// Errors other than throttling and DryRunOperation.
    pub errors: u64,
    /// Dry runs that would have succeeded (answered DryRunOperation).
    #[serde(default)]
    pub dry_runs: u64,
}

impl Stats {
    pub fn action(&self, action: &str) -> ActionStats {
        self.actions.get(action).copied().unwrap_or_default()
    }
}

/// Locks, ignoring poisoning: a panicking test must not take the simulator down with it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(config: SimConfig) -> Shared {
        Shared {
            world: Mutex::default(),
            control: Mutex::new(Control {
                config,
                ..Control::default()
            }),
            hooks: RwLock::default(),
            guests: RwLock::default(),
            requests: AtomicU64::new(0),
        }
    }

    pub fn deliver(&self, events: Vec<AttachmentEvent>) {
        let hooks = self.hooks.read().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            for hook in hooks.iter() {
                hook(event.clone());
            }
        }
    }

    /// Tells each guest of the detaches it holds.
    fn request(&self, requests: Vec<DetachRequest>) {
        let guests = self.guests.read().unwrap_or_else(PoisonError::into_inner);
        for request in requests {
            if let Some(guest) = guests.get(&request.instance_id) {
                guest(request);
            }
        }
    }

    /// The instance's guest releases its devices itself from now on (see `DetachRequest`);
    /// `guest`, if any, hears each detach it holds.
    pub fn hold_detaches(
        &self,
        instance_id: &str,
        guest: Option<Hook<DetachRequest>>,
    ) -> Result<(), ApiError> {
        let mut world = lock(&self.world);
        let instance = world.instances.get_mut(instance_id);
        instance
            .ok_or_else(|| instance_not_found(instance_id))?
            .guest_releases = true;
        if let Some(guest) = guest {
            (self.guests.write().unwrap_or_else(PoisonError::into_inner))
                .insert(instance_id.to_owned(), guest);
        }
        Ok(())
    }

    /// The guest has released the device: the detach of `attachment_id` completes.
    pub fn release(&self, attachment_id: &str) -> Result<(), String> {
        let event = lock(&self.world).release(attachment_id)?;
        self.deliver(vec![event]);
        Ok(())
    }

    /// Forgets every resource (the guests' holds with their instances), counter, pending fault
    /// and bucket level; keeps the configuration and the attachment hooks.
    pub fn reset(&self) {
        lock(&self.world).reset();
        (self.guests.write().unwrap_or_else(PoisonError::into_inner)).clear();
        let mut control = lock(&self.control);
        let config = std::mem::take(&mut control.config);
        *control = Control {
            config,
            ..Control::default()
        };
    }

    fn count_call(&self, action: &str, params: &Params) {
        let mut control = lock(&self.control);
        let stats = &mut control.stats;
        stats.actions.entry(action.to_owned()).or_default().calls += 1;
        if action == "DetachNetworkInterface" && params.bool("Force") == Ok(Some(true)) {
            stats.forced_detach_calls += 1;
        }
    }

    /// Decides whether the call is throttled or faulted, before any latency.
    fn admit(&self, action: &str, params: &Params) -> (SimConfig, Result<(), ApiError>) {
        let mut control = lock(&self.control);
        let control = &mut *control;
        let class = throttle::classify(action, params);
        let verdict = if control
            .throttle
            .admit(&control.config.throttle, action, class)
        {
            control
                .faults
                .take(action, control.config.error_rate)
                .map_or(Ok(()), Err)
        } else {
            Err(ApiError::throttled())
        };
        (control.config.clone(), verdict)
    }

    fn record_error(&self, action: &str, error: &ApiError) {
        let mut control = lock(&self.control);
        let stats = control.stats.actions.entry(action.to_owned()).or_default();
        if error.is_throttling() {
            stats.throttled += 1;
        } else if error.code == "DryRunOperation" {
            stats.dry_runs += 1;
        } else {
            stats.errors += 1;
        }
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .nest("/_sim", control::routes())
        .fallback(ec2)
        .with_state(shared)
}

async fn ec2(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let params = if body.is_empty() {
        Params::parse(uri.query().unwrap_or_default().as_bytes())
    } else {
        Params::parse(&body)
    };
    let action = params.get("Action").unwrap_or_default().to_owned();
    let n = shared.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("5e1a0000-0000-4000-8000-{n:012x}");
    match serve(&shared, &action, &params).await {
        Ok(body) => xml_answer(StatusCode::OK, xml::response(&action, &request_id, &body)),
        Err(error) => {
            shared.record_error(&action, &error);
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
            xml_answer(status, xml::error(&error.code, &error.message, &request_id))
        }
    }
}

async fn serve(shared: &Arc<Shared>, action: &str, params: &Params) -> Result<Xml, ApiError> {
    shared.count_call(action, params);
    let handler = actions::handler(action).ok_or_else(|| {
        ApiError::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )
    })?;
    let (config, verdict) = shared.admit(action, params);
    if config.added_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.added_latency_ms)).await;
    }
    verdict?;
    if params.bool("DryRun")?.unwrap_or(false) {
        return Err(dry_run(shared, handler, &config, params));
    }
    let mut body = Xml::default();
    let (events, pending, requests) = {
        let mut world = lock(&shared.world);
        let mut ctx = Ctx::new(&mut world, &config);
        handler(&mut ctx, params, &mut body)?;
        (ctx.events, ctx.pending, ctx.requests)
    };
    shared.deliver(events);
    shared.request(requests);
    for transition in pending {
        schedule(Arc::clone(shared), transition);
    }
    Ok(body)
}

/// EC2's `DryRun=true`: the action runs on a copy of the world, which is then dropped, so that
/// nothing changes, no hook hears anything and no ID or ClientToken is used up. The answer is
/// the action's own error when it would fail (say `InvalidAttachmentID.NotFound`), else
/// DryRunOperation. The API reference only says the dry run checks "whether you have the
/// required permissions" and answers DryRunOperation or UnauthorizedOperation; the common
/// client error codes define DryRunOperation as "the request would have succeeded", so a
/// request that would fail cannot get it, and clients rely on the real error (AWS's own
/// start_stop_instances example uses a dry run "to see if the instance exists").
/// UnauthorizedOperation never comes: the simulator has no IAM, every caller may do anything.
///
/// Throttling and injected faults come first, as for any request: the throttling page says
/// "each request that you make removes one token from the API's bucket" and nothing
/// about dry runs, so a dry run takes its token (and is throttled) like the real call.
fn dry_run(shared: &Shared, handler: Handler, config: &SimConfig, params: &Params) -> ApiError {
    let mut scratch = lock(&shared.world).clone();
    let mut ctx = Ctx::new(&mut scratch, config);
    match handler(&mut ctx, params, &mut Xml::default()) {
        Ok(()) => ApiError::dry_run(),
        Err(error) => error,
    }
}

fn schedule(shared: Arc<Shared>, pending: Pending) {
    tokio::spawn(async move {
        tokio::time::sleep(pending.after).await;
        let event = lock(&shared.world).complete(&pending);
        shared.deliver(event.into_iter().collect());
    });
}

fn xml_answer(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}
