//! Creating a build spec from a request: resolve the ref, read the manifest at
//! that commit, check the manifest hash and the services, record both, and
//! queue a run. Every bad field is a 4xx naming it.

use slipway_model::build::{is_git_sha, is_manifest_hash, parse_build_args, BuildDetail, NewBuild};
use slipway_model::image_name::{ProjectImages, SlipwayRegistry};
use slipway_model::limits::MAX_LIST_ITEMS;
use slipway_model::manifest::{self, MANIFEST_PATH};
use slipway_model::{AppError, FieldProblem};

use super::runner::parse_registry_override;
use super::workspace;
use crate::error::Result;
use super::SpecInsert;
use crate::store::Store;

/// Longest timeout a build may ask for (a day).
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;

/// Creates (or, with a known idempotency key, finds) a build spec and queues a run.
/// Image names are checked without knowing Slipway's registry host (the
/// runner checks them again); the API uses [`create_build_for`].
pub async fn create_build(store: &Store, input: &NewBuild, created_by: Option<&str>) -> Result<BuildDetail> {
    create_build_for(store, input, created_by, &SlipwayRegistry::Unknown).await
}

/// [`create_build`] on a server that knows Slipway's registry, so a
/// manifest pushing into another project's repository there is refused
/// here, with a 422 naming the field.
#[tracing::instrument(skip_all, fields(project = %input.project))]
pub async fn create_build_for(store: &Store, input: &NewBuild, created_by: Option<&str>, slipway_registry: &SlipwayRegistry) -> Result<BuildDetail> {
    if input.project.trim().is_empty() {
        return Err(AppError::invalid("project", "is required (id, slug or name)").into());
    }
    let project = store.get_project(&input.project).await?;
    AppError::check_list_len("services", input.services.as_ref().map_or(0, Vec::len), MAX_LIST_ITEMS)?;
    AppError::check_list_len("build_args", input.build_args.len(), MAX_LIST_ITEMS)?;
    let mut problems = Vec::new();
    if let Some(hash) = &input.manifest_hash {
        if !is_manifest_hash(hash) {
            problems.push(FieldProblem { field: "manifest_hash".into(), message: "must be 64 lowercase hex characters".into() });
        }
    }
    if let Some(key) = &input.idempotency_key {
        if key.is_empty() || key.len() > 200 {
            problems.push(FieldProblem { field: "idempotency_key".into(), message: "must be 1 to 200 characters".into() });
        }
    }
    if let Some(t) = input.timeout_seconds {
        if t == 0 || t > MAX_TIMEOUT_SECONDS {
            problems.push(FieldProblem {
                field: "timeout_seconds".into(),
                message: format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"),
            });
        }
    }
    if let Some(inputs) = &input.inputs {
        if !inputs.is_object() {
            problems.push(FieldProblem { field: "inputs".into(), message: "must be a JSON object".into() });
        }
    }
    if let Some(cache) = &input.cache {
        if !cache.is_object() {
            problems.push(FieldProblem { field: "cache".into(), message: "must be a JSON object".into() });
        }
    }
    let registry_override = match &input.registry {
        Some(registry) => match parse_registry_override(registry) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.push(FieldProblem { field: "registry".into(), message: e.message });
                None
            }
        },
        None => None,
    };
    let build_args = match parse_build_args(&input.build_args) {
        Ok(a) => Some(a),
        Err(e) => {
            problems.extend(e.problems);
            None
        }
    };
    let git_ref = input.git_ref.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or(&project.default_branch).to_string();
    if git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit()) && !is_git_sha(&git_ref) {
        problems.push(FieldProblem { field: "ref".into(), message: "a full git sha must be lowercase hex".into() });
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    // A registry override must be on the project's registries list.
    if let Some(v) = &input.registry {
        let registry = parse_registry_override(v).map_err(|e| AppError::invalid("registry", e.message))?;
        store.allowed_registry_for(&project.id, &project.slug, &registry, "registry").await?;
    }

    let git = workspace::Git::for_project(store, &project).await.map_err(|e| AppError::invalid("ref", e.message))?;
    let sha = git.resolve_ref(&project.repo_url, &git_ref)
        .await
        .map_err(|e| AppError::invalid("ref", e.message))?;
    let content = git.read_file_at(&project.repo_url, &sha, MANIFEST_PATH)
        .await
        .map_err(|e| AppError::invalid("ref", e.message))?
        .ok_or_else(|| AppError::invalid("ref", format!("commit {sha} has no {MANIFEST_PATH}")))?;
    let parsed = manifest::parse(&content).map_err(AppError::from)?;
    // Only a listed registry may be pushed to (and receive its listed secrets).
    if input.registry.is_none() {
        store.allowed_registry_for(&project.id, &project.slug, &parsed.registry, "manifest.registry").await?;
    }
    let hash = parsed.canonical_hash();
    if let Some(given) = &input.manifest_hash {
        if *given != hash {
            return Err(AppError::invalid(
                "manifest_hash",
                format!("does not match the manifest at {sha}: given {given}, manifest has {hash}"),
            )
            .into());
        }
    }
    // Built images are named inside the project's own namespace: a name
    // reserved for Slipway or in another project's namespace is refused
    // here (the runner checks again, knowing Slipway's registry host).
    let registry = registry_override.as_ref().unwrap_or(&parsed.registry);
    let images = ProjectImages::new(&project.slug, registry, slipway_registry.clone());
    let naming: Vec<FieldProblem> = images
        .check_manifest(&parsed)
        .into_iter()
        .map(|p| {
            let field = if registry_override.is_some() && p.path.starts_with("registry") { "registry".to_string() } else { format!("manifest.{}", p.path) };
            FieldProblem { field, message: p.message }
        })
        .collect();
    if !naming.is_empty() {
        return Err(AppError::invalid_fields(naming).into());
    }
    let services = match &input.services {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(AppError::invalid("services", "must name at least one service, or be null for all").into())
        }
        Some(list) => {
            let known = parsed.buildable_service_names();
            let mut bad = Vec::new();
            for (i, s) in list.iter().enumerate() {
                if !known.iter().any(|k| *k == s.as_str()) {
                    let why = if parsed.services.contains_key(s.as_str()) {
                        format!("service `{s}` has no build section (it uses a prebuilt image)")
                    } else {
                        format!("unknown service `{s}`; the manifest at {} has: {}", &sha[..12], known.join(", "))
                    };
                    bad.push(FieldProblem { field: format!("services[{i}]"), message: why });
                }
            }
            if !bad.is_empty() {
                return Err(AppError::invalid_fields(bad).into());
            }
            let mut s = list.clone();
            s.sort();
            s.dedup();
            Some(s)
        }
    };
    let parsed_json = serde_json::from_str::<serde_json::Value>(&parsed.canonical_json())
        .unwrap_or_else(|_| serde_json::json!({}));
    // The manifest's environments join the promotion path; one that would
    // loosen an existing gate or target refuses the build before anything is
    // recorded.
    if !parsed.environments.is_empty() {
        crate::release::sync_environments_from_manifest(store, &project.id, &parsed).await?;
    }
    store.record_manifest(&project.id, &sha, &hash, &content, &parsed_json).await?;
    let mut inputs = input.inputs.clone().unwrap_or_else(|| serde_json::json!({}));
    if input.development {
        if let Some(obj) = inputs.as_object_mut() {
            obj.insert("development".into(), serde_json::Value::Bool(true));
        }
    }
    let (spec, created) = store
        .create_build_spec(&SpecInsert {
            project_id: project.id.clone(),
            git_sha: sha,
            manifest_hash: hash,
            services,
            inputs,
            registry: input.registry.clone(),
            cache: input.cache.clone(),
            build_args: build_args.unwrap_or_default(),
            force_rebuild: input.force_rebuild,
            idempotency_key: input.idempotency_key.clone(),
            created_by: created_by.map(str::to_string),
        })
        .await?;
    if created && input.run {
        store.enqueue_run(&spec.id, input.timeout_seconds.map(|t| t as i32), input.force_rebuild).await?;
    }
    store.get_build(&spec.id).await
}
