//! Store tests: each gets a fresh database from `#[sqlx::test]` (DATABASE_URL
//! must name a Postgres superuser; `cargo xtask test` provides one).

use slipway_engine::Store;
use slipway_model::project::NewProject;
use slipway_model::{AppError, ErrorCode};
use sqlx::PgPool;

fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("git").arg("init").arg("-q").arg(dir.path()).status().expect("git");
    assert!(status.success());
    dir
}

fn new_project(name: &str, repo: &str) -> NewProject {
    NewProject { name: name.into(), repo_url: repo.into(), ..Default::default() }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn created_project_is_listed_with_zero_counts(pool: PgPool) {
    let store = Store::from_pool(pool);
    let repo = git_repo();
    let created = store
        .create_project(&new_project("  Payments API ", repo.path().to_str().unwrap()), None)
        .await
        .unwrap();
    assert_eq!(created.name, "Payments API");
    assert_eq!(created.slug, "payments-api");
    assert_eq!(created.default_branch, "main");
    assert!(created.id.starts_with("prj_"));
    let listed = store.list_projects().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].project, created);
    assert_eq!((listed[0].build_count, listed[0].release_count, listed[0].environment_count), (0, 0, 0));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn project_is_found_by_id_slug_and_name(pool: PgPool) {
    let store = Store::from_pool(pool);
    let repo = git_repo();
    let p = store.create_project(&new_project("Web Shop", repo.path().to_str().unwrap()), None).await.unwrap();
    for key in [p.id.as_str(), "web-shop", "web shop"] {
        assert_eq!(store.get_project(key).await.unwrap().id, p.id, "{key}");
    }
    let err: AppError = store.get_project("nope").await.unwrap_err().into();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("`nope`"), "{}", err.message);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn duplicate_name_is_a_conflict_naming_the_field(pool: PgPool) {
    let store = Store::from_pool(pool);
    let repo = git_repo();
    let path = repo.path().to_str().unwrap();
    store.create_project(&new_project("shop", path), None).await.unwrap();
    let err: AppError = store.create_project(&new_project("SHOP", path), None).await.unwrap_err().into();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(err.problems[0].field, "name");
    assert_eq!(store.list_projects().await.unwrap().len(), 1);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_local_path_that_is_not_a_git_repository_is_refused(pool: PgPool) {
    let store = Store::from_pool(pool);
    let plain = tempfile::tempdir().unwrap();
    let err: AppError =
        store.create_project(&new_project("x", plain.path().to_str().unwrap()), None).await.unwrap_err().into();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert_eq!(err.problems[0].field, "repo_url");
    assert!(err.message.contains("not a git repository"), "{}", err.message);
    let err: AppError = store.create_project(&new_project("x", "/does/not/exist"), None).await.unwrap_err().into();
    assert!(err.message.contains("does not exist"), "{}", err.message);
    assert!(store.list_projects().await.unwrap().is_empty());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn git_urls_are_accepted_without_touching_the_network(pool: PgPool) {
    let store = Store::from_pool(pool);
    let p = store.create_project(&new_project("remote", "https://git.example/team/app.git"), None).await.unwrap();
    assert_eq!(p.repo_url, "https://git.example/team/app.git");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn schema_rejects_a_bad_git_sha_and_a_bad_digest(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let p = store.create_project(&new_project("schema", "https://git.example/s.git"), None).await.unwrap();
    let bad_sha = sqlx::query(
        "INSERT INTO manifests (id, project_id, git_sha, hash, content, parsed) VALUES ($1, $2, 'ABC', $3, '', '{}')",
    )
    .bind(slipway_model::id::new_id(slipway_model::id::MANIFEST))
    .bind(&p.id)
    .bind("0".repeat(64))
    .execute(&pool)
    .await;
    let err = bad_sha.unwrap_err().to_string();
    assert!(err.contains("check constraint"), "{err}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn seeding_the_demo_project_twice_creates_it_once(pool: PgPool) {
    let store = Store::from_pool(pool);
    let data = tempfile::tempdir().unwrap();
    let first = slipway_engine::demo::seed_demo_project(&store, data.path()).await.unwrap();
    let second = slipway_engine::demo::seed_demo_project(&store, data.path()).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(store.list_projects().await.unwrap().len(), 1);
    let manifest = std::fs::read_to_string(data.path().join("demo-repo/.slipway/manifest.yaml")).unwrap();
    let parsed = slipway_model::manifest::parse(&manifest).unwrap();
    assert_eq!(parsed.service_names().into_iter().collect::<Vec<_>>(), ["api", "web"]);
}
