//! EC2 errors, sorted once into the kinds the controller acts on.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What the caller should do about a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// EC2's rate limit (`RequestLimitExceeded`): retry later with backoff.
    Throttled,
    /// 5xx, time-outs, connection failures, an instance not yet running: retry with backoff.
    Transient,
    /// The resource does not exist (or is not visible yet).
    NotFound,
    /// The request collides with the current state: device index taken, ENI in use,
    /// client token reused with other parameters.
    Conflict,
    /// An account or instance limit: no retry helps until something changes.
    LimitExceeded,
    /// The request can never succeed as it is: bad parameter, wrong AZ, access denied.
    InvalidInput,
}

impl ErrorKind {
    /// Stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::InvalidInput => "invalid_input",
        }
    }

    /// Whether the same call may succeed later without any change.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// A failed EC2 call, with EC2's own error code and message kept.
#[derive(Clone, Debug, thiserror::Error)]
#[error("EC2 {action} failed ({}): {code}: {message}", kind.label())]
pub struct Error {
    pub kind: ErrorKind,
    pub action: &'static str,
    /// EC2's error code, e.g. `InvalidParameterValue`; empty when the call never got an answer.
    pub code: String,
    pub message: String,
}

impl Error {
    pub(super) fn from_sdk<E>(action: &'static str, error: &SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message) = match error {
            SdkError::ServiceError(context) => (
                context.err().code().unwrap_or_default().to_owned(),
                context.err().message().unwrap_or_default().to_owned(),
            ),
            other => (String::new(), DisplayErrorContext(other).to_string()),
        };
        let status = error
            .raw_response()
            .map(|response| response.status().as_u16());
        let kind = classify(&code, &message, status);
        Error {
            kind,
            action,
            code,
            message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// Sorts an EC2 error code (and, where EC2 overloads a code, its message) into a kind.
pub fn classify(code: &str, message: &str, http_status: Option<u16>) -> ErrorKind {
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => ErrorKind::Throttled,
        ""
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable"
        | "IncorrectInstanceState"
        | "IncorrectState" => ErrorKind::Transient,
        "InvalidNetworkInterface.InUse" | "IdempotentParameterMismatch" => ErrorKind::Conflict,
        "AttachmentLimitExceeded"
        | "NetworkInterfaceLimitExceeded"
        | "PrivateIpAddressLimitExceeded"
        | "InvalidInterface.IpAddressLimitExceeded"
        | "InsufficientFreeAddressesInSubnet"
        | "InsufficientCidrBlocks" => ErrorKind::LimitExceeded,
        code if code.ends_with(".NotFound") => ErrorKind::NotFound,
        "InvalidParameterValue"
            if message.contains("already has an interface attached at device index") =>
        {
            ErrorKind::Conflict
        }
        _ if message.contains("is not 'running'") => ErrorKind::Transient,
        _ if http_status.is_some_and(|status| status >= 500) => ErrorKind::Transient,
        _ => ErrorKind::InvalidInput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::too_many_lines)] // one table
    fn every_ec2_answer_has_one_kind() {
        let table = [
            (
                "RequestLimitExceeded",
                "Request limit exceeded.",
                Some(503),
                ErrorKind::Throttled,
            ),
            (
                "InternalError",
                "An internal error has occurred",
                Some(500),
                ErrorKind::Transient,
            ),
            ("Unavailable", "", Some(503), ErrorKind::Transient),
            (
                "",
                "dispatch failure: connection refused",
                None,
                ErrorKind::Transient,
            ),
            ("SomethingNew", "", Some(502), ErrorKind::Transient),
            (
                "IncorrectInstanceState",
                "",
                Some(400),
                ErrorKind::Transient,
            ),
            (
                "InvalidParameterValue",
                "Instance 'i-1' is not 'running'.",
                Some(400),
                ErrorKind::Transient,
            ),
            (
                "InvalidNetworkInterfaceID.NotFound",
                "",
                Some(400),
                ErrorKind::NotFound,
            ),
            (
                "InvalidAttachmentID.NotFound",
                "",
                Some(400),
                ErrorKind::NotFound,
            ),
            (
                "InvalidSubnetID.NotFound",
                "",
                Some(400),
                ErrorKind::NotFound,
            ),
            ("InvalidGroup.NotFound", "", Some(400), ErrorKind::NotFound),
            (
                "InvalidParameterValue",
                "Instance 'i-1' already has an interface attached at device index '1'.",
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                "InvalidNetworkInterface.InUse",
                "",
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                "IdempotentParameterMismatch",
                "",
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                "AttachmentLimitExceeded",
                "Interface count 4 exceeds the limit for m5.large",
                Some(400),
                ErrorKind::LimitExceeded,
            ),
            (
                "NetworkInterfaceLimitExceeded",
                "",
                Some(400),
                ErrorKind::LimitExceeded,
            ),
            (
                "PrivateIpAddressLimitExceeded",
                "Number of private addresses will exceed limit.",
                Some(400),
                ErrorKind::LimitExceeded,
            ),
            (
                "InvalidInterface.IpAddressLimitExceeded",
                "Address count 7 on interface-0123 exceeds the limit for t3.medium",
                Some(400),
                ErrorKind::LimitExceeded,
            ),
            (
                "InsufficientFreeAddressesInSubnet",
                "",
                Some(400),
                ErrorKind::LimitExceeded,
            ),
            (
                "InsufficientCidrBlocks",
                "The specified subnet does not have enough free cidr blocks to satisfy the request.",
                Some(400),
                ErrorKind::LimitExceeded,
            ),
            (
                "InvalidParameterCombination",
                "different availability zones",
                Some(400),
                ErrorKind::InvalidInput,
            ),
            (
                "InvalidParameterValue",
                "Invalid value for DeviceIndex",
                Some(400),
                ErrorKind::InvalidInput,
            ),
            (
                "UnauthorizedOperation",
                "You are not authorized",
                Some(403),
                ErrorKind::InvalidInput,
            ),
        ];
        for (code, message, status, kind) in table {
            assert_eq!(classify(code, message, status), kind, "{code}: {message}");
        }
        assert!(ErrorKind::Throttled.is_retryable() && ErrorKind::Transient.is_retryable());
        assert!(!ErrorKind::Conflict.is_retryable() && !ErrorKind::NotFound.is_retryable());
    }
}
