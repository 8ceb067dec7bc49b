//! A recording, in-memory [`Devlink`] for tests (feature `test-util`).
//!
//! Seed it with devices, eswitch modes and ports (PF and VF numbers, controller, netdev), then
//! hand it out as a [`DevlinkHandle`](super::DevlinkHandle). Every call is recorded; calls of a
//! kind can be made to fail with an errno and extack text, and the whole fake can play a kernel
//! without devlink ([`FakeDevlink::set_unavailable`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use nic::devlink::{DevlinkDev, DevlinkHandle, DevlinkOp, EswitchMode, FakeDevlink};
//! let fake = FakeDevlink::new();
//! let dev = DevlinkDev::pci("0000:3b:00.0");
//! fake.add_dev(&dev, EswitchMode::Switchdev);
//! fake.add_uplink(&dev, 65535, 0, "ens1f0");
//! fake.add_vf_port(&dev, 1, 0, 0, Some("pf0vf0"));
//! let dl = DevlinkHandle::new(fake.clone());
//! let ports = dl.port().list(Some(&dev)).await.unwrap();
//! assert_eq!(ports[0].netdev.as_deref(), Some("pf0vf0"));
//! fake.fail_with_message(DevlinkOp::SetEswitch, 95, "Operation not supported");
//! let err = dl.eswitch(&dev).set().mode(EswitchMode::Legacy).execute().await.unwrap_err();
//! assert!(err.is_not_supported());
//! # });
//! ```

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::future::BoxFuture;
use nix::libc::{EBUSY, EEXIST, ENODEV, ENOENT, EOPNOTSUPP};

use super::{
    DevInfo, Devlink, DevlinkDev, DevlinkError, Eswitch, EswitchChange, EswitchMode, Port,
    PortFlavour, PortFunction, PortFunctionSetting, PortRef, Rate, RateChange, RateObject,
    RateParent, RateTarget, Result, Versions,
};
use crate::netlink::KernelError;

/// One call made to the fake, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevlinkCall {
    /// [`Devlink::list_devs`].
    ListDevs,
    /// [`Devlink::dev_info`].
    DevInfo(DevlinkDev),
    /// [`Devlink::get_eswitch`].
    GetEswitch(DevlinkDev),
    /// [`Devlink::set_eswitch`].
    SetEswitch(DevlinkDev, EswitchChange),
    /// [`Devlink::list_ports`].
    ListPorts(Option<DevlinkDev>),
    /// [`Devlink::get_port`].
    GetPort(PortRef),
    /// [`Devlink::set_port_function`].
    SetPortFunction(PortRef, PortFunctionSetting),
    /// [`Devlink::list_rates`].
    ListRates(Option<DevlinkDev>),
    /// [`Devlink::set_rate`].
    SetRate(RateTarget, RateChange),
    /// [`Devlink::add_rate_node`].
    AddRateNode(DevlinkDev, String, RateChange),
    /// [`Devlink::del_rate_node`].
    DelRateNode(DevlinkDev, String),
}

/// The kind of a call, for failure rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DevlinkOp {
    /// List devices.
    ListDevs,
    /// Device info.
    DevInfo,
    /// Read the eswitch.
    GetEswitch,
    /// Change the eswitch.
    SetEswitch,
    /// Dump ports.
    ListPorts,
    /// Get one port.
    GetPort,
    /// Set a port function attribute.
    SetPortFunction,
    /// Dump rates.
    ListRates,
    /// Set a rate.
    SetRate,
    /// Add a rate node.
    AddRateNode,
    /// Delete a rate node.
    DelRateNode,
}

impl DevlinkCall {
    /// The kind of this call.
    pub fn op(&self) -> DevlinkOp {
        match self {
            Self::ListDevs => DevlinkOp::ListDevs,
            Self::DevInfo(_) => DevlinkOp::DevInfo,
            Self::GetEswitch(_) => DevlinkOp::GetEswitch,
            Self::SetEswitch(..) => DevlinkOp::SetEswitch,
            Self::ListPorts(_) => DevlinkOp::ListPorts,
            Self::GetPort(_) => DevlinkOp::GetPort,
            Self::SetPortFunction(..) => DevlinkOp::SetPortFunction,
            Self::ListRates(_) => DevlinkOp::ListRates,
            Self::SetRate(..) => DevlinkOp::SetRate,
            Self::AddRateNode(..) => DevlinkOp::AddRateNode,
            Self::DelRateNode(..) => DevlinkOp::DelRateNode,
        }
    }

    /// What the call asked, as the real client's errors say it.
    fn describe(&self) -> String {
        match self {
            Self::ListDevs => "list devlink devices".into(),
            Self::DevInfo(d) => format!("get info of {d}"),
            Self::GetEswitch(d) => format!("get eswitch of {d}"),
            Self::SetEswitch(d, c) => format!("set eswitch {c} on {d}"),
            Self::ListPorts(Some(d)) => format!("list ports of {d}"),
            Self::ListPorts(None) => "list devlink ports".into(),
            Self::GetPort(p) => format!("get port {p}"),
            Self::SetPortFunction(p, s) => format!("set port function {s} on {p}"),
            Self::ListRates(_) => "list devlink rates".into(),
            Self::SetRate(t, c) => format!("set rate {c} of {t}"),
            Self::AddRateNode(d, n, c) => {
                format!("add {c} of {}", RateTarget::Node(d.clone(), n.clone())).replace("  ", " ")
            }
            Self::DelRateNode(d, n) => {
                format!("delete {}", RateTarget::Node(d.clone(), n.clone()))
            }
        }
    }
}

type Predicate = Box<dyn Fn(&DevlinkCall) -> bool + Send>;

struct FailureRule {
    when: Predicate,
    error: KernelError,
}

struct FakeDev {
    eswitch: Eswitch,
    info: DevInfo,
    ports: BTreeMap<u32, Port>,
    rates: Vec<Rate>,
}

#[derive(Default)]
struct State {
    devs: BTreeMap<DevlinkDev, FakeDev>,
    unavailable: bool,
    calls: Vec<DevlinkCall>,
    failures: Vec<FailureRule>,
}

/// The in-memory [`Devlink`]. Cloning gives another handle on the same state.
#[derive(Clone, Default)]
pub struct FakeDevlink {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeDevlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDevlink").finish_non_exhaustive()
    }
}

fn kernel(call: &DevlinkCall, errno: i32, message: &str) -> DevlinkError {
    DevlinkError::Kernel {
        op: call.describe(),
        kernel: KernelError::with_message(errno, message),
    }
}

impl FakeDevlink {
    /// No devices.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves usable data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a device (replacing one of that name) in eswitch mode `mode`, without ports.
    pub fn add_dev(&self, dev: &DevlinkDev, mode: EswitchMode) {
        self.lock().devs.insert(
            dev.clone(),
            FakeDev {
                eswitch: Eswitch {
                    dev: dev.clone(),
                    mode: Some(mode),
                    inline_mode: None,
                    encap_mode: None,
                },
                info: DevInfo {
                    dev: dev.clone(),
                    driver: None,
                    serial: None,
                    board_serial: None,
                    versions: Versions::default(),
                },
                ports: BTreeMap::new(),
                rates: Vec::new(),
            },
        );
    }

    /// Replaces the `devlink dev info` of a device added before.
    pub fn set_info(&self, info: DevInfo) {
        if let Some(d) = self.lock().devs.get_mut(&info.dev) {
            d.info = info;
        }
    }

    /// Adds (or replaces) a port; its device is added in legacy mode when missing.
    pub fn add_port(&self, port: Port) {
        if !self.lock().devs.contains_key(&port.dev) {
            self.add_dev(&port.dev, EswitchMode::Legacy);
        }
        let mut st = self.lock();
        if let Some(d) = st.devs.get_mut(&port.dev) {
            d.ports.insert(port.index, port);
        }
    }

    /// Adds a `physical` port (an uplink) of PF `pf` with netdev `netdev`.
    pub fn add_uplink(&self, dev: &DevlinkDev, index: u32, pf: u16, netdev: &str) {
        let mut port = Port::new(dev.clone(), index);
        port.flavour = Some(PortFlavour::Physical);
        port.netdev = Some(netdev.to_string());
        port.pf_number = Some(pf);
        port.port_number = Some(u32::from(pf));
        self.add_port(port);
    }

    /// Adds a `pcivf` port of VF `vf` on PF `pf` of controller 0 (this host), with its
    /// representor netdev, a port function and a rate leaf.
    pub fn add_vf_port(
        &self,
        dev: &DevlinkDev,
        index: u32,
        pf: u16,
        vf: u16,
        netdev: Option<&str>,
    ) {
        self.add_vf_port_on(dev, index, 0, pf, vf, netdev);
    }

    /// [`FakeDevlink::add_vf_port`] on controller `controller` (non-zero: an external host,
    /// e.g. the host side of a DPU).
    pub fn add_vf_port_on(
        &self,
        dev: &DevlinkDev,
        index: u32,
        controller: u32,
        pf: u16,
        vf: u16,
        netdev: Option<&str>,
    ) {
        let mut port = Port::new(dev.clone(), index);
        port.flavour = Some(PortFlavour::PciVf);
        port.netdev = netdev.map(str::to_string);
        port.pf_number = Some(pf);
        port.vf_number = Some(vf);
        port.controller = Some(controller);
        port.external = Some(controller != 0);
        port.function = Some(PortFunction::default());
        self.add_port(port);
        let mut st = self.lock();
        if let Some(d) = st.devs.get_mut(dev) {
            d.rates
                .retain(|r| r.object != RateObject::Leaf { port: index });
            d.rates.push(Rate {
                dev: dev.clone(),
                object: RateObject::Leaf { port: index },
                tx_share: None,
                tx_max: None,
                parent: None,
            });
        }
    }

    /// The eswitch of a device.
    pub fn eswitch(&self, dev: &DevlinkDev) -> Option<Eswitch> {
        self.lock().devs.get(dev).map(|d| d.eswitch.clone())
    }

    /// Every port of every device.
    pub fn ports(&self) -> Vec<Port> {
        let st = self.lock();
        st.devs
            .values()
            .flat_map(|d| d.ports.values().cloned())
            .collect()
    }

    /// Every rate object of every device.
    pub fn rates(&self) -> Vec<Rate> {
        let st = self.lock();
        st.devs.values().flat_map(|d| d.rates.clone()).collect()
    }

    /// Plays a kernel without devlink: every call fails with [`DevlinkError::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<DevlinkCall> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Fails every later call of kind `op` with `errno`.
    pub fn fail(&self, op: DevlinkOp, errno: i32) {
        self.fail_when(move |c| c.op() == op, KernelError::new(errno));
    }

    /// Fails every later call of kind `op` with `errno` and an extack message.
    pub fn fail_with_message(&self, op: DevlinkOp, errno: i32, message: &str) {
        self.fail_when(
            move |c| c.op() == op,
            KernelError::with_message(errno, message),
        );
    }

    /// Fails every later call for which `when` is true with `error` (first matching rule wins).
    pub fn fail_when(
        &self,
        when: impl Fn(&DevlinkCall) -> bool + Send + 'static,
        error: KernelError,
    ) {
        self.lock().failures.push(FailureRule {
            when: Box::new(when),
            error,
        });
    }

    /// Removes every failure rule.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Records `call`, applies the failure rules, then runs `f` on the state.
    fn call<T>(
        &self,
        call: DevlinkCall,
        f: impl FnOnce(&mut State, &DevlinkCall) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.lock();
        st.calls.push(call.clone());
        if st.unavailable {
            return Err(DevlinkError::Unavailable);
        }
        if let Some(rule) = st.failures.iter().find(|r| (r.when)(&call)) {
            return Err(DevlinkError::Kernel {
                op: call.describe(),
                kernel: rule.error.clone(),
            });
        }
        f(&mut st, &call)
    }
}

fn dev_mut<'a>(st: &'a mut State, dev: &DevlinkDev, call: &DevlinkCall) -> Result<&'a mut FakeDev> {
    st.devs
        .get_mut(dev)
        .ok_or_else(|| kernel(call, ENODEV, "devlink instance not found"))
}

fn rate_mut<'a>(d: &'a mut FakeDev, target: &RateTarget) -> Option<&'a mut Rate> {
    d.rates.iter_mut().find(|r| match (target, &r.object) {
        (RateTarget::Leaf(p), RateObject::Leaf { port }) => p.index == *port,
        (RateTarget::Node(_, n), RateObject::Node { name }) => n == name,
        _ => false,
    })
}

fn apply_rate(
    d: &mut FakeDev,
    rate: &mut Rate,
    change: &RateChange,
    call: &DevlinkCall,
) -> Result<()> {
    if let Some(RateParent::Node(p)) = &change.parent {
        let known = d
            .rates
            .iter()
            .any(|r| r.object == RateObject::Node { name: p.clone() });
        if !known {
            return Err(kernel(call, ENODEV, "rate node not found"));
        }
    }
    if let Some(v) = change.tx_share {
        rate.tx_share = Some(v);
    }
    if let Some(v) = change.tx_max {
        rate.tx_max = Some(v);
    }
    match &change.parent {
        Some(RateParent::Node(p)) => rate.parent = Some(p.clone()),
        Some(RateParent::None) => rate.parent = None,
        None => {}
    }
    Ok(())
}

impl Devlink for FakeDevlink {
    fn list_devs(&self) -> BoxFuture<'_, Result<Vec<DevlinkDev>>> {
        let r = self.call(DevlinkCall::ListDevs, |st, _| {
            Ok(st.devs.keys().cloned().collect())
        });
        Box::pin(async move { r })
    }

    fn dev_info(&self, dev: DevlinkDev) -> BoxFuture<'_, Result<DevInfo>> {
        let r = self.call(DevlinkCall::DevInfo(dev.clone()), |st, c| {
            Ok(dev_mut(st, &dev, c)?.info.clone())
        });
        Box::pin(async move { r })
    }

    fn get_eswitch(&self, dev: DevlinkDev) -> BoxFuture<'_, Result<Eswitch>> {
        let r = self.call(DevlinkCall::GetEswitch(dev.clone()), |st, c| {
            Ok(dev_mut(st, &dev, c)?.eswitch.clone())
        });
        Box::pin(async move { r })
    }

    fn set_eswitch(&self, dev: DevlinkDev, change: EswitchChange) -> BoxFuture<'_, Result<()>> {
        let r = self.call(DevlinkCall::SetEswitch(dev.clone(), change), |st, c| {
            let e = &mut dev_mut(st, &dev, c)?.eswitch;
            e.mode = change.mode.or(e.mode);
            e.inline_mode = change.inline_mode.or(e.inline_mode);
            e.encap_mode = change.encap_mode.or(e.encap_mode);
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn list_ports(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, Result<Vec<Port>>> {
        let r = self.call(DevlinkCall::ListPorts(dev.clone()), |st, _| {
            Ok(st
                .devs
                .iter()
                .filter(|(d, _)| dev.as_ref().is_none_or(|want| want == *d))
                .flat_map(|(_, d)| d.ports.values().cloned())
                .collect())
        });
        Box::pin(async move { r })
    }

    fn get_port(&self, port: PortRef) -> BoxFuture<'_, Result<Port>> {
        let r = self.call(DevlinkCall::GetPort(port.clone()), |st, c| {
            dev_mut(st, &port.dev, c)?
                .ports
                .get(&port.index)
                .cloned()
                .ok_or_else(|| kernel(c, ENODEV, "devlink port not found"))
        });
        Box::pin(async move { r })
    }

    fn set_port_function(
        &self,
        port: PortRef,
        setting: PortFunctionSetting,
    ) -> BoxFuture<'_, Result<()>> {
        let r = self.call(
            DevlinkCall::SetPortFunction(port.clone(), setting),
            |st, c| {
                let p = dev_mut(st, &port.dev, c)?
                    .ports
                    .get_mut(&port.index)
                    .ok_or_else(|| kernel(c, ENODEV, "devlink port not found"))?;
                let f = p.function.as_mut().ok_or_else(|| {
                    kernel(c, EOPNOTSUPP, "Port doesn't support function attributes")
                })?;
                match setting {
                    PortFunctionSetting::HwAddr(mac) => f.hw_addr = Some(mac.to_string()),
                    PortFunctionSetting::State(s) => f.state = Some(s),
                }
                Ok(())
            },
        );
        Box::pin(async move { r })
    }

    fn list_rates(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, Result<Vec<Rate>>> {
        let r = self.call(DevlinkCall::ListRates(dev.clone()), |st, _| {
            Ok(st
                .devs
                .iter()
                .filter(|(d, _)| dev.as_ref().is_none_or(|want| want == *d))
                .flat_map(|(_, d)| d.rates.clone())
                .collect())
        });
        Box::pin(async move { r })
    }

    fn set_rate(&self, target: RateTarget, change: RateChange) -> BoxFuture<'_, Result<()>> {
        let call = DevlinkCall::SetRate(target.clone(), change.clone());
        let r = self.call(call, |st, c| {
            let dev = match &target {
                RateTarget::Leaf(p) => &p.dev,
                RateTarget::Node(d, _) => d,
            };
            let d = dev_mut(st, dev, c)?;
            let mut rate = rate_mut(d, &target)
                .cloned()
                .ok_or_else(|| kernel(c, ENODEV, "rate object not found"))?;
            apply_rate(d, &mut rate, &change, c)?;
            if let Some(slot) = rate_mut(d, &target) {
                *slot = rate;
            }
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn add_rate_node(
        &self,
        dev: DevlinkDev,
        name: String,
        change: RateChange,
    ) -> BoxFuture<'_, Result<()>> {
        let call = DevlinkCall::AddRateNode(dev.clone(), name.clone(), change.clone());
        let r = self.call(call, |st, c| {
            let d = dev_mut(st, &dev, c)?;
            let target = RateTarget::Node(dev.clone(), name.clone());
            if rate_mut(d, &target).is_some() {
                return Err(kernel(c, EEXIST, "rate node already exists"));
            }
            let mut rate = Rate {
                dev: dev.clone(),
                object: RateObject::Node { name: name.clone() },
                tx_share: None,
                tx_max: None,
                parent: None,
            };
            apply_rate(d, &mut rate, &change, c)?;
            d.rates.push(rate);
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn del_rate_node(&self, dev: DevlinkDev, name: String) -> BoxFuture<'_, Result<()>> {
        let r = self.call(
            DevlinkCall::DelRateNode(dev.clone(), name.clone()),
            |st, c| {
                let d = dev_mut(st, &dev, c)?;
                let before = d.rates.len();
                let node = RateObject::Node { name: name.clone() };
                if d.rates
                    .iter()
                    .any(|r| r.parent.as_deref() == Some(name.as_str()))
                {
                    return Err(kernel(c, EBUSY, "rate node has children"));
                }
                d.rates.retain(|r| r.object != node);
                if d.rates.len() == before {
                    return Err(kernel(c, ENOENT, "rate node not found"));
                }
                Ok(())
            },
        );
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devlink::{DevlinkHandle, PortFunctionState};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn seeded_ports_come_back_sorted_and_calls_are_recorded() {
        let fake = FakeDevlink::new();
        let dev = DevlinkDev::pci("0000:3b:00.0");
        fake.add_dev(&dev, EswitchMode::Switchdev);
        fake.add_vf_port_on(&dev, 3, 1, 0, 2, Some("c1pf0vf2"));
        fake.add_uplink(&dev, 1, 0, "ens1f0np0");
        let dl = DevlinkHandle::new(fake.clone());
        rt().block_on(async {
            let ports = dl.port().list(Some(&dev)).await.unwrap();
            assert_eq!(ports.iter().map(|p| p.index).collect::<Vec<_>>(), [1, 3]);
            let vf = &ports[1];
            assert_eq!(
                (vf.controller, vf.external, vf.pf_number, vf.vf_number),
                (Some(1), Some(true), Some(0), Some(2))
            );
            let other = DevlinkDev::pci("0000:3b:00.1");
            assert!(dl.port().list(Some(&other)).await.unwrap().is_empty());
            let e = dl.eswitch(&other).get().await.unwrap_err();
            assert!(e.is_not_found(), "{e}");
            assert_eq!(
                e.to_string().split(':').next(),
                Some("get eswitch of pci/0000")
            );
        });
        assert_eq!(
            fake.calls(),
            [
                DevlinkCall::ListPorts(Some(dev)),
                DevlinkCall::ListPorts(Some(DevlinkDev::pci("0000:3b:00.1"))),
                DevlinkCall::GetEswitch(DevlinkDev::pci("0000:3b:00.1")),
            ]
        );
    }

    #[test]
    fn eswitch_port_function_and_rates_change_state() {
        let fake = FakeDevlink::new();
        let dev = DevlinkDev::new("netdevsim", "netdevsim10");
        fake.add_dev(&dev, EswitchMode::Legacy);
        fake.add_uplink(&dev, 0, 0, "eth0");
        fake.add_vf_port(&dev, 128, 0, 0, Some("eth1"));
        let dl = DevlinkHandle::new(fake.clone());
        let vf = PortRef {
            dev: dev.clone(),
            index: 128,
        };
        let uplink = PortRef {
            dev: dev.clone(),
            index: 0,
        };
        rt().block_on(async {
            dl.eswitch(&dev)
                .set()
                .mode(EswitchMode::Switchdev)
                .execute()
                .await
                .unwrap();
            assert_eq!(
                dl.eswitch(&dev).get().await.unwrap().mode,
                Some(EswitchMode::Switchdev)
            );
            dl.port()
                .function(&vf)
                .hw_addr("02:00:00:00:00:11".parse().unwrap())
                .state(PortFunctionState::Active)
                .execute()
                .await
                .unwrap();
            let f = dl.port().get(&vf).await.unwrap().function.unwrap();
            assert_eq!(f.hw_addr.as_deref(), Some("02:00:00:00:00:11"));
            assert_eq!(f.state, Some(PortFunctionState::Active));
            let e = dl
                .port()
                .function(&uplink)
                .hw_addr("02:00:00:00:00:12".parse().unwrap())
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_not_supported(), "{e}");
            assert_eq!(e.extack(), Some("Port doesn't support function attributes"));

            dl.rate()
                .node(&dev, "group1")
                .add()
                .tx_max(1000)
                .execute()
                .await
                .unwrap();
            let e = dl
                .rate()
                .node(&dev, "group1")
                .add()
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(EEXIST));
            dl.rate()
                .leaf(&vf)
                .tx_share(10)
                .parent("group1")
                .execute()
                .await
                .unwrap();
            let e = dl.rate().node(&dev, "group1").del().await.unwrap_err();
            assert_eq!(e.errno(), Some(EBUSY));
            let e = dl
                .rate()
                .leaf(&vf)
                .parent("nope")
                .execute()
                .await
                .unwrap_err();
            assert!(e.is_not_found(), "{e}");
            let rates = dl.rate().list(Some(&dev)).await.unwrap();
            let leaf = rates
                .iter()
                .find(|r| r.object == RateObject::Leaf { port: 128 })
                .unwrap();
            assert_eq!(
                (leaf.tx_share, leaf.parent.as_deref()),
                (Some(10), Some("group1"))
            );
            dl.rate().leaf(&vf).no_parent().execute().await.unwrap();
            dl.rate().node(&dev, "group1").del().await.unwrap();
            assert_eq!(fake.rates().len(), 1);
        });
    }

    #[test]
    fn failures_and_absence() {
        let fake = FakeDevlink::new();
        let dev = DevlinkDev::pci("0000:01:00.0");
        fake.add_dev(&dev, EswitchMode::Legacy);
        let dl = DevlinkHandle::new(fake.clone());
        fake.fail_with_message(
            DevlinkOp::SetEswitch,
            EOPNOTSUPP,
            "Mode change not supported",
        );
        rt().block_on(async {
            let e = dl
                .eswitch(&dev)
                .set()
                .mode(EswitchMode::Switchdev)
                .execute()
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "set eswitch mode switchdev on pci/0000:01:00.0: Mode change not supported: \
                 Operation not supported (os error 95)"
            );
            // an empty change sends nothing
            dl.eswitch(&dev).set().execute().await.unwrap();
            fake.clear_failures();
            fake.set_unavailable(true);
            assert!(dl.dev().list().await.unwrap_err().is_unavailable());
        });
        assert_eq!(fake.calls().len(), 2);
    }
}
