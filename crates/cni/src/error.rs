//! CNI error values and the spec's well-known codes.

use serde::Serialize;
use std::fmt;

/// Error codes from the spec (0–99 reserved) plus the reference library's extras.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const INVALID_NETNS: u32 = 8;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// First plugin-specific code; ours use 100 + n.
    pub const PLUGIN: u32 = 100;
    /// Kernel or filesystem operation failed.
    pub const OPERATION_FAILED: u32 = 100;
    /// An IP pool has no free address.
    pub const POOL_EXHAUSTED: u32 = 101;
    /// A requested address is taken or outside every range.
    pub const ADDRESS_UNAVAILABLE: u32 = 102;
    /// CHECK found state that does not match the expected result.
    pub const CHECK_FAILED: u32 = 103;
    /// A delegated plugin could not be found or run.
    pub const DELEGATE_FAILED: u32 = 104;
}

/// A CNI error as printed on stdout: `{"cniVersion","code","msg","details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Error {
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, msg)
    }

    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, msg)
    }

    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(code::DECODE_FAILURE, msg)
    }

    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(code::IO_FAILURE, msg)
    }

    pub fn incompatible(msg: impl Into<String>) -> Self {
        Self::new(code::INCOMPATIBLE_VERSION, msg)
    }

    pub fn failed(msg: impl Into<String>) -> Self {
        Self::new(code::OPERATION_FAILED, msg)
    }

    /// Prefix the message with what was being done, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The JSON document a plugin prints on stdout for this error.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for Error {}

/// Attach operation context to any error while turning it into a CNI error.
pub trait Context<T> {
    fn context_code(self, code: u32, what: impl fmt::Display) -> Result<T>;
    fn or_failed(self, what: impl fmt::Display) -> Result<T>
    where
        Self: Sized,
    {
        self.context_code(code::OPERATION_FAILED, what)
    }
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context_code(self, code: u32, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(code, format!("{what}: {e}")))
    }
}
