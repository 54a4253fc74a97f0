//! EC2 error answers: an error code, a message and the HTTP status EC2 sends with them.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// An error with the status EC2 uses for its code: 503 for throttling and unavailability,
    /// 500 for internal errors, 412 for DryRunOperation, 400 for everything the caller got
    /// wrong.
    pub fn new(code: &str, message: impl Into<String>) -> ApiError {
        let status = match code {
            "RequestLimitExceeded" | "Unavailable" | "ServiceUnavailable" => 503,
            "InternalError" | "InternalFailure" => 500,
            "DryRunOperation" => 412,
            _ => 400,
        };
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn missing(parameter: &str) -> ApiError {
        ApiError::new(
            "MissingParameter",
            format!("The request must contain the parameter {parameter}"),
        )
    }

    pub fn invalid_value(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterValue", message)
    }

    pub fn combination(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterCombination", message)
    }

    /// `kind` as EC2 spells it in these messages: "networkInterface", "subnet", "instance"…
    pub fn not_found(code: &str, kind: &str, id: &str) -> ApiError {
        ApiError::new(code, format!("The {kind} ID '{id}' does not exist"))
    }

    pub fn throttled() -> ApiError {
        ApiError::new("RequestLimitExceeded", "Request limit exceeded.")
    }

    /// The answer to a dry run that would have succeeded. EC2's "Common client error codes"
    /// describe DryRunOperation; the 412 status and this message are what EC2 sends (a raw
    /// answer is quoted in getmoto/moto#1980; the API reference gives neither).
    pub fn dry_run() -> ApiError {
        ApiError::new(
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    pub fn is_throttling(&self) -> bool {
        self.code == "RequestLimitExceeded"
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
