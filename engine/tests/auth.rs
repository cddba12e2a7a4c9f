//! Identity tests: passwords, logins and their rate limits, sessions, API
//! tokens, memberships and access, the audit trail. Each database test gets a
//! fresh database from `#[sqlx::test]` (DATABASE_URL must name a Postgres
//! superuser; `cargo xtask test` provides one).

use std::time::{Duration, Instant};

use slipway_engine::auth::{access, scoped_role, Access, AuditRecord, AuthPolicy};
use slipway_engine::{Error, Store};
use slipway_model::auth::{
    AuditQuery, ClientInfo, NewToken, Permission, Principal, Role, User,
};
use slipway_model::project::NewProject;
use slipway_model::{AppError, ErrorCode};
use slipway_testkit::users::{user, PASSWORD};
use sqlx::PgPool;

fn app_err(err: Error) -> AppError {
    match err {
        Error::App(e) => e,
        other => panic!("expected an AppError, got {other:?}"),
    }
}

fn client(ip: &str) -> ClientInfo {
    ClientInfo { ip: Some(ip.into()), user_agent: Some("tests/1.0".into()) }
}

fn principal(user: &User) -> Principal {
    Principal { user: user.clone(), token_id: None, token_project: None, client: client("10.0.0.1") }
}

async fn project(store: &Store, name: &str) -> String {
    let p = NewProject { name: name.into(), repo_url: "https://git.example/x.git".into(), ..Default::default() };
    store.create_project(&p, None).await.expect("create project").id
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn argon2id_hash_is_stored_and_verifies(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let alice = user(&store, "alice", false).await;
    let (hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM users WHERE id = $1").bind(&alice.id).fetch_one(&pool).await.unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    assert!(slipway_engine::auth::verify_password(&hash, PASSWORD).await.unwrap());
    assert!(!slipway_engine::auth::verify_password(&hash, "a long enough passworD").await.unwrap());
    let (logged_in, session) = store.login(" Alice ", PASSWORD, &client("10.0.0.1")).await.unwrap();
    assert_eq!(logged_in, alice);
    assert_eq!(session.expose().len(), 43);
    assert!(!format!("{session:?}").contains(session.expose()));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn user_validation_names_the_field_and_duplicates_conflict_on_username(pool: PgPool) {
    let store = Store::from_pool(pool);
    user(&store, "alice", false).await;
    let err = app_err(store.create_user("ALICE", None, PASSWORD, false).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(err.problems[0].field, "username");
    let err = app_err(store.create_user("-x", Some(&"d".repeat(101)), "short", false).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::InvalidInput);
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["username", "display_name", "password"]);
    assert!(!err.message.contains("short"));
    assert_eq!(store.user_count().await.unwrap(), 1);
    assert_eq!(store.find_user_by_username("Alice").await.unwrap().map(|u| u.username), Some("alice".into()));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn wrong_password_and_unknown_user_look_the_same(pool: PgPool) {
    let store = Store::from_pool(pool);
    user(&store, "alice", false).await;
    // Warm up (the dummy hash is computed once per process).
    let _ = store.login("nobody-warm", "whatever-password", &client("10.0.0.9")).await;

    let mut wrong_best = Duration::MAX;
    let mut unknown_best = Duration::MAX;
    let mut errors = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        let wrong = store.login("alice", "not-the-password", &client("10.0.0.1")).await.unwrap_err();
        wrong_best = wrong_best.min(t.elapsed());
        let t = Instant::now();
        let unknown = store.login(&format!("nobody{i}"), "not-the-password", &client("10.0.0.2")).await.unwrap_err();
        unknown_best = unknown_best.min(t.elapsed());
        errors.push((app_err(wrong), app_err(unknown)));
    }
    for (wrong, unknown) in errors {
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.code, ErrorCode::Unauthenticated);
        assert_eq!(wrong.message, "invalid username or password");
    }
    // Both paths run argon2 once. Skipping it for an unknown user would make
    // that path hundreds of times faster (a username oracle); a factor of 10
    // between the best of three catches that and tolerates a busy machine.
    assert!(unknown_best * 10 >= wrong_best, "unknown {unknown_best:?} vs wrong {wrong_best:?}");
    assert!(wrong_best * 10 >= unknown_best, "unknown {unknown_best:?} vs wrong {wrong_best:?}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn five_failures_from_one_address_lock_that_address_out_of_the_account_only(pool: PgPool) {
    let store = Store::from_pool(pool);
    user(&store, "alice", false).await;
    user(&store, "bob", false).await;
    let attacker = client("10.1.0.66");
    for i in 0..5 {
        let err = app_err(store.login("alice", "wrong-password", &attacker).await.unwrap_err());
        assert_eq!(err.code, ErrorCode::Unauthenticated, "attempt {i}");
    }
    // The attacker's address is refused, even with the right password.
    let err = app_err(store.login("ALICE", PASSWORD, &attacker).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert_eq!(err.http_status(), 429);
    assert!(err.message.contains("this account from this address") && err.message.contains("minute"), "{}", err.message);
    // Alice, from her own address, is not locked out.
    let (alice, _) = store.login("alice", PASSWORD, &client("10.1.0.9")).await.unwrap();
    assert_eq!(alice.username, "alice");
    let (bob, _) = store.login("bob", PASSWORD, &client("10.2.0.1")).await.unwrap();
    assert_eq!(bob.username, "bob");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn failures_from_many_addresses_slow_the_account_down_without_locking_it(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    user(&store, "alice", false).await;
    let policy = AuthPolicy { account_backoff_after: 3, ..AuthPolicy::default() };
    for i in 0..3 {
        let err = app_err(store.login_with(&policy, "alice", "wrong-password", &client(&format!("10.6.0.{i}"))).await.unwrap_err());
        assert_eq!(err.code, ErrorCode::Unauthenticated, "attempt {i}");
    }
    // The account now waits a second after the latest failure, whoever asks.
    let err = app_err(store.login_with(&policy, "alice", PASSWORD, &client("10.6.1.1")).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert!(err.message.contains("second"), "{}", err.message);
    // Once the wait has passed the right password works again.
    sqlx::query("UPDATE login_attempts SET at = at - interval '2 seconds'").execute(&pool).await.unwrap();
    store.login_with(&policy, "alice", PASSWORD, &client("10.6.1.1")).await.unwrap();
    assert_eq!(policy.account_backoff(3), chrono::Duration::seconds(1));
    assert_eq!(policy.account_backoff(5), chrono::Duration::seconds(4));
    assert_eq!(policy.account_backoff(40), chrono::Duration::seconds(60));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_address_with_too_many_failures_is_refused_but_other_addresses_work(pool: PgPool) {
    let store = Store::from_pool(pool);
    user(&store, "bob", false).await;
    let policy = AuthPolicy { max_failures_per_address: 4, ..AuthPolicy::default() };
    for i in 0..4 {
        // Different usernames, so only the address limit can trip.
        let err = app_err(
            store.login_with(&policy, &format!("guess{i}"), "wrong-password", &client("10.3.0.1")).await.unwrap_err(),
        );
        assert_eq!(err.code, ErrorCode::Unauthenticated);
    }
    let err = app_err(store.login_with(&policy, "bob", PASSWORD, &client("10.3.0.1")).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert!(err.message.contains("this address"), "{}", err.message);
    store.login_with(&policy, "bob", PASSWORD, &client("10.3.0.2")).await.unwrap();
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_successful_login_resets_the_account_count(pool: PgPool) {
    let store = Store::from_pool(pool);
    user(&store, "alice", false).await;
    for _ in 0..4 {
        store.login("alice", "wrong-password", &client("10.4.0.1")).await.unwrap_err();
    }
    store.login("alice", PASSWORD, &client("10.4.0.1")).await.unwrap();
    for _ in 0..4 {
        store.login("alice", "wrong-password", &client("10.4.0.1")).await.unwrap_err();
    }
    store.login("alice", PASSWORD, &client("10.4.0.1")).await.unwrap();
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn sessions_expire_and_logout_ends_them(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let alice = user(&store, "alice", false).await;
    let c = client("10.5.0.1");
    let (_, session) = store.login("alice", PASSWORD, &c).await.unwrap();
    let days = (session.expires_at - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "default ttl is 7 days, got {days} h");
    let p = store.session_principal(session.expose()).await.unwrap().expect("valid session");
    assert_eq!(p.user, alice);
    assert_eq!(p.token_id, None);
    assert_eq!(p.with_client(c.clone()).client, c);
    let (seen,): (Option<chrono::DateTime<chrono::Utc>>,) =
        sqlx::query_as("SELECT last_seen_at FROM sessions").fetch_one(&pool).await.unwrap();
    assert!(seen.is_some());

    // Expire it.
    sqlx::query("UPDATE sessions SET created_at = now() - interval '8 days', expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(store.session_principal(session.expose()).await.unwrap().is_none());
    assert_eq!(store.purge_expired_sessions().await.unwrap(), 1);

    let (_, session) = store.login("alice", PASSWORD, &c).await.unwrap();
    assert!(store.session_principal(session.expose()).await.unwrap().is_some());
    store.logout(session.expose()).await.unwrap();
    assert!(store.session_principal(session.expose()).await.unwrap().is_none());
    assert!(store.session_principal("not-a-token").await.unwrap().is_none());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn changing_the_password_needs_the_old_one_and_ends_other_sessions(pool: PgPool) {
    let store = Store::from_pool(pool);
    user(&store, "alice", false).await;
    let c = client("10.6.0.1");
    let (alice, kept) = store.login("alice", PASSWORD, &c).await.unwrap();
    let (_, other) = store.login("alice", PASSWORD, &c).await.unwrap();
    let err = app_err(store.set_password(&alice.id, "wrong-old-password", "a-new-password!").await.unwrap_err());
    assert_eq!(err.problems[0].field, "old_password");
    let err = app_err(store.set_password(&alice.id, PASSWORD, "short").await.unwrap_err());
    assert_eq!(err.problems[0].field, "new_password");
    store.set_password(&alice.id, PASSWORD, "a-new-password!").await.unwrap();
    assert_eq!(store.end_other_sessions(&alice.id, Some(kept.expose())).await.unwrap(), 1);
    assert!(store.session_principal(kept.expose()).await.unwrap().is_some());
    assert!(store.session_principal(other.expose()).await.unwrap().is_none());
    store.login("alice", PASSWORD, &c).await.unwrap_err();
    store.login("alice", "a-new-password!", &c).await.unwrap();
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn revoked_token_is_refused_at_once(pool: PgPool) {
    let store = Store::from_pool(pool);
    let alice = user(&store, "alice", false).await;
    let p = principal(&alice);
    let created = store.create_token(&p, &NewToken { name: "ci".into(), ..Default::default() }).await.unwrap();
    assert!(created.token.starts_with("slp_") && created.token.len() == 47, "{}", created.token.len());
    let tp = store.token_principal(&created.token).await.unwrap().expect("valid token");
    assert_eq!(tp.user, alice);
    assert_eq!(tp.token_id.as_deref(), Some(created.info.id.as_str()));
    assert_eq!(tp.token_project, None);
    let listed = store.list_tokens(&alice.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());

    let revoked = store.revoke_token(&p, &created.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.token_principal(&created.token).await.unwrap().is_none());
    // Revoking again changes nothing.
    assert_eq!(store.revoke_token(&p, &created.info.id).await.unwrap().revoked_at, revoked.revoked_at);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn only_the_owner_or_an_admin_can_revoke_a_token(pool: PgPool) {
    let store = Store::from_pool(pool);
    let alice = user(&store, "alice", false).await;
    let bob = user(&store, "bob", false).await;
    let root = user(&store, "root", true).await;
    let created = store.create_token(&principal(&alice), &NewToken { name: "laptop".into(), ..Default::default() }).await.unwrap();
    let err = app_err(store.revoke_token(&principal(&bob), &created.info.id).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::NotFound);
    store.revoke_token(&principal(&root), &created.info.id).await.unwrap();
    assert!(store.token_principal(&created.token).await.unwrap().is_none());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn expired_token_is_refused(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let alice = user(&store, "alice", false).await;
    let new = NewToken { name: "short-lived".into(), expires_in_days: Some(1), ..Default::default() };
    let created = store.create_token(&principal(&alice), &new).await.unwrap();
    let left = created.info.expires_at.expect("expiry") - chrono::Utc::now();
    assert!((23..=24).contains(&left.num_hours()));
    assert!(store.token_principal(&created.token).await.unwrap().is_some());
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'").execute(&pool).await.unwrap();
    assert!(store.token_principal(&created.token).await.unwrap().is_none());
    let err = app_err(
        store
            .create_token(&principal(&alice), &NewToken { name: " ".into(), expires_in_days: Some(0), ..Default::default() })
            .await
            .unwrap_err(),
    );
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["name", "expires_in_days"]);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_project_scoped_token_is_not_a_member_elsewhere(pool: PgPool) {
    let store = Store::from_pool(pool);
    let root = user(&store, "root", true).await;
    let dev = user(&store, "dev", false).await;
    let admin_p = principal(&root);
    let alpha = project(&store, "Alpha").await;
    let beta = project(&store, "Beta").await;
    store.add_member(&alpha, "dev", Role::Developer, &admin_p).await.unwrap();
    store.add_member(&beta, "dev", Role::Developer, &admin_p).await.unwrap();

    let new = NewToken { name: "alpha-ci".into(), project: Some("alpha".into()), ..Default::default() };
    let created = store.create_token(&principal(&dev), &new).await.unwrap();
    assert_eq!(created.info.project_id.as_deref(), Some(alpha.as_str()));
    let tp = store.token_principal(&created.token).await.unwrap().unwrap();
    assert_eq!(tp.token_project.as_deref(), Some(alpha.as_str()));

    let role = store.project_role(&tp, &alpha).await.unwrap();
    assert_eq!(access(role, Permission::Build), Access::Allowed);
    let role = store.project_role(&tp, &beta).await.unwrap();
    assert_eq!(role, None);
    assert_eq!(access(role, Permission::Read), Access::NotMember);
    assert_eq!(
        access(role, Permission::Read).require_or_hide("project `beta`").unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(store.visible_project_ids(&tp).await.unwrap(), Some(vec![alpha.clone()]));

    // Even a global admin's scoped token is a stranger to other projects.
    let created = store.create_token(&admin_p, &new).await.unwrap();
    let tp = store.token_principal(&created.token).await.unwrap().unwrap();
    assert_eq!(store.project_role(&tp, &alpha).await.unwrap(), Some(Role::Admin));
    assert_eq!(store.project_role(&tp, &beta).await.unwrap(), None);
    assert!(!tp.is_global_admin());
    assert_eq!(store.visible_project_ids(&tp).await.unwrap(), Some(vec![alpha.clone()]));
    assert_eq!(store.visible_project_ids(&admin_p).await.unwrap(), None);

    // A token for a project the user does not belong to looks like a missing project.
    let outsider = user(&store, "outsider", false).await;
    let err = app_err(store.create_token(&principal(&outsider), &new).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::NotFound);
    // A token made with a scoped token stays in that scope.
    let scoped_dev = store.token_principal(&store.create_token(&principal(&dev), &new).await.unwrap().token)
        .await
        .unwrap()
        .unwrap();
    let again = store.create_token(&scoped_dev, &NewToken { name: "child".into(), ..Default::default() }).await.unwrap();
    assert_eq!(again.info.project_id.as_deref(), Some(alpha.as_str()));
    let beta_new = NewToken { name: "beta".into(), project: Some(beta.clone()), ..Default::default() };
    assert_eq!(app_err(store.create_token(&scoped_dev, &beta_new).await.unwrap_err()).code, ErrorCode::NotFound);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn members_are_added_changed_listed_and_removed(pool: PgPool) {
    let store = Store::from_pool(pool);
    let root = user(&store, "root", true).await;
    let carol = user(&store, "carol", false).await;
    let by = principal(&root);
    let alpha = project(&store, "Alpha").await;
    let beta = project(&store, "Beta").await;

    assert_eq!(store.role_in(&alpha, &carol.id).await.unwrap(), None);
    assert_eq!(store.role_in(&alpha, &root.id).await.unwrap(), Some(Role::Admin));
    let m = store.add_member(&alpha, "Carol", Role::Viewer, &by).await.unwrap();
    assert_eq!((m.user.id.as_str(), m.role), (carol.id.as_str(), Role::Viewer));
    let err = app_err(store.add_member(&alpha, "carol", Role::Admin, &by).await.unwrap_err());
    assert_eq!((err.code, err.problems[0].field.as_str()), (ErrorCode::Conflict, "username"));
    let err = app_err(store.add_member(&alpha, "nobody", Role::Admin, &by).await.unwrap_err());
    assert_eq!((err.code, err.problems[0].field.as_str()), (ErrorCode::InvalidInput, "username"));

    let cp = principal(&carol);
    let role = store.project_role(&cp, &alpha).await.unwrap();
    assert_eq!(access(role, Permission::Read), Access::Allowed);
    assert_eq!(access(role, Permission::Build), Access::Insufficient);
    assert_eq!(access(role, Permission::Build).require().unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(store.project_role(&cp, &beta).await.unwrap(), None);

    store.set_role(&alpha, &carol.id, Role::Approver, &by).await.unwrap();
    assert_eq!(store.role_in(&alpha, &carol.id).await.unwrap(), Some(Role::Approver));
    let members = store.list_members(&alpha).await.unwrap();
    assert_eq!(members.iter().map(|m| (m.user.username.as_str(), m.role)).collect::<Vec<_>>(), [("carol", Role::Approver)]);
    assert_eq!(store.visible_project_ids(&cp).await.unwrap(), Some(vec![alpha.clone()]));

    store.remove_member(&alpha, "carol", &by).await.unwrap();
    assert_eq!(store.role_in(&alpha, &carol.id).await.unwrap(), None);
    assert_eq!(app_err(store.remove_member(&alpha, "carol", &by).await.unwrap_err()).code, ErrorCode::NotFound);
    assert_eq!(app_err(store.set_role(&alpha, "carol", Role::Admin, &by).await.unwrap_err()).code, ErrorCode::NotFound);
    assert_eq!(store.visible_project_ids(&cp).await.unwrap(), Some(vec![]));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_setup_token_works_once_and_only_while_there_are_no_users(pool: PgPool) {
    let store = Store::from_pool(pool);
    assert_eq!(store.user_count().await.unwrap(), 0);
    let first = store.create_setup_token().await.unwrap();
    let second = store.create_setup_token().await.unwrap();
    assert_ne!(first, second);
    let c = client("10.11.0.1");
    let err = app_err(store.consume_setup_token("not-the-token", "admin", PASSWORD, &c).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::Unauthenticated);
    let err = app_err(store.consume_setup_token(&first, "admin", "short", &c).await.unwrap_err());
    assert_eq!(err.problems[0].field, "password");

    let admin = store.consume_setup_token(&first, "admin", PASSWORD, &c).await.unwrap();
    assert!(admin.is_admin);
    assert_eq!(store.user_count().await.unwrap(), 1);
    let err = app_err(store.consume_setup_token(&first, "admin2", PASSWORD, &c).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::Conflict);
    let err = app_err(store.consume_setup_token(&second, "admin2", PASSWORD, &c).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(app_err(store.create_setup_token().await.unwrap_err()).code, ErrorCode::Conflict);
    assert_eq!(store.user_count().await.unwrap(), 1);
    store.login("admin", PASSWORD, &c).await.unwrap();
}

#[test]
fn role_matrix_follows_the_issue() {
    use Permission::*;
    let expected: [(Role, &[Permission]); 4] = [
        (Role::Viewer, &[Read]),
        (Role::Developer, &[Read, Build, Release, Deploy]),
        (Role::Approver, &[Read, Approve]),
        (Role::Admin, &[Read, Build, Release, Deploy, Approve, Admin]),
    ];
    for (role, allowed) in expected {
        for p in Permission::ALL {
            assert_eq!(role.allows(p), allowed.contains(&p), "{role} × {p}");
            let want = if allowed.contains(&p) { Access::Allowed } else { Access::Insufficient };
            assert_eq!(access(Some(role), p), want, "{role} × {p}");
        }
    }
    for p in Permission::ALL {
        assert_eq!(access(None, p), Access::NotMember);
    }
}

#[test]
fn scoped_role_hides_other_projects_even_from_admins() {
    let user = User {
        id: "usr_01h2xcejqtf2nbrexx3vqjhp41".into(),
        username: "root".into(),
        display_name: None,
        is_admin: true,
        created_at: chrono::Utc::now(),
    };
    let mut p = Principal { user, token_id: None, token_project: None, client: ClientInfo::default() };
    assert_eq!(scoped_role(&p, "prj_a", None), Some(Role::Admin));
    p.token_project = Some("prj_a".into());
    assert_eq!(scoped_role(&p, "prj_a", None), Some(Role::Admin));
    assert_eq!(scoped_role(&p, "prj_b", Some(Role::Admin)), None);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn audit_rows_exist_for_identity_events_and_hold_no_secrets(pool: PgPool) {
    let store = Store::from_pool(pool);
    let root = user(&store, "root", true).await;
    let dana = user(&store, "dana", false).await;
    let alpha = project(&store, "Alpha").await;
    let c = client("192.0.2.7");

    store.login("dana", "a-wrong-password-1", &c).await.unwrap_err();
    let (_, session) = store.login("dana", PASSWORD, &c).await.unwrap();
    let by = store.session_principal(session.expose()).await.unwrap().unwrap().with_client(c.clone());
    let token = store.create_token(&by, &NewToken { name: "ci".into(), ..Default::default() }).await.unwrap();
    store.revoke_token(&by, &token.info.id).await.unwrap();
    let admin = principal(&root);
    store.add_member(&alpha, "dana", Role::Developer, &admin).await.unwrap();
    store.set_role(&alpha, "dana", Role::Approver, &admin).await.unwrap();
    store.remove_member(&alpha, "dana", &admin).await.unwrap();
    store.set_password(&dana.id, PASSWORD, "another-password-2").await.unwrap();
    store.logout(session.expose()).await.unwrap();
    // A careless caller passing a secret in the detail gets it redacted.
    store
        .record_audit(AuditRecord {
            actor: Some(&admin),
            action: "test.careless".into(),
            detail: serde_json::json!({"password": PASSWORD, "token": token.token}),
            ..Default::default()
        })
        .await
        .unwrap();

    let page = store.list_audit(&AuditQuery { limit: Some(500), ..Default::default() }).await.unwrap();
    let actions: Vec<&str> = page.events.iter().map(|e| e.action.as_str()).collect();
    for want in [
        "login.failed",
        "login.succeeded",
        "token.created",
        "token.revoked",
        "member.added",
        "member.role_changed",
        "member.removed",
    ] {
        assert!(actions.contains(&want), "missing {want} in {actions:?}");
    }
    let json = serde_json::to_string(&page).unwrap();
    for secret in [PASSWORD, "a-wrong-password-1", "another-password-2", token.token.as_str(), session.expose()] {
        assert!(!json.contains(secret), "the audit trail contains a secret");
    }
    let failed = page.events.iter().find(|e| e.action == "login.failed").unwrap();
    assert_eq!(failed.detail["username"], "dana");
    assert_eq!(failed.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(failed.actor_label, "anonymous");
    let added = page.events.iter().find(|e| e.action == "member.added").unwrap();
    assert_eq!(added.actor_user_id.as_deref(), Some(root.id.as_str()));
    assert_eq!(added.project_id.as_deref(), Some(alpha.as_str()));
    assert_eq!(added.target_id.as_deref(), Some(dana.id.as_str()));

    // Newest first, filters, keyset pages.
    assert!(page.events.windows(2).all(|w| (w[0].at, &w[0].id) > (w[1].at, &w[1].id)));
    let logins = store.list_audit(&AuditQuery { action: Some("login".into()), ..Default::default() }).await.unwrap();
    assert!(logins.events.iter().all(|e| e.action.starts_with("login.")));
    assert_eq!(logins.events.len(), 2);
    let members = store.list_audit(&AuditQuery { project: Some("alpha".into()), ..Default::default() }).await.unwrap();
    assert_eq!(members.events.len(), 3);
    let by_dana = store.list_audit(&AuditQuery { actor: Some("DANA".into()), ..Default::default() }).await.unwrap();
    assert!(by_dana.events.iter().all(|e| e.actor_user_id.as_deref() == Some(dana.id.as_str())));
    let mut seen = Vec::new();
    let mut q = AuditQuery { limit: Some(3), ..Default::default() };
    loop {
        let p = store.list_audit(&q).await.unwrap();
        seen.extend(p.events.iter().map(|e| e.id.clone()));
        match p.next {
            Some(cursor) => q.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, page.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn audit_rows_cannot_be_updated_or_deleted(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let id = store.record_audit(AuditRecord { action: "test.event".into(), ..Default::default() }).await.unwrap();
    let update = sqlx::query("UPDATE audit_events SET action = 'test.changed' WHERE id = $1").bind(&id).execute(&pool).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM audit_events WHERE id = $1").bind(&id).execute(&pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    let truncate = sqlx::query("TRUNCATE audit_events").execute(&pool).await;
    assert!(truncate.is_err());
    let page = store.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].action, "test.event");
    assert_eq!(page.events[0].actor_label, "system");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn set_member_adds_or_changes_and_check_combines_scope_and_role(pool: PgPool) {
    let store = Store::from_pool(pool);
    let root = user(&store, "root", true).await;
    let erin = user(&store, "erin", false).await;
    let by = principal(&root);
    let alpha = project(&store, "Alpha").await;
    let beta = project(&store, "Beta").await;
    assert_eq!(store.set_member(&alpha, "erin", Role::Developer, &by).await.unwrap().role, Role::Developer);
    assert_eq!(store.set_member(&alpha, "erin", Role::Admin, &by).await.unwrap().role, Role::Admin);
    assert_eq!(store.list_members(&alpha).await.unwrap().len(), 1);

    let ep = principal(&erin);
    let role = store.role_in(&alpha, &erin.id).await.unwrap();
    assert_eq!(slipway_engine::auth::check(&ep, &alpha, role, Permission::Admin), Access::Allowed);
    let scoped = Principal { token_project: Some(beta.clone()), ..ep.clone() };
    assert_eq!(slipway_engine::auth::check(&scoped, &alpha, role, Permission::Read), Access::NotMember);

    // A project admin sees their project's audit events only.
    let page = store.list_audit_for(&ep, &AuditQuery::default()).await.unwrap();
    assert!(!page.events.is_empty());
    assert!(page.events.iter().all(|e| e.project_id.as_deref() == Some(alpha.as_str())));
    let err = app_err(
        store.list_audit_for(&ep, &AuditQuery { project: Some("beta".into()), ..Default::default() }).await.unwrap_err(),
    );
    assert_eq!(err.code, ErrorCode::NotFound);
    let everything = store.list_audit_for(&by, &AuditQuery::default()).await.unwrap();
    assert!(everything.events.len() >= page.events.len());
    let nobody = user(&store, "nobody", false).await;
    assert!(store.list_audit_for(&principal(&nobody), &AuditQuery::default()).await.unwrap().events.is_empty());
}
