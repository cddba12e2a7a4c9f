//! What the README promises of the CLI from build to production, against a
//! whole Slipway (router, build worker, deploy executor, real engine and
//! registry): members and roles, secrets, tokens, `build create --wait`,
//! `build diagnose`, releases, and every `env` verb through a gated
//! environment — checking each command's output and exit status — and then
//! that `slipway audit` shows one row per action with who, from where, on
//! what, and what changed.

mod support;

use slipway_engine::embedded::BASE_IMAGE;
use slipway_testkit::git::{commit, git};
use slipway_testkit::users::token_for;
use support::Server;
use sqlx::PgPool;

const MANIFEST: &str = "services:
  web:
    build: web
environments:
  - name: test
  - name: production
    approval:
      required: 1
";

fn app(version: &str) -> Vec<(&'static str, String)> {
    vec![
        (".slipway/manifest.yaml", MANIFEST.to_string()),
        ("web/Dockerfile", format!("FROM {BASE_IMAGE}\nCOPY index.html /srv/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n")),
        ("web/index.html", format!("web {version}\n")),
    ]
}

/// The release tag running in `env` (from `slipway --json env show`), if any.
async fn running(srv: &Server, token: &str, project: &str, env: &str) -> Option<String> {
    let col = srv.run(token, &["--json", "env", "show", env, "--project", project]).await.json();
    col["current"]["release_tag"].as_str().map(str::to_string)
}

async fn wait_running(srv: &Server, token: &str, project: &str, env: &str, tag: &str) {
    srv.eventually(&format!("{env} to run {tag}"), || async { (running(srv, token, project, env).await.as_deref() == Some(tag)).then_some(()) })
        .await;
}

/// The deployment id in `Deployment dep_… to <env>: <status> …`.
fn deployment_id(out: &str) -> String {
    let id = out.split_whitespace().nth(1).unwrap_or_default();
    assert!(id.starts_with("dep_"), "no deployment id in: {out}");
    id.to_string()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_cli_takes_a_build_through_a_gated_promotion_and_the_audit_shows_every_step(pool: PgPool) {
    let srv = Server::start(pool).await;
    let admin = srv.admin.clone();
    let dev = token_for(&srv.store, "dev", false).await;
    let ap1 = token_for(&srv.store, "ap1", false).await;
    let ap2 = token_for(&srv.store, "ap2", false).await;

    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    commit(repo.path(), &app("v1"));
    // A branch whose build fails, for diagnosis.
    git(repo.path(), &["checkout", "-q", "-b", "broken"]);
    let mut broken = app("broken");
    broken[1].1 = format!("FROM {BASE_IMAGE}\nRUN echo about-to-fail && exit 3\n");
    commit(repo.path(), &broken);
    git(repo.path(), &["checkout", "-q", "main"]);
    let project = format!("deliv-{}", &slipway_model::id::new_id("x")[2..10]);
    let out = srv.run(&admin, &["project", "create", &project, "--repo", &repo.path().display().to_string()]).await;
    assert!(out.ok, "{}", out.stderr);

    // --- members ---------------------------------------------------------
    for (who, role) in [("dev", "developer"), ("ap1", "approver"), ("ap2", "approver")] {
        let out = srv.run(&admin, &["members", "set", who, role, "--project", &project]).await;
        assert!(out.ok, "{}", out.stderr);
    }
    let out = srv.run(&admin, &["members", "set", "ap2", "viewer", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = srv.run(&admin, &["members", "set", "ap2", "approver", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = srv.run(&admin, &["members", "list", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    let rows: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["USER", "ROLE"], "{}", out.stdout);
    for (who, role) in [("cli-admin", "admin"), ("dev", "developer"), ("ap1", "approver"), ("ap2", "approver")] {
        assert!(rows.contains(&vec![who, role]), "{who} {role} missing:\n{}", out.stdout);
    }
    let out = srv.run(&dev, &["members", "set", "dev", "admin", "--project", &project]).await;
    assert!(!out.ok, "a developer cannot make themself admin");
    assert!(out.stderr.contains("does not allow"), "{}", out.stderr);

    // --- secrets: names only, ever ----------------------------------------
    let value = "s3cr3t-value-7f3a9c";
    let out = srv.run_with_input(&admin, &["secrets", "set", "DB_PASSWORD", "--project", &project], Some(&format!("{value}\n"))).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("Set secret DB_PASSWORD in {project}"));
    let out = srv.run(&admin, &["secrets", "set", "OLD_KEY", "--project", &project, "--value", "old-value-1234"]).await;
    assert!(out.ok, "{}", out.stderr);
    for json in [false, true] {
        let args: Vec<&str> = if json { vec!["--json", "secrets", "list", "--project", &project] } else { vec!["secrets", "list", "--project", &project] };
        let out = srv.run(&admin, &args).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("DB_PASSWORD") && out.stdout.contains("OLD_KEY"), "{}", out.stdout);
        assert!(!out.stdout.contains(value) && !out.stdout.contains("old-value-1234"), "a secret value was printed: {}", out.stdout);
    }
    let out = srv.run(&admin, &["secrets", "delete", "OLD_KEY", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("Deleted secret OLD_KEY from {project}"));
    let listed = srv.run(&admin, &["--json", "secrets", "list", "--project", &project]).await.json();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["DB_PASSWORD"]);
    let out = srv.run(&dev, &["secrets", "list", "--project", &project]).await;
    assert!(!out.ok, "secrets are for project admins");

    // --- tokens: shown once, scoped, revocable ------------------------------
    let out = srv.run(&dev, &["tokens", "create", "ci", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    let ci_token = out.stdout.trim().to_string();
    assert!(ci_token.starts_with("slp_") && !ci_token.contains(char::is_whitespace), "{}", out.stdout);
    let token_id = out.stderr.split_whitespace().nth(1).unwrap_or_default().to_string();
    assert!(token_id.starts_with("tok_"), "{}", out.stderr);
    let out = srv.run(&dev, &["tokens", "list"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains(&token_id) && out.stdout.contains("active"), "{}", out.stdout);
    assert!(!out.stdout.contains(&ci_token), "a token value was listed");
    let out = srv.run(&ci_token, &["project", "show", &project]).await;
    assert!(out.ok, "the new token works: {}", out.stderr);
    // The id is a positional argument beside the global --token: the request
    // must still carry the caller's token (it once carried the id instead).
    let out = srv.run(&dev, &["tokens", "revoke", &token_id]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("Revoked {token_id}"));
    let out = srv.run(&ci_token, &["project", "show", &project]).await;
    assert!(!out.ok, "a revoked token is refused");
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // --- builds: --wait, and a diagnosis of a failure -------------------------
    let out = srv.run(&dev, &["build", "create", "--project", &project, "--ref", "main", "--wait"]).await;
    assert!(out.ok, "--wait exits 0 for a completed build: {}", out.stderr);
    let build_v1 = out.stdout.lines().find_map(|l| l.strip_prefix("Build:")).map(|s| s.trim().to_string()).unwrap_or_default();
    assert!(build_v1.starts_with("bld_"), "{}", out.stdout);
    assert!(out.stderr.contains("completed"), "progress on stderr: {}", out.stderr);
    assert!(out.stdout.contains("web") && out.stdout.contains("sha256:"), "the artifacts: {}", out.stdout);

    let out = srv.run(&dev, &["build", "create", "--project", &project, "--ref", "broken", "--wait"]).await;
    assert!(!out.ok, "--wait exits non-zero for a failed build");
    let failed = out.stdout.lines().find_map(|l| l.strip_prefix("Build:")).map(|s| s.trim().to_string()).unwrap_or_default();
    assert!(out.stderr.contains(&format!("error: build {failed} failed")), "{}", out.stderr);
    let out = srv.run(&dev, &["build", "diagnose", &failed]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("Error: build_error"), "{}", out.stdout);
    assert!(out.stdout.contains("failed step: ") && out.stdout.contains("exit 3"), "{}", out.stdout);
    assert!(out.stdout.contains("about-to-fail"), "the failed stage's lines: {}", out.stdout);

    // --- releases -------------------------------------------------------------
    let out = srv.run(&dev, &["release", "create", "--project", &project, "--build", &build_v1, "--tag", "v1"]).await;
    assert!(out.ok, "{}", out.stderr);
    let built = srv.run(&dev, &["--json", "build", "artifacts", &build_v1]).await.json();
    let digest_v1 = built[0]["digest"].as_str().unwrap().to_string();
    let v1 = srv.run(&dev, &["--json", "release", "resolve", "v1", "--project", &project]).await.json();
    assert_eq!(v1["image_digests"]["web"], digest_v1.as_str());
    assert_eq!(v1["build_id"], build_v1.as_str());
    let out = srv.run(&dev, &["release", "create", "--project", &project, "--build", &build_v1, "--tag", "v1"]).await;
    assert!(!out.ok, "tags are immutable");

    // --- env: deploy, diff, promote, reject, approve ----------------------------
    let out = srv.run(&dev, &["env", "deploy", "test", "--project", &project, "--release", "v1"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains(" to test: ") && out.stdout.contains("(release v1)"), "{}", out.stdout);
    wait_running(&srv, &dev, &project, "test", "v1").await;

    let out = srv.run(&dev, &["env", "diff", "test", "production", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.starts_with("test → production: v1 replaces nothing"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("* web: - → {}", &digest_v1[7..19])), "{}", out.stdout);

    let out = srv.run(&dev, &["env", "promote", "test", "production", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("awaiting_approval") && out.stdout.contains("1 more approval(s) needed"), "{}", out.stdout);
    let gated = deployment_id(&out.stdout);
    let out = srv.run(&dev, &["env", "approve", &gated]).await;
    assert!(!out.ok);
    assert_eq!(out.stderr.trim(), "error: your role in this project (developer) does not allow approve");
    let out = srv.run(&ap1, &["env", "reject", &gated]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("Deployment {gated} to production: rejected")), "{}", out.stdout);
    assert!(out.stdout.contains("error: rejected by ap1"), "{}", out.stdout);
    let out = srv.run(&ap2, &["env", "approve", &gated]).await;
    assert!(!out.ok, "a rejected deployment cannot be approved");
    assert!(out.stderr.contains("only a deployment awaiting approval can be approved"), "{}", out.stderr);
    assert_eq!(running(&srv, &dev, &project, "production").await, None, "nothing reached production");

    let out = srv.run(&dev, &["env", "promote", "test", "production", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    let gated = deployment_id(&out.stdout);
    let out = srv.run(&ap1, &["env", "approve", &gated]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("Deployment {gated} to production: ")), "{}", out.stdout);
    wait_running(&srv, &dev, &project, "production", "v1").await;

    // --- a second release, then a rollback (gated too) ---------------------------
    commit(repo.path(), &app("v2"));
    let out = srv.run(&dev, &["build", "create", "--project", &project, "--ref", "main", "--wait"]).await;
    assert!(out.ok, "{}", out.stderr);
    let build_v2 = out.stdout.lines().find_map(|l| l.strip_prefix("Build:")).map(|s| s.trim().to_string()).unwrap_or_default();
    let out = srv.run(&dev, &["release", "create", "--project", &project, "--build", &build_v2, "--tag", "v2"]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = srv.run(&dev, &["env", "deploy", "production", "--project", &project, "--release", "v2"]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = srv.run(&ap2, &["env", "approve", &deployment_id(&out.stdout)]).await;
    assert!(out.ok, "{}", out.stderr);
    wait_running(&srv, &dev, &project, "production", "v2").await;
    let out = srv.run(&dev, &["release", "list", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    let v2_row = out.stdout.lines().find(|l| l.starts_with("v2 ")).unwrap_or_default();
    assert!(v2_row.contains("production"), "release list says where v2 runs: {}", out.stdout);

    let out = srv.run(&dev, &["env", "rollback", "production", "--project", &project]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("awaiting_approval") && out.stdout.contains("(release v1)"), "{}", out.stdout);
    let rollback = deployment_id(&out.stdout);
    let out = srv.run(&ap1, &["env", "approve", &rollback]).await;
    assert!(out.ok, "{}", out.stderr);
    wait_running(&srv, &dev, &project, "production", "v1").await;
    let prod = srv.run(&dev, &["--json", "env", "show", "production", "--project", &project]).await.json();
    assert_eq!(prod["current"]["image_digests"]["web"], digest_v1.as_str(), "production runs v1's digest again");
    assert_eq!(prod["current"]["containers"][0]["digest"], digest_v1.as_str());

    // --- the audit trail ------------------------------------------------------
    let page = srv.run(&admin, &["--json", "audit", "--project", &project, "--limit", "200"]).await.json();
    let events = page["events"].as_array().unwrap().clone();
    let find = |action: &str, actor: &str| -> Vec<serde_json::Value> {
        events.iter().filter(|e| e["action"] == action && e["actor_label"] == actor).cloned().collect()
    };
    let one = |action: &str, actor: &str, target: &str| -> serde_json::Value {
        let found = find(action, actor);
        let hit = found.iter().find(|e| e["target_id"] == target);
        let e = hit.unwrap_or_else(|| panic!("no {action} by {actor} on {target}: {found:#?}")).clone();
        assert_eq!(e["ip"], "127.0.0.1", "from where: {e:#}");
        assert!(e["at"].is_string(), "when: {e:#}");
        e
    };
    let user_id = |name: &str| {
        let u = events.iter().find(|e| e["detail"]["username"] == name && e["target_type"] == "user").unwrap_or_else(|| panic!("no event about {name}"));
        u["target_id"].as_str().unwrap().to_string()
    };
    let ap2_id = user_id("ap2");
    let e = one("member.role_changed", "cli-admin", &ap2_id);
    assert_eq!((e["detail"]["from"].as_str(), e["detail"]["to"].as_str()), (Some("viewer"), Some("approver")), "before and after: {e:#}");
    one("member.added", "cli-admin", &user_id("dev"));
    let secret = find("secret.set", "cli-admin");
    assert_eq!(secret.len(), 2, "{secret:#?}");
    assert!(secret.iter().any(|e| e["detail"]["name"] == "DB_PASSWORD"));
    one("secret.deleted", "cli-admin", "OLD_KEY");
    one("build.created", "dev", &build_v1);
    one("build.created", "dev", &failed);
    let e = one("release.created", "dev", v1["id"].as_str().unwrap());
    assert_eq!(e["detail"]["image_digests"]["web"], digest_v1.as_str());
    let deploys = find("deploy.requested", "dev");
    assert_eq!(deploys.len(), 2, "test and production: {deploys:#?}");
    // Before → after: what ran in the environment when it was asked, and what is to run.
    let release_of = |side: &serde_json::Value| side["release"].as_str().map(str::to_string);
    let to_test = deploys.iter().find(|e| e["detail"]["environment"] == "test").expect("the deploy to test");
    assert!(to_test["detail"].get("before").is_some_and(|b| b.is_null()), "nothing ran in test before: {to_test:#}");
    assert_eq!(release_of(&to_test["detail"]["after"]).as_deref(), Some("v1"), "{to_test:#}");
    assert_eq!(to_test["detail"]["after"]["image_digests"]["web"], digest_v1.as_str(), "{to_test:#}");
    let to_prod = deploys.iter().find(|e| e["detail"]["environment"] == "production").expect("the deploy of v2 to production");
    assert_eq!(release_of(&to_prod["detail"]["before"]).as_deref(), Some("v1"), "{to_prod:#}");
    assert_eq!(to_prod["detail"]["before"]["image_digests"]["web"], digest_v1.as_str(), "{to_prod:#}");
    assert_eq!(release_of(&to_prod["detail"]["after"]).as_deref(), Some("v2"), "{to_prod:#}");
    let promotions = find("deploy.promoted", "dev");
    assert_eq!(promotions.len(), 2, "{promotions:#?}");
    for p in &promotions {
        assert_eq!((p["detail"]["from"].as_str(), p["detail"]["to"].as_str()), (Some("test"), Some("production")), "{p:#}");
        assert_eq!(p["detail"]["image_digests"]["web"], digest_v1.as_str());
        assert!(p["detail"].get("before").is_some_and(|b| b.is_null()), "nothing ran in production yet: {p:#}");
        assert_eq!(release_of(&p["detail"]["after"]).as_deref(), Some("v1"), "{p:#}");
    }
    assert_eq!(find("deploy.rejected", "ap1").len(), 1);
    assert_eq!(find("deploy.approved", "ap1").len(), 2, "the promotion and the rollback");
    assert_eq!(find("deploy.approved", "ap2").len(), 1);
    let e = one("deploy.rollback", "dev", &rollback);
    assert_eq!(e["detail"]["release"], "v1", "{e:#}");
    assert_eq!(release_of(&e["detail"]["before"]).as_deref(), Some("v2"), "a rollback from v2: {e:#}");
    assert_eq!(release_of(&e["detail"]["after"]).as_deref(), Some("v1"), "back to v1: {e:#}");
    assert_eq!(e["detail"]["after"]["image_digests"]["web"], digest_v1.as_str(), "{e:#}");
    // Refusals change nothing and leave no success behind.
    assert!(find("deploy.approved", "dev").is_empty());
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(value) && !all.contains(&ci_token), "a secret reached the audit trail");

    // The human table shows the same rows, with who, what and from where.
    let out = srv.run(&admin, &["audit", "--project", &project, "--action", "deploy", "--limit", "200"]).await;
    assert!(out.ok, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["WHEN", "WHO", "ACTION", "TARGET", "CHANGE", "FROM"]);
    assert!(lines.iter().any(|l| l.contains(" ap1 ") && l.contains("deploy.rejected") && l.ends_with("127.0.0.1")), "{}", out.stdout);
    // Each deploy, promotion and rollback shows what ran before → what runs after.
    let row = |action: &str, target: &str| lines.iter().find(|l| l.contains(action) && l.contains(target)).copied().unwrap_or_default();
    assert!(row("deploy.rollback", &rollback).contains(" v2 → v1 ") && row("deploy.rollback", &rollback).contains(" dev "), "{}", out.stdout);
    assert!(row("deploy.requested", to_prod["target_id"].as_str().unwrap()).contains(" v1 → v2 "), "{}", out.stdout);
    assert!(row("deploy.requested", to_test["target_id"].as_str().unwrap()).contains(" nothing → v1 "), "{}", out.stdout);
    assert!(row("deploy.promoted", promotions[0]["target_id"].as_str().unwrap()).contains(" nothing → v1 "), "{}", out.stdout);
    assert!(!lines.iter().any(|l| l.contains("secret.")), "--action deploy filters: {}", out.stdout);
    // Someone who does not administer the project sees none of its events.
    let theirs = srv.run(&dev, &["--json", "audit", "--project", &project]).await;
    if theirs.ok {
        assert_eq!(theirs.json()["events"], serde_json::json!([]), "a developer read the project's audit trail");
    }
}
