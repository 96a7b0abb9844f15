//! Runtime side of CNI, as the reference `libcni` does it: load network
//! configurations, derive each plugin's request, execute plugin chains for
//! ADD/DEL/CHECK/STATUS/GC/VERSION, and keep the result cache.
//!
//! ```no_run
//! use libcni::{conf, CniConfig, RuntimeConf};
//! let list = conf::load("/etc/cni/net.d".as_ref(), "mynet")?;
//! let cni = CniConfig::new(vec!["/opt/cni/bin".into()], "/var/lib/cni");
//! let rt = RuntimeConf {
//!     container_id: "c1".into(),
//!     netns: "/run/netns/c1".into(),
//!     ifname: "eth0".into(),
//!     ..RuntimeConf::default()
//! };
//! let result = cni.add_network_list(&list, &rt)?;
//! println!("{result}");
//! cni.del_network_list(&list, &rt)?;
//! # Ok::<(), libcni::Error>(())
//! ```

pub mod api;
pub mod cache;
pub mod conf;
pub mod error;
pub mod invoke;

pub use api::{build_plugin_config, CniConfig, RuntimeConf};
pub use cache::Cache;
pub use cni::Attachment;
pub use conf::NetworkConfigList;
pub use error::{Error, Result};
pub use invoke::{Exec, Output, VersionInfo};
