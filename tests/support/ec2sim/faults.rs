//! Injected faults: a specific error for the next N calls of an action, and random 5xx answers
//! at a configured rate.

use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// "The next `count` calls of `action` fail with `code` (and `message`)". `action` "*" matches
/// every action. The HTTP status follows the code (503 for throttling, 500 for InternalError…).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextFault {
    pub action: String,
    pub count: u32,
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl NextFault {
    pub fn new(action: &str, count: u32, code: &str, message: &str) -> NextFault {
        NextFault {
            action: action.to_owned(),
            count,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

#[derive(Default)]
pub struct Faults {
    pending: Vec<NextFault>,
}

impl Faults {
    pub fn inject(&mut self, fault: NextFault) {
        if fault.count > 0 {
            self.pending.push(fault);
        }
    }

    /// The error this call of `action` gets, if any: first the injected ones in the order they
    /// were injected, then a random 5xx with probability `error_rate`.
    pub fn take(&mut self, action: &str, error_rate: f64) -> Option<ApiError> {
        if let Some(index) =
            (self.pending.iter()).position(|fault| fault.action == action || fault.action == "*")
        {
            let fault = &mut self.pending[index];
            let error = ApiError::new(&fault.code, fault.message.clone());
            fault.count -= 1;
            if fault.count == 0 {
                self.pending.remove(index);
            }
            return Some(error);
        }
        (fastrand::f64() < error_rate).then(|| {
            if fastrand::bool() {
                ApiError::new("InternalError", "An internal error has occurred")
            } else {
                ApiError::new(
                    "Unavailable",
                    "The service is unavailable. Please try again shortly.",
                )
            }
        })
    }
}
