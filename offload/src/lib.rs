//! OVS and tc programming for smartnic attachments, the hardware/software offload decision and
//! the evidence of where each flow really runs.
//!
//! ```text
//!   jsonrpc ── ovsdb::Client ── vswitch::Ovs       OVSDB (RFC 7047): bridges, ports, other_config
//!   jsonrpc ── appctl::Appctl                       ovs-vswitchd control socket (dpctl/dump-flows)
//!   openflow                                         pod/overlay flows through `ovs-ofctl --bundle`
//!   overlay                                          one VNI per network, a tunnel port per peer
//! ```
//!
//! See `offload/README.md` for the design.

pub mod appctl;
pub mod attach;
pub mod capability;
pub mod decision;
pub mod evidence;
pub mod jsonrpc;
pub mod node;
pub mod openflow;
pub mod overlay;
pub mod ovsdb;
pub mod probe;
pub mod trace;
pub mod vswitch;

pub use jsonrpc::Remote;
pub use vswitch::{Ovs, VswitchError};
