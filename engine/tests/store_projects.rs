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

/// The name of the constraint a failed statement broke (None if it succeeded).
fn broken_constraint(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(e) => Some(e.as_database_error().and_then(|d| d.constraint()).unwrap_or("(not a constraint violation)").to_string()),
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn schema_rejects_a_bad_git_sha_and_a_bad_artifact_digest(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let p = store.create_project(&new_project("schema", "https://git.example/s.git"), None).await.unwrap();
    let sha = "a".repeat(40);
    let hash = "0".repeat(64);
    let manifest = |git_sha: &str| {
        sqlx::query("INSERT INTO manifests (id, project_id, git_sha, hash, content, parsed) VALUES ($1, $2, $3, $4, '', '{}')")
            .bind(slipway_model::id::new_id(slipway_model::id::MANIFEST))
            .bind(&p.id)
            .bind(git_sha.to_string())
            .bind(&hash)
            .execute(&pool)
    };
    assert_eq!(broken_constraint(manifest("ABC").await).as_deref(), Some("manifests_git_sha_check"));
    assert_eq!(broken_constraint(manifest(&"A".repeat(40)).await).as_deref(), Some("manifests_git_sha_check"), "upper case");
    assert_eq!(broken_constraint(manifest(&sha).await), None);

    // A run to hang artifacts on.
    let build_id = slipway_model::id::new_id(slipway_model::id::BUILD);
    let run_id = slipway_model::id::new_id(slipway_model::id::RUN);
    sqlx::query("INSERT INTO build_specs (id, project_id, git_sha, manifest_hash) VALUES ($1, $2, $3, $4)")
        .bind(&build_id)
        .bind(&p.id)
        .bind(&sha)
        .bind(&hash)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO build_runs (id, build_id, seq) VALUES ($1, $2, 1)").bind(&run_id).bind(&build_id).execute(&pool).await.unwrap();
    let artifact = |service: &str, digest: &str| {
        sqlx::query("INSERT INTO build_artifacts (id, run_id, build_id, service_name, image_ref, digest) VALUES ($1, $2, $3, $4, 'r/x:t', $5)")
            .bind(slipway_model::id::new_id(slipway_model::id::ARTIFACT))
            .bind(&run_id)
            .bind(&build_id)
            .bind(service.to_string())
            .bind(digest.to_string())
            .execute(&pool)
    };
    for (service, bad) in [
        ("a", "ABC".to_string()),
        ("b", format!("sha256:{}", "A".repeat(64))),
        ("c", format!("sha256:{}", "a".repeat(63))),
        ("d", format!("sha512:{}", "a".repeat(64))),
        ("e", "a".repeat(64)),
    ] {
        assert_eq!(broken_constraint(artifact(service, &bad).await).as_deref(), Some("build_artifacts_digest_check"), "{bad}");
    }
    assert_eq!(broken_constraint(artifact("ok", &format!("sha256:{}", "a".repeat(64))).await), None);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_artifacts").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 1, "only the well-formed digest was stored");
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

/// The quoted values of the `IN (…)` list of a table's CHECK constraint on `column`, sorted.
async fn allowed_values(pool: &PgPool, table: &str, constraint: &str) -> Vec<String> {
    let (def,): (String,) = sqlx::query_as(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
         WHERE t.relname = $1 AND c.conname = $2",
    )
    .bind(table)
    .bind(constraint)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("constraint {table}.{constraint}: {e}"));
    let mut values: Vec<String> = def.split('\'').skip(1).step_by(2).map(str::to_string).collect();
    values.sort();
    values
}

fn sorted<T>(all: &[T], name: impl Fn(&T) -> &'static str) -> Vec<String> {
    let mut v: Vec<String> = all.iter().map(|x| name(x).to_string()).collect();
    v.sort();
    v
}

/// The model's status enums and the schema's CHECK lists are written twice
/// (Rust and SQL): a value added to one and not the other would be refused by
/// the database at the first write, or read back as an error. Likewise the
/// statuses that set `completed_at` must be exactly the model's terminal ones.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_schema_allows_exactly_the_models_statuses_and_roles(pool: PgPool) {
    use slipway_model::release::DeploymentKind;
    use slipway_model::status::{ApprovalDecision, BuildRunStatus, DeploymentStatus, ErrorClass, PipelineRunStatus};
    let terminal = |names: Vec<(&'static str, bool)>| {
        let mut v: Vec<String> = names.into_iter().filter(|(_, t)| *t).map(|(n, _)| n.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(allowed_values(&pool, "build_runs", "build_runs_status_check").await, sorted(BuildRunStatus::ALL, |s| s.as_str()));
    assert_eq!(
        allowed_values(&pool, "build_runs", "build_runs_completed_at_check").await,
        terminal(BuildRunStatus::ALL.iter().map(|s| (s.as_str(), s.is_terminal())).collect())
    );
    assert_eq!(allowed_values(&pool, "build_runs", "build_runs_error_code_check").await, sorted(ErrorClass::ALL, |s| s.as_str()));
    assert_eq!(allowed_values(&pool, "deployments", "deployments_status_check").await, sorted(DeploymentStatus::ALL, |s| s.as_str()));
    assert_eq!(
        allowed_values(&pool, "deployments", "deployments_completed_at_check").await,
        terminal(DeploymentStatus::ALL.iter().map(|s| (s.as_str(), s.is_terminal())).collect())
    );
    assert_eq!(
        allowed_values(&pool, "deployments", "deployments_kind_check").await,
        sorted(&[DeploymentKind::Deploy, DeploymentKind::Promote, DeploymentKind::Rollback], |k| k.as_str())
    );
    assert_eq!(allowed_values(&pool, "pipeline_runs", "pipeline_runs_status_check").await, sorted(PipelineRunStatus::ALL, |s| s.as_str()));
    assert_eq!(
        allowed_values(&pool, "pipeline_runs", "pipeline_runs_completed_at_check").await,
        terminal(PipelineRunStatus::ALL.iter().map(|s| (s.as_str(), s.is_terminal())).collect())
    );
    assert_eq!(allowed_values(&pool, "approvals", "approvals_decision_check").await, sorted(ApprovalDecision::ALL, |s| s.as_str()));
    assert_eq!(allowed_values(&pool, "project_members", "project_members_role_check").await, sorted(&slipway_model::auth::Role::ALL, |r| r.as_str()));
}
