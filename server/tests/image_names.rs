//! Image-name attacks through the public API (the whole `app(state)` with
//! `oneshot`), on the real Docker engine and the test registry: a manifest
//! that names the shared base image or another project's repository, and an
//! exported build re-packed to smuggle a tag into the importing engine.
//! Each is answered with a 422 naming the field, and each test checks that
//! no name moved: the base image keeps its id, the other project's tags
//! keep theirs, and the attacker's project records nothing.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};
use bollard::Docker;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::registry::remote_digest;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::Store;
use slipway_model::build::{BuildDetail, NewBuild};
use slipway_model::project::{NewProject, Project};
use slipway_model::status::BuildRunStatus;
use slipway_server::{app, AppState};
use slipway_testkit::git::git;
use slipway_testkit::nonce;
use slipway_testkit::services::{docker, reader, registry, tokens};
use slipway_testkit::users::token_for;
use sqlx::PgPool;
use tower::ServiceExt;

/// A router with the engine and the registry, a runner, and an admin token.
struct World {
    store: Store,
    docker: Docker,
    router: Router,
    runner: Runner,
    token: String,
    _work: tempfile::TempDir,
}

async fn world(pool: PgPool) -> World {
    let store = Store::from_pool(pool);
    let docker = docker().await;
    let token = token_for(&store, "images-admin", true).await;
    let mut state = AppState::for_tests(support::leptos(), store.clone());
    state.docker = Some(docker.clone());
    state.registry = Some(registry());
    // The test registry takes only Slipway's tokens: imports push with them.
    state.registry_tokens = tokens();
    let work = tempfile::tempdir().unwrap();
    let config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), None, config);
    World { store, docker, router: app(state), runner, token, _work: work }
}

impl World {
    async fn call(&self, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Body::from(body))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes().to_vec())
    }

    /// `POST /api/builds/create`: the status and the JSON answer.
    async fn create_build(&self, input: Value) -> (StatusCode, Value) {
        let (status, body) = self.call("POST", "/api/builds/create", "application/json", json!({ "input": input }).to_string().into_bytes()).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn project(&self, name: &str, repo: &Path) -> Project {
        self.store.create_project(&NewProject { name: name.into(), repo_url: repo.display().to_string(), ..Default::default() }, None).await.unwrap()
    }

    /// A completed build of `project`'s default branch by the real runner.
    async fn built(&self, project: &Project) -> BuildDetail {
        let d = create_build(&self.store, &NewBuild { project: project.id.clone(), run: true, ..Default::default() }, None).await.unwrap();
        self.runner.run_once().await.unwrap().expect("a queued run");
        let d = self.store.get_build(&d.spec.id).await.unwrap();
        assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
        d
    }

    async fn build_count(&self, project: &Project) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_specs WHERE project_id = $1").bind(&project.id).fetch_one(self.store.pool()).await.unwrap();
        n
    }

    async fn image_id(&self, name: &str) -> Option<String> {
        self.docker.inspect_image(name).await.ok().and_then(|i| i.id)
    }
}

/// A repository whose `main` holds a Dockerfile in `api/` and `manifest`;
/// each extra `(branch, manifest)` is a branch off it with that manifest.
fn repo(manifest: &str, branches: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let write = |path: &str, content: &str| {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    };
    write("api/Dockerfile", &format!("FROM {BASE_IMAGE}\nCOPY id.txt /id.txt\n"));
    write("api/id.txt", &format!("{}\n", nonce()));
    write(".slipway/manifest.yaml", manifest);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "app"]);
    for (branch, manifest) in branches {
        git(dir.path(), &["checkout", "-q", "-b", branch, "main"]);
        write(".slipway/manifest.yaml", manifest);
        git(dir.path(), &["commit", "-q", "-am", branch]);
    }
    git(dir.path(), &["checkout", "-q", "main"]);
    dir
}

/// The `(field, message)` of each problem in a 422 answer.
fn problems(answer: &Value) -> Vec<(String, String)> {
    answer["problems"]
        .as_array()
        .map(|ps| ps.iter().map(|p| (p["field"].as_str().unwrap_or_default().to_string(), p["message"].as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_manifest_naming_the_shared_base_image_is_refused_at_build_creation_and_the_base_image_keeps_its_id(pool: PgPool) {
    let w = world(pool).await;
    let base_before = w.image_id(BASE_IMAGE).await.expect("the base image");
    let branches = [
        ("hub", "registry: none\nservices:\n  api:\n    build: api\n    image: docker.io/slipway/busybox\n".to_string()),
        ("index", "registry: none\nservices:\n  api:\n    build: api\n    image: index.docker.io/slipway/busybox\n".to_string()),
        ("native", "services:\n  api:\n    build: api\n    image: slipway/busybox\n".to_string()),
    ];
    let repo = repo("registry: none\nservices:\n  api:\n    build: api\n    image: slipway/busybox\n", &branches);
    let attacker = w.project(&format!("attacker-{}", nonce()), repo.path()).await;
    for git_ref in ["main", "hub", "index", "native"] {
        let (status, answer) = w.create_build(json!({ "project": attacker.slug, "ref": git_ref, "inputs": { "version": "1" } })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{git_ref}: {answer}");
        let problems = problems(&answer);
        assert_eq!(problems.len(), 1, "{answer}");
        assert_eq!(problems[0].0, "manifest.services.api.image", "{answer}");
        assert!(problems[0].1.contains("reserved for Slipway's own images"), "{answer}");
    }
    assert_eq!(w.build_count(&attacker).await, 0, "nothing was recorded for the attacker");
    assert_eq!(w.image_id(BASE_IMAGE).await.as_deref(), Some(base_before.as_str()), "the base image keeps its id");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_manifest_pushing_into_another_projects_repository_is_refused_at_build_creation_and_its_tags_stay(pool: PgPool) {
    let w = world(pool).await;
    let host = registry();
    let port = host.rsplit(':').next().unwrap().to_string();
    // The victim: a project built and pushed to Slipway's registry.
    let victim_repo = repo("services:\n  api:\n    build: api\n", &[]);
    let victim = w.project(&format!("victim-{}", nonce()), victim_repo.path()).await;
    let built = w.built(&victim).await;
    let artifact = &built.artifacts[0];
    let tag = artifact.image_ref.rsplit(':').next().unwrap().to_string();
    let victim_local = w.image_id(&artifact.image_ref).await.expect("the victim's local tag");
    // A pull credential for the victim's repositories (the registry refuses anonymous reads).
    let target = reader(&victim.slug);
    let victim_repo_name = format!("{}/api", victim.slug);
    let victim_remote = remote_digest(&host, &victim_repo_name, &tag, &target).await.unwrap();
    assert_eq!(victim_remote.as_deref(), Some(artifact.digest.as_str()));

    // The attacker: the same commit names the victim's repository in every way a manifest can.
    let v = &victim.slug;
    let attacks = [
        ("image-in-registry", format!("services:\n  api:\n    build: api\n    image: {host}/{v}/api\n"), "manifest.services.api.image"),
        ("localhost-alias", format!("services:\n  api:\n    build: api\n    image: localhost:{port}/{v}/api\n"), "manifest.services.api.image"),
        ("own-registry", format!("registry:\n  host: {host}\n  namespace: {v}\nservices:\n  api:\n    build: api\n"), "manifest.registry.namespace"),
        ("own-registry-alias", format!("registry:\n  host: localhost:{port}\n  namespace: {v}\nservices:\n  api:\n    build: api\n"), "manifest.registry.namespace"),
        ("local", format!("registry: none\nservices:\n  api:\n    build: api\n    image: slipway.local/{v}/api\n"), "manifest.services.api.image"),
    ];
    let branches: Vec<(&str, String)> = attacks.iter().map(|(b, m, _)| (*b, m.clone())).collect();
    let attacker_repo = repo("services:\n  api:\n    build: api\n", &branches);
    let attacker = w.project(&format!("attacker-{}", nonce()), attacker_repo.path()).await;
    // Even with Slipway's registry on the attacker's registries list (an admin's
    // mistake), its other namespaces stay out of reach.
    for listed in [host.clone(), format!("localhost:{port}")] {
        let input = slipway_model::registry::NewAllowedRegistry { host: listed, username_secret: None, token_secret: None, auth_hosts: vec![] };
        w.store.add_registry(&attacker.id, &input, None).await.unwrap();
    }
    for (branch, _, field) in &attacks {
        let (status, answer) = w.create_build(json!({ "project": attacker.slug, "ref": branch })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{branch}: {answer}");
        let problems = problems(&answer);
        assert_eq!(problems.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), [*field], "{branch}: {answer}");
        assert!(problems[0].1.contains(v.as_str()) || problems[0].1.contains("outside"), "{branch}: {answer}");
    }
    // The build's registry override is checked the same way, on its own field.
    let (status, answer) = w.create_build(json!({ "project": attacker.slug, "registry": { "host": host, "namespace": v } })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(problems(&answer)[0].0, "registry", "{answer}");

    assert_eq!(w.build_count(&attacker).await, 0, "nothing was recorded for the attacker");
    assert_eq!(w.image_id(&artifact.image_ref).await.as_deref(), Some(victim_local.as_str()), "the victim's local tag is unchanged");
    let after = remote_digest(&host, &victim_repo_name, &tag, &target).await.unwrap();
    assert_eq!(after, victim_remote, "the victim's pushed tag is unchanged");
    // The attacker's own namespace still builds.
    let (status, answer) = w.create_build(json!({ "project": attacker.slug, "run": false })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// A tar entry whose name is written byte for byte (the `tar` crate would
/// normalise `/x`, `a/../x` and `x/` away).
fn raw_entry(out: &mut tar::Builder<Vec<u8>>, name: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    out.append(&h, data).unwrap();
}

/// An export re-packed: `images.tar` gets `extra` entries appended (each
/// built from the original `manifest.json`).
fn repack(export: &[u8], extra: impl Fn(&Value) -> Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut outer = tar::Archive::new(flate2::read::GzDecoder::new(export));
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.push((name, data));
    }
    let images = &mut files.iter_mut().find(|(n, _)| n == "images.tar").expect("images.tar").1;
    let mut inner = tar::Archive::new(&images[..]);
    let mut rebuilt = tar::Builder::new(Vec::new());
    let mut manifest = Value::Null;
    for entry in inner.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if entry.path().unwrap().display().to_string() == "manifest.json" {
            manifest = serde_json::from_slice(&data).unwrap();
        }
        rebuilt.append(&header, &data[..]).unwrap();
    }
    for (name, data) in extra(&manifest) {
        raw_entry(&mut rebuilt, &name, &data);
    }
    *images = rebuilt.into_inner().unwrap();
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, data) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, name, &data[..]).unwrap();
    }
    let mut gz = out.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

/// `manifest` with `RepoTags: [tag]` on every image.
fn tagged(manifest: &Value, tag: &str) -> Vec<u8> {
    let mut m = manifest.clone();
    for image in m.as_array_mut().unwrap() {
        image["RepoTags"] = json!([tag]);
    }
    serde_json::to_vec(&m).unwrap()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_import_smuggling_a_tag_in_a_second_manifest_entry_is_refused_and_no_name_moves(pool: PgPool) {
    let w = world(pool).await;
    let base_before = w.image_id(BASE_IMAGE).await.expect("the base image");
    // The victim: another project's local image (a tag on the base image's id).
    let victim = format!("slipway.local/victim-{}/api:1", nonce());
    let (victim_repo, victim_tag) = victim.rsplit_once(':').unwrap();
    w.docker.tag_image(&base_before, Some(TagImageOptions { repo: Some(victim_repo.into()), tag: Some(victim_tag.into()) })).await.unwrap();

    // A real export of a completed build.
    let source_repo = repo("services:\n  api:\n    build: api\n", &[]);
    let source = w.project(&format!("source-{}", nonce()), source_repo.path()).await;
    let built = w.built(&source).await;
    let (status, export) = w.call("GET", &format!("/builds/{}/export", built.spec.id), "application/json", Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&export));
    let target = w.project(&format!("target-{}", nonce()), source_repo.path()).await;
    let import_uri = format!("/api/projects/{}/import", target.slug);

    // Each attack appends entries to images.tar, after the real manifest.json.
    let smuggle = |attack: &str, manifest: &Value| -> Vec<(Vec<u8>, Vec<u8>)> {
        let second_manifest = |name: &[u8]| vec![(name.to_vec(), tagged(manifest, &victim))];
        match attack {
            "absolute name" => second_manifest(b"/manifest.json"),
            "`..` in the name" => second_manifest(b"a/../manifest.json"),
            "trailing slash" => second_manifest(b"manifest.json/"),
            "`./` prefix" => second_manifest(b"./manifest.json"),
            "second manifest.json" => second_manifest(b"manifest.json"),
            _ => {
                let index = json!({ "schemaVersion": 2, "manifests": [{
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", "0".repeat(64)),
                    "size": 1,
                    "annotations": { "io.containerd.image.name": victim, "org.opencontainers.image.ref.name": "1" },
                }] });
                vec![(b"index.json".to_vec(), serde_json::to_vec(&index).unwrap()), (b"oci-layout".to_vec(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())]
            }
        }
    };
    for attack in ["absolute name", "`..` in the name", "trailing slash", "`./` prefix", "second manifest.json", "OCI index name annotation"] {
        let archive = repack(&export, |m| smuggle(attack, m));
        let (status, body) = w.call("POST", &import_uri, "application/gzip", archive).await;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{attack}: {answer}");
        assert_eq!(problems(&answer)[0].0, "archive", "{attack}: {answer}");
        assert_eq!(w.image_id(&victim).await.as_deref(), Some(base_before.as_str()), "{attack}: the victim's tag did not move");
        assert_eq!(w.build_count(&target).await, 0, "{attack}: nothing was imported");
    }
    assert_eq!(w.image_id(BASE_IMAGE).await.as_deref(), Some(base_before.as_str()), "the base image keeps its id");

    // The export as it was still imports.
    let (status, body) = w.call("POST", &import_uri, "application/gzip", export.clone()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let _ = w.docker.remove_image(&victim, Some(RemoveImageOptions { noprune: true, ..Default::default() }), None).await;
}
