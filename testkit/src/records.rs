//! Builds recorded without running one: a commit's manifest and a build
//! spec written straight to the store, for tests of what comes after a
//! build (logs, releases, deployments, authorization).

use slipway_engine::builds::SpecInsert;
use slipway_engine::Store;

/// Records `manifest` (its text and parsed JSON, under `manifest_hash`) for
/// commit `git_sha` of the project and a build spec of that commit with
/// every option at its default; returns the spec's id. Nothing is queued.
pub async fn record_spec_with_manifest(
    store: &Store,
    project_id: &str,
    git_sha: &str,
    manifest_hash: &str,
    manifest: &str,
    parsed: &serde_json::Value,
) -> String {
    store.record_manifest(project_id, git_sha, manifest_hash, manifest, parsed).await.expect("manifest recorded");
    let (spec, _) = store
        .create_build_spec(&SpecInsert {
            project_id: project_id.to_string(),
            git_sha: git_sha.to_string(),
            manifest_hash: manifest_hash.to_string(),
            services: None,
            inputs: serde_json::json!({}),
            registry: None,
            cache: None,
            build_args: Default::default(),
            force_rebuild: false,
            idempotency_key: None,
            created_by: None,
        })
        .await
        .expect("build spec recorded");
    spec.id
}

/// [`record_spec_with_manifest`] with an empty manifest (`services: {}`).
pub async fn record_spec(store: &Store, project_id: &str, git_sha: &str, manifest_hash: &str) -> String {
    record_spec_with_manifest(store, project_id, git_sha, manifest_hash, "services: {}\n", &serde_json::json!({})).await
}
