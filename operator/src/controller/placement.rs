//! The node components follow `NicOperatorConfig.spec.nodeSelector`: the pod `nodeSelector` of
//! the agent, device-plugin and CNI-installer DaemonSets in the operator's namespace is set to
//! what [`planner::placement::daemonset_node_selectors`] says.
//!
//! Only with a `NicOperatorConfig` object (without one the manifests decide), once per spec
//! generation (a DaemonSet changed by hand is set again at the next generation or operator
//! start), and only a DaemonSet that exists and differs: the change rolls its pods out.
//! `kubectl patch daemonset NAME --type merge -p '{"spec":{"template":{"spec":{"nodeSelector":{...}}}}}'`.

use std::sync::Mutex;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::{Api, ResourceExt, api::Patch};
use serde_json::json;

use crate::context::Context;

/// A DaemonSet could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set the nodeSelector of DaemonSet {namespace}/{name}: {source}")]
pub struct Error {
    /// Namespace.
    pub namespace: String,
    /// DaemonSet name.
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// The configuration (uid, generation) whose placement was last carried out.
#[derive(Debug, Default)]
pub struct Placed(Mutex<Option<(String, i64)>>);

/// Sets the node DaemonSets' `nodeSelector` from the configuration, when it changed.
pub async fn place(ctx: &Context) -> Result<(), Error> {
    let Some(cfg) = ctx
        .stores
        .configs
        .state()
        .into_iter()
        .find(|c| planner::validate::validate_operator_config(&c.name_any(), &c.spec).is_ok())
    else {
        return Ok(());
    };
    let key = (
        cfg.uid().unwrap_or_default(),
        cfg.metadata.generation.unwrap_or(0),
    );
    if ctx
        .placed
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        == Some(&key)
    {
        return Ok(());
    }
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let err = |name: &str, source| Error {
        namespace: ctx.namespace.clone(),
        name: name.to_owned(),
        source,
    };
    for (name, want) in planner::placement::daemonset_node_selectors(&cfg.spec) {
        let Some(ds) = api.get_opt(name).await.map_err(|e| err(name, e))? else {
            tracing::debug!(
                daemonset = name,
                "not deployed here; its nodeSelector is left to its manifest"
            );
            continue;
        };
        let now = ds
            .spec
            .template
            .spec
            .and_then(|s| s.node_selector)
            .unwrap_or_default();
        if now == want {
            continue;
        }
        // A merge patch merges maps: the labels no longer wanted are removed by name (null).
        let mut selector = serde_json::Map::new();
        for k in now.keys().filter(|k| !want.contains_key(*k)) {
            selector.insert(k.clone(), serde_json::Value::Null);
        }
        for (k, v) in &want {
            selector.insert(k.clone(), json!(v));
        }
        let patch = json!({"spec": {"template": {"spec": {"nodeSelector": selector}}}});
        api.patch(name, &super::merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| err(name, e))?;
        tracing::info!(daemonset = name, node_selector = ?want, "node DaemonSet follows NicOperatorConfig");
    }
    *ctx.placed.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crds::{NicOperatorConfig, operator_config::NicOperatorConfigSpec};
    use http::Method;
    use serde_json::json;

    use crate::controller::{
        fixtures::{reply, test_context, timeout_after_1s, with_rv, with_spec},
        status::reconcile,
    };

    fn daemonset(name: &str, selector: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "smartnic-system", "resourceVersion": "7"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"nodeSelector": selector, "containers": [{"name": "c"}]}}}})
    }

    #[tokio::test]
    async fn the_node_daemonsets_follow_the_config_node_selector_once_per_generation() {
        let (ctx, mut fake, mut stores) = test_context();
        let mut cfg = NicOperatorConfig::new(
            "default",
            NicOperatorConfigSpec {
                node_selector: BTreeMap::from([("nic".to_owned(), "cx7".to_owned())]),
                ..Default::default()
            },
        );
        cfg.metadata.generation = Some(2);
        cfg.metadata.uid = Some("uid-cfg".into());
        stores.config(cfg);
        let ns = "/apis/apps/v1/namespaces/smartnic-system/daemonsets";
        let mocksrv = tokio::spawn(async move {
            let (seen, send) = fake
                .expect_apply("/apis/smartnic.io/v1alpha1/nicoperatorconfigs/default/status")
                .await;
            reply(send, 200, with_rv(with_spec(seen.body, json!({})), "2"));
            // the agent: from the manifest's selector to the config's, the old label removed
            let (_, send) = fake
                .expect(Method::GET, &format!("{ns}/smartnic-agent"))
                .await;
            reply(
                send,
                200,
                daemonset("smartnic-agent", json!({"kubernetes.io/os": "linux"})),
            );
            let (seen, send) = fake
                .expect(Method::PATCH, &format!("{ns}/smartnic-agent"))
                .await;
            assert_eq!(seen.content_type, "application/merge-patch+json");
            assert_eq!(
                seen.body,
                json!({"spec": {"template": {"spec": {"nodeSelector":
                    {"kubernetes.io/os": null, "nic": "cx7"}}}}})
            );
            reply(
                send,
                200,
                daemonset("smartnic-agent", json!({"nic": "cx7"})),
            );
            // the device plugin is not deployed here
            let (_, send) = fake
                .expect(Method::GET, &format!("{ns}/smartnic-device-plugin"))
                .await;
            reply(
                send,
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"}),
            );
            // the CNI installer already has it: no patch
            let (_, send) = fake
                .expect(Method::GET, &format!("{ns}/smartnic-cni-installer"))
                .await;
            reply(
                send,
                200,
                daemonset("smartnic-cni-installer", json!({"nic": "cx7"})),
            );
            fake
        });
        reconcile(ctx.clone()).await.expect("reconcile");
        let mut fake = mocksrv.await.expect("mock server");
        // the same generation again: the status only, no DaemonSet call
        let mocksrv = tokio::spawn(async move {
            let (seen, send) = fake
                .expect_apply("/apis/smartnic.io/v1alpha1/nicoperatorconfigs/default/status")
                .await;
            reply(send, 200, with_rv(with_spec(seen.body, json!({})), "3"));
            let more = tokio::time::timeout(std::time::Duration::from_millis(300), fake.next_any());
            // nothing within the wait, or the client gone when the reconcile ended
            assert!(
                matches!(more.await, Err(_) | Ok(None)),
                "a DaemonSet call for an unchanged configuration"
            );
        });
        reconcile(ctx).await.expect("reconcile again");
        timeout_after_1s(mocksrv).await;
    }
}
