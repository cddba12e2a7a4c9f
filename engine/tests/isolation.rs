//! Project isolation on the shared engine and registry, through the real
//! runner: a project's Dockerfile may only use its own images, stages of the
//! same Dockerfile and allowed base images; anything else fails the run as a
//! `build_error` naming the line and the rule before BuildKit starts.

mod support;

use slipway_engine::builds::diagnose::diagnose;
use slipway_engine::builds::registry::remote_digest;
use slipway_engine::embedded::BASE_IMAGE;
use slipway_model::base_image::NewAllowedImage;
use slipway_model::build::BuildDetail;
use slipway_model::project::Project;
use slipway_model::status::{BuildRunStatus, ErrorClass};
use sqlx::PgPool;
use slipway_testkit::nonce;
use slipway_testkit::services::{reader, registry, tokens};
use support::Builds;

/// Project B's image, holding a file only B should be able to read.
async fn victim(w: &mut Builds, secret: &str) -> (Project, String, String) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  api:\n    build: api\n".to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nCOPY secret.txt /secret.txt\n")),
        ("api/secret.txt", format!("{secret}\n")),
    ];
    let b = w.project("victim", &files).await;
    let d = w.build(&b).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    let a = &d.artifacts[0];
    (b, a.image_ref.clone(), a.digest.clone())
}

/// The registry's digest of `image_ref` (`host/name:tag`).
async fn registry_digest(image_ref: &str) -> Option<String> {
    let host = registry();
    let rest = image_ref.strip_prefix(&format!("{host}/")).expect("an image of the test registry");
    let (name, tag) = rest.rsplit_once(':').expect("a tag");
    let slug = name.split('/').next().unwrap_or_default();
    remote_digest(&host, name, tag, &reader(slug)).await.expect("registry answers")
}

async fn build_phase_lines(w: &Builds, run_id: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_logs WHERE run_id = $1 AND phase = 'build'")
        .bind(run_id)
        .fetch_one(w.store.pool())
        .await
        .unwrap();
    n
}

fn assert_refused(d: &BuildDetail) -> String {
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed, "{:?}", run.error_message);
    assert_eq!(run.error_code.as_deref(), Some("build_error"));
    assert!(d.artifacts.is_empty(), "nothing may be recorded");
    run.error_message.clone().unwrap_or_default()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_project_cannot_build_from_another_projects_image_by_tag_digest_build_arg_or_copy_from(pool: PgPool) {
    let mut w = Builds::new(pool).await;
    let secret = format!("b-secret-{}", nonce());
    let (_b, image, digest) = victim(&mut w, &secret).await;
    let repository = image.rsplit_once(':').unwrap().0.to_string();
    let read = "RUN cat /secret.txt /x 2>/dev/null; echo read-ok\n";
    let files = vec![
        (
            ".slipway/manifest.yaml",
            format!(
                "services:\n  bytag:\n    build: bytag\n  bydigest:\n    build: bydigest\n  byarg:\n    build:\n      context: byarg\n      args:\n        BASE: {image}\n  copyfrom:\n    build: copyfrom\n"
            ),
        ),
        ("bytag/Dockerfile", format!("FROM {image}\n{read}")),
        ("bydigest/Dockerfile", format!("# pinned\nFROM {repository}@{digest}\n{read}")),
        ("byarg/Dockerfile", format!("ARG BASE={BASE_IMAGE}\nFROM ${{BASE}}\n{read}")),
        ("copyfrom/Dockerfile", format!("FROM {BASE_IMAGE}\nCOPY \\\n  --from={image} /secret.txt /x\n{read}")),
    ];
    let a = w.project("attacker", &files).await;
    let before = registry_digest(&image).await;
    let d = w.build(&a).await;
    let message = assert_refused(&d);
    for expected in [
        format!("bytag/Dockerfile:1: FROM {image}"),
        format!("bydigest/Dockerfile:2: FROM {repository}@{digest}"),
        format!("byarg/Dockerfile:2: FROM ${{BASE}}: not allowed (resolves to {image})"),
        format!("copyfrom/Dockerfile:2: COPY --from {image}"),
        format!("a build may only use an image of project {} ({}/{}/…)", a.slug, registry(), a.slug),
    ] {
        assert!(message.contains(&expected), "`{expected}` missing from: {message}");
    }
    let run = &d.runs[0];
    assert!(run.failed_step.as_deref().is_some_and(|s| s.contains("Dockerfile:")), "{:?}", run.failed_step);
    // Refused before BuildKit started: nothing ran, nothing was read.
    assert_eq!(build_phase_lines(&w, &run.id).await, 0);
    let log = w.log_text(&run.id).await;
    assert!(!log.contains("read-ok") && !log.contains(&secret), "{log}");
    assert!(log.contains("✗ bytag/Dockerfile:1"), "{log}");
    // The other project's image is untouched.
    assert_eq!(registry_digest(&image).await, before);
    assert_eq!(before.as_deref(), Some(digest.as_str()));
    // Diagnosis says what was refused and what to do.
    let diagnosis = diagnose(&w.store, &d.spec.id).await.unwrap();
    let failure = diagnosis.failure.expect("a failure diagnosis");
    assert_eq!(failure.class, ErrorClass::BuildError);
    assert!(failure.cause.contains("may not use") && failure.cause.contains("bytag/Dockerfile:1"), "{}", failure.cause);
    assert!(failure.hint.contains("slipway base-images add"), "{}", failure.hint);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_image_an_administrator_shares_with_a_project_can_be_its_base_and_no_other_projects(pool: PgPool) {
    let mut w = Builds::new(pool).await;
    let secret = format!("shared-{}", nonce());
    let (_b, image, _) = victim(&mut w, &secret).await;
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  app:\n    build: app\n".to_string()),
        ("app/Dockerfile", format!("FROM {image}\nRUN cat /secret.txt && echo read-ok\n")),
    ];
    let a = w.project("friend", &files).await;
    let c = w.project("stranger", &files).await;
    let repository = image.rsplit_once(':').unwrap().0.to_string();
    let entry = w.store.add_allowed_image(&NewAllowedImage { pattern: repository.clone(), project: Some(a.slug.clone()) }, None).await.unwrap();
    assert_eq!(entry.project.as_deref(), Some(a.slug.as_str()));

    let d = w.build(&a).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    let log = w.log_text(&d.runs[0].id).await;
    assert!(log.contains("read-ok") && log.contains(&secret), "{log}");

    // The entry is for project A only.
    let refused = w.build(&c).await;
    let message = assert_refused(&refused);
    assert!(message.contains(&format!("app/Dockerfile:1: FROM {image}")), "{message}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_embedded_base_image_scratch_and_stages_are_allowed_by_default(pool: PgPool) {
    let mut w = Builds::new(pool).await;
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  app:\n    build: app\n".to_string()),
        ("app/Dockerfile", format!("FROM {BASE_IMAGE} AS build\nRUN echo built > /out\nFROM scratch\nCOPY --from=build /out /out\n")),
    ];
    let p = w.project("plain", &files).await;
    let d = w.build(&p).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
}

/// Pulls `image` through the engine with `credentials`; the engine's error text on failure.
async fn engine_pull(w: &Builds, image: &str, credentials: Option<bollard::auth::DockerCredentials>) -> Result<(), String> {
    use futures::StreamExt;
    let (repo, tag) = image.rsplit_once(':').unwrap();
    let options = bollard::query_parameters::CreateImageOptions { from_image: Some(repo.to_string()), tag: Some(tag.to_string()), ..Default::default() };
    let mut stream = w.docker.create_image(Some(options), None, credentials);
    while let Some(item) = stream.next().await {
        item.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Pushes `repo:tag` (already tagged locally) through the engine with `credentials`.
async fn engine_push(w: &Builds, repo: &str, tag: &str, credentials: Option<bollard::auth::DockerCredentials>) -> Result<(), String> {
    use futures::StreamExt;
    let options = bollard::query_parameters::PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = w.docker.push_image(repo, Some(options), credentials);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(e);
        }
    }
    Ok(())
}

fn engine_credentials((username, password): (String, String)) -> Option<bollard::auth::DockerCredentials> {
    Some(bollard::auth::DockerCredentials { username: Some(username), password: Some(password), serveraddress: Some(registry()), ..Default::default() })
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn anonymous_pulls_and_pushes_and_another_projects_token_are_refused_by_the_registry(pool: PgPool) {
    let mut w = Builds::new(pool).await;
    let issuer = tokens().expect("the test registry authenticates with Slipway's tokens (SLIPWAY_REGISTRY_TOKEN_KEY)");
    let (b, image, digest) = victim(&mut w, &format!("b-{}", nonce())).await;
    let a = w.project("attacker", &[(".slipway/manifest.yaml", "services:\n  api:\n    build: api\n".to_string())]).await;
    let (repo, _) = image.rsplit_once(':').unwrap();
    // Something to push over B's tag: the base image, tagged into B's repository.
    let evil_tag = format!("evil-{}", nonce());
    w.docker
        .tag_image(BASE_IMAGE, Some(bollard::query_parameters::TagImageOptionsBuilder::default().repo(repo).tag(&evil_tag).build()))
        .await
        .unwrap();
    let overwrite = image.rsplit_once(':').unwrap().1.to_string();
    w.docker
        .tag_image(BASE_IMAGE, Some(bollard::query_parameters::TagImageOptionsBuilder::default().repo(repo).tag(&overwrite).build()))
        .await
        .unwrap();

    // Anonymous: refused both ways.
    let err = engine_pull(&w, &image, None).await.expect_err("an anonymous pull");
    assert!(err.contains("unauthorized") || err.contains("authentication required") || err.contains("denied"), "{err}");
    let err = engine_push(&w, repo, &evil_tag, None).await.expect_err("an anonymous push");
    assert!(err.contains("unauthorized") || err.contains("authentication required") || err.contains("denied"), "{err}");
    let err = engine_push(&w, repo, &overwrite, None).await.expect_err("an anonymous push over B's tag");
    assert!(err.contains("unauthorized") || err.contains("authentication required") || err.contains("denied"), "{err}");

    // Project A's credential: its own repositories only.
    let a_credential = issuer.project_credential(&w.store, &a.id, &a.slug).await.unwrap();
    assert!(engine_pull(&w, &image, engine_credentials(a_credential.clone())).await.is_err(), "A pulled B's image");
    assert!(engine_push(&w, repo, &overwrite, engine_credentials(a_credential.clone())).await.is_err(), "A pushed over B's tag");
    assert!(engine_push(&w, repo, &evil_tag, engine_credentials(a_credential)).await.is_err(), "A pushed into B's repository");

    // Nothing changed in B's repository.
    assert_eq!(registry_digest(&image).await.as_deref(), Some(digest.as_str()));
    let name = repo.strip_prefix(&format!("{}/", registry())).unwrap();
    assert_eq!(remote_digest(&registry(), name, &evil_tag, &reader(&b.slug)).await.unwrap(), None);

    // B's own credential pulls it; so does A's once an administrator shares the repository with A.
    let b_credential = issuer.project_credential(&w.store, &b.id, &b.slug).await.unwrap();
    engine_pull(&w, &image, engine_credentials(b_credential)).await.expect("B pulls its own image");
    w.store
        .add_allowed_image(&NewAllowedImage { pattern: repo.to_string(), project: Some(a.slug.clone()) }, None)
        .await
        .unwrap();
    let shared = issuer.project_credential(&w.store, &a.id, &a.slug).await.unwrap();
    engine_pull(&w, &image, engine_credentials(shared.clone())).await.expect("A pulls the image shared with it");
    assert!(engine_push(&w, repo, &evil_tag, engine_credentials(shared)).await.is_err(), "sharing grants pull only");
    for t in [&evil_tag, &overwrite] {
        let _ = w.docker.remove_image(&format!("{repo}:{t}"), None::<bollard::query_parameters::RemoveImageOptions>, None).await;
    }
}

/// A manifest `image` in another project's namespace is refused when the
/// build is requested (before anything runs), and B's image is untouched.
/// (Were it to get that far, the registry would refuse A's token for B's
/// repository too: see `registry_tokens.rs` and the anonymous/other-token test above.)
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_build_naming_another_projects_repository_as_its_image_cannot_push_over_it(pool: PgPool) {
    let mut w = Builds::new(pool).await;
    tokens().expect("the test registry authenticates with Slipway's tokens (SLIPWAY_REGISTRY_TOKEN_KEY)");
    let (_b, image, digest) = victim(&mut w, &format!("b-{}", nonce())).await;
    let (repo, _) = image.rsplit_once(':').unwrap();
    let files = vec![
        (".slipway/manifest.yaml", format!("services:\n  api:\n    image: {repo}\n    build: api\n")),
        ("api/Dockerfile", "FROM scratch\nCOPY evil.txt /secret.txt\n".to_string()),
        ("api/evil.txt", "overwritten\n".to_string()),
    ];
    let a = w.project("pusher", &files).await;
    let input = slipway_model::build::NewBuild { project: a.slug.clone(), run: true, ..Default::default() };
    let refused = slipway_engine::builds::create::create_build(&w.store, &input, None).await.expect_err("the build is refused");
    let slipway_engine::Error::App(e) = refused else { panic!("a user error, not {refused}") };
    assert_eq!(e.code, slipway_model::ErrorCode::InvalidInput, "{e:?}");
    assert_eq!(e.problems.first().map(|p| p.field.as_str()), Some("manifest.services.api.image"), "{e:?}");
    assert!(e.message.contains("outside this project's image namespace") && e.message.contains(&format!("/{}/", a.slug)), "{}", e.message);
    let builds: (i64,) = sqlx::query_as("SELECT count(*) FROM build_specs WHERE project_id = $1").bind(&a.id).fetch_one(w.store.pool()).await.unwrap();
    assert_eq!(builds.0, 0, "nothing was queued");
    // B's image is untouched.
    assert_eq!(registry_digest(&image).await.as_deref(), Some(digest.as_str()));
}
