//! A hostile member against the repository and manifest promises, through the
//! router: host paths and `file://` URLs (admins only, the same answer whether
//! the path exists or not), git credentials named in project settings, and
//! manifests that are alias bombs or oversized blobs — by build, pipeline and
//! import. Each attack gets a clear 4xx and changes nothing.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use slipway_engine::builds::transfer::{ExportedBuildFile, ExportedImage, ExportedManifest, EXPORT_FORMAT, EXPORT_VERSION};
use slipway_engine::builds::{ArtifactInsert, RunOutcome};
use slipway_model::manifest::{MANIFEST_PATH, MAX_MANIFEST_BYTES, MAX_MANIFEST_NODES};
use slipway_testkit::records::record_spec;
use sqlx::PgPool;
use slipway_testkit::git::repo;
use slipway_testkit::users::token_for;
use support::{alias_bomb, Api};

fn fields(body: &Value) -> Vec<String> {
    body["problems"].as_array().map(|ps| ps.iter().map(|p| p["field"].as_str().unwrap_or("").to_string()).collect()).unwrap_or_default()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_member_naming_a_host_path_or_file_url_gets_403_whether_it_exists_or_not(pool: PgPool) {
    let api = Api::new(pool).await;
    let member = token_for(&api.store, "mallory", false).await;
    // Another project's repository on this host, the server's /etc, the data
    // directory's kind of path, and paths that do not exist.
    let theirs = repo(&[("README", "private\n")]);
    let existing = theirs.path().display().to_string();
    let attempts = [
        existing.clone(),
        "/etc".to_string(),
        "/var/lib/slipway/demo-repo".to_string(),
        "/no/such/repository".to_string(),
        format!("file://{existing}"),
        "file:///no/such/repository".to_string(),
    ];
    let mut answers = Vec::new();
    for (i, url) in attempts.iter().enumerate() {
        let (status, body) = api.post(&member, "projects/create", json!({ "input": { "name": format!("steal-{i}"), "repo_url": url } })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(fields(&body), ["repo_url"], "{url}: {body}");
        answers.push(body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "a missing path and a forbidden one answer alike: {answers:?}");
    assert_eq!(api.rows("projects").await, 0, "no project was created");

    // The administrator may still (the demo is such a project).
    let (status, body) = api.post(&api.admin, "projects/create", json!({ "input": { "name": "ours", "repo_url": existing } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn project_settings_name_a_git_credential_and_never_change_the_repository(pool: PgPool) {
    let api = Api::new(pool).await;
    let member = token_for(&api.store, "mallory", false).await;
    let (status, project) =
        api.post(&member, "projects/create", json!({ "input": { "name": "mine", "repo_url": "https://git.example/mine.git" } })).await;
    assert_eq!(status, StatusCode::OK, "{project}");

    // The project admin names the secret holding the token; a repo_url in the
    // same request is not a setting and changes nothing.
    let (status, updated) = api
        .post(&member, "projects/settings", json!({ "project": "mine", "git_token_secret": "GIT_TOKEN", "repo_url": "/etc" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["git_token_secret"], "GIT_TOKEN");
    assert_eq!(updated["repo_url"], "https://git.example/mine.git");
    assert_eq!(updated["auto_release"], false, "left out, left alone");

    // A deploy key replaces the token; bad names are 422 naming the field.
    let (status, updated) = api.post(&member, "projects/settings", json!({ "project": "mine", "git_ssh_key_secret": "DEPLOY_KEY" })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["git_token_secret"].clone(), updated["git_ssh_key_secret"].clone()), (Value::Null, json!("DEPLOY_KEY")));
    let (status, err) = api.post(&member, "projects/settings", json!({ "project": "mine", "git_token_secret": "not a name!" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(fields(&err), ["git_token_secret"]);
    let (status, err) =
        api.post(&member, "projects/settings", json!({ "project": "mine", "git_token_secret": "A", "git_ssh_key_secret": "B" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (_, shown) = api.post(&member, "projects/show", json!({ "project": "mine" })).await;
    assert_eq!(shown["git_ssh_key_secret"], "DEPLOY_KEY", "refused changes changed nothing");

    // A named secret that is not set: the build is refused saying which.
    let (status, err) = api.post(&member, "builds/create", json!({ "input": { "project": "mine", "ref": "main" } })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["message"].as_str().unwrap().contains("`DEPLOY_KEY`, which is not set"), "{err}");
    assert_eq!(api.rows("build_specs").await, 0);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_manifest_alias_bomb_is_refused_by_build_and_pipeline_naming_the_limit(pool: PgPool) {
    let api = Api::new(pool).await;
    let bomb = alias_bomb();
    let dir = repo(&[(MANIFEST_PATH, &bomb)]);
    api.system_project("bomb", dir.path()).await;
    let limit = format!("the limit is {MAX_MANIFEST_NODES} nodes");
    for (path, body) in [
        ("builds/create", json!({ "input": { "project": "bomb", "ref": "main" } })),
        ("pipelines/start", json!({ "input": { "project": "bomb", "git_sha": "main" } })),
    ] {
        let (status, err) = api.post(&api.admin, path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {err}");
        assert!(err["message"].as_str().unwrap_or("").contains(&limit), "{path}: {err}");
        assert!(fields(&err).iter().all(|f| f.starts_with("manifest")), "{path}: {err}");
    }
    for table in ["manifests", "build_specs", "pipeline_runs"] {
        assert_eq!(api.rows(table).await, 0, "{table}");
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_manifest_blob_over_the_size_limit_is_refused_before_it_is_read(pool: PgPool) {
    let api = Api::new(pool).await;
    let huge = format!("services:\n  api:\n    image: busybox\n#{}\n", "x".repeat(MAX_MANIFEST_BYTES));
    let dir = repo(&[(MANIFEST_PATH, &huge)]);
    api.system_project("huge", dir.path()).await;
    let (status, err) = api.post(&api.admin, "builds/create", json!({ "input": { "project": "huge", "ref": "main" } })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let message = err["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("is {} bytes; the limit is {MAX_MANIFEST_BYTES} bytes (the largest manifest Slipway reads)", huge.len())),
        "{err}"
    );
    assert_eq!(api.rows("manifests").await + api.rows("build_specs").await, 0);
}

/// A `.tgz` as `slipway build export` writes it, whose build.json carries `manifest`.
fn archive(build: &ExportedBuildFile) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, data) in [("build.json", serde_json::to_vec(build).unwrap()), ("images.tar", Vec::new())] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_import_whose_manifest_is_an_alias_bomb_is_refused_and_records_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    let project = api.system_project("target", repo::<&str>(&[]).path()).await;
    // A real completed build to take the records' shape from.
    let (sha, hash) = ("a".repeat(40), "b".repeat(64));
    let spec_id = record_spec(&api.store, &project.id, &sha, &hash).await;
    let run = api.store.enqueue_run(&spec_id, None, false).await.unwrap();
    api.store.claim_run("hostile", std::time::Duration::from_secs(60), "test").await.unwrap().unwrap();
    let digest = format!("sha256:{}", "c".repeat(64));
    api.store
        .insert_artifact(&run.id, &spec_id, &ArtifactInsert {
            service_name: "api".into(),
            image_ref: "127.0.0.1:5000/target/api:sha-aaaaaaaaaaaa".into(),
            digest: digest.clone(),
            platforms: vec!["linux/amd64".into()],
            size_bytes: Some(1),
        })
        .await
        .unwrap();
    assert!(api.store.finish_run(&run.id, "hostile", &RunOutcome::Completed { reused_from: None }).await.unwrap());
    let detail = api.store.get_build(&spec_id).await.unwrap();
    let build = ExportedBuildFile {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        exported_at: chrono::Utc::now(),
        project_id: project.id.clone(),
        project_slug: project.slug.clone(),
        spec: detail.spec.clone(),
        run: detail.runs[0].clone(),
        artifacts: detail.artifacts.clone(),
        images: vec![ExportedImage { service: "api".into(), image_ref: detail.artifacts[0].image_ref.clone(), digest: digest.clone(), image_id: digest }],
        manifest: ExportedManifest { path: MANIFEST_PATH.into(), hash, content: alias_bomb() },
    };
    let (specs, releases) = (api.rows("build_specs").await, api.rows("releases").await);
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/projects/{}/import", project.id))
        .header("authorization", format!("Bearer {}", api.admin))
        .header("content-type", "application/gzip")
        .body(Body::from(archive(&build)))
        .unwrap();
    let (status, body) = api.send(req).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains(&format!("the limit is {MAX_MANIFEST_NODES} nodes")), "{body}");
    assert_eq!((api.rows("build_specs").await, api.rows("releases").await), (specs, releases), "nothing recorded");
}
