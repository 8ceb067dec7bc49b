//! The seam between `mode: ovs` and Open vSwitch: probing what an attachment can get, putting
//! its port on the bridge and taking it off. [`crate::ovs_switch::OvsSwitch`] does it through
//! the `offload` crate (native OVSDB, `ovs-ofctl --bundle` for the overlay's flows);
//! [`crate::fake_switch::FakeSwitch`] keeps it in memory for the tests of the journal and of
//! crashes. Like [`crate::host::Host`], every call is blocking: the plugin is one short process.

use std::path::PathBuf;

use offload::{
    attach::PodAttachment,
    decision::{Attachment, Capabilities, Reason},
    probe::VfRef,
};

use crate::host::{HostError, HostResult};

/// The bridge of an `ovs` network without `bridge`.
pub const DEFAULT_BRIDGE: &str = "br-int";

/// One port to put on the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchAttach {
    /// The bridge.
    pub bridge: String,
    /// How: a veth pair (created here, its pod end named `ifname` in `netns`) or a VF's
    /// representor (the VF is already in the pod).
    pub attachment: Attachment,
    /// Why (recorded on the port for the offload report).
    pub reason: Reason,
    /// The pod's network namespace.
    pub netns: PathBuf,
    /// The interface name in the pod.
    pub ifname: String,
    /// `CNI_CONTAINERID` (names the host veth).
    pub container_id: String,
    /// The network's name.
    pub network: String,
    /// The network's VNI (overlay) or `None` (a plain bridge port).
    pub vni: Option<u32>,
    /// MTU of both veth ends / of the representor.
    pub mtu: Option<u32>,
    /// Access VLAN of the port.
    pub vlan: Option<u16>,
    /// Trunk VLANs of the port.
    pub trunks: Vec<u16>,
    /// The pod (`NAMESPACE/NAME` from `CNI_ARGS`), when the runtime says.
    pub pod: Option<String>,
}

/// A port as the switch has it now (CHECK).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchPort {
    /// The bridge it is on.
    pub bridge: Option<String>,
    /// Its OpenFlow port number, once ovs-vswitchd has it.
    pub ofport: Option<u32>,
    /// The VNI it is tagged with.
    pub vni: Option<u32>,
    /// Why ovs-vswitchd could not open it (`Interface.error`).
    pub error: Option<String>,
}

/// The operations of `mode: ovs`.
pub trait Switch {
    /// What the attachment of `vf` (or of no VF) to `bridge` can get.
    fn capabilities(
        &self,
        bridge: &str,
        vf: Option<&VfRef>,
        network_wants_software: bool,
    ) -> HostResult<Capabilities>;

    /// Builds the attachment and puts its port on the bridge (waiting for its ofport); on
    /// failure nothing of it is left.
    fn attach(&self, req: &SwitchAttach) -> HostResult<PodAttachment>;

    /// Takes `port` off `bridge` (and deletes it when it is a veth); a port that is not there
    /// is fine.
    fn detach(&self, bridge: &str, port: &str) -> HostResult<()>;

    /// The port called `port`, if the switch has it.
    fn port(&self, port: &str) -> HostResult<Option<SwitchPort>>;

    /// True when the bridge exists (STATUS).
    fn bridge_exists(&self, bridge: &str) -> HostResult<bool>;
}

/// No switch: every call says that this plugin instance cannot do `mode: ovs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSwitch;

fn none() -> HostError {
    HostError::other("mode ovs: this plugin instance has no Open vSwitch connection")
}

impl Switch for NoSwitch {
    fn capabilities(&self, _: &str, _: Option<&VfRef>, _: bool) -> HostResult<Capabilities> {
        Err(none())
    }

    fn attach(&self, _: &SwitchAttach) -> HostResult<PodAttachment> {
        Err(none())
    }

    fn detach(&self, _: &str, _: &str) -> HostResult<()> {
        Err(none())
    }

    fn port(&self, _: &str) -> HostResult<Option<SwitchPort>> {
        Err(none())
    }

    fn bridge_exists(&self, _: &str) -> HostResult<bool> {
        Err(none())
    }
}
