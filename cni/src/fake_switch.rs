//! An in-memory [`Switch`] for tests (feature `test-util`): bridges with ports, switchdev VFs
//! with representors, and veth pairs made in a [`FakeHost`] so that the pod side is a link the
//! rest of the plugin configures and checks.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

use offload::{
    attach::{PodAttachment, host_veth_name},
    decision::{Attachment, Capabilities, Datapath, VfProbe},
    probe::VfRef,
};

use crate::{
    fake::FakeHost,
    host::{Host, HostError, HostErrorKind, HostResult, Ns},
    switch::{Switch, SwitchAttach, SwitchPort},
};

/// One port on a fake bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakePort {
    /// Bridge.
    pub bridge: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// VNI.
    pub vni: Option<u32>,
    /// A veth (deleted with the port) or a representor.
    pub veth: bool,
    /// Access VLAN.
    pub vlan: Option<u16>,
    /// Trunk VLANs.
    pub trunks: Vec<u16>,
    /// The reason recorded on the port.
    pub reason: String,
}

#[derive(Debug, Default)]
struct State {
    bridges: BTreeMap<String, Datapath>,
    ports: BTreeMap<String, FakePort>,
    /// Switchdev VFs: PCI address → representor.
    switchdev: BTreeMap<String, String>,
    hw_offload: bool,
    next_ofport: u32,
    fail_attach: BTreeSet<String>,
    attaches: u32,
}

/// The fake. Clones share one state (and the host).
#[derive(Clone, Debug)]
pub struct FakeSwitch {
    host: FakeHost,
    state: Arc<Mutex<State>>,
}

impl FakeSwitch {
    /// A switch with bridge `br-int` (userspace datapath) on `host`.
    pub fn new(host: FakeHost) -> Self {
        let s = Self {
            host,
            state: Arc::default(),
        };
        s.lock().bridges.insert("br-int".into(), Datapath::Netdev);
        s.lock().next_ofport = 1;
        s
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a bridge.
    pub fn add_bridge(&self, name: &str, datapath: Datapath) {
        self.lock().bridges.insert(name.into(), datapath);
    }

    /// Puts the VF at `pci` in switchdev with representor `rep` (a host link is made for it)
    /// and sets `hw-offload`.
    pub fn switchdev_vf(&self, pci: &str, rep: &str) {
        self.host
            .add_link(rep, nic::netlink::MacAddr([2, 0xee, 0, 0, 0, 1]));
        let mut st = self.lock();
        st.switchdev.insert(pci.into(), rep.into());
        st.hw_offload = true;
    }

    /// Makes the next attach of `port` fail after its veth was made (as ovs-vswitchd refusing
    /// the interface would).
    pub fn fail_attach_of(&self, port: &str) {
        self.lock().fail_attach.insert(port.into());
    }

    /// The ports, by name.
    pub fn ports(&self) -> BTreeMap<String, FakePort> {
        self.lock().ports.clone()
    }

    /// How many attaches were asked for.
    pub fn attaches(&self) -> u32 {
        self.lock().attaches
    }
}

impl Switch for FakeSwitch {
    fn capabilities(
        &self,
        bridge: &str,
        vf: Option<&VfRef>,
        network_wants_software: bool,
    ) -> HostResult<Capabilities> {
        let st = self.lock();
        let datapath = st.bridges.get(bridge).copied().unwrap_or_default();
        Ok(Capabilities {
            vf: vf.map(|v| {
                let rep = st.switchdev.get(&v.pci_address).cloned();
                VfProbe {
                    pci_address: v.pci_address.clone(),
                    pf: v.pf.clone(),
                    switchdev: rep.is_some(),
                    representor: rep,
                    hw_tc_offload: true,
                }
            }),
            switchdev_pfs: u32::from(!st.switchdev.is_empty()),
            ovs_hw_offload: st.hw_offload,
            datapath,
            network_wants_software,
        })
    }

    fn attach(&self, req: &SwitchAttach) -> HostResult<PodAttachment> {
        self.lock().attaches += 1;
        if !self.lock().bridges.contains_key(&req.bridge) {
            return Err(HostError::other(format!("no bridge named {}", req.bridge)));
        }
        let (port, veth, mac) = match &req.attachment {
            Attachment::Veth => {
                let port = host_veth_name(&req.container_id, &req.ifname);
                if self.host.link(Ns::Host, &port)?.is_some() {
                    self.host.delete_link(Ns::Host, &port)?;
                }
                let mac = self
                    .host
                    .add_veth(&port, &req.netns, &req.ifname, req.mtu)?;
                (port, true, Some(mac.to_string()))
            }
            Attachment::Representor { representor, .. } => {
                if self.host.link(Ns::Host, representor)?.is_none() {
                    return Err(HostError::new(
                        HostErrorKind::NoLink,
                        format!("no representor {representor}"),
                    ));
                }
                (representor.clone(), false, None)
            }
        };
        let mut st = self.lock();
        if st.fail_attach.remove(&port) {
            drop(st);
            if veth {
                self.host.delete_link(Ns::Host, &port)?;
            }
            return Err(HostError::other(format!(
                "ovs-vswitchd could not add interface {port}"
            )));
        }
        let ofport = st.next_ofport;
        st.next_ofport += 1;
        st.ports.insert(
            port.clone(),
            FakePort {
                bridge: req.bridge.clone(),
                ofport,
                vni: req.vni,
                veth,
                vlan: req.vlan,
                trunks: req.trunks.clone(),
                reason: req.reason.to_string(),
            },
        );
        Ok(PodAttachment {
            port,
            ofport,
            attachment: req.attachment.clone(),
            reason: req.reason.to_string(),
            ifname: req.ifname.clone(),
            mac,
            vni: req.vni,
        })
    }

    fn detach(&self, _bridge: &str, port: &str) -> HostResult<()> {
        let removed = self.lock().ports.remove(port);
        if removed.is_some_and(|p| p.veth) {
            self.host.delete_link(Ns::Host, port)?;
        }
        Ok(())
    }

    fn port(&self, port: &str) -> HostResult<Option<SwitchPort>> {
        Ok(self.lock().ports.get(port).map(|p| SwitchPort {
            bridge: Some(p.bridge.clone()),
            ofport: Some(p.ofport),
            vni: p.vni,
            error: None,
        }))
    }

    fn bridge_exists(&self, bridge: &str) -> HostResult<bool> {
        Ok(self.lock().bridges.contains_key(bridge))
    }
}
