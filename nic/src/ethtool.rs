//! ethtool behind a trait we own: offload features (`ethtool -k` / `ethtool -K`).
//!
//! ```text
//!   EthtoolHandle ──features()──► FeaturesHandle ──get(DEV)──► FeaturesGetRequest::execute()
//!        │                                        └─set(DEV)──► FeaturesSetRequest::execute()
//!        └── Arc<dyn Ethtool> ◄── GenlEthtool  (ETHTOOL_MSG_FEATURES_GET / _SET, family "ethtool" v1)
//!                             ◄── FakeEthtool  (in memory, records calls; feature test-util)
//! ```
//!
//! The `ethtool` crate (0.3) reads features but cannot set them (its bitset encoder is a
//! `todo!()`), and its reader drops feature bit 0 (`tx-scatter-gather`). So both directions are
//! built here on genetlink, in the verbose bitset form: bits named, not indexed, which is what a
//! SET wants and what lets a GET be read without the strings table.
//!
//! Feature names are the kernel's (`hw-tc-offload`, `l2-fwd-offload`, `rx-gro`, ...). The legacy
//! names of `ethtool -K` are accepted too and expanded the way ethtool does: `tx-checksumming` (or
//! `tx`) is every `tx-checksum-*` bit the device reports, `tso` is `tx-tcp*-segmentation`, and so
//! on. As with `ethtool -K`, a request fails only when none of the requested bits reached the
//! requested state (a fixed feature, or one the driver refused); a partial result is reported in
//! [`FeatureChange::not_applied`].

mod client;
#[cfg(any(test, feature = "test-util"))]
mod fake;
mod features;
mod message;

use std::{fmt, io, sync::Arc};

use futures::future::BoxFuture;

pub use self::client::GenlEthtool;
#[cfg(any(test, feature = "test-util"))]
pub use self::fake::{EthtoolCall, EthtoolOp, FakeEthtool};
pub use self::features::{FeatureChange, FeatureState, Features, expand_feature_name};
pub use self::message::{
    Bitset, BitsetBit, ETHTOOL_MSG_FEATURES_GET, ETHTOOL_MSG_FEATURES_SET, FeaturesAttr,
    FeaturesMessage, HeaderAttr,
};
use crate::netlink::{KernelError, genl::GenlFailure};

/// Errors of the ethtool client; each names the interface.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EthtoolError {
    /// The kernel has no ethtool netlink interface (`CONFIG_ETHTOOL_NETLINK` off).
    #[error(
        "ethtool netlink is not available on this kernel (no generic netlink family \"ethtool\")"
    )]
    Unavailable,
    /// The generic netlink socket could not be opened.
    #[error("cannot open a generic netlink socket: {0}")]
    Connect(io::Error),
    /// The kernel refused a request, e.g. "get features of eth9: no device matches name: No such
    /// device (os error 19)".
    #[error("{op} {ifname}: {kernel}")]
    Kernel {
        /// What was asked: "get features of", "set features on".
        op: &'static str,
        /// The interface.
        ifname: String,
        /// The kernel's answer.
        kernel: KernelError,
    },
    /// The device reports no feature of that name (nor is it a legacy `ethtool -K` name).
    #[error("{ifname} has no feature {feature:?}")]
    UnknownFeature {
        /// The interface.
        ifname: String,
        /// The name asked for.
        feature: String,
    },
    /// None of the requested bits reached the requested state: the feature is fixed on this
    /// device or the driver refused it (`ethtool -K`: "Could not change any device features").
    #[error("cannot set {} on {ifname}: fixed on this device or refused by the driver", list(.features))]
    NotChanged {
        /// The interface.
        ifname: String,
        /// The requested bits and the values asked for.
        features: Vec<(String, bool)>,
    },
    /// The kernel answered something unexpected, or the connection went away.
    #[error("{op} {ifname}: unexpected ethtool reply: {detail}")]
    Unexpected {
        /// What was asked.
        op: &'static str,
        /// The interface.
        ifname: String,
        /// What went wrong.
        detail: String,
    },
}

fn list(features: &[(String, bool)]) -> String {
    features
        .iter()
        .map(|(n, on)| format!("{n}={}", if *on { "on" } else { "off" }))
        .collect::<Vec<_>>()
        .join(", ")
}

impl EthtoolError {
    /// The kernel's answer, when this error is one.
    pub fn kernel(&self) -> Option<&KernelError> {
        match self {
            Self::Kernel { kernel, .. } => Some(kernel),
            _ => None,
        }
    }

    pub(crate) fn from_failure(op: &'static str, ifname: &str, failure: GenlFailure) -> Self {
        match failure {
            GenlFailure::NoFamily => Self::Unavailable,
            GenlFailure::Kernel(kernel) => Self::Kernel {
                op,
                ifname: ifname.to_string(),
                kernel,
            },
            GenlFailure::Other(detail) => Self::Unexpected {
                op,
                ifname: ifname.to_string(),
                detail,
            },
        }
    }
}

/// Result of every ethtool operation.
pub type Result<T, E = EthtoolError> = std::result::Result<T, E>;

/// The ethtool operations the project needs. Implemented by [`GenlEthtool`] (the kernel) and
/// `FakeEthtool` (memory, for tests). Use it through [`EthtoolHandle`].
pub trait Ethtool: Send + Sync + 'static {
    /// `ethtool -k DEV`: every named feature of the device.
    fn get_features(&self, ifname: String) -> BoxFuture<'_, Result<Features>>;

    /// One `ETHTOOL_MSG_FEATURES_SET` with kernel feature names (legacy names already
    /// expanded); reports what the kernel did, also when nothing took.
    fn set_features(
        &self,
        ifname: String,
        bits: Vec<(String, bool)>,
    ) -> BoxFuture<'_, Result<FeatureChange>>;
}

/// Entry point: a cheap, cloneable handle over any [`Ethtool`] implementation.
#[derive(Clone)]
pub struct EthtoolHandle {
    inner: Arc<dyn Ethtool>,
}

impl fmt::Debug for EthtoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EthtoolHandle")
    }
}

impl EthtoolHandle {
    /// Wraps an implementation (a [`GenlEthtool`], a `FakeEthtool`, ...).
    pub fn new(inner: impl Ethtool) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Wraps a shared implementation.
    pub fn from_arc(inner: Arc<dyn Ethtool>) -> Self {
        Self { inner }
    }

    /// Opens an ethtool socket in the calling thread's network namespace and resolves the
    /// family. Must be called inside a tokio runtime. A kernel without ethtool netlink gives
    /// [`EthtoolError::Unavailable`].
    pub async fn connect() -> Result<Self> {
        Ok(Self::new(GenlEthtool::connect().await?))
    }

    /// The implementation, for passing around as a trait object.
    pub fn inner(&self) -> &Arc<dyn Ethtool> {
        &self.inner
    }

    /// Offload feature requests.
    pub fn features(&self) -> FeaturesHandle {
        FeaturesHandle {
            et: Arc::clone(&self.inner),
        }
    }
}

/// Offload feature requests.
pub struct FeaturesHandle {
    et: Arc<dyn Ethtool>,
}

impl FeaturesHandle {
    /// `ethtool -k DEV`.
    pub fn get(&self, ifname: &str) -> FeaturesGetRequest {
        FeaturesGetRequest {
            et: Arc::clone(&self.et),
            ifname: ifname.to_string(),
        }
    }

    /// `ethtool -K DEV FEATURE on|off ...`.
    pub fn set(&self, ifname: &str) -> FeaturesSetRequest {
        FeaturesSetRequest {
            et: Arc::clone(&self.et),
            ifname: ifname.to_string(),
            wanted: Vec::new(),
        }
    }
}

/// `ethtool -k DEV`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct FeaturesGetRequest {
    et: Arc<dyn Ethtool>,
    ifname: String,
}

impl FeaturesGetRequest {
    /// Sends the request.
    pub async fn execute(self) -> Result<Features> {
        self.et.get_features(self.ifname).await
    }
}

/// `ethtool -K DEV FEATURE on|off ...`.
#[must_use = "a request does nothing until execute() is awaited"]
pub struct FeaturesSetRequest {
    et: Arc<dyn Ethtool>,
    ifname: String,
    wanted: Vec<(String, bool)>,
}

impl FeaturesSetRequest {
    /// Asks for `feature` (a kernel name like `hw-tc-offload`, or a legacy `ethtool -K` name like
    /// `tx-checksumming`) to be on or off.
    pub fn feature(mut self, feature: &str, on: bool) -> Self {
        self.wanted.push((feature.to_string(), on));
        self
    }

    /// Reads the device's feature names, expands legacy names, sends one set and reports what
    /// the kernel did. Fails with [`EthtoolError::NotChanged`] when no requested bit took.
    pub async fn execute(self) -> Result<FeatureChange> {
        let Self { et, ifname, wanted } = self;
        if wanted.is_empty() {
            return Ok(FeatureChange::default());
        }
        let current = et.get_features(ifname.clone()).await?;
        let mut bits: Vec<(String, bool)> = Vec::new();
        for (name, on) in &wanted {
            let expanded = expand_feature_name(name, current.features.keys().map(String::as_str))
                .ok_or_else(|| EthtoolError::UnknownFeature {
                ifname: ifname.clone(),
                feature: name.clone(),
            })?;
            for bit in expanded {
                bits.retain(|(n, _)| *n != bit);
                bits.push((bit, *on));
            }
        }
        let change = et.set_features(ifname.clone(), bits).await?;
        if change.nothing_changed() {
            return Err(EthtoolError::NotChanged {
                ifname,
                features: change.requested,
            });
        }
        Ok(change)
    }
}
