//! Build export and import end to end: a real BuildKit build pushed to the
//! real registry, exported (`docker save`), its images removed from the
//! engine, imported into another project (`docker load`, push), and the
//! release that import creates compared digest for digest.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::RemoveImageOptions;
use bollard::Docker;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::registry::remote_digest;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::builds::transfer::{self, ExportedBuildFile, EXPORT_FORMAT};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::release;
use slipway_engine::Store;
use slipway_model::build::{BuildDetail, NewBuild};
use slipway_model::id;
use slipway_model::release::{ImageDigests, ReleaseListQuery};
use slipway_model::status::BuildRunStatus;
use slipway_model::{AppError, ErrorCode};
use slipway_testkit::git::repo;
use slipway_testkit::projects::project;
use slipway_testkit::services::{docker, image_reader, registry, tokens};
use sqlx::PgPool;

/// Removes an image from the engine whatever names it has (the test's
/// images are unique to it: their content carries a nonce).
async fn remove_image(docker: &Docker, image_id: &str) {
    docker
        .remove_image(image_id, Some(RemoveImageOptions { force: true, ..Default::default() }), None)
        .await
        .unwrap_or_else(|e| panic!("removing {image_id}: {e}"));
    assert!(docker.inspect_image(image_id).await.is_err(), "{image_id} is gone");
}

/// `build.json` and the names of the archive's entries.
fn read_archive(tgz: &[u8]) -> (ExportedBuildFile, Vec<String>) {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut names = Vec::new();
    let mut build = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name == "build.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            build = Some(serde_json::from_str(&text).unwrap());
        }
        names.push(name);
    }
    (build.expect("build.json"), names)
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn export_then_import_into_another_project_creates_a_release_with_identical_digests(pool: PgPool) {
    let store = Store::from_pool(pool);
    let docker = docker().await;
    let nonce = id::new_id("n");
    let manifest = "services:\n  api:\n    build: api\n  web:\n    build: web\n";
    let src = repo(&[
        (".slipway/manifest.yaml", manifest.to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nCOPY . /app\nCMD [\"cat\", \"/app/id.txt\"]\n")),
        ("api/id.txt", format!("api {nonce}\n")),
        ("web/Dockerfile", "FROM scratch\nCOPY index.html /index.html\n".to_string()),
        ("web/index.html", format!("<p>web {nonce}</p>\n")),
    ]);
    let source = project(&store, "src", src.path()).await;
    // The target project's repository does not even have the commit: an import needs no git.
    let other = repo::<&str>(&[]);
    let target = project(&store, "dst", other.path()).await;

    // Build on BuildKit and push to the registry.
    let work = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    config.heartbeat = Duration::from_millis(200);
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), None, config);
    let created = create_build(&store, &NewBuild { project: source.slug.clone(), run: true, ..Default::default() }, None).await.unwrap();
    runner.run_once().await.unwrap().expect("a queued run");
    let built: BuildDetail = store.get_build(&created.spec.id).await.unwrap();
    assert_eq!(built.runs[0].status, BuildRunStatus::Completed, "{:?}", built.runs[0].error_message);
    let built_digests: ImageDigests = built.artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect();
    assert_eq!(built_digests.len(), 2);

    // Take the images off the engine: the export pulls them back by digest.
    let mut image_ids = Vec::new();
    for a in &built.artifacts {
        let id = docker.inspect_image(&a.image_ref).await.unwrap().id.unwrap();
        remove_image(&docker, &id).await;
        image_ids.push((a.service_name.clone(), id));
    }
    let export = transfer::export_build(&store, &docker, &built.spec.id, tokens().as_ref()).await.unwrap();
    assert_eq!(export.file_name, format!("{}.tgz", built.spec.id));
    let size = export.size_bytes;
    let tgz = export.into_bytes().await.unwrap();
    assert_eq!(tgz.len() as u64, size);
    let (file, names) = read_archive(&tgz);
    assert_eq!(names, ["build.json", "images.tar"]);
    assert_eq!((file.format.as_str(), file.version), (EXPORT_FORMAT, 1));
    assert_eq!(file.spec.id, built.spec.id);
    assert_eq!(file.run.id, built.runs[0].id);
    assert_eq!(file.artifacts, built.artifacts);
    assert_eq!(file.manifest.content, manifest);
    assert_eq!(file.manifest.hash, built.spec.manifest_hash);
    for (service, id) in &image_ids {
        let image = file.images.iter().find(|i| &i.service == service).unwrap();
        assert_eq!(&image.image_id, id, "the image saved is the one built");
        assert_eq!(image.digest, built_digests[service]);
    }

    // Off the engine again: the import really loads them.
    for (_, id) in &image_ids {
        remove_image(&docker, id).await;
    }
    let imported = transfer::import_build(&store, &docker, &target.slug, tgz.clone(), Some(&registry()), tokens().as_ref(), None).await.unwrap();
    let rel = &imported.release;
    let b = &imported.build;

    // The release references the imported build, in the target project, with the exported digests.
    assert_eq!(rel.project_id, target.id);
    assert_eq!(rel.build_id, b.spec.id);
    assert_eq!(rel.image_digests, built_digests, "same image, same kind of registry: the same digests");
    assert_eq!((rel.git_sha.as_str(), rel.manifest_hash.as_str()), (built.spec.git_sha.as_str(), built.spec.manifest_hash.as_str()));
    assert_eq!(b.spec.project_id, target.id);
    assert_eq!(b.spec.inputs["imported_from"]["build_id"], built.spec.id.as_str());
    assert_eq!(b.runs.len(), 1);
    assert_eq!((b.runs[0].status, b.runs[0].backend.as_deref()), (BuildRunStatus::Completed, Some("import")));
    let recorded = store.manifest_content(&target.id, &built.spec.git_sha).await.unwrap().expect("the manifest is recorded for the target");
    assert_eq!(recorded, (built.spec.manifest_hash.clone(), manifest.to_string()));
    // Each image is in the registry under the target project, at that digest.
    let host = registry();
    for a in &b.artifacts {
        let tag = format!("sha-{}", &built.spec.git_sha[..12]);
        assert_eq!(a.image_ref, format!("{host}/{}/{}:{tag}", target.slug, a.service_name));
        let name = format!("{}/{}", target.slug, a.service_name);
        let remote = remote_digest(&host, &name, &tag, &image_reader(&name)).await.unwrap();
        assert_eq!(remote.as_deref(), Some(a.digest.as_str()));
        assert_eq!(a.digest, built_digests[&a.service_name]);
    }
    let page = release::list_releases(&store, &target.slug, &ReleaseListQuery::default()).await.unwrap();
    assert_eq!(page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [rel.id.as_str()]);

    // A second import of the same archive is a new build and a new release with the same digests.
    let again = transfer::import_build(&store, &docker, &target.slug, tgz, Some(&registry()), tokens().as_ref(), None).await.unwrap();
    assert_ne!(again.build.spec.id, b.spec.id);
    assert_ne!(again.release.tag, rel.tag);
    assert_eq!(again.release.image_digests, built_digests);

    // Bad archives are refused with a reason, before anything is recorded.
    let err: AppError =
        transfer::import_build(&store, &docker, &target.slug, bytes::Bytes::from_static(b"not a tgz"), Some(&host), tokens().as_ref(), None).await.unwrap_err().into();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_specs WHERE project_id = $1").bind(&target.id).fetch_one(store.pool()).await.unwrap();
    assert_eq!(count, 2);

    // A build without a completed run cannot be exported.
    let pending = create_build(&store, &NewBuild { project: source.slug.clone(), run: false, force_rebuild: true, idempotency_key: Some("x".into()), ..Default::default() }, None)
        .await
        .unwrap();
    let err: AppError = transfer::export_build(&store, &docker, &pending.spec.id, tokens().as_ref()).await.unwrap_err().into();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
}
