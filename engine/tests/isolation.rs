//! Project isolation on the shared engine and registry, through the real
//! runner: a project's Dockerfile may only use its own images, stages of the
//! same Dockerfile and allowed base images; anything else fails the run as a
//! `build_error` naming the line and the rule before BuildKit starts.

mod support;

use slipway_engine::build::diagnose::diagnose;
use slipway_engine::build::registry::{remote_digest, RegistryTarget};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_model::base_image::NewAllowedImage;
use slipway_model::build::BuildDetail;
use slipway_model::project::Project;
use slipway_model::status::{BuildRunStatus, ErrorClass};
use sqlx::PgPool;
use support::{nonce, registry, Builds};

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
    remote_digest(&host, name, tag, &RegistryTarget::new(host.clone())).await.expect("registry answers")
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
