//! Devlink behind a trait we own: devices, eswitch mode, ports and representors, port
//! functions, device info, rate objects.
//!
//! ```text
//!   DevlinkHandle ─┬─ dev().list() / dev().info(DEV)            devlink dev [info DEV]
//!                  ├─ eswitch(DEV).get() / .set()...execute()   devlink dev eswitch show|set
//!                  ├─ port().list(DEV?) / port().get(PORT)      devlink port show
//!                  ├─ port().function(PORT)...execute()         devlink port function set
//!                  └─ rate().list(DEV?) / rate().leaf(PORT)...execute()
//!                     rate().node(DEV, NAME).add()|set()...execute() / .del()
//!                                                               devlink port function rate ...
//!        │
//!        └── Arc<dyn Devlink> ◄── GenlDevlink  (generic netlink, family "devlink" v1)
//!                             ◄── FakeDevlink  (in memory, records calls; feature test-util)
//! ```
//!
//! The trait is async and object-safe like [`crate::netlink::Netlink`]. No devlink crate
//! exists, so the messages are ours ([`DevlinkMessage`], numbers from
//! include/uapi/linux/devlink.h). A kernel built without devlink (`CONFIG_NET_DEVLINK` off) has
//! no "devlink" family: [`DevlinkHandle::connect`] then fails with [`DevlinkError::Unavailable`]
//! and [`DevlinkHandle::connect_optional`] returns `Ok(None)`; neither is a malfunction.
//!
//! Kernel refusals keep the extack text, e.g. netdevsim's
//! "Port doesn't support function attributes" for a port function `hw_addr`.

mod client;
#[cfg(any(test, feature = "test-util"))]
mod fake;
mod message;
mod types;

use std::{fmt, io, sync::Arc};

use futures::future::BoxFuture;

pub use self::client::GenlDevlink;
#[cfg(any(test, feature = "test-util"))]
pub use self::fake::{DevlinkCall, DevlinkOp, FakeDevlink};
pub use self::message::{DevlinkAttr, DevlinkMessage, PortFunctionAttr, attr, cmd, port_fn_attr};
pub use self::types::{
    DevInfo, DevlinkDev, EncapMode, Eswitch, EswitchMode, InlineMode, Port, PortFlavour,
    PortFunction, PortFunctionOpState, PortFunctionState, PortRef, Rate, RateObject, Versions,
};
use crate::netlink::{KernelError, MacAddr, genl::GenlFailure};

/// Errors of the devlink client; each names the device or port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevlinkError {
    /// This kernel has no devlink generic netlink family.
    #[error("devlink is not available on this kernel (no generic netlink family \"devlink\")")]
    Unavailable,
    /// The generic netlink socket could not be opened.
    #[error("cannot open a generic netlink socket: {0}")]
    Connect(io::Error),
    /// The kernel refused a request, e.g. "set port function hw_addr 02:00:00:00:00:01 on
    /// netdevsim/netdevsim10/128: Port doesn't support function attributes: Operation not
    /// supported (os error 95)".
    #[error("{op}: {kernel}")]
    Kernel {
        /// What was asked, naming the device or port.
        op: String,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The kernel answered something unexpected, or the connection went away.
    #[error("{op}: unexpected devlink reply: {detail}")]
    Unexpected {
        /// What was asked, naming the device or port.
        op: String,
        /// What went wrong.
        detail: String,
    },
    /// A device or port handle that does not parse.
    #[error("invalid devlink {what} {input:?}: expected {expected}")]
    Parse {
        /// "device", "port", "eswitch mode", ...
        what: &'static str,
        /// The text given.
        input: String,
        /// The accepted form.
        expected: &'static str,
    },
}

impl DevlinkError {
    /// The kernel's answer, when this error is one.
    pub fn kernel(&self) -> Option<&KernelError> {
        match self {
            Self::Kernel { kernel, .. } => Some(kernel),
            _ => None,
        }
    }

    /// The driver does not implement the operation: `EOPNOTSUPP`.
    pub fn is_not_supported(&self) -> bool {
        self.errno() == Some(nix::libc::EOPNOTSUPP)
    }

    /// The kernel has no devlink at all.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable)
    }

    /// No such device, port or rate node: `ENODEV` / `ENOENT` / `EINVAL` on a bad index.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(nix::libc::ENODEV) | Some(nix::libc::ENOENT)
        )
    }

    pub(crate) fn from_failure(op: String, failure: GenlFailure) -> Self {
        match failure {
            GenlFailure::NoFamily => Self::Unavailable,
            GenlFailure::Kernel(kernel) => Self::Kernel { op, kernel },
            GenlFailure::Other(detail) => Self::Unexpected { op, detail },
        }
    }
}

/// Result of every devlink operation.
pub type Result<T, E = DevlinkError> = std::result::Result<T, E>;

/// The devlink operations the project needs. Implemented by [`GenlDevlink`] (the kernel) and
/// `FakeDevlink` (memory, for tests). Use it through [`DevlinkHandle`].
pub trait Devlink: Send + Sync + 'static {
    /// Every devlink instance (`devlink dev show`), sorted.
    fn list_devs(&self) -> BoxFuture<'_, Result<Vec<DevlinkDev>>>;

    /// `devlink dev info DEV`.
    fn dev_info(&self, dev: DevlinkDev) -> BoxFuture<'_, Result<DevInfo>>;

    /// `devlink dev eswitch show DEV`.
    fn get_eswitch(&self, dev: DevlinkDev) -> BoxFuture<'_, Result<Eswitch>>;

    /// `devlink dev eswitch set DEV ...`, one request.
    fn set_eswitch(&self, dev: DevlinkDev, change: EswitchChange) -> BoxFuture<'_, Result<()>>;

    /// `devlink port show [DEV]`: every port, or those of one device, sorted.
    fn list_ports(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, Result<Vec<Port>>>;

    /// `devlink port show DEV/INDEX`.
    fn get_port(&self, port: PortRef) -> BoxFuture<'_, Result<Port>>;

    /// One setting of `devlink port function set DEV/INDEX ...`.
    fn set_port_function(
        &self,
        port: PortRef,
        setting: PortFunctionSetting,
    ) -> BoxFuture<'_, Result<()>>;

    /// `devlink port function rate show [DEV]`.
    fn list_rates(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, Result<Vec<Rate>>>;

    /// `devlink port function rate set TARGET ...`, one request.
    fn set_rate(&self, target: RateTarget, change: RateChange) -> BoxFuture<'_, Result<()>>;

    /// `devlink port function rate add DEV/NAME ...`, one request.
    fn add_rate_node(
        &self,
        dev: DevlinkDev,
        name: String,
        change: RateChange,
    ) -> BoxFuture<'_, Result<()>>;

    /// `devlink port function rate del DEV/NAME`.
    fn del_rate_node(&self, dev: DevlinkDev, name: String) -> BoxFuture<'_, Result<()>>;
}

/// The settings of one `devlink dev eswitch set`; `None` leaves a setting alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EswitchChange {
    /// `mode legacy|switchdev`.
    pub mode: Option<EswitchMode>,
    /// `inline-mode none|link|network|transport`.
    pub inline_mode: Option<InlineMode>,
    /// `encap-mode none|basic`.
    pub encap_mode: Option<EncapMode>,
}

impl EswitchChange {
    /// True when no setting is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for EswitchChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut what = Vec::new();
        if let Some(m) = self.mode {
            what.push(format!("mode {m}"));
        }
        if let Some(m) = self.inline_mode {
            what.push(format!("inline-mode {m}"));
        }
        if let Some(m) = self.encap_mode {
            what.push(format!("encap-mode {m}"));
        }
        f.write_str(&what.join(" "))
    }
}

/// One setting of a port function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortFunctionSetting {
    /// `hw_addr MAC`.
    HwAddr(MacAddr),
    /// `state active|inactive`.
    State(PortFunctionState),
}

impl fmt::Display for PortFunctionSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HwAddr(mac) => write!(f, "hw_addr {mac}"),
            Self::State(s) => write!(f, "state {s}"),
        }
    }
}

/// The rate object a rate request is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateTarget {
    /// The leaf of a port (`DEV/INDEX`).
    Leaf(PortRef),
    /// A node (`DEV/NAME`).
    Node(DevlinkDev, String),
}

impl fmt::Display for RateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaf(p) => write!(f, "port {p}"),
            Self::Node(d, n) => write!(f, "rate node {d}/{n}"),
        }
    }
}

/// Where a rate object hangs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateParent {
    /// `parent NODE`.
    Node(String),
    /// `noparent`.
    None,
}

/// The settings of one rate request; `None` leaves a setting alone. Rates are bytes per second.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RateChange {
    /// `tx_share BYTES_PER_SEC`.
    pub tx_share: Option<u64>,
    /// `tx_max BYTES_PER_SEC`.
    pub tx_max: Option<u64>,
    /// `parent NODE` or `noparent`.
    pub parent: Option<RateParent>,
}

impl fmt::Display for RateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut what = Vec::new();
        if let Some(v) = self.tx_share {
            what.push(format!("tx_share {v}"));
        }
        if let Some(v) = self.tx_max {
            what.push(format!("tx_max {v}"));
        }
        match &self.parent {
            Some(RateParent::None) => what.push("noparent".into()),
            Some(RateParent::Node(p)) => what.push(format!("parent {p}")),
            None => {}
        }
        f.write_str(&what.join(" "))
    }
}

/// Entry point: a cheap, cloneable handle over any [`Devlink`] implementation.
#[derive(Clone)]
pub struct DevlinkHandle {
    inner: Arc<dyn Devlink>,
}

impl fmt::Debug for DevlinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevlinkHandle")
    }
}

impl DevlinkHandle {
    /// Wraps an implementation (a [`GenlDevlink`], a `FakeDevlink`, ...).
    pub fn new(inner: impl Devlink) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Wraps a shared implementation.
    pub fn from_arc(inner: Arc<dyn Devlink>) -> Self {
        Self { inner }
    }

    /// Opens a devlink socket in the calling thread's network namespace and resolves the
    /// family. Must be called inside a tokio runtime. A kernel without devlink gives
    /// [`DevlinkError::Unavailable`].
    pub async fn connect() -> Result<Self> {
        Ok(Self::new(GenlDevlink::connect().await?))
    }

    /// Like [`DevlinkHandle::connect`], with "no devlink on this kernel" as `Ok(None)`.
    pub async fn connect_optional() -> Result<Option<Self>> {
        match Self::connect().await {
            Ok(d) => Ok(Some(d)),
            Err(DevlinkError::Unavailable) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The implementation, for passing around as a trait object.
    pub fn inner(&self) -> &Arc<dyn Devlink> {
        &self.inner
    }

    /// Device requests (`devlink dev ...`).
    pub fn dev(&self) -> DevHandle {
        DevHandle {
            dl: Arc::clone(&self.inner),
        }
    }

    /// Eswitch requests for `dev` (`devlink dev eswitch ... DEV`).
    pub fn eswitch(&self, dev: &DevlinkDev) -> EswitchHandle {
        EswitchHandle {
            dl: Arc::clone(&self.inner),
            dev: dev.clone(),
        }
    }

    /// Port requests (`devlink port ...`).
    pub fn port(&self) -> PortHandle {
        PortHandle {
            dl: Arc::clone(&self.inner),
        }
    }

    /// Rate object requests (`devlink port function rate ...`).
    pub fn rate(&self) -> RateHandle {
        RateHandle {
            dl: Arc::clone(&self.inner),
        }
    }
}

/// Device requests.
pub struct DevHandle {
    dl: Arc<dyn Devlink>,
}

impl DevHandle {
    /// `devlink dev show`: every devlink instance, sorted.
    pub async fn list(&self) -> Result<Vec<DevlinkDev>> {
        let mut devs = self.dl.list_devs().await?;
        devs.sort();
        Ok(devs)
    }

    /// `devlink dev info DEV`.
    pub async fn info(&self, dev: &DevlinkDev) -> Result<DevInfo> {
        self.dl.dev_info(dev.clone()).await
    }
}

/// Eswitch requests for one device.
pub struct EswitchHandle {
    dl: Arc<dyn Devlink>,
    dev: DevlinkDev,
}

impl EswitchHandle {
    /// `devlink dev eswitch show DEV`.
    pub async fn get(&self) -> Result<Eswitch> {
        self.dl.get_eswitch(self.dev.clone()).await
    }

    /// `devlink dev eswitch set DEV [mode M] [inline-mode M] [encap-mode M]`.
    pub fn set(&self) -> EswitchSetRequest {
        EswitchSetRequest {
            dl: Arc::clone(&self.dl),
            dev: self.dev.clone(),
            change: EswitchChange::default(),
        }
    }
}

/// `devlink dev eswitch set DEV ...`, sent as one request.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct EswitchSetRequest {
    dl: Arc<dyn Devlink>,
    dev: DevlinkDev,
    change: EswitchChange,
}

impl EswitchSetRequest {
    /// `mode legacy|switchdev`.
    pub fn mode(mut self, mode: EswitchMode) -> Self {
        self.change.mode = Some(mode);
        self
    }

    /// `inline-mode none|link|network|transport`.
    pub fn inline_mode(mut self, mode: InlineMode) -> Self {
        self.change.inline_mode = Some(mode);
        self
    }

    /// `encap-mode none|basic`.
    pub fn encap_mode(mut self, mode: EncapMode) -> Self {
        self.change.encap_mode = Some(mode);
        self
    }

    /// Sends the request (nothing when no setting was given).
    pub async fn execute(self) -> Result<()> {
        if self.change.is_empty() {
            return Ok(());
        }
        self.dl.set_eswitch(self.dev, self.change).await
    }
}

/// Port requests.
pub struct PortHandle {
    dl: Arc<dyn Devlink>,
}

impl PortHandle {
    /// `devlink port show [DEV]`: every port, or those of one device, sorted by device and index.
    pub async fn list(&self, dev: Option<&DevlinkDev>) -> Result<Vec<Port>> {
        let mut ports = self.dl.list_ports(dev.cloned()).await?;
        ports.sort_by(|a, b| (&a.dev, a.index).cmp(&(&b.dev, b.index)));
        Ok(ports)
    }

    /// `devlink port show DEV/INDEX`.
    pub async fn get(&self, port: &PortRef) -> Result<Port> {
        self.dl.get_port(port.clone()).await
    }

    /// `devlink port function set DEV/INDEX ...`.
    pub fn function(&self, port: &PortRef) -> PortFunctionSetRequest {
        PortFunctionSetRequest {
            dl: Arc::clone(&self.dl),
            port: port.clone(),
            settings: Vec::new(),
        }
    }
}

/// `devlink port function set DEV/INDEX [hw_addr MAC] [state active|inactive]`; one request per
/// setting, in the order given, so an error names the one the driver refused.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct PortFunctionSetRequest {
    dl: Arc<dyn Devlink>,
    port: PortRef,
    settings: Vec<PortFunctionSetting>,
}

impl PortFunctionSetRequest {
    /// `hw_addr MAC`.
    pub fn hw_addr(mut self, mac: MacAddr) -> Self {
        self.settings.push(PortFunctionSetting::HwAddr(mac));
        self
    }

    /// `state active|inactive`.
    pub fn state(mut self, state: PortFunctionState) -> Self {
        self.settings.push(PortFunctionSetting::State(state));
        self
    }

    /// Sends the settings, one request each; the first failure stops the rest.
    pub async fn execute(self) -> Result<()> {
        for setting in self.settings {
            self.dl
                .set_port_function(self.port.clone(), setting)
                .await?;
        }
        Ok(())
    }
}

/// Rate object requests.
pub struct RateHandle {
    dl: Arc<dyn Devlink>,
}

impl RateHandle {
    /// `devlink port function rate show [DEV]`.
    pub async fn list(&self, dev: Option<&DevlinkDev>) -> Result<Vec<Rate>> {
        self.dl.list_rates(dev.cloned()).await
    }

    /// `devlink port function rate set DEV/INDEX ...`: the leaf rate object of a port.
    pub fn leaf(&self, port: &PortRef) -> RateSetRequest {
        RateSetRequest {
            dl: Arc::clone(&self.dl),
            target: RateTarget::Leaf(port.clone()),
            add: false,
            change: RateChange::default(),
        }
    }

    /// A rate node of a device.
    pub fn node(&self, dev: &DevlinkDev, name: &str) -> RateNodeHandle {
        RateNodeHandle {
            dl: Arc::clone(&self.dl),
            dev: dev.clone(),
            name: name.to_string(),
        }
    }
}

/// A rate node: add, delete, set.
pub struct RateNodeHandle {
    dl: Arc<dyn Devlink>,
    dev: DevlinkDev,
    name: String,
}

impl RateNodeHandle {
    /// `devlink port function rate add DEV/NAME [tx_share N] [tx_max N]`.
    pub fn add(&self) -> RateSetRequest {
        RateSetRequest {
            add: true,
            ..self.set()
        }
    }

    /// `devlink port function rate set DEV/NAME ...`.
    pub fn set(&self) -> RateSetRequest {
        RateSetRequest {
            dl: Arc::clone(&self.dl),
            target: RateTarget::Node(self.dev.clone(), self.name.clone()),
            add: false,
            change: RateChange::default(),
        }
    }

    /// `devlink port function rate del DEV/NAME` (children must be unparented first).
    pub async fn del(&self) -> Result<()> {
        self.dl
            .del_rate_node(self.dev.clone(), self.name.clone())
            .await
    }
}

/// `devlink port function rate set|add ... [tx_share N] [tx_max N] [parent NODE | noparent]`,
/// one request. Rates are bytes per second.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct RateSetRequest {
    dl: Arc<dyn Devlink>,
    target: RateTarget,
    add: bool,
    change: RateChange,
}

impl RateSetRequest {
    /// `tx_share BYTES_PER_SEC`.
    pub fn tx_share(mut self, bytes_per_sec: u64) -> Self {
        self.change.tx_share = Some(bytes_per_sec);
        self
    }

    /// `tx_max BYTES_PER_SEC`.
    pub fn tx_max(mut self, bytes_per_sec: u64) -> Self {
        self.change.tx_max = Some(bytes_per_sec);
        self
    }

    /// `parent NODE`.
    pub fn parent(mut self, node: &str) -> Self {
        self.change.parent = Some(RateParent::Node(node.to_string()));
        self
    }

    /// `noparent`.
    pub fn no_parent(mut self) -> Self {
        self.change.parent = Some(RateParent::None);
        self
    }

    /// Sends the request.
    pub async fn execute(self) -> Result<()> {
        match self.target {
            RateTarget::Node(dev, name) if self.add => {
                self.dl.add_rate_node(dev, name, self.change).await
            }
            target => self.dl.set_rate(target, self.change).await,
        }
    }
}
