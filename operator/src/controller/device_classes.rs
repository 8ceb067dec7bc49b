//! One `DeviceClass` (`resource.k8s.io/v1`) per resource pool that a policy offers by DRA
//! (`allocation: dra` or `both`), rendered by [`planner::dra::render_device_classes`]: applied by
//! server-side apply as the operator, labelled as the operator's, and deleted once no policy
//! offers its pool by DRA.
//!
//! Run in each status pass (after any policy or configuration change, and every five minutes).
//! The API is called only when the rendered set differs from the one last carried out by this
//! process; the first pass lists the operator's classes (by label) to delete the ones a policy
//! removed while no operator ran. A class changed by hand is set again at the next change or
//! operator start.

use std::{collections::BTreeSet, sync::Mutex};

use crds::{LABEL_MANAGED_BY, MANAGED_BY, k8s::DeviceClass};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch},
};
use planner::dra::{DeviceClasses, LABEL_RESOURCE_NAME};

use super::{api_code, apply_params};
use crate::context::Context;

/// A DeviceClass could not be listed, applied or deleted.
#[derive(Debug, thiserror::Error)]
#[error("cannot {verb} DeviceClass {name}: {source}")]
pub struct Error {
    /// `apply`, `list` or `delete`.
    pub verb: &'static str,
    /// The class (empty for a list).
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// The classes last carried out by this process; `None` before the first pass.
#[derive(Debug, Default)]
pub struct Applied(Mutex<Option<Vec<DeviceClass>>>);

impl Applied {
    /// Marks the empty set as carried out (tests of other controllers' passes, which make no
    /// DeviceClass calls when no policy offers a pool by DRA).
    #[cfg(test)]
    pub(crate) fn none(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }
}

/// Brings the cluster's DeviceClasses to what the policies say, when that changed.
pub async fn reconcile(ctx: &Context) -> Result<(), Error> {
    let policies = ctx.stores.policies.state();
    let DeviceClasses { classes, conflicts } = planner::dra::render_device_classes(
        policies.iter().map(|p| p.as_ref()),
        &ctx.stores.resource_prefix(),
    );
    let last = ctx
        .device_classes
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if last.as_ref() == Some(&classes) {
        return Ok(());
    }
    for c in &conflicts {
        tracing::warn!("{c}");
    }
    let api: Api<DeviceClass> = Api::all(ctx.client.clone());
    for class in &classes {
        let name = class.name_any();
        api.patch(&name, &apply_params(), &Patch::Apply(class))
            .await
            .map_err(|source| Error {
                verb: "apply",
                name: name.clone(),
                source,
            })?;
        tracing::info!(device_class = %name, "DeviceClass applied");
    }
    let want: BTreeSet<String> = classes.iter().map(|c| c.name_any()).collect();
    let stale: Vec<String> = match last {
        // this process applied them: no list needed
        Some(last) => last
            .iter()
            .map(|c| c.name_any())
            .filter(|n| !want.contains(n))
            .collect(),
        None => {
            let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_RESOURCE_NAME}");
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list
                    .items
                    .iter()
                    .map(|c| c.name_any())
                    .filter(|n| !want.contains(n))
                    .collect(),
                // a cluster without the DRA API (before Kubernetes 1.34) has none to delete
                Err(e) if classes.is_empty() && api_code(&e) == Some(404) => Vec::new(),
                Err(source) => {
                    return Err(Error {
                        verb: "list",
                        name: String::new(),
                        source,
                    });
                }
            }
        }
    };
    for name in stale {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(device_class = %name, "DeviceClass deleted: no policy offers its pool by DRA")
            }
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => {
                return Err(Error {
                    verb: "delete",
                    name,
                    source,
                });
            }
        }
    }
    *ctx.device_classes
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(classes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crds::dra::Allocation;
    use http::Method;
    use serde_json::json;

    use crate::controller::fixtures::{reply, test_context, timeout_after_1s, with_rv};

    fn class_list(names: &[&str]) -> serde_json::Value {
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClassList",
            "metadata": {"resourceVersion": "5"},
            "items": names.iter().map(|n| json!({"apiVersion": "resource.k8s.io/v1",
                "kind": "DeviceClass", "metadata": {"name": n, "resourceVersion": "3"},
                "spec": {}})).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn classes_follow_the_policies_and_stale_ones_are_deleted() {
        let (ctx, mut fake, mut stores) = test_context();
        *ctx.device_classes.0.lock().unwrap() = None;
        let mut p = planner::fixtures::policy("dra", 10, &["ens1f0"]);
        p.spec.allocation = Allocation::Both;
        stores.policy(p.clone());
        let base = "/apis/resource.k8s.io/v1/deviceclasses";
        let mocksrv = tokio::spawn(async move {
            let (seen, send) = fake
                .expect_apply(&format!("{base}/cx6-vf.smartnic.io"))
                .await;
            assert_eq!(seen.body["kind"], "DeviceClass");
            assert_eq!(
                seen.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "smartnic-operator"
            );
            assert_eq!(
                seen.body["spec"]["selectors"][0]["cel"]["expression"],
                "device.driver == \"smartnic.io\" && device.attributes[\"smartnic.io\"].resourceName == \"cx6_vf\""
            );
            reply(send, 200, with_rv(seen.body, "4"));
            // the first pass lists the operator's classes: one left from a removed policy
            let (seen, send) = fake.expect(Method::GET, base).await;
            assert_eq!(
                seen.query.get("labelSelector").map(String::as_str),
                Some("app.kubernetes.io/managed-by=smartnic-operator,smartnic.io/resource-name")
            );
            reply(
                send,
                200,
                class_list(&["cx6-vf.smartnic.io", "old.smartnic.io"]),
            );
            let (_, send) = fake
                .expect(Method::DELETE, &format!("{base}/old.smartnic.io"))
                .await;
            reply(
                send,
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            );
            fake
        });
        super::reconcile(&ctx).await.expect("first pass");
        let mut fake = mocksrv.await.expect("mock server");

        // unchanged: no call
        tokio::time::timeout(std::time::Duration::from_secs(1), super::reconcile(&ctx))
            .await
            .expect("an unchanged pass makes no call")
            .expect("unchanged pass");

        // the policy goes back to the device plugin: its class is deleted, without a list
        p.spec.allocation = Allocation::DevicePlugin;
        stores.policy(p);
        let mocksrv = tokio::spawn(async move {
            let (_, send) = fake
                .expect(Method::DELETE, &format!("{base}/cx6-vf.smartnic.io"))
                .await;
            reply(
                send,
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            );
        });
        super::reconcile(&ctx).await.expect("pass after the change");
        timeout_after_1s(mocksrv).await;
    }
}
