//! Property tests: generated manifests, ids, refs, tags and build args thrown at
//! the parsers and validators. Nothing panics; every refusal is a 4xx whose
//! problems name a field; the valid shapes of the reference documents (written
//! here as a corpus) still parse. Deterministic: a fixed seed, no persistence.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use slipway_model::build::{is_git_sha, parse_build_args};
use slipway_model::manifest::{self, MAX_MANIFEST_DEPTH};
use slipway_model::project::{check_repo_url, NewProject};
use slipway_model::{id, release, AppError};

fn config() -> Config {
    Config { cases: 64, failure_persistence: None, rng_seed: RngSeed::Fixed(0x5117_0a11), ..Config::default() }
}

/// Valid manifests in the shapes the reference documents describe (Eve's
/// pipeline steps and build contexts, Convox's build args), written for Slipway.
const CORPUS: &[&str] = &[
    // Eve: pipeline build → release → deploy with `action: {type: …}`.
    r#"
services:
  api:
    build:
      context: ./apps/api
      dockerfile: ./apps/api/Dockerfile
environments:
  - name: staging
pipelines:
  deploy:
    steps:
      - name: build
        action: { type: build }
      - name: release
        depends_on: [build]
        action: { type: release }
      - name: deploy
        depends_on: [release]
        action: { type: deploy, env_name: staging }
"#,
    // Eve: an explicit image name beside the build, and a derived one.
    r#"
registry: local
services:
  api:
    image: registry.example/myorg/my-project-api
    build:
      context: ./apps/api
  worker:
    build:
      context: ./apps/worker
"#,
    // Convox: custom build args, as a list and as a mapping.
    r#"
services:
  web:
    build:
      context: web
      args: [FOO=BAR, VERSION=1.2.3]
  api:
    build:
      context: api
      args: {APP_ENV: production}
"#,
    // The short forms, an approval gate, and an anchor used within the budget.
    r#"
x-defaults: &defaults
  context: .
name: shop
services:
  web:
    build: ./web
  api:
    build:
      <<: *defaults
      target: prod
environments:
  test:
  production:
    approval: {required: 1, approvers: [alice, bob]}
"#,
];

fn assert_fields_named(e: &AppError, what: &str) {
    assert!(matches!(e.http_status(), 400..=499), "{what}: {e:?}");
    assert!(!e.message.is_empty(), "{what}: {e:?}");
    assert!(!e.problems.is_empty(), "{what}: no field named: {e:?}");
    for p in &e.problems {
        assert!(!p.field.is_empty() && !p.message.is_empty(), "{what}: {e:?}");
    }
}

/// Parses `yaml`; a refusal must be a 4xx naming `manifest…` fields.
fn check_manifest(yaml: &str) {
    if let Err(errors) = manifest::parse(yaml) {
        let e = AppError::from(errors);
        assert_fields_named(&e, yaml);
        assert!(e.problems.iter().all(|p| p.field.starts_with("manifest")), "{e:?}");
    }
}

#[test]
fn the_reference_shapes_still_parse() {
    for yaml in CORPUS {
        if let Err(e) = manifest::parse(yaml) {
            panic!("corpus manifest refused: {e}\n{yaml}");
        }
    }
}

/// Words the schema knows, and some it does not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name", "registry", "services", "environments", "pipelines", "image", "build", "context", "dockerfile", "args",
            "target", "manifest", "host", "namespace", "auth", "username_secret", "token_secret", "approval", "required",
            "approvers", "wait_timer_seconds", "kind", "steps", "depends_on", "release", "deploy", "action", "type", "tag",
            "version", "env_name", "environment", "api", "web", "<<", "x-extra",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z_\\-\\.]{0,12}",
    ]
}

/// Leaves: paths that try to leave the repository, odd numbers, long and empty text.
fn leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::sample::select(vec!["../../etc", "/etc/passwd", ".", "./api", "a/../../b", "FOO=BAR", "=x", "-rf", "", "staging"])
            .prop_map(serde_json::Value::from),
        "\\PC{0,40}".prop_map(serde_json::Value::from),
    ]
}

fn tree() -> impl Strategy<Value = serde_json::Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bits of YAML that change a document's meaning or break it.
fn splice() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "&a ", "*a", "<<: *a\n", "!tag ", "!!binary ", "{", "[", "]", ":", "\n  - ", "\t", "'", "\"", "? ", "---\n",
            "...\n", "%YAML 1.2\n", "|\n", ">-\n", "&x [*x]", "\u{feff}",
        ])
        .prop_map(str::to_string),
        "\\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_manifests_are_parsed_or_refused_with_field_paths(doc in tree()) {
        let yaml = serde_yaml::to_string(&doc).unwrap();
        check_manifest(&yaml);
    }

    #[test]
    fn corpus_manifests_with_spliced_yaml_never_panic(which in 0..CORPUS.len(), at in any::<prop::sample::Index>(), bit in splice()) {
        let base = CORPUS[which];
        let mut cut = at.index(base.len() + 1);
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        check_manifest(&format!("{}{bit}{}", &base[..cut], &base[cut..]));
    }

    #[test]
    fn nesting_past_the_depth_limit_is_refused(extra in 1usize..40) {
        let depth = MAX_MANIFEST_DEPTH + extra;
        let yaml = format!("services: {{api: {{image: x}}}}\nx-deep: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        prop_assert!(manifest::parse(&yaml).is_err());
    }

    #[test]
    fn build_args_are_parsed_or_refused_naming_the_argument(args in prop::collection::vec("\\PC{0,24}", 0..8)) {
        if let Err(e) = parse_build_args(&args) {
            assert_fields_named(&e, &format!("{args:?}"));
            prop_assert!(e.problems.iter().all(|p| p.field.starts_with("build_args")), "{:?}", e);
        }
    }

    #[test]
    fn new_projects_are_checked_field_by_field(name in "\\PC{0,120}", repo in "\\PC{0,60}", branch in proptest::option::of("\\PC{0,30}")) {
        let input = NewProject { name, repo_url: repo.clone(), description: None, default_branch: branch };
        let _ = check_repo_url(&repo);
        if let Err(e) = input.normalized() {
            assert_fields_named(&e, &format!("{input:?}"));
            prop_assert!(e.problems.iter().all(|p| ["name", "repo_url", "default_branch", "description"].contains(&p.field.as_str())));
        }
    }

    #[test]
    fn ids_refs_and_tags_never_panic(s in "\\PC{0,80}", prefix in "[a-z_]{0,8}") {
        let _ = id::decode(&s);
        let _ = id::parse_expect(&prefix, &s);
        let _ = release::is_valid_tag(&s);
        let _ = release::is_valid_environment_name(&s);
        let _ = release::is_image_digest(&s);
        prop_assert!(!is_git_sha(&s) || s.len() == 40);
    }
}
