//! Creating a build spec from a request: resolve the ref and read the
//! manifest at that commit ([`super::commit`]), check the manifest hash and
//! the services, record both, and queue a run. Every bad field is a 4xx
//! naming it.

use slipway_model::build::{parse_build_args, BuildDetail, NewBuild};
use slipway_model::image_name::{ProjectImages, SlipwayRegistry};
use slipway_model::limits::MAX_LIST_ITEMS;
use slipway_model::{AppError, FieldProblem};

use super::runner::parse_registry_override;
use super::commit::{self, ManifestSource, ResolvedCommit};
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
    let mut problems: Vec<FieldProblem> = commit::manifest_hash_problem(input.manifest_hash.as_deref()).into_iter().collect();
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
    let git_ref = commit::ref_or_default(input.git_ref.as_deref(), &project);
    problems.extend(commit::ref_problem(git_ref, "ref"));
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    // A registry override must be on the project's registries list.
    if let Some(v) = &input.registry {
        let registry = parse_registry_override(v).map_err(|e| AppError::invalid("registry", e.message))?;
        store.allowed_registry_for(&project.id, &project.slug, &registry, "registry").await?;
    }

    let commit = ResolvedCommit::resolve(store, &project, git_ref, "ref", ManifestSource::Repository).await?;
    let (sha, parsed) = (&commit.sha, &commit.manifest);
    // Only a listed registry may be pushed to (and receive its listed secrets).
    if input.registry.is_none() {
        store.allowed_registry_for(&project.id, &project.slug, &parsed.registry, "manifest.registry").await?;
    }
    commit.check_hash(input.manifest_hash.as_deref())?;
    // Built images are named inside the project's own namespace: a name
    // reserved for Slipway or in another project's namespace is refused
    // here (the runner checks again, knowing Slipway's registry host).
    let registry = registry_override.as_ref().unwrap_or(&parsed.registry);
    let images = ProjectImages::new(&project.slug, registry, slipway_registry.clone());
    let naming: Vec<FieldProblem> = images
        .check_manifest(parsed)
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
    // The manifest's environments join the promotion path; one that would
    // loosen an existing gate or target refuses the build before anything is
    // recorded.
    commit.record(store, &project).await?;
    let mut inputs = input.inputs.clone().unwrap_or_else(|| serde_json::json!({}));
    if input.development {
        if let Some(obj) = inputs.as_object_mut() {
            obj.insert("development".into(), serde_json::Value::Bool(true));
        }
    }
    let (spec, created) = store
        .create_build_spec(&SpecInsert {
            project_id: project.id.clone(),
            git_sha: commit.sha.clone(),
            manifest_hash: commit.hash.clone(),
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
