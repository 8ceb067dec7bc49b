//! Pod attachments on the integration bridge: a veth pair (software) or a VF representor
//! (hardware path), tagged in OVSDB with the network's VNI so that the overlay puts the port in
//! its network; DEL removes the port and the veth.
//!
//! | here | by hand |
//! |---|---|
//! | `attacher.veth(netns, "net1").network("ns/red", 100).execute()` | `ip link add snXXXX type veth peer name snpXXXX; ip link set snpXXXX netns POD name net1; ip netns exec POD ethtool -K net1 tx off; ovs-vsctl add-port br-int snXXXX -- set interface snXXXX external_ids:smartnic.io/vni=100` |
//! | `attacher.representor("eth2_0").network("ns/red", 100).execute()` | `ip link set eth2_0 up; ethtool -K eth2_0 hw-tc-offload on; ovs-vsctl add-port br-int eth2_0 -- set interface eth2_0 external_ids:smartnic.io/vni=100` |
//! | `attacher.detach("snXXXX").execute()` | `ovs-vsctl --if-exists del-port snXXXX; ip link del snXXXX` |
//!
//! Link work happens in the calling thread's network namespace (the node's), the pod side on a
//! dedicated thread inside the pod's namespace (setns is per thread).

use nic::{
    ethtool::{EthtoolError, EthtoolHandle},
    netlink::{LinkId, NetlinkError, NetlinkHandle},
    netns::{NetnsError, NetnsRef, spawn_in_netns},
};
use serde::{Deserialize, Serialize};

use crate::{
    decision::{Attachment, Reason},
    overlay::{EXT_NETWORK, EXT_VNI, MAX_VNI, Overlay, OverlayError},
};

/// `external_ids` key: the pod (`NAMESPACE/NAME`).
pub const EXT_POD: &str = "smartnic.io/pod";
/// `external_ids` key: the pod's network namespace path.
pub const EXT_NETNS: &str = "smartnic.io/netns";
/// `external_ids` key: the interface name inside the pod.
pub const EXT_IFNAME: &str = "smartnic.io/ifname";
/// `external_ids` key: the container id (CNI `CNI_CONTAINERID`).
pub const EXT_CONTAINER: &str = "smartnic.io/container-id";
/// `external_ids` key: `veth` or `representor`.
pub const EXT_KIND: &str = "smartnic.io/attachment";
/// `external_ids` key: the VF PCI address (representor attachments).
pub const EXT_VF: &str = "smartnic.io/vf";
/// `external_ids` key: why this kind of attachment ([`Reason`]'s text).
pub const EXT_REASON: &str = "smartnic.io/reason";

/// Errors of attach and detach.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// rtnetlink.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Entering the pod's namespace.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// ethtool.
    #[error(transparent)]
    Ethtool(#[from] EthtoolError),
    /// OVSDB or OpenFlow.
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    /// The veth could not be created.
    #[error("cannot create veth pair {host}/{peer}: {detail}")]
    Veth {
        /// Host end.
        host: String,
        /// Pod end (before the rename).
        peer: String,
        /// The kernel's answer.
        detail: String,
    },
    /// A request without a network.
    #[error("attachment {0}: no network given (network(name, vni))")]
    NoNetwork(String),
    /// VNI out of range.
    #[error("network {network}: VNI {vni} is above {MAX_VNI} (24 bits)")]
    BadVni {
        /// Network.
        network: String,
        /// VNI.
        vni: u32,
    },
}

impl From<crate::vswitch::VswitchError> for AttachError {
    fn from(e: crate::vswitch::VswitchError) -> Self {
        Self::Overlay(e.into())
    }
}

/// One attachment, as returned to the CNI (and found again by the report).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAttachment {
    /// The bridge port (host veth end or representor).
    pub port: String,
    /// Its OpenFlow port number.
    pub ofport: u32,
    /// How it is built.
    pub attachment: Attachment,
    /// Why.
    pub reason: String,
    /// Interface name inside the pod.
    pub ifname: String,
    /// The pod interface's MAC (veth: read back; representor: the VF's, known to the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network's VNI (`None`: a plain bridge network, see
    /// [`AttachRequest::bridge_network`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

/// The host veth name of an attachment: `sn` + 8 hex digits of a hash of the container id and
/// the pod interface name (stable across retries of the same ADD).
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let h = format!("{container_id}/{ifname}")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    format!("sn{h:08x}")
}

/// Attaches pods to one overlay bridge.
#[derive(Clone, Debug)]
pub struct Attacher {
    overlay: Overlay,
}

impl Attacher {
    /// Attaches to the overlay's bridge.
    pub fn new(overlay: Overlay) -> Self {
        Self { overlay }
    }

    /// A veth attachment for the pod in `netns`, interface `ifname`.
    pub fn veth(&self, netns: NetnsRef, ifname: &str) -> AttachRequest {
        self.request(Kind::Veth(netns), ifname)
    }

    /// A representor attachment: the caller has moved the VF into the pod as `ifname`; this puts
    /// the representor on the bridge with `hw-tc-offload` on.
    pub fn representor(&self, representor: &str, vf: &str, ifname: &str) -> AttachRequest {
        self.request(
            Kind::Representor {
                rep: representor.to_string(),
                vf: vf.to_string(),
            },
            ifname,
        )
    }

    fn request(&self, kind: Kind, ifname: &str) -> AttachRequest {
        AttachRequest {
            overlay: self.overlay.clone(),
            kind,
            ifname: ifname.to_string(),
            network: None,
            pod: None,
            container_id: String::new(),
            mtu: None,
            reason: None,
            vlan: None,
            trunks: Vec::new(),
        }
    }

    /// Removes an attachment's port (and, for a veth, the pair).
    pub fn detach(&self, port: &str) -> DetachRequest {
        DetachRequest {
            overlay: self.overlay.clone(),
            port: port.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Veth(NetnsRef),
    Representor { rep: String, vf: String },
}

/// Builds one attachment.
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct AttachRequest {
    overlay: Overlay,
    kind: Kind,
    ifname: String,
    network: Option<(String, Option<u32>)>,
    pod: Option<String>,
    container_id: String,
    mtu: Option<u32>,
    reason: Option<Reason>,
    vlan: Option<u16>,
    trunks: Vec<u16>,
}

impl AttachRequest {
    /// The network (`NAMESPACE/NAME`) and its VNI: the port joins the overlay and the flows
    /// are recomputed.
    pub fn network(mut self, name: &str, vni: u32) -> Self {
        self.network = Some((name.to_string(), Some(vni)));
        self
    }

    /// A network without an overlay: the port joins the bridge as it is (the bridge's own
    /// forwarding, e.g. `NORMAL` with [`Self::vlan`] / [`Self::trunks`]), and the bridge's
    /// flows are left alone.
    pub fn bridge_network(mut self, name: &str) -> Self {
        self.network = Some((name.to_string(), None));
        self
    }

    /// Access VLAN of the port (`ovs-vsctl set port P tag=VLAN`).
    pub fn vlan(mut self, tag: u16) -> Self {
        self.vlan = Some(tag);
        self
    }

    /// Trunk VLANs of the port (`ovs-vsctl set port P trunks=A,B`).
    pub fn trunks(mut self, vlans: impl IntoIterator<Item = u16>) -> Self {
        self.trunks.extend(vlans);
        self
    }

    /// The pod (`NAMESPACE/NAME`), for reports.
    pub fn pod(mut self, pod: &str) -> Self {
        self.pod = Some(pod.to_string());
        self
    }

    /// The container id (names the host veth, see [`host_veth_name`]; default: the pod's
    /// network namespace).
    pub fn container_id(mut self, id: &str) -> Self {
        self.container_id = id.to_string();
        self
    }

    /// MTU of both ends (leave 50 bytes of Geneve headroom under the underlay's MTU).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// The decision's reason, recorded on the port for the report.
    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Builds the attachment, adds the port (waiting for its ofport) and updates the flows.
    /// On failure nothing is left behind.
    pub async fn execute(self) -> Result<PodAttachment, AttachError> {
        let (network, vni) = self
            .network
            .clone()
            .ok_or_else(|| AttachError::NoNetwork(self.ifname.clone()))?;
        if let Some(vni) = vni.filter(|v| *v > MAX_VNI) {
            return Err(AttachError::BadVni { network, vni });
        }
        let nl = NetlinkHandle::connect()?;
        let (port, attachment, mac, default_reason) = match &self.kind {
            Kind::Veth(netns) => {
                // Without a container id the namespace names the attachment.
                let key = if self.container_id.is_empty() {
                    netns.to_string()
                } else {
                    self.container_id.clone()
                };
                let host = host_veth_name(&key, &self.ifname);
                let mac = self.make_veth(&nl, netns, &host).await?;
                (host, Attachment::Veth, mac, Reason::NoOffloadCapableDevice)
            }
            Kind::Representor { rep, vf } => {
                let mut set = nl.link().set(rep.as_str()).up();
                if let Some(m) = self.mtu {
                    set = set.mtu(m);
                }
                set.execute().await?;
                // Without hw-tc-offload the driver refuses every flower rule on the port.
                EthtoolHandle::connect()
                    .await?
                    .features()
                    .set(rep)
                    .feature("hw-tc-offload", true)
                    .execute()
                    .await?;
                (
                    rep.clone(),
                    Attachment::Representor {
                        vf: vf.clone(),
                        representor: rep.clone(),
                    },
                    None,
                    Reason::SwitchdevVf {
                        vf: vf.clone(),
                        representor: rep.clone(),
                    },
                )
            }
        };
        let reason = self.reason.clone().unwrap_or(default_reason).to_string();
        let ovs = self.overlay.ovs();
        let mut req = ovs
            .port()
            .add(self.overlay.bridge(), &port)
            .external_id(EXT_NETWORK, &network)
            .external_id(EXT_IFNAME, &self.ifname)
            .external_id(EXT_REASON, &reason)
            .external_id(
                EXT_KIND,
                match attachment {
                    Attachment::Veth => "veth",
                    Attachment::Representor { .. } => "representor",
                },
            );
        if let Some(v) = vni {
            req = req.external_id(EXT_VNI, &v.to_string());
        }
        if let Some(t) = self.vlan {
            req = req.tag(t);
        }
        if !self.trunks.is_empty() {
            req = req.trunks(self.trunks.iter().copied());
        }
        if let Some(p) = &self.pod {
            req = req.external_id(EXT_POD, p);
        }
        if !self.container_id.is_empty() {
            req = req.external_id(EXT_CONTAINER, &self.container_id);
        }
        if let Kind::Veth(NetnsRef::Path(p)) = &self.kind {
            req = req.external_id(EXT_NETNS, &p.display().to_string());
        }
        if let Attachment::Representor { vf, .. } = &attachment {
            req = req.external_id(EXT_VF, vf);
        }
        if let Some(m) = &mac {
            req = req.external_id("attached-mac", m);
        }
        let added = async {
            let ofport = req.execute().await?.unwrap_or_default();
            if vni.is_some() {
                self.overlay.sync(&[]).await?;
            }
            Ok::<_, AttachError>(ofport)
        }
        .await;
        let ofport = match added {
            Ok(p) => p,
            Err(e) => {
                let _ = ovs.port().del(&port).if_exists().execute().await;
                if matches!(self.kind, Kind::Veth(_)) {
                    let _ = nl.link().del(port.as_str()).execute().await;
                }
                return Err(e);
            }
        };
        tracing::info!(%port, ofport, %network, ?vni, %reason, "pod attached");
        Ok(PodAttachment {
            port,
            ofport,
            attachment,
            reason,
            ifname: self.ifname,
            mac,
            vni,
        })
    }

    /// Creates the pair, moves the pod end into the pod, names it, sets MTU, turns tx checksum
    /// offload off there and brings both ends up. Returns the pod end's MAC.
    async fn make_veth(
        &self,
        nl: &NetlinkHandle,
        netns: &NetnsRef,
        host: &str,
    ) -> Result<Option<String>, AttachError> {
        let peer = format!("snp{}", &host[2..]);
        // A leftover from an interrupted ADD of the same container/ifname.
        if nl.link().get(host).execute_optional().await?.is_some() {
            nl.link().del(host).execute().await?;
        }
        add_veth(host, &peer).await?;
        let pod_side = async {
            nl.link()
                .set(peer.as_str())
                .netns(netns.clone())
                .execute()
                .await?;
            let (peer2, ifname, mtu) = (peer.clone(), self.ifname.clone(), self.mtu);
            let mac = spawn_in_netns(netns.clone(), move || async move {
                let nl = NetlinkHandle::connect()?;
                let mut set = nl.link().set(peer2.as_str()).name(ifname.clone()).up();
                if let Some(m) = mtu {
                    set = set.mtu(m);
                }
                set.execute().await?;
                // The userspace datapath reads veths through AF_PACKET and never completes
                // CHECKSUM_PARTIAL packets: TCP/UDP from the pod would arrive with bad
                // checksums (lab-userspace notes). Harmless on the kernel datapath.
                EthtoolHandle::connect()
                    .await?
                    .features()
                    .set(&ifname)
                    .feature("tx-checksumming", false)
                    .execute()
                    .await?;
                let l = nl.link().get(LinkId::from(ifname)).execute().await?;
                Ok::<_, AttachError>(l.mac.map(|m| m.to_string()))
            })
            .await??;
            let mut set = nl.link().set(host).up();
            if let Some(m) = self.mtu {
                set = set.mtu(m);
            }
            set.execute().await?;
            Ok::<_, AttachError>(mac)
        }
        .await;
        if pod_side.is_err() {
            // Deleting one end removes the pair, wherever the other end is.
            let _ = nl.link().del(host).execute().await;
        }
        pod_side
    }
}

async fn add_veth(host: &str, peer: &str) -> Result<(), AttachError> {
    let err = |detail: String| AttachError::Veth {
        host: host.to_string(),
        peer: peer.to_string(),
        detail,
    };
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| err(e.to_string()))?;
    let task = tokio::spawn(conn);
    let r = handle
        .link()
        .add(rtnetlink::LinkVeth::new(host, peer).build())
        .execute()
        .await
        .map_err(|e| err(e.to_string()));
    task.abort();
    r
}

/// Removes one attachment.
#[derive(Debug)]
#[must_use = "a request does nothing until execute()"]
pub struct DetachRequest {
    overlay: Overlay,
    port: String,
}

impl DetachRequest {
    /// Deletes the port (idempotent), forgets what was learned towards it, updates the flows
    /// and deletes the host veth if it is one. A representor is left on the host for the
    /// caller to return the VF.
    pub async fn execute(self) -> Result<(), AttachError> {
        let ovs = self.overlay.ovs();
        let row = ovs.view().interface(&self.port).cloned();
        ovs.port().del(&self.port).if_exists().execute().await?;
        let removed: Vec<u32> = row
            .as_ref()
            .and_then(|r| r.ofport)
            .and_then(|p| u32::try_from(p).ok())
            .into_iter()
            .collect();
        // Only an overlay port changes the flows; a plain bridge's flows are not ours.
        if row
            .as_ref()
            .is_some_and(|r| r.external_ids.contains_key(EXT_VNI))
        {
            self.overlay.sync(&removed).await?;
        }
        let is_veth = row
            .as_ref()
            .is_some_and(|r| r.external_ids.get(EXT_KIND).is_some_and(|k| k == "veth"));
        if is_veth {
            let nl = NetlinkHandle::connect()?;
            if nl
                .link()
                .get(self.port.as_str())
                .execute_optional()
                .await?
                .is_some()
            {
                nl.link().del(self.port.as_str()).execute().await?;
            }
        }
        tracing::info!(port = %self.port, "pod detached");
        Ok(())
    }
}
