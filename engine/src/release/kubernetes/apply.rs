//! Server-side apply of rendered objects, field manager `slipway`, forcing
//! ownership of the fields Slipway sets (a `kubectl edit` of the image is
//! overwritten by the next deployment, never merged with it).

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::objects::{Objects, FIELD_MANAGER};

/// Why an apply failed, for the deployment's error message.
pub(super) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("the API server refused it ({} {}): {}", status.code, status.reason, status.message),
        other => format!("the cluster is unreachable: {other}"),
    }
}

async fn apply_one<K>(client: &kube::Client, namespace: &str, object: &K) -> Result<K, String>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| format!("applying {} {namespace}/{name}: {}", K::kind(&()), describe(&e)))
}

/// Applies every object in order: pull Secret, env Secrets, Deployments,
/// Services. Returns the applied Deployments as the API server answered
/// them (with their new `metadata.generation`).
pub(super) async fn apply_all(
    client: &kube::Client,
    namespace: &str,
    objects: &Objects,
) -> Result<Vec<k8s_openapi::api::apps::v1::Deployment>, String> {
    if let Some(secret) = &objects.pull_secret {
        apply_one(client, namespace, secret).await?;
    }
    for secret in &objects.env_secrets {
        apply_one(client, namespace, secret).await?;
    }
    let mut applied = Vec::with_capacity(objects.deployments.len());
    for deployment in &objects.deployments {
        applied.push(apply_one(client, namespace, deployment).await?);
    }
    for service in &objects.services {
        apply_one(client, namespace, service).await?;
    }
    Ok(applied)
}
