//! A recording, in-memory [`Ethtool`] for tests (feature `test-util`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use nic::ethtool::{EthtoolHandle, FakeEthtool};
//! let fake = FakeEthtool::new();
//! fake.set_feature("pf0vf0", "hw-tc-offload", false, false);
//! fake.set_feature("pf0vf0", "l2-fwd-offload", false, true); // [fixed]
//! let et = EthtoolHandle::new(fake.clone());
//! let change = et.features().set("pf0vf0").feature("hw-tc-offload", true).execute().await.unwrap();
//! assert_eq!(change.changed, vec![("hw-tc-offload".to_string(), true)]);
//! let err = et.features().set("pf0vf0").feature("l2-fwd-offload", true).execute().await.unwrap_err();
//! assert!(err.to_string().contains("fixed on this device"));
//! # });
//! ```

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::future::BoxFuture;
use nix::libc::ENODEV;

use super::{Ethtool, EthtoolError, FeatureChange, FeatureState, Features, Result};
use crate::netlink::KernelError;

/// One call made to the fake, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EthtoolCall {
    /// [`Ethtool::get_features`].
    GetFeatures(String),
    /// [`Ethtool::set_features`], with the expanded bits.
    SetFeatures(String, Vec<(String, bool)>),
}

/// The kind of a call, for failure rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EthtoolOp {
    /// Read features.
    GetFeatures,
    /// Change features.
    SetFeatures,
}

impl EthtoolCall {
    /// The kind of this call.
    pub fn op(&self) -> EthtoolOp {
        match self {
            Self::GetFeatures(_) => EthtoolOp::GetFeatures,
            Self::SetFeatures(..) => EthtoolOp::SetFeatures,
        }
    }

    fn error(&self, kernel: KernelError) -> EthtoolError {
        let (op, ifname) = match self {
            Self::GetFeatures(i) => ("get features of", i),
            Self::SetFeatures(i, _) => ("set features on", i),
        };
        EthtoolError::Kernel {
            op,
            ifname: ifname.clone(),
            kernel,
        }
    }
}

type Predicate = Box<dyn Fn(&EthtoolCall) -> bool + Send>;

#[derive(Default)]
struct State {
    devices: BTreeMap<String, BTreeMap<String, FeatureState>>,
    calls: Vec<EthtoolCall>,
    failures: Vec<(Predicate, KernelError)>,
}

/// The in-memory [`Ethtool`]. Cloning gives another handle on the same state.
#[derive(Clone, Default)]
pub struct FakeEthtool {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeEthtool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEthtool").finish_non_exhaustive()
    }
}

impl FakeEthtool {
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

    /// Adds a device without features (replacing one of that name).
    pub fn add_device(&self, ifname: &str) {
        self.lock()
            .devices
            .insert(ifname.to_string(), BTreeMap::new());
    }

    /// Sets one feature of a device (added when missing); a `fixed` feature never changes.
    pub fn set_feature(&self, ifname: &str, feature: &str, active: bool, fixed: bool) {
        self.lock()
            .devices
            .entry(ifname.to_string())
            .or_default()
            .insert(
                feature.to_string(),
                FeatureState {
                    active,
                    fixed,
                    requested: active,
                },
            );
    }

    /// The features of a device.
    pub fn features(&self, ifname: &str) -> Option<BTreeMap<String, FeatureState>> {
        self.lock().devices.get(ifname).cloned()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<EthtoolCall> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Fails every later call of kind `op` with `errno`.
    pub fn fail(&self, op: EthtoolOp, errno: i32) {
        self.fail_when(move |c| c.op() == op, KernelError::new(errno));
    }

    /// Fails every later call for which `when` is true with `error` (first matching rule wins).
    pub fn fail_when(
        &self,
        when: impl Fn(&EthtoolCall) -> bool + Send + 'static,
        error: KernelError,
    ) {
        self.lock().failures.push((Box::new(when), error));
    }

    /// Removes every failure rule.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    fn call<T>(
        &self,
        call: EthtoolCall,
        ifname: &str,
        f: impl FnOnce(&mut BTreeMap<String, FeatureState>) -> T,
    ) -> Result<T> {
        let mut st = self.lock();
        st.calls.push(call.clone());
        if let Some((_, e)) = st.failures.iter().find(|(when, _)| when(&call)) {
            return Err(call.error(e.clone()));
        }
        match st.devices.get_mut(ifname) {
            Some(features) => Ok(f(features)),
            None => Err(call.error(KernelError::with_message(ENODEV, "no device matches name"))),
        }
    }
}

impl Ethtool for FakeEthtool {
    fn get_features(&self, ifname: String) -> BoxFuture<'_, Result<Features>> {
        let r = self.call(EthtoolCall::GetFeatures(ifname.clone()), &ifname, |f| {
            Features {
                ifname: ifname.clone(),
                features: f.clone(),
            }
        });
        Box::pin(async move { r })
    }

    fn set_features(
        &self,
        ifname: String,
        bits: Vec<(String, bool)>,
    ) -> BoxFuture<'_, Result<FeatureChange>> {
        let call = EthtoolCall::SetFeatures(ifname.clone(), bits.clone());
        let r = self.call(call, &ifname, |features| {
            let mut change = FeatureChange {
                requested: bits.clone(),
                ..Default::default()
            };
            for (name, on) in &bits {
                match features.get_mut(name) {
                    Some(s) if !s.fixed => {
                        s.requested = *on;
                        if s.active != *on {
                            s.active = *on;
                            change.changed.push((name.clone(), *on));
                        }
                    }
                    _ => change.not_applied.push((name.clone(), *on)),
                }
            }
            change
        });
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethtool::EthtoolHandle;

    #[test]
    fn legacy_names_expand_and_fixed_bits_are_not_applied() {
        let fake = FakeEthtool::new();
        for (name, fixed) in [
            ("tx-checksum-ipv4", false),
            ("tx-checksum-ipv6", false),
            ("tx-checksum-fcoe-crc", true),
        ] {
            fake.set_feature("eth0", name, true, fixed);
        }
        let et = EthtoolHandle::new(fake.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let change = et
                .features()
                .set("eth0")
                .feature("tx", false)
                .execute()
                .await
                .unwrap();
            assert_eq!(change.requested.len(), 3);
            assert_eq!(
                change.not_applied,
                [("tx-checksum-fcoe-crc".to_string(), false)]
            );
            let now = et.features().get("eth0").execute().await.unwrap();
            assert!(!now.features["tx-checksum-ipv4"].active);
            assert!(now.features["tx-checksum-fcoe-crc"].active);
            let e = et.features().get("eth9").execute().await.unwrap_err();
            assert_eq!(e.errno(), Some(ENODEV));
            assert!(e.to_string().starts_with("get features of eth9: "), "{e}");
            fake.fail(EthtoolOp::SetFeatures, 1);
            let e = et
                .features()
                .set("eth0")
                .feature("tx-checksum-ipv4", true)
                .execute()
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(1));
        });
        assert_eq!(fake.calls().len(), 6);
    }
}
