//! The CNI error object (`{cniVersion, code, msg, details}`) and its well-known codes.
//!
//! Library modules have their own `thiserror` enums; each converts into a [`CniError`] with the
//! code the spec gives for its kind of failure. Only `main` prints one.

use serde::Serialize;

/// The spec's well-known error codes (0-99 are reserved; ours start at 100).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration; the message names the key and value.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (named in the message).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Invalid network namespace (libcni's `ErrInvalidNetNS`).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const NOT_AVAILABLE_LIMITED: u32 = 51;
    /// Ours: the kernel or the NIC refused an operation.
    pub const HOST: u32 = 100;
    /// Ours: the device (VF) is held by another attachment.
    pub const DEVICE_BUSY: u32 = 101;
    /// Ours: a delegated IPAM plugin failed (its own error follows in the message).
    pub const IPAM: u32 = 102;
    /// Ours: no free address in the range.
    pub const NO_ADDRESS: u32 = 103;
    /// Internal error (libcni's `ErrInternal`).
    pub const INTERNAL: u32 = 999;
}

/// One CNI error, as printed on stdout with a non-zero exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    /// Error code ([`code`]).
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation; may be empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds the details text.
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object for `cniVersion` `version`.
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}

/// Result of the plugin's commands.
pub type CniResult<T> = Result<T, CniError>;
