//! Gathering what a Kubernetes rendering needs from the store: the
//! deployment's commit, release and approvals; per service the manifest's
//! first TCP port and the values of its secret references (environment
//! values `KEY: null`, resolved from the project's secrets, the
//! environment's own first); and pull credentials for the images'
//! registries: a long-lived pull-only credential for Slipway's registry,
//! or the listed credentials of a project registry.

use std::collections::BTreeMap;
use std::time::Duration;

use slipway_model::manifest;
use slipway_model::status::ApprovalDecision;

use super::objects::{parse_port, PullCredential, Rendering, ServiceRendering};
use crate::registry_auth::issuer::project_subject;
use crate::registry_auth::{Grant, TokenIssuer};
use crate::release::target::DeployPlan;
use crate::Store;

/// How long the pull credential for Slipway's registry in a pull Secret is
/// valid; every deployment writes a fresh one.
pub const PULL_SECRET_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The rendering of `plan` in `namespace`; `Err` is the reason recorded on
/// the deployment (a missing secret, an unreadable manifest, …).
pub async fn gather(
    store: &Store,
    tokens: Option<&TokenIssuer>,
    namespace: &str,
    progress_deadline_seconds: i32,
    plan: &DeployPlan,
) -> Result<Rendering, String> {
    let text = |e: crate::Error| -> String { slipway_model::AppError::from(e).message };
    let dep = super::super::get_deployment(store, &plan.deployment_id).await.map_err(text)?;
    let manifest = match &dep.git_sha {
        Some(sha) => match store.manifest_content(&plan.project_id, sha).await.map_err(text)? {
            Some((_, content)) => Some(manifest::parse(&content).map_err(|_| format!("the manifest at {sha} no longer parses"))?),
            None => None,
        },
        None => None,
    };
    let approvals: Vec<String> = dep
        .approvals
        .iter()
        .filter(|a| a.valid && a.decision == ApprovalDecision::Approved)
        .map(|a| a.username.clone())
        .collect();
    let mut services = Vec::with_capacity(plan.services.len());
    for svc in &plan.services {
        let declared = manifest.as_ref().and_then(|m| m.services.get(&svc.service));
        let port = declared.and_then(|s| s.ports.iter().find_map(|p| parse_port(p)));
        let mut secret_env = BTreeMap::new();
        let references: Vec<&String> =
            declared.map(|s| s.environment.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect()).unwrap_or_default();
        if !references.is_empty() {
            let Some(sb) = store.secret_box() else {
                return Err("secret references need the master key, and this process has none".into());
            };
            for name in references {
                let value = store
                    .secret_value(sb, &plan.project_id, Some(&dep.environment_id), name)
                    .await
                    .map_err(text)?
                    .ok_or_else(|| {
                        format!(
                            "service {}: environment variable {name} refers to a secret, and project {} has no secret {name} (set one for environment {} or the whole project)",
                            svc.service, plan.project_slug, plan.environment
                        )
                    })?;
                secret_env.insert(name.clone(), value);
            }
        }
        services.push(ServiceRendering {
            service: svc.service.clone(),
            image: svc.pinned_ref(),
            digest: svc.digest.clone(),
            command: svc.command.clone(),
            env: svc.env.clone(),
            secret_env,
            port,
        });
    }
    let pull_credentials = pull_credentials(store, tokens, plan).await?;
    Ok(Rendering {
        namespace: namespace.to_string(),
        project_slug: plan.project_slug.clone(),
        environment: plan.environment.clone(),
        deployment_id: plan.deployment_id.clone(),
        release_id: plan.release_id.clone(),
        git_sha: dep.git_sha.clone(),
        approvals,
        progress_deadline_seconds,
        services,
        pull_credentials,
    })
}

/// One credential per registry host the plan's images are on, when Slipway has one for it.
async fn pull_credentials(store: &Store, tokens: Option<&TokenIssuer>, plan: &DeployPlan) -> Result<Vec<PullCredential>, String> {
    let mut hosts: Vec<String> = plan
        .services
        .iter()
        .filter(|s| s.repository.contains('/'))
        .filter_map(|s| s.repository.split('/').next().map(str::to_string))
        .filter(|h| h.contains('.') || h.contains(':') || h == "localhost")
        .collect();
    hosts.sort();
    hosts.dedup();
    let mut out = Vec::new();
    for host in hosts {
        if let Some(issuer) = tokens.filter(|i| i.covers(&host)) {
            let (username, password) = issuer
                .credential(&project_subject(&plan.project_slug), Grant::pull_only(&plan.project_slug), PULL_SECRET_TTL)
                .map_err(|e| format!("minting a pull credential for {host}: {e}"))?;
            out.push(PullCredential { host, username, password });
            continue;
        }
        let listing = store.find_registry(&plan.project_id, &host).await.map_err(|e| format!("reading the registries list: {e}"))?;
        let Some(listing) = listing else { continue };
        let (Some(user_secret), Some(token_secret)) = (&listing.username_secret, &listing.token_secret) else { continue };
        let Some(sb) = store.secret_box() else {
            return Err(format!("the credentials of registry {host} need the master key, and this process has none"));
        };
        let mut values = Vec::with_capacity(2);
        for name in [user_secret, token_secret] {
            let value = store
                .secret_value(sb, &plan.project_id, None, name)
                .await
                .map_err(|e| format!("reading secret {name}: {e}"))?
                .ok_or_else(|| format!("registry {host} lists secret {name}, and project {} has none", plan.project_slug))?;
            values.push(value);
        }
        let password = values.pop().unwrap_or_default();
        let username = values.pop().unwrap_or_default();
        out.push(PullCredential { host: host.clone(), username, password });
    }
    Ok(out)
}
