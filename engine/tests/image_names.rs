//! Names on the shared Docker engine that must not move: a load that sets
//! a name anyway is undone from the engine's own report, and the base
//! image's name is checked by id at start-up and restored when it points
//! at another image. Real engine; every name made here is test-owned.

use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveImageOptions, TagImageOptions};
use bollard::Docker;
use futures::StreamExt;
use slipway_engine::builds::image_archive::load_images;
use slipway_engine::embedded::{ensure_base_image_as, BASE_IMAGE};
use slipway_model::AppError;
use slipway_testkit::nonce;
use slipway_testkit::services::docker;

async fn image_id(docker: &Docker, name: &str) -> Option<String> {
    docker.inspect_image(name).await.ok().and_then(|i| i.id)
}

async fn tag(docker: &Docker, image: &str, name: &str) {
    let (repo, tag) = name.rsplit_once(':').unwrap();
    docker.tag_image(image, Some(TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) })).await.unwrap();
}

async fn untag(docker: &Docker, name: &str) {
    let _ = docker.remove_image(name, Some(RemoveImageOptions { noprune: true, ..Default::default() }), None).await;
}

/// A small image of its own (`docker import` of one file), named `name`; its id.
async fn other_image(docker: &Docker, name: &str) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let content = format!("{name}\n");
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "marker", content.as_bytes()).unwrap();
    let (repo, t) = name.rsplit_once(':').unwrap();
    let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(t).build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(tar.into_inner().unwrap().into())), None);
    while let Some(item) = stream.next().await {
        item.unwrap();
    }
    image_id(docker, name).await.expect("the imported image")
}

#[tokio::test]
async fn a_load_that_names_images_anyway_puts_every_name_back_and_fails() {
    let docker = docker().await;
    let n = nonce();
    let base = image_id(&docker, BASE_IMAGE).await.unwrap();
    // Another project's image, and an image to load.
    let victim = format!("slipway.local/victim-{n}/api:1");
    tag(&docker, &base, &victim).await;
    let loaded_name = format!("slipway-test/loaded-{n}:1");
    let loaded = other_image(&docker, &loaded_name).await;
    let fresh = format!("slipway.local/fresh-{n}/api:1");

    // `docker save` of that image, with its manifest naming both.
    let mut saved = Vec::new();
    let mut stream = docker.export_images(&[loaded.as_str()]);
    while let Some(chunk) = stream.next().await {
        saved.extend_from_slice(&chunk.unwrap());
    }
    let mut rebuilt = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(&saved[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let mut m: serde_json::Value = serde_json::from_slice(&data).unwrap();
            m[0]["RepoTags"] = serde_json::json!([victim, fresh]);
            data = serde_json::to_vec(&m).unwrap();
            header.set_size(data.len() as u64);
            header.set_cksum();
        }
        rebuilt.append(&header, &data[..]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("images.tar");
    std::fs::write(&path, rebuilt.into_inner().unwrap()).unwrap();

    let result = load_images(&docker, &path, std::slice::from_ref(&loaded)).await;
    let victim_after = image_id(&docker, &victim).await;
    let fresh_after = image_id(&docker, &fresh).await;
    untag(&docker, &victim).await;
    untag(&docker, &fresh).await;
    untag(&docker, &loaded_name).await;

    let err = AppError::from(result.expect_err("a load that names images fails"));
    assert_eq!(err.problems[0].field, "archive", "{err:?}");
    assert!(err.message.contains(&victim) && err.message.contains("put back"), "{}", err.message);
    assert_eq!(victim_after.as_deref(), Some(base.as_str()), "the other project's name points where it did");
    assert_eq!(fresh_after, None, "a name that did not exist before is removed");
}

#[tokio::test]
async fn a_base_image_name_pointing_at_another_image_is_loaded_again_by_id() {
    let docker = docker().await;
    let n = nonce();
    let real = image_id(&docker, BASE_IMAGE).await.unwrap();
    // A test-owned copy of the base image's name, re-tagged onto another image.
    let name = format!("slipway/busybox-test-{n}:1");
    let impostor = other_image(&docker, &name).await;
    assert_ne!(impostor, real);

    let id = ensure_base_image_as(&docker, &name).await.unwrap();
    let after = image_id(&docker, &name).await;
    untag(&docker, &name).await;
    let _ = docker.remove_image(&impostor, None::<RemoveImageOptions>, None).await;

    assert_eq!(id, real, "the base image's id is fixed by its content");
    assert_eq!(after.as_deref(), Some(real.as_str()), "the name points at the base image again");
}
