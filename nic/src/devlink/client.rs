//! [`GenlDevlink`]: the [`Devlink`] trait over a generic netlink socket, and the request
//! messages it sends.

use futures::future::BoxFuture;
use genetlink::GenetlinkHandle;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP};

use super::{
    DevInfo, Devlink, DevlinkAttr, DevlinkDev, DevlinkError, DevlinkMessage, Eswitch,
    EswitchChange, Port, PortFunctionAttr, PortFunctionSetting, PortRef, Rate, RateChange,
    RateParent, RateTarget, Result, cmd,
};
use crate::netlink::genl;

/// A devlink client on generic netlink, in the network namespace of the thread that connected
/// it.
#[derive(Clone, Debug)]
pub struct GenlDevlink {
    handle: GenetlinkHandle,
}

impl GenlDevlink {
    /// Opens the socket and resolves the "devlink" family. Must be called inside a tokio
    /// runtime. A kernel without devlink gives [`DevlinkError::Unavailable`].
    pub async fn connect() -> Result<Self> {
        let handle = genl::connect().map_err(DevlinkError::Connect)?;
        genl::resolve::<DevlinkMessage>(&handle)
            .await
            .map_err(|f| DevlinkError::from_failure("resolve the devlink family".into(), f))?;
        Ok(Self { handle })
    }

    async fn request(
        &self,
        op: impl FnOnce() -> String,
        msg: DevlinkMessage,
        flags: u16,
    ) -> Result<Vec<DevlinkMessage>> {
        genl::request(&self.handle, msg, flags)
            .await
            .map_err(|f| DevlinkError::from_failure(op(), f))
    }

    async fn request_one(&self, op: String, msg: DevlinkMessage) -> Result<DevlinkMessage> {
        let mut replies = self.request(|| op.clone(), msg, NLM_F_ACK).await?;
        if replies.is_empty() {
            return Err(DevlinkError::Unexpected {
                op,
                detail: "no reply message".into(),
            });
        }
        Ok(replies.swap_remove(0))
    }
}

/// The attributes that name a rate object.
fn rate_target_attrs(target: &RateTarget) -> Vec<DevlinkAttr> {
    match target {
        RateTarget::Leaf(p) => p.handle_attrs(),
        RateTarget::Node(d, n) => {
            let mut a = d.handle_attrs();
            a.push(DevlinkAttr::RateNodeName(n.clone()));
            a
        }
    }
}

/// `DEVLINK_CMD_ESWITCH_SET` for `change`.
pub(super) fn eswitch_set_message(dev: &DevlinkDev, change: &EswitchChange) -> DevlinkMessage {
    let mut attrs = dev.handle_attrs();
    if let Some(m) = change.mode {
        attrs.push(DevlinkAttr::EswitchMode(m.raw()));
    }
    if let Some(m) = change.inline_mode {
        attrs.push(DevlinkAttr::EswitchInlineMode(m.raw()));
    }
    if let Some(m) = change.encap_mode {
        attrs.push(DevlinkAttr::EswitchEncapMode(m.raw()));
    }
    DevlinkMessage::new(cmd::ESWITCH_SET, attrs)
}

/// `DEVLINK_CMD_PORT_SET` with one nested port function attribute.
pub(super) fn port_function_message(
    port: &PortRef,
    setting: &PortFunctionSetting,
) -> DevlinkMessage {
    let f = match setting {
        PortFunctionSetting::HwAddr(mac) => PortFunctionAttr::HwAddr(mac.0.to_vec()),
        PortFunctionSetting::State(s) => PortFunctionAttr::State(s.raw()),
    };
    let mut attrs = port.handle_attrs();
    attrs.push(DevlinkAttr::PortFunction(vec![f]));
    DevlinkMessage::new(cmd::PORT_SET, attrs)
}

/// `DEVLINK_CMD_RATE_SET` (or `RATE_NEW` for `cmd`) for `change`.
pub(super) fn rate_message(cmd: u8, target: &RateTarget, change: &RateChange) -> DevlinkMessage {
    let mut attrs = rate_target_attrs(target);
    if let Some(v) = change.tx_share {
        attrs.push(DevlinkAttr::RateTxShare(v));
    }
    if let Some(v) = change.tx_max {
        attrs.push(DevlinkAttr::RateTxMax(v));
    }
    match &change.parent {
        // The kernel takes an empty parent name as "detach".
        Some(RateParent::None) => attrs.push(DevlinkAttr::RateParentNodeName(String::new())),
        Some(RateParent::Node(p)) => attrs.push(DevlinkAttr::RateParentNodeName(p.clone())),
        None => {}
    }
    DevlinkMessage::new(cmd, attrs)
}

impl Devlink for GenlDevlink {
    fn list_devs(&self) -> BoxFuture<'_, Result<Vec<DevlinkDev>>> {
        Box::pin(async move {
            let msg = DevlinkMessage::new(cmd::GET, vec![]);
            let replies = self
                .request(|| "list devlink devices".into(), msg, NLM_F_DUMP)
                .await?;
            let mut devs: Vec<_> = replies
                .iter()
                .filter_map(DevlinkDev::from_message)
                .collect();
            devs.sort();
            Ok(devs)
        })
    }

    fn dev_info(&self, dev: DevlinkDev) -> BoxFuture<'_, Result<DevInfo>> {
        Box::pin(async move {
            let msg = DevlinkMessage::new(cmd::INFO_GET, dev.handle_attrs());
            let reply = self.request_one(format!("get info of {dev}"), msg).await?;
            Ok(DevInfo::from_message(&dev, &reply))
        })
    }

    fn get_eswitch(&self, dev: DevlinkDev) -> BoxFuture<'_, Result<Eswitch>> {
        Box::pin(async move {
            let msg = DevlinkMessage::new(cmd::ESWITCH_GET, dev.handle_attrs());
            let reply = self
                .request_one(format!("get eswitch of {dev}"), msg)
                .await?;
            Ok(Eswitch::from_message(&dev, &reply))
        })
    }

    fn set_eswitch(&self, dev: DevlinkDev, change: EswitchChange) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let op = || format!("set eswitch {change} on {dev}");
            self.request(op, eswitch_set_message(&dev, &change), NLM_F_ACK)
                .await?;
            Ok(())
        })
    }

    fn list_ports(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, Result<Vec<Port>>> {
        Box::pin(async move {
            // Newer kernels filter the dump by the handle; older ones ignore it, so filter here too.
            let attrs = dev
                .as_ref()
                .map(DevlinkDev::handle_attrs)
                .unwrap_or_default();
            let op = || match &dev {
                Some(d) => format!("list ports of {d}"),
                None => "list devlink ports".into(),
            };
            let msg = DevlinkMessage::new(cmd::PORT_GET, attrs);
            let replies = self.request(op, msg, NLM_F_DUMP).await?;
            let mut ports: Vec<Port> = replies
                .iter()
                .filter_map(Port::from_message)
                .filter(|p| dev.as_ref().is_none_or(|d| &p.dev == d))
                .collect();
            ports.sort_by(|a, b| (&a.dev, a.index).cmp(&(&b.dev, b.index)));
            Ok(ports)
        })
    }

    fn get_port(&self, port: PortRef) -> BoxFuture<'_, Result<Port>> {
        Box::pin(async move {
            let op = format!("get port {port}");
            let msg = DevlinkMessage::new(cmd::PORT_GET, port.handle_attrs());
            let reply = self.request_one(op.clone(), msg).await?;
            Port::from_message(&reply).ok_or_else(|| DevlinkError::Unexpected {
                op,
                detail: "reply without a port handle".into(),
            })
        })
    }

    fn set_port_function(
        &self,
        port: PortRef,
        setting: PortFunctionSetting,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let op = || format!("set port function {setting} on {port}");
            self.request(op, port_function_message(&port, &setting), NLM_F_ACK)
                .await?;
            Ok(())
        })
    }

    fn list_rates(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, Result<Vec<Rate>>> {
        Box::pin(async move {
            let attrs = dev
                .as_ref()
                .map(DevlinkDev::handle_attrs)
                .unwrap_or_default();
            let msg = DevlinkMessage::new(cmd::RATE_GET, attrs);
            let replies = self
                .request(|| "list devlink rates".into(), msg, NLM_F_DUMP)
                .await?;
            Ok(replies
                .iter()
                .filter_map(Rate::from_message)
                .filter(|r| dev.as_ref().is_none_or(|d| &r.dev == d))
                .collect())
        })
    }

    fn set_rate(&self, target: RateTarget, change: RateChange) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let op = || format!("set rate {change} of {target}");
            self.request(op, rate_message(cmd::RATE_SET, &target, &change), NLM_F_ACK)
                .await?;
            Ok(())
        })
    }

    fn add_rate_node(
        &self,
        dev: DevlinkDev,
        name: String,
        change: RateChange,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let target = RateTarget::Node(dev, name);
            let op = || format!("add {change} of {target}").replace("  ", " ");
            self.request(op, rate_message(cmd::RATE_NEW, &target, &change), NLM_F_ACK)
                .await?;
            Ok(())
        })
    }

    fn del_rate_node(&self, dev: DevlinkDev, name: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let target = RateTarget::Node(dev, name);
            let msg = DevlinkMessage::new(cmd::RATE_DEL, rate_target_attrs(&target));
            self.request(|| format!("delete {target}"), msg, NLM_F_ACK)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, NLA_F_NESTED, ParseableParametrized};
    use netlink_packet_generic::GenlHeader;

    use super::*;
    use crate::devlink::{
        EncapMode, EswitchMode, InlineMode, PortFlavour, PortFunctionOpState, PortFunctionState,
        RateObject,
    };

    /// A hand-rolled attribute, independent of the encoder under test.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn parse(buf: &[u8], cmd: u8) -> DevlinkMessage {
        DevlinkMessage::parse_with_param(buf, GenlHeader { cmd, version: 1 }).unwrap()
    }

    fn emit(msg: &DevlinkMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    /// Reply to `devlink port show netdevsim/netdevsim10/129` for a VF representor, the
    /// attributes in the order devlink_nl_port_fill() puts them.
    fn vf_rep_port_reply() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(nla(1, &cstr("netdevsim")));
        b.extend(nla(2, &cstr("netdevsim10")));
        b.extend(nla(3, &129u32.to_ne_bytes()));
        b.extend(nla(4, &2u16.to_ne_bytes()));
        b.extend(nla(6, &7u32.to_ne_bytes()));
        b.extend(nla(7, &cstr("eth4")));
        b.extend(nla(77, &4u16.to_ne_bytes()));
        b.extend(nla(150, &0u32.to_ne_bytes()));
        b.extend(nla(127, &0u16.to_ne_bytes()));
        b.extend(nla(128, &1u16.to_ne_bytes()));
        b.extend(nla(149, &[0]));
        let mut f = nla(1, &[0x02, 0, 0, 0, 0, 0x11]);
        f.extend(nla(2, &[1]));
        f.extend(nla(3, &[1]));
        b.extend(nla(145 | NLA_F_NESTED, &f));
        b.extend(nla(200, &[1, 2, 3, 4])); // an attribute from a newer kernel
        b
    }

    #[test]
    fn port_reply_decodes_to_a_representor_port() {
        let msg = parse(&vf_rep_port_reply(), cmd::PORT_GET);
        let port = Port::from_message(&msg).unwrap();
        assert_eq!(port.port_ref().to_string(), "netdevsim/netdevsim10/129");
        assert_eq!(port.flavour, Some(PortFlavour::PciVf));
        assert_eq!(port.netdev.as_deref(), Some("eth4"));
        assert_eq!(port.netdev_ifindex, Some(7));
        assert_eq!(
            (port.pf_number, port.vf_number, port.sf_number),
            (Some(0), Some(1), None)
        );
        assert_eq!((port.controller, port.external), (Some(0), Some(false)));
        let f = port.function.clone().unwrap();
        assert_eq!(f.hw_addr.as_deref(), Some("02:00:00:00:00:11"));
        assert_eq!(f.state, Some(PortFunctionState::Active));
        assert_eq!(f.opstate, Some(PortFunctionOpState::Attached));
        let json = serde_json::to_value(&port).unwrap();
        assert_eq!(json["dev"], "netdevsim/netdevsim10");
        assert_eq!(json["flavour"], "pcivf");
        assert_eq!(json["vfNumber"], 1);
        assert_eq!(json["sfNumber"], serde_json::Value::Null);
        // and the decoded message encodes back to the same bytes
        assert_eq!(emit(&msg), vf_rep_port_reply());
    }

    #[test]
    fn eswitch_set_request_bytes() {
        let dev: DevlinkDev = "pci/0000:01:00.0".parse().unwrap();
        let change = EswitchChange {
            mode: Some(EswitchMode::Switchdev),
            inline_mode: Some(InlineMode::Transport),
            encap_mode: Some(EncapMode::Basic),
        };
        let mut want = nla(1, &cstr("pci"));
        want.extend(nla(2, &cstr("0000:01:00.0")));
        want.extend(nla(25, &1u16.to_ne_bytes()));
        want.extend(nla(26, &[3]));
        want.extend(nla(62, &[1]));
        let msg = eswitch_set_message(&dev, &change);
        assert_eq!(msg.cmd, 30);
        assert_eq!(emit(&msg), want);
    }

    #[test]
    fn eswitch_reply_without_inline_and_encap() {
        let mut b = nla(1, &cstr("netdevsim"));
        b.extend(nla(2, &cstr("netdevsim10")));
        b.extend(nla(25, &0u16.to_ne_bytes()));
        let dev = DevlinkDev::new("netdevsim", "netdevsim10");
        let e = Eswitch::from_message(&dev, &parse(&b, cmd::ESWITCH_GET));
        assert_eq!(e.mode, Some(EswitchMode::Legacy));
        assert_eq!(
            e.mode.and_then(EswitchMode::to_inventory),
            Some(crds::inventory::EswitchMode::Legacy)
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"dev": "netdevsim/netdevsim10", "mode": "legacy"})
        );
    }

    #[test]
    fn port_function_set_nests_the_function_attributes() {
        let port: PortRef = "netdevsim/netdevsim10/128".parse().unwrap();
        let msgs = [
            PortFunctionSetting::HwAddr("02:00:00:00:00:01".parse().unwrap()),
            PortFunctionSetting::State(PortFunctionState::Inactive),
        ]
        .map(|s| port_function_message(&port, &s));
        let mut want = nla(1, &cstr("netdevsim"));
        want.extend(nla(2, &cstr("netdevsim10")));
        want.extend(nla(3, &128u32.to_ne_bytes()));
        want.extend(nla(145 | NLA_F_NESTED, &nla(1, &[2, 0, 0, 0, 0, 1])));
        assert_eq!(msgs[0].cmd, 6);
        assert_eq!(emit(&msgs[0]), want);
        assert_eq!(
            msgs[1].attrs[3],
            DevlinkAttr::PortFunction(vec![PortFunctionAttr::State(0)])
        );
    }

    #[test]
    fn info_reply_collects_versions() {
        let version = |name: &str, value: &str| {
            let mut v = nla(103, &cstr(name));
            v.extend(nla(104, &cstr(value)));
            v
        };
        let mut b = nla(1, &cstr("pci"));
        b.extend(nla(2, &cstr("0000:03:00.0")));
        b.extend(nla(98, &cstr("mlx5_core")));
        b.extend(nla(99, &cstr("MT2034X12345")));
        b.extend(nla(
            100 | NLA_F_NESTED,
            &version("board.id", "MT_0000000013"),
        ));
        b.extend(nla(
            101 | NLA_F_NESTED,
            &version("fw.version", "22.36.1010"),
        ));
        b.extend(nla(
            101 | NLA_F_NESTED,
            &version("fw.psid", "MT_0000000013"),
        ));
        b.extend(nla(
            102 | NLA_F_NESTED,
            &version("fw.version", "22.37.1014"),
        ));
        let dev = DevlinkDev::pci("0000:03:00.0");
        let info = DevInfo::from_message(&dev, &parse(&b, cmd::INFO_GET));
        assert_eq!(info.driver.as_deref(), Some("mlx5_core"));
        assert_eq!(info.serial.as_deref(), Some("MT2034X12345"));
        assert_eq!(info.versions.fixed["board.id"], "MT_0000000013");
        assert_eq!(info.versions.running.len(), 2);
        assert_eq!(info.versions.stored["fw.version"], "22.37.1014");
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["versions"]["running"]["fw.version"], "22.36.1010");
        assert!(json.get("boardSerial").is_none());
    }

    #[test]
    fn rate_replies_and_requests() {
        // A leaf as devlink_nl_rate_fill() sends it: u64 rates behind DEVLINK_ATTR_PAD.
        let mut b = nla(1, &cstr("netdevsim"));
        b.extend(nla(2, &cstr("netdevsim10")));
        b.extend(nla(165, &0u16.to_ne_bytes()));
        b.extend(nla(3, &128u32.to_ne_bytes()));
        b.extend(nla(61, &[]));
        b.extend(nla(166, &1_000_000u64.to_ne_bytes()));
        b.extend(nla(61, &[]));
        b.extend(nla(167, &5_000_000u64.to_ne_bytes()));
        b.extend(nla(169, &cstr("group1")));
        let rate = Rate::from_message(&parse(&b, cmd::RATE_GET)).unwrap();
        assert_eq!(rate.object, RateObject::Leaf { port: 128 });
        assert_eq!(
            (rate.tx_share, rate.tx_max),
            (Some(1_000_000), Some(5_000_000))
        );
        assert_eq!(rate.parent.as_deref(), Some("group1"));

        let dev = DevlinkDev::new("netdevsim", "netdevsim10");
        let add = rate_message(
            cmd::RATE_NEW,
            &RateTarget::Node(dev.clone(), "group1".into()),
            &RateChange {
                tx_max: Some(10_000_000),
                ..Default::default()
            },
        );
        assert_eq!(add.cmd, cmd::RATE_NEW);
        let mut want = nla(1, &cstr("netdevsim"));
        want.extend(nla(2, &cstr("netdevsim10")));
        want.extend(nla(168, &cstr("group1")));
        want.extend(nla(167, &10_000_000u64.to_ne_bytes()));
        assert_eq!(emit(&add), want);
        let port = PortRef { dev, index: 128 };
        let unparent = rate_message(
            cmd::RATE_SET,
            &RateTarget::Leaf(port),
            &RateChange {
                parent: Some(RateParent::None),
                ..Default::default()
            },
        );
        assert_eq!(unparent.cmd, cmd::RATE_SET);
        assert_eq!(
            unparent.attrs.last(),
            Some(&DevlinkAttr::RateParentNodeName(String::new()))
        );
    }

    #[test]
    fn handles_parse_and_print() {
        let d: DevlinkDev = "pci/0000:01:00.0".parse().unwrap();
        assert_eq!((d.bus.as_str(), d.name.as_str()), ("pci", "0000:01:00.0"));
        let p: PortRef = "auxiliary/mlx5_core.sf.2/65535".parse().unwrap();
        assert_eq!(p.index, 65535);
        assert_eq!(p.to_string(), "auxiliary/mlx5_core.sf.2/65535");
        for bad in ["", "pci", "pci/", "/x", "pci/a/b/c"] {
            assert!(bad.parse::<DevlinkDev>().is_err(), "{bad}");
        }
        for bad in ["pci/0000:01:00.0", "pci/0000:01:00.0/x", "1"] {
            assert!(bad.parse::<PortRef>().is_err(), "{bad}");
        }
        assert_eq!(
            "switchdev".parse::<EswitchMode>().unwrap(),
            EswitchMode::Switchdev
        );
        assert!("offload".parse::<EswitchMode>().is_err());
        assert_eq!(PortFlavour::from_raw(7).to_string(), "pcisf");
        assert_eq!(PortFlavour::from_raw(42).to_string(), "42");
    }

    #[test]
    fn truncated_replies_do_not_panic() {
        let full = vf_rep_port_reply();
        for cut in 0..full.len() {
            let _ =
                DevlinkMessage::parse_with_param(&full[..cut], GenlHeader { cmd: 5, version: 1 });
        }
    }
}
