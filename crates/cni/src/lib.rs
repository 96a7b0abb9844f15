//! The CNI specification as Rust types, and the plugin side of the protocol.
//!
//! A plugin implements [`Plugin`] and calls [`run`]; everything about the
//! environment, stdin, versions and error documents is handled here.

pub mod args;
pub mod ci;
pub mod config;
pub mod delegate;
pub mod error;
pub mod result;
pub mod skel;
pub mod version;

pub use args::CniArgs;
pub use config::{ConfList, NetConf};
pub use error::{code, Context, Error, Result};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{run, About, Attachment, Command, Plugin, Request};
pub use version::Version;
