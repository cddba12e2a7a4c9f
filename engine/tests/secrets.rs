//! Secret store tests. Database tests get a fresh database from
//! `#[sqlx::test]` (DATABASE_URL must name a Postgres superuser).

use std::os::unix::fs::PermissionsExt;

use slipway_engine::secrets::{MasterKey, SecretBox, MASTER_KEY_FILE};
use slipway_engine::{Error, Store};
use slipway_model::id::{self, ENVIRONMENT};
use slipway_model::project::NewProject;
use slipway_model::ErrorCode;
use sqlx::PgPool;

const VALUE: &str = "hunter2-correct-horse-battery";

fn sbox(seed: u8) -> SecretBox {
    SecretBox::new(MasterKey::from_bytes([seed; 32]))
}

async fn project(store: &Store, name: &str) -> String {
    let p = NewProject { name: name.into(), repo_url: "https://git.example/x.git".into(), ..Default::default() };
    store.create_project(&p, None).await.unwrap().id
}

async fn environment(pool: &PgPool, project_id: &str, name: &str, position: i32) -> String {
    let id = id::new_id(ENVIRONMENT);
    sqlx::query("INSERT INTO environments (id, project_id, name, position) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(project_id)
        .bind(name)
        .bind(position)
        .execute(pool)
        .await
        .unwrap();
    id
}

fn invalid_field(err: Error) -> String {
    match err {
        Error::App(e) => {
            assert_eq!(e.code, ErrorCode::InvalidInput, "{e:?}");
            e.problems[0].field.clone()
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_secret_round_trips_through_the_store(pool: PgPool) {
    let store = Store::from_pool(pool);
    let sb = sbox(1);
    let prj = project(&store, "Payments").await;
    let meta = store.set_secret(&sb, &prj, None, "REGISTRY_PASSWORD", VALUE, None).await.unwrap();
    assert!(meta.id.starts_with("sec_"));
    assert_eq!(meta.name, "REGISTRY_PASSWORD");
    assert_eq!(meta.environment_id, None);
    assert_eq!(meta.key_id, sb.current.key_id());
    let got = store.secret_value(&sb, &prj, None, "REGISTRY_PASSWORD").await.unwrap();
    assert_eq!(got.as_deref(), Some(VALUE));
    assert_eq!(store.secret_value(&sb, &prj, None, "MISSING").await.unwrap(), None);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn setting_a_secret_again_replaces_its_value_in_place(pool: PgPool) {
    let store = Store::from_pool(pool);
    let sb = sbox(1);
    let prj = project(&store, "Payments").await;
    let first = store.set_secret(&sb, &prj, None, "TOKEN", "first-value", None).await.unwrap();
    let second = store.set_secret(&sb, &prj, None, "TOKEN", "second-value", None).await.unwrap();
    assert_eq!(first.id, second.id);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(store.list_secrets(&prj).await.unwrap().len(), 1);
    let got = store.secret_value(&sb, &prj, None, "TOKEN").await.unwrap();
    assert_eq!(got.as_deref(), Some("second-value"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_stored_ciphertext_does_not_contain_the_value(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let prj = project(&store, "Payments").await;
    store.set_secret(&sbox(1), &prj, None, "DB_PASSWORD", VALUE, None).await.unwrap();
    let (ciphertext, nonce): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT ciphertext, nonce FROM secrets WHERE name = 'DB_PASSWORD'").fetch_one(&pool).await.unwrap();
    assert_eq!(nonce.len(), 12);
    assert_eq!(ciphertext.len(), VALUE.len() + 16);
    assert!(!ciphertext.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));
    // Not even a piece of it survives in the clear.
    assert!(!ciphertext.windows(8).any(|w| VALUE.as_bytes().windows(8).any(|v| v == w)));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn values_are_never_in_the_list_output(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let sb = sbox(1);
    let prj = project(&store, "Payments").await;
    let env = environment(&pool, &prj, "production", 0).await;
    store.set_secret(&sb, &prj, None, "API_KEY", VALUE, None).await.unwrap();
    store.set_secret(&sb, &prj, Some(&env), "API_KEY", "prod-only-value", None).await.unwrap();
    store.set_secret(&sb, &prj, None, "AAA", "another-value", None).await.unwrap();
    let listed = store.list_secrets(&prj).await.unwrap();
    let names: Vec<_> = listed.iter().map(|m| (m.name.as_str(), m.environment_id.clone())).collect();
    assert_eq!(names, [("AAA", None), ("API_KEY", None), ("API_KEY", Some(env))]);
    let json = serde_json::to_string(&listed).unwrap();
    for value in [VALUE, "prod-only-value", "another-value"] {
        assert!(!json.contains(value), "{json}");
    }
    assert!(json.contains("key_id"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_ciphertext_moved_to_another_name_fails_to_decrypt(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let sb = sbox(1);
    let prj = project(&store, "Payments").await;
    store.set_secret(&sb, &prj, None, "SOURCE", VALUE, None).await.unwrap();
    store.set_secret(&sb, &prj, None, "TARGET", "target-value", None).await.unwrap();
    sqlx::query(
        "UPDATE secrets t SET ciphertext = s.ciphertext, nonce = s.nonce, key_id = s.key_id
         FROM secrets s WHERE s.name = 'SOURCE' AND t.name = 'TARGET'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = store.secret_value(&sb, &prj, None, "TARGET").await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("TARGET") && message.contains("does not belong"), "{message}");
    assert!(!message.contains(VALUE));
    // The source itself is intact.
    assert_eq!(store.secret_value(&sb, &prj, None, "SOURCE").await.unwrap().as_deref(), Some(VALUE));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_ciphertext_moved_to_another_project_fails_to_decrypt(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let sb = sbox(1);
    let a = project(&store, "Alpha").await;
    let b = project(&store, "Beta").await;
    store.set_secret(&sb, &a, None, "TOKEN", VALUE, None).await.unwrap();
    store.set_secret(&sb, &b, None, "TOKEN", "beta-value", None).await.unwrap();
    sqlx::query(
        "UPDATE secrets t SET ciphertext = s.ciphertext, nonce = s.nonce
         FROM secrets s WHERE s.project_id = $1 AND t.project_id = $2",
    )
    .bind(&a)
    .bind(&b)
    .execute(&pool)
    .await
    .unwrap();
    assert!(store.secret_value(&sb, &b, None, "TOKEN").await.is_err());
    assert!(store.all_secret_values(&sb, &b).await.is_err());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn values_written_with_a_previous_key_decrypt_after_rotation(pool: PgPool) {
    let store = Store::from_pool(pool);
    let key_a = MasterKey::from_bytes([0xa1; 32]);
    let key_b = MasterKey::from_bytes([0xb2; 32]);
    let prj = project(&store, "Payments").await;
    let old = SecretBox::new(key_a.clone());
    let meta = store.set_secret(&old, &prj, None, "OLD_SECRET", VALUE, None).await.unwrap();
    assert_eq!(meta.key_id, key_a.key_id());

    let rotated = SecretBox { current: key_b.clone(), previous: vec![key_a.clone()] };
    assert_eq!(store.secret_value(&rotated, &prj, None, "OLD_SECRET").await.unwrap().as_deref(), Some(VALUE));
    let new_meta = store.set_secret(&rotated, &prj, None, "NEW_SECRET", "new-value", None).await.unwrap();
    assert_eq!(new_meta.key_id, key_b.key_id());

    // Without the old key, the error names the key id it needs.
    let only_b = SecretBox::new(key_b);
    let err = store.secret_value(&only_b, &prj, None, "OLD_SECRET").await.unwrap_err();
    assert!(err.to_string().contains(&key_a.key_id()), "{err}");
    assert_eq!(store.secret_value(&only_b, &prj, None, "NEW_SECRET").await.unwrap().as_deref(), Some("new-value"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_environment_scoped_value_wins_over_the_project_wide_one(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let sb = sbox(1);
    let prj = project(&store, "Payments").await;
    let prod = environment(&pool, &prj, "production", 0).await;
    let staging = environment(&pool, &prj, "staging", 1).await;
    store.set_secret(&sb, &prj, None, "DB_URL", "project-wide", None).await.unwrap();
    store.set_secret(&sb, &prj, Some(&prod), "DB_URL", "production-only", None).await.unwrap();

    let value = |env: Option<String>| {
        let (store, sb, prj) = (&store, &sb, &prj);
        async move { store.secret_value(sb, prj, env.as_deref(), "DB_URL").await.unwrap() }
    };
    assert_eq!(value(Some(prod.clone())).await.as_deref(), Some("production-only"));
    assert_eq!(value(Some(staging.clone())).await.as_deref(), Some("project-wide"));
    assert_eq!(value(None).await.as_deref(), Some("project-wide"));

    // Deleting is per scope.
    assert!(store.delete_secret(&prj, Some(&prod), "DB_URL").await.unwrap());
    assert!(!store.delete_secret(&prj, Some(&prod), "DB_URL").await.unwrap());
    assert_eq!(value(Some(prod.clone())).await.as_deref(), Some("project-wide"));
    assert!(store.delete_secret(&prj, None, "DB_URL").await.unwrap());
    assert_eq!(value(Some(prod)).await, None);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn all_secret_values_decrypts_every_scope_for_log_masking(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let sb = sbox(1);
    let prj = project(&store, "Payments").await;
    let other = project(&store, "Other").await;
    let prod = environment(&pool, &prj, "production", 0).await;
    store.set_secret(&sb, &prj, None, "A", "short-one", None).await.unwrap();
    store.set_secret(&sb, &prj, Some(&prod), "A", "a-longer-value", None).await.unwrap();
    store.set_secret(&sb, &prj, None, "B", "short-one", None).await.unwrap();
    store.set_secret(&sb, &other, None, "A", "not-this-project", None).await.unwrap();
    let values = store.all_secret_values(&sb, &prj).await.unwrap();
    assert_eq!(values, ["a-longer-value", "short-one"]);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_bad_name_is_invalid_input_naming_the_name_field(pool: PgPool) {
    let store = Store::from_pool(pool);
    let prj = project(&store, "Payments").await;
    for bad in ["lower", "1ABC", "WITH-DASH", "", "A B"] {
        let err = store.set_secret(&sbox(1), &prj, None, bad, VALUE, None).await.unwrap_err();
        assert_eq!(invalid_field(err), "name", "{bad}");
    }
    assert!(store.list_secrets(&prj).await.unwrap().is_empty());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_short_or_huge_value_is_invalid_input_naming_the_value_field(pool: PgPool) {
    let store = Store::from_pool(pool);
    let prj = project(&store, "Payments").await;
    for bad in [String::new(), "ab".to_string(), "x".repeat(64 * 1024 + 1)] {
        let err = store.set_secret(&sbox(1), &prj, None, "TOKEN", &bad, None).await.unwrap_err();
        assert_eq!(invalid_field(err), "value");
    }
    store.set_secret(&sbox(1), &prj, None, "TOKEN", "abc", None).await.unwrap();
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_environment_of_another_project_is_invalid_input(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let prj = project(&store, "Payments").await;
    let other = project(&store, "Other").await;
    let env = environment(&pool, &other, "production", 0).await;
    let err = store.set_secret(&sbox(1), &prj, Some(&env), "TOKEN", VALUE, None).await.unwrap_err();
    assert_eq!(invalid_field(err), "environment_id");
}

#[test]
fn the_key_file_is_created_with_mode_0600_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created = MasterKey::from_env_value_or_file(None, &data).unwrap();
    let path = data.join(MASTER_KEY_FILE);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    let again = MasterKey::from_env_value_or_file(None, &data).unwrap();
    assert_eq!(again.key_id(), created.key_id());
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MASTER_KEY_FILE);
    std::fs::write(&path, [7u8; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::from_env_value_or_file(None, dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Startup(_)), "{err:?}");
    assert!(message.contains("0644") && message.contains("chmod 600"), "{message}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = MasterKey::from_env_value_or_file(None, dir.path()).unwrap();
    assert_eq!(key.key_id(), MasterKey::from_bytes([7u8; 32]).key_id());
}

#[test]
fn a_badly_formatted_master_key_variable_gives_an_error_without_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let too_short_hex = "0123456789abcdef0123456789abcdef";
    let not_a_key = "Sup3rS3cretPassphraseNotAKey!!";
    let short_base64 = "c2hvcnQta2V5LXNpeHRlZW4=";
    for bad in [too_short_hex, not_a_key, short_base64, ""] {
        let err = MasterKey::from_env_value_or_file(Some(bad), dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Startup(_)), "{err:?}");
        assert!(message.contains("SLIPWAY_MASTER_KEY") && message.contains("64 hex"), "{message}");
        if !bad.is_empty() {
            assert!(!message.contains(bad), "{message}");
        }
    }
    // A set variable is used instead of the key file, which is not created.
    assert!(!dir.path().join(MASTER_KEY_FILE).exists());
}

#[test]
fn a_master_key_variable_is_accepted_as_hex_or_base64() {
    use base64::Engine as _;
    let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
    let expected = MasterKey::from_bytes(bytes).key_id();
    let hex_key = hex::encode(bytes);
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    for text in [hex_key.clone(), hex_key.to_uppercase(), format!("{b64}\n"), b64_url] {
        assert_eq!(MasterKey::from_env_value(&text).unwrap().key_id(), expected, "{text}");
    }
}

#[test]
fn the_key_id_is_a_sha256_prefix_and_debug_hides_the_key() {
    use sha2::Digest;
    let key = MasterKey::from_bytes([0x42; 32]);
    let id = key.key_id();
    assert_eq!(id.len(), 16);
    assert_eq!(id, hex::encode(sha2::Sha256::digest([0x42u8; 32]))[..16]);
    let shown = format!("{key:?} {:?}", SecretBox::new(key.clone()));
    assert!(shown.contains(&id));
    assert!(!shown.contains("42, 42") && !shown.contains("4242"), "{shown}");
}

#[test]
fn sealing_twice_uses_fresh_nonces() {
    let sb = sbox(9);
    let a = sb.seal(b"aad", VALUE.as_bytes()).unwrap();
    let b = sb.seal(b"aad", VALUE.as_bytes()).unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
    assert_eq!(sb.open(b"aad", &a).unwrap(), VALUE.as_bytes());
    assert!(sb.open(b"other", &a).is_err());
}
