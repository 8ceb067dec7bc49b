//! The node's ResourceSlices in the API: a thin shell over [`crate::render`].
//!
//! Every publish lists the node's slices of this driver (field selector `spec.driver`,
//! `spec.nodeName`), so that what another run (or a person) left is adopted and what was deleted
//! comes back: the generation continues from the highest one found, existing slices are updated
//! in name order, missing ones created (`<node>-smartnic.io-<i>`), surplus ones deleted. Nothing
//! is written when the content found equals the content wanted. Every slice is owned by the Node,
//! so deleting the node deletes its slices.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::{ResourceSlice, ResourceSliceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::render::{Rendered, slice_name};
use crds::dra::DRIVER_NAME;

/// Publishing failed (retried by the caller).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done (`listing the slices of node-1`).
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> PublishError {
    let what = what.into();
    move |source| PublishError::Api { what, source }
}

/// What a publish did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// The pool generation now in the API.
    pub generation: i64,
    /// Slices created, updated and deleted.
    pub created: usize,
    /// Slices updated.
    pub updated: usize,
    /// Slices deleted.
    pub deleted: usize,
}

/// Publishes one node's slices.
#[derive(Clone)]
pub struct Publisher {
    slices: Api<ResourceSlice>,
    nodes: Api<Node>,
    node: String,
    owner: Option<OwnerReference>,
    generation: i64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("node", &self.node)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for `node`.
    pub fn new(client: Client, node: &str) -> Self {
        Publisher {
            slices: Api::all(client.clone()),
            nodes: Api::all(client),
            node: node.to_owned(),
            owner: None,
            generation: 0,
        }
    }

    async fn owner(&mut self) -> Result<OwnerReference, PublishError> {
        if let Some(o) = &self.owner {
            return Ok(o.clone());
        }
        let node = self
            .nodes
            .get(&self.node)
            .await
            .map_err(api_err(format!("reading Node {}", self.node)))?;
        let o = OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: self.node.clone(),
            uid: node.metadata.uid.unwrap_or_default(),
            ..Default::default()
        };
        self.owner = Some(o.clone());
        Ok(o)
    }

    /// Makes the node's slices be `desired` (rendered at any generation).
    pub async fn publish(
        &mut self,
        desired: Vec<ResourceSliceSpec>,
    ) -> Result<Published, PublishError> {
        let lp = ListParams::default().fields(&format!(
            "spec.driver={DRIVER_NAME},spec.nodeName={}",
            self.node
        ));
        let mut existing = self
            .slices
            .list(&lp)
            .await
            .map_err(api_err(format!("listing the slices of node {}", self.node)))?
            .items;
        existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let found = Rendered::adopt(existing.iter().map(|s| s.spec.clone()).collect());
        let base = Rendered {
            generation: found.generation.max(self.generation),
            slices: found.slices,
        };
        let next = base.next(desired);
        self.generation = next.generation;
        let mut out = Published {
            generation: next.generation,
            ..Published::default()
        };
        if next == base {
            return Ok(out);
        }
        let owner = self.owner().await?;
        let taken: std::collections::BTreeSet<String> = existing
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        let mut fresh = (0..)
            .map(|j| slice_name(&self.node, j))
            .filter(|n| !taken.contains(n));
        for (i, spec) in next.slices.iter().enumerate() {
            match existing.get(i) {
                Some(old) => {
                    let mut s = old.clone();
                    s.spec = spec.clone();
                    let name = s.metadata.name.clone().unwrap_or_default();
                    self.slices
                        .replace(&name, &PostParams::default(), &s)
                        .await
                        .map_err(api_err(format!("updating ResourceSlice {name}")))?;
                    out.updated += 1;
                }
                None => {
                    let name = fresh.next().unwrap_or_default();
                    let s = ResourceSlice {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            owner_references: Some(vec![owner.clone()]),
                            ..Default::default()
                        },
                        spec: spec.clone(),
                    };
                    self.slices
                        .create(&PostParams::default(), &s)
                        .await
                        .map_err(api_err(format!("creating ResourceSlice {name}")))?;
                    out.created += 1;
                }
            }
        }
        for old in existing.iter().skip(next.slices.len()) {
            let name = old.metadata.name.clone().unwrap_or_default();
            match self.slices.delete(&name, &DeleteParams::default()).await {
                Ok(_) => out.deleted += 1,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(api_err(format!("deleting ResourceSlice {name}"))(e)),
            }
        }
        Ok(out)
    }
}
