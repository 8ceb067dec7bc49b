//! [`GenlEthtool`]: the [`Ethtool`] trait over a generic netlink socket.

use std::io;

use futures::future::BoxFuture;
use genetlink::GenetlinkHandle;
use netlink_packet_core::NLM_F_ACK;

use super::{Ethtool, EthtoolError, FeatureChange, Features, FeaturesMessage, Result};
use crate::netlink::genl::{self, GenlFailure};

/// An ethtool client on generic netlink, in the network namespace of the thread that connected
/// it.
#[derive(Clone, Debug)]
pub struct GenlEthtool {
    handle: GenetlinkHandle,
}

impl GenlEthtool {
    /// Opens the socket and resolves the "ethtool" family. Must be called inside a tokio
    /// runtime. A kernel without ethtool netlink gives [`EthtoolError::Unavailable`].
    pub async fn connect() -> Result<Self> {
        let handle = genl::connect().map_err(EthtoolError::Connect)?;
        genl::resolve::<FeaturesMessage>(&handle)
            .await
            .map_err(|f| match f {
                GenlFailure::NoFamily => EthtoolError::Unavailable,
                GenlFailure::Kernel(k) => EthtoolError::Connect(io::Error::other(format!(
                    "cannot resolve the \"ethtool\" generic netlink family: {k}"
                ))),
                GenlFailure::Other(d) => EthtoolError::Connect(io::Error::other(format!(
                    "cannot resolve the \"ethtool\" generic netlink family: {d}"
                ))),
            })?;
        Ok(Self { handle })
    }
}

impl Ethtool for GenlEthtool {
    fn get_features(&self, ifname: String) -> BoxFuture<'_, Result<Features>> {
        Box::pin(async move {
            const OP: &str = "get features of";
            let replies = genl::request(&self.handle, FeaturesMessage::get(&ifname), 0)
                .await
                .map_err(|f| EthtoolError::from_failure(OP, &ifname, f))?;
            let reply = replies.first().ok_or_else(|| EthtoolError::Unexpected {
                op: OP,
                ifname: ifname.clone(),
                detail: "no ETHTOOL_MSG_FEATURES_GET_REPLY".into(),
            })?;
            Ok(Features::from_reply(&ifname, reply))
        })
    }

    fn set_features(
        &self,
        ifname: String,
        bits: Vec<(String, bool)>,
    ) -> BoxFuture<'_, Result<FeatureChange>> {
        Box::pin(async move {
            const OP: &str = "set features on";
            let msg = FeaturesMessage::set(&ifname, &bits);
            let replies = genl::request(&self.handle, msg, NLM_F_ACK)
                .await
                .map_err(|f| EthtoolError::from_failure(OP, &ifname, f))?;
            Ok(FeatureChange::from_reply(bits, replies.first()))
        })
    }
}
