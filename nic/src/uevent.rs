//! Kernel uevents (`NETLINK_KOBJECT_UEVENT`, what `udevadm monitor --kernel` shows): PCI
//! functions added, removed, bound and unbound, net devices added and removed. inotify does not
//! see the kernel change `/sys`; this socket does, as it happens.
//!
//! ```text
//!   kernel ──"bind@/devices/pci0000:00/0000:00:02.0/0000:01:10.0\0ACTION=bind\0DRIVER=igbvf\0..."──►
//!   KernelUevents::subscribe() ──► Stream<Result<UeventNotice>> ──► Uevent::device_event()
//!                                                                   = PciBound { slot, driver }
//! ```
//!
//! A uevent socket sees the events of its own network namespace's net devices and the host's
//! device events: subscribe from the host namespace.

use std::{collections::BTreeMap, fmt, io, pin::Pin, str::FromStr};

use futures::{
    SinkExt, Stream,
    channel::mpsc::{self, Sender},
    future::BoxFuture,
};
use netlink_sys::{
    AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_KOBJECT_UEVENT,
};
use serde::Serialize;

/// The multicast group of kernel uevents (group 2 carries udev's re-broadcasts).
const KERNEL_GROUP_MASK: u32 = 1;
/// Events buffered for a slow consumer.
const QUEUE: usize = 1024;
/// Receive buffer asked for: a VF count change sends several events per VF at once.
const RCVBUF: usize = 4 << 20;

/// Errors of the uevent socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UeventError {
    /// The socket could not be opened or bound, or failed while reading.
    #[error("kernel uevent socket: {0}")]
    Socket(io::Error),
    /// A message that is not `ACTION@DEVPATH` followed by `KEY=VALUE` fields.
    #[error("malformed uevent: {0}")]
    Malformed(String),
}

/// `ACTION` of a uevent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UeventAction {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `change`.
    Change,
    /// `move` (a rename).
    Move,
    /// `online`.
    Online,
    /// `offline`.
    Offline,
    /// `bind`: a driver took the device.
    Bind,
    /// `unbind`: the driver let it go.
    Unbind,
    /// Anything else.
    Other(String),
}

impl UeventAction {
    /// The kernel's word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Change => "change",
            Self::Move => "move",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Bind => "bind",
            Self::Unbind => "unbind",
            Self::Other(s) => s,
        }
    }
}

impl FromStr for UeventAction {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "add" => Self::Add,
            "remove" => Self::Remove,
            "change" => Self::Change,
            "move" => Self::Move,
            "online" => Self::Online,
            "offline" => Self::Offline,
            "bind" => Self::Bind,
            "unbind" => Self::Unbind,
            other => Self::Other(other.to_string()),
        })
    }
}

impl fmt::Display for UeventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for UeventAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One kernel uevent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uevent {
    /// `ACTION`.
    pub action: UeventAction,
    /// `DEVPATH`, under `/sys` (`/devices/pci0000:00/0000:00:02.0/net/eth0`).
    pub devpath: String,
    /// `SUBSYSTEM` (`pci`, `net`, ...); empty when absent.
    pub subsystem: String,
    /// `SEQNUM`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seqnum: Option<u64>,
    /// Every `KEY=VALUE` field, including the ones above (`DRIVER`, `PCI_SLOT_NAME`,
    /// `PCI_ID`, `INTERFACE`, `IFINDEX`, ...).
    pub vars: BTreeMap<String, String>,
}

/// What a uevent means for NICs, for the events the project acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum DeviceEvent {
    /// A PCI function appeared (a VF created by `sriov_numvfs`, a hotplug).
    PciAdded {
        /// PCI address (`PCI_SLOT_NAME`).
        slot: String,
    },
    /// A PCI function went away.
    PciRemoved {
        /// PCI address.
        slot: String,
    },
    /// A driver bound a PCI function.
    PciBound {
        /// PCI address.
        slot: String,
        /// The driver (`DRIVER`).
        driver: String,
    },
    /// A PCI function lost its driver.
    PciUnbound {
        /// PCI address.
        slot: String,
    },
    /// A net device appeared (in the socket's namespace).
    NetAdded {
        /// Interface name.
        interface: String,
        /// Interface index.
        #[serde(skip_serializing_if = "Option::is_none")]
        ifindex: Option<u32>,
        /// The PCI function it belongs to, read from the device path.
        #[serde(skip_serializing_if = "Option::is_none")]
        pci: Option<String>,
    },
    /// A net device went away (or left the namespace).
    NetRemoved {
        /// Interface name.
        interface: String,
        /// Interface index.
        #[serde(skip_serializing_if = "Option::is_none")]
        ifindex: Option<u32>,
        /// The PCI function it belonged to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pci: Option<String>,
    },
}

impl Uevent {
    /// Parses one message: `ACTION@DEVPATH\0KEY=VALUE\0...`. udev's re-broadcasts (starting
    /// with `libudev\0`) are refused.
    pub fn parse(buf: &[u8]) -> Result<Self, UeventError> {
        let text = String::from_utf8_lossy(buf);
        let mut fields = text.split('\0').filter(|f| !f.is_empty());
        let head = fields.next().unwrap_or_default();
        let Some((action, devpath)) = head.split_once('@') else {
            return Err(UeventError::Malformed(format!(
                "no ACTION@DEVPATH header in {:?}",
                head.chars().take(64).collect::<String>()
            )));
        };
        let vars: BTreeMap<String, String> = fields
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let action = vars.get("ACTION").map_or(action, String::as_str);
        let devpath = vars.get("DEVPATH").map_or(devpath, String::as_str);
        Ok(Self {
            action: action.parse().unwrap_or(UeventAction::Other(action.into())),
            devpath: devpath.to_string(),
            subsystem: vars.get("SUBSYSTEM").cloned().unwrap_or_default(),
            seqnum: vars.get("SEQNUM").and_then(|s| s.parse().ok()),
            vars,
        })
    }

    /// One field.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The PCI function this event is about or under: `PCI_SLOT_NAME`, else the last PCI
    /// address in the device path (`.../0000:01:10.0/net/eth1` → `0000:01:10.0`).
    pub fn pci_slot(&self) -> Option<String> {
        if let Some(s) = self.var("PCI_SLOT_NAME") {
            return Some(s.to_string());
        }
        self.devpath
            .split('/')
            .rev()
            .find(|c| c.parse::<crate::pci::PciAddress>().is_ok())
            .map(str::to_string)
    }

    /// The meaning of this event for NICs, when it is one the project acts on.
    pub fn device_event(&self) -> Option<DeviceEvent> {
        match (self.subsystem.as_str(), &self.action) {
            ("pci", action) => {
                let slot = self.var("PCI_SLOT_NAME")?.to_string();
                match action {
                    UeventAction::Add => Some(DeviceEvent::PciAdded { slot }),
                    UeventAction::Remove => Some(DeviceEvent::PciRemoved { slot }),
                    UeventAction::Bind => Some(DeviceEvent::PciBound {
                        slot,
                        driver: self.var("DRIVER")?.to_string(),
                    }),
                    UeventAction::Unbind => Some(DeviceEvent::PciUnbound { slot }),
                    _ => None,
                }
            }
            ("net", UeventAction::Add | UeventAction::Remove) => {
                let interface = self.var("INTERFACE")?.to_string();
                let ifindex = self.var("IFINDEX").and_then(|i| i.parse().ok());
                let pci = self.pci_slot();
                Some(if self.action == UeventAction::Add {
                    DeviceEvent::NetAdded {
                        interface,
                        ifindex,
                        pci,
                    }
                } else {
                    DeviceEvent::NetRemoved {
                        interface,
                        ifindex,
                        pci,
                    }
                })
            }
            _ => None,
        }
    }

    /// The message as the kernel sends it (for fakes and tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}@{}\0", self.action, self.devpath).into_bytes();
        for (k, v) in &self.vars {
            out.extend_from_slice(format!("{k}={v}\0").as_bytes());
        }
        out
    }

    /// A uevent with these fields (`ACTION`, `DEVPATH` and `SUBSYSTEM` are added to `vars`).
    pub fn new(
        action: UeventAction,
        devpath: &str,
        subsystem: &str,
        vars: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Self {
        let mut all: BTreeMap<String, String> =
            vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        all.insert("ACTION".into(), action.to_string());
        all.insert("DEVPATH".into(), devpath.to_string());
        all.insert("SUBSYSTEM".into(), subsystem.to_string());
        Self {
            action,
            devpath: devpath.to_string(),
            subsystem: subsystem.to_string(),
            seqnum: None,
            vars: all,
        }
    }
}

/// One item of a uevent stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UeventNotice {
    /// An event.
    Uevent(Uevent),
    /// The kernel dropped events (`ENOBUFS`): rescan sysfs to resynchronise.
    Lost,
}

/// A stream of uevents. It ends only if the socket fails (the last item is then the error).
pub type UeventStream = Pin<Box<dyn Stream<Item = Result<UeventNotice, UeventError>> + Send>>;

/// A source of kernel uevents: [`KernelUevents`], or `FakeUevents` in tests.
pub trait Uevents: Send + Sync {
    /// Starts listening: events from now on.
    fn subscribe(&self) -> BoxFuture<'_, Result<UeventStream, UeventError>>;
}

/// The kernel's uevent socket, opened in the calling thread's network namespace; the reader runs
/// on the current tokio runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelUevents;

impl Uevents for KernelUevents {
    fn subscribe(&self) -> BoxFuture<'_, Result<UeventStream, UeventError>> {
        Box::pin(async { subscribe_kernel() })
    }
}

fn subscribe_kernel() -> Result<UeventStream, UeventError> {
    let mut sock = TokioSocket::new(NETLINK_KOBJECT_UEVENT).map_err(UeventError::Socket)?;
    {
        let s = sock.socket_mut();
        s.bind(&SocketAddr::new(0, KERNEL_GROUP_MASK))
            .map_err(UeventError::Socket)?;
        // Best effort: a bigger buffer loses fewer events in a burst.
        let _ = s.set_rx_buf_sz(RCVBUF);
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(read_uevents(sock, tx));
    Ok(Box::pin(rx))
}

async fn read_uevents(sock: TokioSocket, mut tx: Sender<Result<UeventNotice, UeventError>>) {
    loop {
        let item = match sock.recv_from_full().await {
            // Only the kernel (port 0) is believed; udev and other senders are ignored.
            Ok((buf, from)) if from.port_number() == 0 => match Uevent::parse(&buf) {
                Ok(u) => Ok(UeventNotice::Uevent(u)),
                Err(_) => continue,
            },
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => Ok(UeventNotice::Lost),
            Err(e) => {
                let _ = tx.send(Err(UeventError::Socket(e))).await;
                return;
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use fake::FakeUevents;

#[cfg(any(test, feature = "test-util"))]
mod fake {
    use std::sync::{Arc, Mutex};

    use futures::{channel::mpsc, future::BoxFuture};

    use super::{Uevent, UeventError, UeventNotice, UeventStream, Uevents};

    type Subscribers = Vec<mpsc::UnboundedSender<Result<UeventNotice, UeventError>>>;

    /// Uevents that tests push (feature `test-util`). Clones share subscribers.
    #[derive(Clone, Debug, Default)]
    pub struct FakeUevents {
        subscribers: Arc<Mutex<Subscribers>>,
    }

    impl FakeUevents {
        /// No subscribers yet.
        pub fn new() -> Self {
            Self::default()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
            self.subscribers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Sends `notice` to every subscriber.
        pub fn push_notice(&self, notice: UeventNotice) {
            self.lock()
                .retain(|tx| tx.unbounded_send(Ok(notice.clone())).is_ok());
        }

        /// Sends one uevent to every subscriber.
        pub fn push(&self, uevent: Uevent) {
            self.push_notice(UeventNotice::Uevent(uevent));
        }

        /// Sends a raw message, parsed as the kernel socket would (malformed ones are dropped).
        pub fn push_raw(&self, message: &[u8]) {
            if let Ok(u) = Uevent::parse(message) {
                self.push(u);
            }
        }

        /// How many subscribers are listening.
        pub fn subscribers(&self) -> usize {
            self.lock().iter().filter(|tx| !tx.is_closed()).count()
        }
    }

    impl Uevents for FakeUevents {
        fn subscribe(&self) -> BoxFuture<'_, Result<UeventStream, UeventError>> {
            let (tx, rx) = mpsc::unbounded();
            self.lock().push(tx);
            let stream: UeventStream = Box::pin(rx);
            Box::pin(std::future::ready(Ok(stream)))
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    const VF_BIND: &[u8] = b"bind@/devices/pci0000:00/0000:00:02.0/0000:01:10.0\0ACTION=bind\0DEVPATH=/devices/pci0000:00/0000:00:02.0/0000:01:10.0\0SUBSYSTEM=pci\0DRIVER=igbvf\0PCI_CLASS=20000\0PCI_ID=8086:10CA\0PCI_SLOT_NAME=0000:01:10.0\0MODALIAS=pci:v00008086d000010CAsv*\0SEQNUM=2345\0";
    const NET_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:02.0/0000:01:10.0/net/eth2\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:02.0/0000:01:10.0/net/eth2\0SUBSYSTEM=net\0INTERFACE=eth2\0IFINDEX=9\0SEQNUM=2346\0";

    #[test]
    fn kernel_messages_parse_into_device_events() {
        let u = Uevent::parse(VF_BIND).unwrap();
        assert_eq!(
            (u.action.clone(), u.subsystem.as_str()),
            (UeventAction::Bind, "pci")
        );
        assert_eq!(u.seqnum, Some(2345));
        assert_eq!(u.var("PCI_ID"), Some("8086:10CA"));
        assert_eq!(
            u.device_event(),
            Some(DeviceEvent::PciBound {
                slot: "0000:01:10.0".into(),
                driver: "igbvf".into()
            })
        );
        let n = Uevent::parse(NET_ADD).unwrap();
        assert_eq!(
            n.device_event(),
            Some(DeviceEvent::NetAdded {
                interface: "eth2".into(),
                ifindex: Some(9),
                pci: Some("0000:01:10.0".into())
            })
        );
        assert_eq!(Uevent::parse(&n.to_bytes()).unwrap().vars, n.vars);
        let unbind = Uevent::new(
            UeventAction::Unbind,
            "/devices/pci0000:00/0000:00:02.0/0000:01:10.0",
            "pci",
            [("PCI_SLOT_NAME", "0000:01:10.0".to_string())],
        );
        assert_eq!(
            unbind.device_event(),
            Some(DeviceEvent::PciUnbound {
                slot: "0000:01:10.0".into()
            })
        );
        let virt = Uevent::new(
            UeventAction::Add,
            "/devices/virtual/net/veth0",
            "net",
            [("INTERFACE", "veth0".to_string())],
        );
        assert!(matches!(
            virt.device_event(),
            Some(DeviceEvent::NetAdded { pci: None, .. })
        ));
        let other = Uevent::new(UeventAction::Change, "/devices/system/cpu/cpu0", "cpu", []);
        assert_eq!(other.device_event(), None);
        assert!(Uevent::parse(b"libudev\0\xfe\xed\xca\xfe").is_err());
        assert!(Uevent::parse(b"").is_err());
        assert_eq!(
            serde_json::to_value(Uevent::parse(VF_BIND).unwrap().device_event()).unwrap(),
            serde_json::json!({"event":"pciBound","slot":"0000:01:10.0","driver":"igbvf"})
        );
    }

    #[test]
    fn fake_uevents_reach_every_subscriber() {
        let fake = FakeUevents::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut a = fake.subscribe().await.unwrap();
            let mut b = fake.subscribe().await.unwrap();
            assert_eq!(fake.subscribers(), 2);
            fake.push_raw(VF_BIND);
            fake.push_notice(UeventNotice::Lost);
            for s in [&mut a, &mut b] {
                let Some(Ok(UeventNotice::Uevent(u))) = s.next().await else {
                    panic!("no event")
                };
                assert_eq!(u.action, UeventAction::Bind);
                assert!(matches!(s.next().await, Some(Ok(UeventNotice::Lost))));
            }
            drop(b);
            assert_eq!(fake.subscribers(), 1);
        });
    }
}
