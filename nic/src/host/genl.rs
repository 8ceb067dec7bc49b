//! ethtool and devlink served by a namespace's worker thread: the generic netlink sockets are
//! opened there on first use, so they belong to that namespace.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::worker::Worker;
use crate::{
    devlink::{
        DevInfo, Devlink, DevlinkDev, DevlinkError, Eswitch, EswitchChange, GenlDevlink, Port,
        PortFunctionSetting, PortRef, Rate, RateChange, RateTarget, Result as DlResult,
    },
    ethtool::{Ethtool, EthtoolError, FeatureChange, Features, GenlEthtool, Result as EtResult},
};

/// [`Ethtool`] inside a namespace.
pub(super) struct ProxyEthtool {
    pub(super) worker: Arc<Worker>,
}

impl ProxyEthtool {
    fn call<T, F>(&self, op: &'static str, ifname: String, f: F) -> BoxFuture<'_, EtResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(GenlEthtool, String) -> BoxFuture<'static, EtResult<T>> + Send + 'static,
    {
        let gone = EthtoolError::Unexpected {
            op,
            ifname: ifname.clone(),
            detail: format!(
                "the thread of network namespace {} is gone",
                self.worker.netns()
            ),
        };
        let reply = self.worker.run_with(move |s| {
            Box::pin(async move {
                let et = s.ethtool.get_or_try_init(GenlEthtool::connect).await?;
                f(et.clone(), ifname).await
            })
        });
        Box::pin(async move { reply.await.unwrap_or(Err(gone)) })
    }
}

impl Ethtool for ProxyEthtool {
    fn get_features(&self, ifname: String) -> BoxFuture<'_, EtResult<Features>> {
        self.call("get features of", ifname, |et, ifname| {
            Box::pin(async move { et.get_features(ifname).await })
        })
    }

    fn set_features(
        &self,
        ifname: String,
        bits: Vec<(String, bool)>,
    ) -> BoxFuture<'_, EtResult<FeatureChange>> {
        self.call("set features on", ifname, |et, ifname| {
            Box::pin(async move { et.set_features(ifname, bits).await })
        })
    }
}

/// [`Devlink`] from a namespace (the host's).
pub(super) struct ProxyDevlink {
    pub(super) worker: Arc<Worker>,
}

impl ProxyDevlink {
    fn call<T, F>(&self, f: F) -> BoxFuture<'_, DlResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(GenlDevlink) -> BoxFuture<'static, DlResult<T>> + Send + 'static,
    {
        let gone = DevlinkError::Unexpected {
            op: "devlink request".into(),
            detail: format!(
                "the thread of network namespace {} is gone",
                self.worker.netns()
            ),
        };
        let reply = self.worker.run_with(move |s| {
            Box::pin(async move {
                let dl = s.devlink.get_or_try_init(GenlDevlink::connect).await?;
                f(dl.clone()).await
            })
        });
        Box::pin(async move { reply.await.unwrap_or(Err(gone)) })
    }
}

macro_rules! proxy_devlink {
    ($self:ident, $method:ident ( $($arg:ident),* )) => {
        $self.call(move |dl| Box::pin(async move { dl.$method($($arg),*).await }))
    };
}

impl Devlink for ProxyDevlink {
    fn list_devs(&self) -> BoxFuture<'_, DlResult<Vec<DevlinkDev>>> {
        proxy_devlink!(self, list_devs())
    }

    fn dev_info(&self, dev: DevlinkDev) -> BoxFuture<'_, DlResult<DevInfo>> {
        proxy_devlink!(self, dev_info(dev))
    }

    fn get_eswitch(&self, dev: DevlinkDev) -> BoxFuture<'_, DlResult<Eswitch>> {
        proxy_devlink!(self, get_eswitch(dev))
    }

    fn set_eswitch(&self, dev: DevlinkDev, change: EswitchChange) -> BoxFuture<'_, DlResult<()>> {
        proxy_devlink!(self, set_eswitch(dev, change))
    }

    fn list_ports(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, DlResult<Vec<Port>>> {
        proxy_devlink!(self, list_ports(dev))
    }

    fn get_port(&self, port: PortRef) -> BoxFuture<'_, DlResult<Port>> {
        proxy_devlink!(self, get_port(port))
    }

    fn set_port_function(
        &self,
        port: PortRef,
        setting: PortFunctionSetting,
    ) -> BoxFuture<'_, DlResult<()>> {
        proxy_devlink!(self, set_port_function(port, setting))
    }

    fn list_rates(&self, dev: Option<DevlinkDev>) -> BoxFuture<'_, DlResult<Vec<Rate>>> {
        proxy_devlink!(self, list_rates(dev))
    }

    fn set_rate(&self, target: RateTarget, change: RateChange) -> BoxFuture<'_, DlResult<()>> {
        proxy_devlink!(self, set_rate(target, change))
    }

    fn add_rate_node(
        &self,
        dev: DevlinkDev,
        name: String,
        change: RateChange,
    ) -> BoxFuture<'_, DlResult<()>> {
        proxy_devlink!(self, add_rate_node(dev, name, change))
    }

    fn del_rate_node(&self, dev: DevlinkDev, name: String) -> BoxFuture<'_, DlResult<()>> {
        proxy_devlink!(self, del_rate_node(dev, name))
    }
}
