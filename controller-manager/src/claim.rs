//! Controller references (Kubernetes `ControllerRefManager`): a controller
//! owns the children whose controller ownerReference names its uid, adopts
//! orphans its selector matches and releases children it no longer
//! selects.

use std::fmt::Debug;
use std::sync::Arc;

use common::selector::LabelSel;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Error;

/// The controller side of a claim.
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// An owner being deleted neither adopts nor releases.
    pub deleting: bool,
    pub selector: LabelSel,
}

impl Owner {
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K, selector: LabelSel) -> Owner {
        Owner {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: obj.meta().name.clone().unwrap_or_default(),
            uid: obj.meta().uid.clone().unwrap_or_default(),
            deleting: obj.meta().deletion_timestamp.is_some(),
            selector,
        }
    }

    /// The ownerReference a child of this owner carries.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// The controller ownerReference of an object, if any.
pub fn controller_of<K: Resource>(obj: &K) -> Option<&OwnerReference> {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

/// Returns the candidates `owner` controls after adopting and releasing.
/// Candidates that vanish or change while being patched are skipped; the
/// next reconcile sees them as they are.
pub async fn claim<K>(
    api: &Api<K>,
    owner: &Owner,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let mut owned = Vec::new();
    for c in candidates {
        // Children of other controllers are the common case in a busy
        // namespace: they are skipped before the selector is evaluated.
        let ours = match controller_of(c.as_ref()) {
            Some(r) if r.uid != owner.uid => continue,
            Some(_) => true,
            None => false,
        };
        let matches = owner.selector.matches(c.labels());
        if ours {
            if matches {
                owned.push(c);
            } else if !owner.deleting {
                let refs: Vec<_> = c
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != owner.uid)
                    .cloned()
                    .collect();
                patch_refs(api, &c, refs).await?;
            }
        } else if matches && !owner.deleting && c.meta().deletion_timestamp.is_none() {
            let mut refs = c.owner_references().to_vec();
            refs.push(owner.reference());
            if let Some(adopted) = patch_refs(api, &c, refs).await? {
                owned.push(Arc::new(adopted));
            }
        }
    }
    Ok(owned)
}

async fn patch_refs<K>(api: &Api<K>, obj: &K, refs: Vec<OwnerReference>) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    // The resourceVersion makes the merge patch conditional, so a child
    // that changed meanwhile is re-examined instead of overwritten.
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": obj.meta().resource_version,
    }});
    let name = obj.meta().name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
