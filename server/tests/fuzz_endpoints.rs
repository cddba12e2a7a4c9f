//! Every server function in the `ENDPOINTS` table gets generated JSON bodies,
//! posted through the whole router as a global administrator: arguments of
//! every name the API uses, holding random values, real ids, refs, tags and
//! build args. Whatever comes in, the answer is never a 500 and never a panic,
//! and a refusal is a 4xx error body. Deterministic (fixed seed), 32 bodies per
//! endpoint.

mod support;

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{json, Map, Value};
use slipway_app::auth::ENDPOINTS;
use slipway_model::manifest::MANIFEST_PATH;
use sqlx::PgPool;
use slipway_testkit::git::repo;
use support::Api;

/// Argument names the server functions take, at the top level and inside `input`/`query`/`request`.
const NAMES: &[&str] = &[
    "input", "query", "request", "project", "build", "run", "release", "environment", "deployment", "from", "to", "name",
    "repo_url", "ref", "git_sha", "manifest_hash", "services", "build_args", "registry", "tag", "version", "username",
    "password", "token", "value", "role", "auto_release", "git_token_secret", "git_ssh_key_secret", "force_rebuild",
    "idempotency_key", "timeout_seconds", "inputs", "limit", "before", "status", "pipeline", "comment", "notes",
];

/// Values: real ids and names of this world, refs, tags, build args, and junk.
fn value(real: Vec<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(real).prop_map(Value::from),
        prop::sample::select(vec![
            "main", "HEAD", "v1", "-x", "--upload-pack=touch /tmp/pwned", "../../etc/passwd", "/etc", "file:///etc",
            "FOO=BAR", "BUILD_AUTH", "=", "a".repeat(40).leak(), "sha256:zz", "prj_0000000000000000000000000", "",
        ])
        .prop_map(Value::from),
        "\\PC{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(NAMES.to_vec()).prop_map(str::to_string), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body: an object of known argument names (mostly), or any JSON at all.
fn body(real: Vec<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map(prop::sample::select(NAMES.to_vec()).prop_map(str::to_string), value(real.clone()), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        1 => value(real),
    ]
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn generated_bodies_never_get_a_500_from_any_server_function(pool: PgPool) {
    let api = Api::new(pool).await;
    let manifest = "services:\n  api:\n    build: api\nenvironments:\n  - name: test\n";
    let dir = repo(&[(MANIFEST_PATH, manifest), ("api/Dockerfile", "FROM scratch\n")]);
    let project = api.system_project("fuzzed", dir.path()).await;
    let (status, built) = api.post(&api.admin, "builds/create", json!({ "input": { "project": "fuzzed", "run": false } })).await;
    assert_eq!(status, StatusCode::OK, "{built}");
    let real = vec![
        project.id.clone(),
        project.slug.clone(),
        built["spec"]["id"].as_str().unwrap_or_default().to_string(),
        "test".into(),
        "root".into(),
    ];

    let config = Config { cases: 32, failure_persistence: None, rng_seed: RngSeed::Fixed(0x5117_0a11), ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = body(real);
    let mut failures = Vec::new();
    let mut calls = 0;
    // `auth/logout` would end the administrator's own access half-way; it takes no arguments.
    for ep in ENDPOINTS.iter().filter(|e| !e.path.contains(' ') && e.path != "auth/logout") {
        for _ in 0..32 {
            let generated = strategy.new_tree(&mut runner).expect("a generated body").current();
            let (status, answer) = api.post(&api.admin, ep.path, generated.clone()).await;
            calls += 1;
            let refused_well = status.is_success()
                || status == StatusCode::SERVICE_UNAVAILABLE
                || (status.is_client_error() && answer["code"].is_string() && answer["message"].as_str().is_some_and(|m| !m.is_empty()));
            let fields_named = answer["problems"]
                .as_array()
                .is_none_or(|ps| ps.iter().all(|p| p["field"].as_str().is_some_and(|f| !f.is_empty())));
            if !refused_well || !fields_named {
                failures.push(format!("{} {generated} → {status} {answer}", ep.path));
            }
        }
    }
    assert!(calls > 32 * 40, "every server function was called ({calls})");
    assert!(failures.is_empty(), "{} bad answers:\n{}", failures.len(), failures.join("\n"));
}
