//! Watching a rollout until it is done or has failed, and saying why.
//!
//! Done: `status.observedGeneration ≥ metadata.generation` and the updated
//! and available replicas equal the wanted replicas. Failed: Kubernetes
//! reports the `Progressing` condition with reason
//! `ProgressDeadlineExceeded`, or Slipway's own deadline (the progress
//! deadline plus a margin) passes; the reason is then read from the pods:
//! `ImagePullBackOff`/`ErrImagePull`, `CrashLoopBackOff`, `OOMKilled`, or
//! an unschedulable pod with the scheduler's message.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::time::Instant;

use super::apply::describe;

/// Where one Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Progress {
    Done,
    Waiting,
    /// Kubernetes gave up (`ProgressDeadlineExceeded`).
    Stalled,
}

/// Reads a Deployment's status.
pub(super) fn progress(d: &Deployment) -> Progress {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else { return Progress::Waiting };
    let stalled = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if stalled {
        return Progress::Stalled;
    }
    let observed = status.observed_generation.unwrap_or(-1) >= generation;
    let updated = status.updated_replicas.unwrap_or(0) == wanted;
    let available = status.available_replicas.unwrap_or(0) == wanted;
    let total = status.replicas.unwrap_or(0) == wanted;
    if observed && updated && available && total {
        Progress::Done
    } else {
        Progress::Waiting
    }
}

/// The most telling reason the pods of a rollout give, if any.
pub(super) fn pod_reason(pods: &[Pod]) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        for c in status.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable") {
                found.push(format!("pod {name} is unschedulable: {}", c.message.clone().unwrap_or_default()));
            }
        }
        for cs in status.container_statuses.iter().flatten().chain(status.init_container_statuses.iter().flatten()) {
            let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
            let last_terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            let terminated = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
            if [last_terminated, terminated].into_iter().flatten().any(|t| t.reason.as_deref() == Some("OOMKilled")) {
                found.push(format!("container {} of pod {name} was OOMKilled (out of memory)", cs.name));
                continue;
            }
            if let Some(w) = waiting {
                let reason = w.reason.clone().unwrap_or_default();
                let message = w.message.clone().unwrap_or_default();
                match reason.as_str() {
                    "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => {
                        found.push(format!("{reason}: container {} of pod {name} cannot pull {}: {message}", cs.name, cs.image))
                    }
                    "CrashLoopBackOff" => {
                        let exit = last_terminated.map(|t| format!(" (last exit code {})", t.exit_code)).unwrap_or_default();
                        found.push(format!("CrashLoopBackOff: container {} of pod {name} keeps crashing{exit}", cs.name))
                    }
                    "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                        found.push(format!("{reason}: container {} of pod {name}: {message}", cs.name))
                    }
                    _ => {}
                }
            }
        }
    }
    // OOMKilled first: it explains a CrashLoopBackOff of the same container.
    found.sort_by_key(|m| !m.contains("OOMKilled"));
    found.dedup();
    (!found.is_empty()).then(|| found.join("; "))
}

/// How to watch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Watch {
    /// Between two reads of a Deployment.
    pub poll: Duration,
    /// Slipway's own limit (the progress deadline plus a margin).
    pub deadline: Duration,
}

/// Waits for every Deployment named in `names` to finish rolling out.
pub(super) async fn wait_all(client: &kube::Client, namespace: &str, names: &[String], watch: Watch) -> Result<(), String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let until = Instant::now() + watch.deadline;
    let mut pending: Vec<&String> = names.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for name in pending {
            let d = api.get(name).await.map_err(|e| format!("reading the rollout of {namespace}/{name}: {}", describe(&e)))?;
            match progress(&d) {
                Progress::Done => {}
                Progress::Waiting if Instant::now() < until => still.push(name),
                outcome => return Err(failure(&pods, namespace, name, outcome == Progress::Stalled).await),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(watch.poll).await;
        }
    }
    Ok(())
}

/// The failure message of a rollout, with the reason from its pods.
async fn failure(pods: &Api<Pod>, namespace: &str, name: &str, stalled: bool) -> String {
    let head = if stalled {
        format!("the rollout of {namespace}/{name} exceeded its progress deadline")
    } else {
        format!("the rollout of {namespace}/{name} did not finish in time")
    };
    let params = ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"));
    match pods.list(&params).await {
        Ok(list) => match pod_reason(&list.items) {
            Some(reason) => format!("{head}: {reason}"),
            None => format!("{head}; its pods give no reason"),
        },
        Err(e) => format!("{head}; its pods could not be read: {}", describe(&e)),
    }
}
