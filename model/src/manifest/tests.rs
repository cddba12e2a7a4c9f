//! The manifest's tests: parsing both spellings, every problem with its
//! path, path checks against a repository view, and the canonical hash.

use super::canonical::write_canonical;
use super::rules::is_slug;
use super::*;

/// A repository made of a list of files; directories are implied by the paths.
struct FakeRepo {
    files: Vec<&'static str>,
}

impl RepoView for FakeRepo {
    fn is_dir(&self, rel: &str) -> bool {
        rel == "." || self.files.iter().any(|f| f.starts_with(&format!("{rel}/")))
    }
    fn is_file(&self, rel: &str) -> bool {
        self.files.contains(&rel)
    }
}

fn ok(yaml: &str) -> Manifest {
    match parse(yaml) {
        Ok(m) => m,
        Err(e) => panic!("expected a valid manifest, got:\n{e}"),
    }
}

fn problems(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(m) => panic!("expected problems, got {m:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

const EVE: &str = r#"
name: shop
registry: eve
services:
  api:
    build:
      context: ./apps/api
      dockerfile: ./apps/api/Dockerfile.production
  web:
    build:
      context: web/
environments:
  - name: test
  - name: staging
  - name: production
    approval:
      required: 1
      approvers: [bob, alice]
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
"#;

const CONVOX: &str = r#"
# The same project, written the short way.
name: shop
registry: slipway
services:
  web:
    build: ./web
  api:
    build: apps/api
    manifest: Dockerfile.production
environments:
  test:
  staging: {}
  production:
    approval: {approvers: [alice, bob]}
pipelines:
  deploy:
    steps:
      - {name: build, build: {}}
      - {name: release, release: null, depends_on: build}
      - {name: deploy, deploy: staging, depends_on: [release]}
"#;

#[test]
fn the_eve_and_convox_shapes_parse_to_the_same_manifest_and_hash() {
    let eve = ok(EVE);
    let convox = ok(CONVOX);
    assert_eq!(eve, convox);
    assert_eq!(eve.canonical_hash(), convox.canonical_hash());
    let api = &eve.services["api"];
    let build = api.build.as_ref().expect("api builds");
    assert_eq!(build.context, "apps/api");
    assert_eq!(build.dockerfile, "Dockerfile.production");
    assert_eq!(build.dockerfile_path(), "apps/api/Dockerfile.production");
    assert_eq!(eve.registry, Registry::Native);
}

#[test]
fn the_hash_is_stable_under_reformatting_key_order_and_comments() {
    let a = r#"
services:
  api:
    build: {context: ./api, dockerfile: Dockerfile, args: {B: "2", A: "1"}}
  web: {image: nginx}
"#;
    let b = r#"
# comment at the top
services:   # services follow
  web:
      image: "nginx"     # quoted this time
  api:
      build:
          args:
              A: 1
              B: 2
          dockerfile: ./Dockerfile
          context: api/
"#;
    assert_eq!(hash_yaml(a), hash_yaml(b));
    let h = hash_yaml(a).expect("valid");
    assert_eq!(h.len(), 64);
    assert!(h
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
}

#[test]
fn defaults_written_out_hash_the_same_as_defaults_left_out() {
    let short = "services: {api: {build: ./api}}";
    let long = r#"
registry: native
services:
  api:
    build: {context: api, dockerfile: Dockerfile, args: {}}
    environment: []
    ports: []
"#;
    assert_eq!(hash_yaml(short), hash_yaml(long));
}

#[test]
fn the_hash_changes_when_a_dockerfile_changes() {
    let a = hash_yaml("services: {api: {build: ./api}}").expect("valid");
    let b =
        hash_yaml("services: {api: {build: ./api, manifest: Dockerfile.prod}}").expect("valid");
    assert_ne!(a, b);
}

#[test]
fn the_hash_changes_when_the_meaning_changes() {
    let base = hash_yaml("services: {api: {build: ./api}}\nenvironments: [test, prod]")
        .expect("valid");
    for other in [
        "services: {api: {build: ./api}}\nenvironments: [prod, test]",
        "services: {api: {build: {context: ./api, args: {A: x}}}}\nenvironments: [test, prod]",
        "services: {api: {build: ./web}}\nenvironments: [test, prod]",
        "services: {app: {build: ./api}}\nenvironments: [test, prod]",
        "registry: none\nservices: {api: {build: ./api}}\nenvironments: [test, prod]",
        "services: {api: {build: ./api}}\nenvironments: [test, {name: prod, approval: true}]",
    ] {
        assert_ne!(hash_yaml(other).expect(other), base, "{other}");
    }
}

#[test]
fn a_golden_hash_is_fixed_so_canonicalisation_changes_are_noticed() {
    let m = ok(EVE);
    assert_eq!(
        m.canonical_json(),
        concat!(
            r#"{"environments":[{"name":"test","target":{"kind":"docker"}},"#,
            r#"{"name":"staging","target":{"kind":"docker"}},"#,
            r#"{"approval":{"approvers":["alice","bob"],"required":1},"name":"production","target":{"kind":"docker"}}],"#,
            r#""name":"shop","#,
            r#""pipelines":{"deploy":{"steps":[{"action":{"type":"build"},"name":"build"},"#,
            r#"{"action":{"type":"release"},"depends_on":["build"],"name":"release"},"#,
            r#"{"action":{"environment":"staging","type":"deploy"},"depends_on":["release"],"name":"deploy"}]}},"#,
            r#""registry":{"kind":"native"},"#,
            r#""services":{"api":{"build":{"context":"apps/api","dockerfile":"Dockerfile.production"}},"#,
            r#""web":{"build":{"context":"web","dockerfile":"Dockerfile"}}}}"#
        )
    );
    assert_eq!(m.canonical_hash(), GOLDEN_HASH);
}

const GOLDEN_HASH: &str = "6e7665ecd743a19216ad9fde8346f66c3d892cf19534a55637a6fb89ed0f1ff8";

#[test]
fn the_canonical_json_is_the_sorted_serde_json_form() {
    // The API representation and the hashed form are the same document.
    for yaml in [EVE, CONVOX, FULL] {
        let m = ok(yaml);
        let via_serde = serde_json::to_value(&m).expect("serialises");
        let mut out = String::new();
        write_canonical(&via_serde, &mut out);
        assert_eq!(out, m.canonical_json());
        let back: Manifest = serde_json::from_value(via_serde).expect("deserialises");
        assert_eq!(back, m);
    }
}

const FULL: &str = r#"
registry:
  host: registry.example.com:5000
  namespace: acme
  auth: {username_secret: REG_USER}
services:
  api:
    image: registry.example.com:5000/acme/api
    build:
      context: .
      dockerfile: docker/api.Dockerfile
      args: [VERSION=1.2, "DEBUG=false"]
      target: release
    environment: [LOG=info, DATABASE_URL]
    ports: [3000, "8080:80/tcp", "53/udp"]
    port: 8443
    command: ./api --serve
  db:
    image: postgres:16
    environment: {POSTGRES_PASSWORD: null, PGPORT: 5432}
environments:
  - staging
  - name: production
    approval: {required: 2, approvers: [carol, alice, bob], wait_timer_seconds: 600}
    target: {kind: kubernetes, namespace: prod}
pipelines:
  ship:
    steps:
      - name: deploy
        depends_on: [tag]
        deploy: {environment: production}
      - name: build
        build: {services: [api]}
      - name: tag
        depends_on: [build, build]
        release: {tag: v1.0.0, version: 1.0.0}
"#;

#[test]
fn every_section_is_normalised() {
    let m = ok(FULL);
    assert_eq!(
        m.registry,
        Registry::Byo {
            host: "registry.example.com:5000".into(),
            namespace: Some("acme".into()),
            auth: Some(RegistryAuth {
                username_secret: "REG_USER".into(),
                token_secret: DEFAULT_TOKEN_SECRET.into()
            }),
        }
    );
    let api = &m.services["api"];
    let build = api.build.as_ref().expect("builds");
    assert_eq!(build.context, ".");
    assert_eq!(build.dockerfile, "docker/api.Dockerfile");
    assert_eq!(build.dockerfile_path(), "docker/api.Dockerfile");
    assert_eq!(build.args["VERSION"], "1.2");
    assert_eq!(build.target.as_deref(), Some("release"));
    assert_eq!(api.ports, ["8443", "3000", "8080:80", "53/udp"]);
    assert_eq!(api.environment["LOG"].as_deref(), Some("info"));
    assert_eq!(api.environment["DATABASE_URL"], None);
    assert_eq!(api.command.as_deref(), Some("./api --serve"));
    let db = &m.services["db"];
    assert!(db.build.is_none());
    assert_eq!(db.environment["PGPORT"].as_deref(), Some("5432"));
    assert_eq!(m.service_names(), ["api", "db"]);
    assert_eq!(m.buildable_service_names(), ["api"]);
    assert_eq!(m.environment_order(), ["staging", "production"]);
    let prod = m.environment("production").expect("defined");
    assert_eq!(
        prod.approval,
        Some(Approval {
            required: 2,
            approvers: vec!["alice".into(), "bob".into(), "carol".into()],
            wait_timer_seconds: Some(600)
        })
    );
    assert_eq!(
        prod.target,
        DeployTarget::Kubernetes {
            namespace: Some("prod".into()),
            cluster: None
        }
    );
    assert_eq!(
        m.next_environment("staging").map(|e| e.name.as_str()),
        Some("production")
    );
    assert!(m.next_environment("production").is_none());
    let ship = &m.pipelines["ship"];
    assert_eq!(
        ship.step("tag").map(|s| s.depends_on.clone()),
        Some(vec!["build".to_owned()])
    );
    assert_eq!(
        ship.step("build").map(|s| s.action.clone()),
        Some(StepAction::Build {
            services: Some(vec!["api".into()])
        })
    );
    let order: Vec<&str> = ship
        .execution_order()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(order, ["build", "tag", "deploy"]);
}

#[test]
fn registry_spellings_are_recognised() {
    for native in ["eve", "slipway", "local", "native"] {
        let m = ok(&format!(
            "registry: {native}\nservices: {{a: {{image: x}}}}"
        ));
        assert_eq!(m.registry, Registry::Native);
    }
    assert_eq!(
        ok("registry: none\nservices: {a: {image: x}}").registry,
        Registry::None
    );
    assert_eq!(ok("services: {a: {image: x}}").registry, Registry::Native);
    let m = ok("registry: {host: ghcr.io, auth: {}}\nservices: {a: {image: x}}");
    assert_eq!(
        m.registry,
        Registry::Byo {
            host: "ghcr.io".into(),
            namespace: None,
            auth: Some(RegistryAuth {
                username_secret: DEFAULT_USERNAME_SECRET.into(),
                token_secret: DEFAULT_TOKEN_SECRET.into()
            })
        }
    );
    let p = problems("registry: dockerhub\nservices: {a: {image: x}}");
    assert!(has(&p, "registry: unknown registry `dockerhub`"), "{p:?}");
    let p = problems("registry: {host: https://ghcr.io}\nservices: {a: {image: x}}");
    assert!(
        has(&p, "registry.host: `https://ghcr.io` includes a scheme"),
        "{p:?}"
    );
    let p = problems("registry: {namespace: acme}\nservices: {a: {image: x}}");
    assert!(has(&p, "registry.host: required"), "{p:?}");
}

#[test]
fn a_manifest_with_three_problems_reports_all_three_with_paths() {
    let p = problems(
        r#"
servics: {}
services:
  API:
    build: ./api
  web:
    build:
      context: ../outside
"#,
    );
    assert_eq!(
        p,
        [
            "servics: unknown key `servics`; did you mean `services`? (expected one of: name, registry, services, environments, pipelines)",
            "services.API: invalid service name `API`: must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)",
            "services.web.build.context: `../outside` is outside the repository; the build context must be a directory inside it",
        ]
    );
}

#[test]
fn problems_are_collected_across_every_section_in_one_pass() {
    let p = problems(
        r#"
name: My Shop
registry: 42
services:
  api: {build: {context: /abs, dockerfle: x}}
  db: {}
  "my.svc": {image: x}
environments:
  - name: test
  - name: test
  - name: prod
    approval: {required: 3, approvers: [alice, bob]}
    target: {kind: docker, namespace: x}
pipelines:
  ship:
    steps:
      - {name: a, build: {services: [db, nope]}, depends_on: [c]}
      - {name: b, deploy: prdo, depends_on: [a]}
      - {name: c, test: {}}
      - {name: d, build: {}, release: {}}
"#,
    );
    for expected in [
        "name: invalid project name `My Shop`",
        "registry: expected `slipway`, `none`, or a mapping with `host`, found the number `42`",
        "services.api.build.dockerfle: unknown key `dockerfle`; did you mean `dockerfile`?",
        "services.api.build.context: `/abs` is an absolute path",
        "services.db: a service needs `build`",
        r#"services["my.svc"]: invalid service name `my.svc`"#,
        "environments[1].name: duplicate environment `test` (already defined at environments[0].name)",
        "environments[2].approval.required: 3 approvals are required but only 2 approvers are named in `approvers`",
        "environments[2].target.namespace: `namespace` applies only to `kind: kubernetes`",
        "pipelines.ship.steps[0].build.services[0]: service `db` has no `build` section",
        "pipelines.ship.steps[0].build.services[1]: unknown service `nope`",
        "pipelines.ship.steps[1].deploy: unknown environment `prdo`; did you mean `prod`? (environments: test, prod)",
        "pipelines.ship.steps[2].test: unknown step action or key `test`",
        "pipelines.ship.steps[3]: a step has exactly one action, found `build` and `release`",
    ] {
        assert!(has(&p, expected), "missing {expected:?} in:\n{}", p.join("\n"));
    }
    assert_eq!(p.len(), 14, "{}", p.join("\n"));
}

#[test]
fn unknown_step_actions_are_reported_in_both_shapes() {
    let p = problems(
        r#"
services: {api: {build: .}}
pipelines:
  p:
    steps:
      - {name: a, action: {type: deplay}}
      - {name: b, publish: {}}
      - {name: c}
"#,
    );
    assert_eq!(
        p,
        [
            "pipelines.p.steps[0].action.type: unknown step action `deplay`; did you mean `deploy`? (expected `build`, `release` or `deploy`)",
            "pipelines.p.steps[1].publish: unknown step action or key `publish` (a step has `name`, optional `depends_on`, and exactly one action: `build`, `release` or `deploy`)",
            "pipelines.p.steps[2]: a step needs exactly one action: `build`, `release` or `deploy`",
        ]
    );
}

#[test]
fn dependency_cycles_are_detected() {
    let p = problems(
        r#"
services: {api: {build: .}}
pipelines:
  p:
    steps:
      - {name: a, build: {}, depends_on: [c]}
      - {name: b, release: {}, depends_on: [a]}
      - {name: c, release: {}, depends_on: [b]}
      - {name: d, release: {}, depends_on: [d]}
      - {name: e, release: {}, depends_on: [f]}
      - {name: f, release: {}, depends_on: [e, a]}
"#,
    );
    assert_eq!(
        p,
        [
            "pipelines.p.steps[3].depends_on[0]: step `d` cannot depend on itself",
            "pipelines.p.steps[0].depends_on: steps depend on each other in a cycle: a → c → b → a",
            "pipelines.p.steps[4].depends_on: steps depend on each other in a cycle: e → f → e",
        ]
    );
}

#[test]
fn depends_on_naming_an_unknown_step_is_reported() {
    let p = problems(
        "services: {api: {build: .}}\npipelines: {p: {steps: [{name: a, build: {}}, {name: b, release: {}, depends_on: [bild]}]}}",
    );
    assert_eq!(p, ["pipelines.p.steps[1].depends_on[0]: unknown step `bild`; steps in this pipeline: a, b"]);
}

#[test]
fn a_deploy_step_needs_a_defined_environment() {
    let p = problems("services: {api: {build: .}}\npipelines: {p: {steps: [{name: a, deploy: {environment: prod}}]}}");
    assert_eq!(
        p,
        ["pipelines.p.steps[0].deploy.environment: unknown environment `prod`; no environments are defined (add it under `environments`)"]
    );
}

#[test]
fn approvals_must_be_satisfiable() {
    let p = problems("services: {a: {image: x}}\nenvironments: [{name: prod, approval: {required: 2, approvers: [alice]}}]");
    assert_eq!(
        p,
        ["environments[0].approval.required: 2 approvals are required but only 1 approver is named in `approvers`"]
    );
    let p = problems(
        "services: {a: {image: x}}\nenvironments: [{name: prod, approval: {required: 0}}]",
    );
    assert!(has(&p, "must be at least 1"), "{p:?}");
    let p = problems("services: {a: {image: x}}\nenvironments: [{name: prod, approval: {approvers: [al, al]}}]");
    assert!(
        has(
            &p,
            "environments[0].approval.approvers[1]: approver `al` is listed more than once"
        ),
        "{p:?}"
    );
    // Without `approvers`, any number of approvals may be required.
    let m =
        ok("services: {a: {image: x}}\nenvironments: [{name: prod, approval: {required: 3}}]");
    assert_eq!(
        m.environments[0].approval.as_ref().map(|a| a.required),
        Some(3)
    );
}

#[test]
fn environments_given_as_a_map_keep_their_written_order() {
    let m = ok(
        "services: {a: {image: x}}\nenvironments:\n  zeta: {}\n  alpha:\n  mid: {target: k8s}",
    );
    assert_eq!(m.environment_order(), ["zeta", "alpha", "mid"]);
    assert_eq!(
        m.environments[2].target,
        DeployTarget::Kubernetes { namespace: None, cluster: None }
    );
}

#[test]
fn build_contexts_must_stay_inside_the_repository() {
    for (ctx, msg) in [
        ("/srv/app", "is an absolute path"),
        ("C:/app", "is an absolute path"),
        ("../other", "is outside the repository"),
        ("api/../../x", "is outside the repository"),
        ("https://github.com/a/b.git", "is a URL"),
        ("''", "must not be empty"),
        (r#""api\\src""#, "separate directories with `/`"),
    ] {
        let p = problems(&format!("services: {{api: {{build: {ctx}}}}}"));
        assert!(
            p.len() == 1 && p[0].starts_with("services.api.build: ") && p[0].contains(msg),
            "{ctx}: {p:?}"
        );
    }
    let m = ok("services: {api: {build: ./api/../web/./}}");
    assert_eq!(
        m.services["api"].build.as_ref().map(|b| b.context.as_str()),
        Some("web")
    );
    let p = problems("services: {api: {build: {context: api, dockerfile: ../../Dockerfile}}}");
    assert!(
        has(
            &p,
            "services.api.build.dockerfile: `../../Dockerfile` is outside the repository"
        ),
        "{p:?}"
    );
}

#[test]
fn dockerfiles_are_stored_relative_to_their_context() {
    let cases = [
        ("{context: api}", "Dockerfile", "api/Dockerfile"),
        (
            "{context: api, dockerfile: api/Dockerfile}",
            "Dockerfile",
            "api/Dockerfile",
        ),
        (
            "{context: ./api, dockerfile: ./Dockerfile.dev}",
            "Dockerfile.dev",
            "api/Dockerfile.dev",
        ),
        (
            "{context: api, dockerfile: ../docker/api}",
            "../docker/api",
            "docker/api",
        ),
        (
            "{context: a/b, dockerfile: ../b/Dockerfile}",
            "Dockerfile",
            "a/b/Dockerfile",
        ),
        (
            "{context: ., dockerfile: ./ops/Dockerfile}",
            "ops/Dockerfile",
            "ops/Dockerfile",
        ),
    ];
    for (build, rel, from_root) in cases {
        let m = ok(&format!("services: {{api: {{build: {build}}}}}"));
        let b = m.services["api"].build.clone().expect("builds");
        assert_eq!(
            (b.dockerfile.as_str(), b.dockerfile_path().as_str()),
            (rel, from_root),
            "{build}"
        );
    }
}

#[test]
fn path_checks_report_missing_contexts_and_dockerfiles() {
    let m = ok(r#"
services:
  api: {build: ./api}
  web: {build: {context: web, dockerfile: Dockerfile.prod}}
  worker: {build: ./worker}
  tool: {build: {context: tools/x, dockerfile: ../../Dockerfile.tool}}
  db: {image: postgres}
"#);
    let repo = FakeRepo {
        files: vec![
            "api/Dockerfile",
            "web/Dockerfile",
            "web/index.html",
            "tools/x/main.go",
        ],
    };
    let p: Vec<String> = check_paths(&m, &repo)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        p,
        [
            "services.tool.build.dockerfile: file not found (looked for Dockerfile.tool)",
            "services.web.build.dockerfile: file not found (looked for web/Dockerfile.prod)",
            "services.worker.build.context: directory not found",
        ]
    );
    let good = FakeRepo {
        files: vec![
            "api/Dockerfile",
            "web/Dockerfile.prod",
            "worker/Dockerfile",
            "tools/x/a",
            "Dockerfile.tool",
        ],
    };
    assert!(check_paths(&m, &good).is_empty());
}

#[test]
fn validate_reports_parse_and_path_problems_together() {
    let repo = FakeRepo {
        files: vec!["web/Dockerfile"],
    };
    let err = validate("services:\n  api: {build: ./api}\n  web: {build: ./web}\n  Bad: {build: ./web, ports: [0]}\n", &repo)
        .expect_err("problems");
    let p: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        p,
        [
            "services.Bad: invalid service name `Bad`: must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)",
            "services.Bad.ports[0]: invalid port `0`: expected a number 1-65535, optionally `host:container` and `/tcp` or `/udp`",
            "services.api.build.context: directory not found",
        ]
    );
    let m = validate("services: {web: {build: web}}", &repo).expect("valid");
    assert_eq!(m.service_names(), ["web"]);
}

#[test]
fn yaml_syntax_errors_report_their_line_and_column() {
    let p = problems("services:\n  api:\n    build: ./api\n   bad: [\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("invalid YAML at line "), "{p:?}");
    assert!(p[0].contains(", column "), "{p:?}");
    let p = problems("services: {a: {image: x}}\nservices: {}\n");
    assert!(
        p[0].starts_with(
            "invalid YAML at line 1, column 1: duplicate entry with key \"services\""
        ),
        "{p:?}"
    );
}

#[test]
fn empty_and_non_mapping_documents_are_explained() {
    assert!(problems("")[0].starts_with("the manifest is empty"));
    assert!(problems("# only a comment\n")[0].starts_with("the manifest is empty"));
    assert!(problems("- a\n- b")[0].contains("found a list"));
    assert_eq!(problems("name: x"), ["services: required: list the services to build, e.g. `services: {api: {build: ./api}}`"]);
    assert_eq!(
        problems("services: {}"),
        ["services: at least one service is required"]
    );
}

#[test]
fn extension_keys_and_merge_keys_are_supported() {
    let a = ok(r#"
x-defaults: &defaults
  build: {context: api, args: {A: "1"}}
x-note: ignored
services:
  api:
    <<: *defaults
    x-owner: team-a
"#);
    let b = ok("services: {api: {build: {context: api, args: {A: '1'}}}}");
    assert_eq!(a, b);
    assert_eq!(a.canonical_hash(), b.canonical_hash());
}

#[test]
fn a_built_service_image_must_not_carry_a_tag() {
    let p = problems("services: {api: {build: ., image: reg.io/acme/api:latest}}");
    assert!(
        has(
            &p,
            "services.api.image: `reg.io/acme/api:latest` has a tag or digest"
        ),
        "{p:?}"
    );
    ok("services: {api: {build: ., image: 'localhost:5000/acme/api'}}");
    ok("services: {db: {image: 'postgres:16@sha256:abc'}}");
}

#[test]
fn a_built_service_may_not_take_a_name_reserved_for_slipway() {
    for image in ["slipway/busybox", "docker.io/slipway/busybox", "slipway/anything/else"] {
        let p = problems(&format!("services: {{api: {{build: ., image: '{image}'}}}}"));
        assert!(has(&p, "services.api.image: `"), "{image}: {p:?}");
        assert!(p.iter().any(|x| x.contains("reserved for Slipway's own images")), "{image}: {p:?}");
    }
    // Running Slipway's base image as a prebuilt service is fine.
    ok("services: {tools: {image: 'slipway/busybox:1'}}");
}

#[test]
fn the_convox_manifest_key_needs_a_build_and_must_not_conflict() {
    let p = problems("services: {api: {image: x, manifest: Dockerfile.p}}");
    assert!(
        has(
            &p,
            "services.api.manifest: `manifest` names the Dockerfile for `build`"
        ),
        "{p:?}"
    );
    let p = problems("services: {api: {build: {context: ., dockerfile: A}, manifest: B}}");
    assert!(
        has(
            &p,
            "services.api.manifest: conflicts with `build.dockerfile`"
        ),
        "{p:?}"
    );
    let m = ok("services: {api: {build: {context: api}, manifest: Dockerfile.p}}");
    assert_eq!(
        m.services["api"]
            .build
            .as_ref()
            .map(|b| b.dockerfile.as_str()),
        Some("Dockerfile.p")
    );
}

#[test]
fn build_args_and_environment_are_checked() {
    let p = problems("services: {api: {build: {context: ., args: [NOVALUE, 1X=2]}, environment: {bad-name: x}}}");
    assert_eq!(
        p,
        [
            "services.api.build.args[0]: build argument `NOVALUE` needs a value: write `NOVALUE=value`",
            "services.api.build.args[1]: invalid build argument name `1X`: must be letters, digits and `_`, not starting with a digit (write `NAME=value`)",
            "services.api.environment.bad-name: invalid environment variable name `bad-name`: must be letters, digits and `_`, not starting with a digit",
        ]
    );
}

#[test]
fn unusual_keys_are_quoted_in_paths() {
    let p = problems("services:\n  \"a b\": {image: x}\n  1: {image: y}\n");
    assert_eq!(
        p,
        [
            "services: keys must be strings, found the number `1`",
            r#"services["a b"]: invalid service name `a b`: must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)"#,
        ]
    );
}

#[test]
fn a_problem_at_the_root_displays_only_its_message() {
    assert_eq!(Problem::new("", "oops").to_string(), "oops");
    assert_eq!(
        Problem::new("services.api.build.context", "directory not found").to_string(),
        "services.api.build.context: directory not found"
    );
    let errs = ManifestErrors(vec![Problem::new("a", "x"), Problem::new("b", "y")]);
    assert_eq!(errs.to_string(), "a: x\nb: y");
    assert_eq!(errs.problems().len(), 2);
}

#[test]
fn oversized_manifests_are_refused() {
    let huge = format!(
        "services: {{a: {{image: x}}}}\n#{}",
        "x".repeat(MAX_MANIFEST_BYTES)
    );
    assert!(problems(&huge)[0].contains("the limit is"));
}

#[test]
fn an_alias_bomb_is_refused_naming_the_node_limit() {
    let mut bomb = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let p = i - 1;
        bomb.push_str(&format!("x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    bomb.push_str("services: {api: {image: x}}\n");
    let found = problems(&bomb);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&format!("the limit is {MAX_MANIFEST_NODES} nodes")), "{found:?}");
}

#[test]
fn deeply_nested_manifests_are_refused_naming_the_depth_limit() {
    let deep = format!("services: {{api: {{image: x}}}}\nx-deep: {}1{}\n", "[".repeat(100), "]".repeat(100));
    let found = problems(&deep);
    assert!(found[0].contains(&format!("the limit is {MAX_MANIFEST_DEPTH} levels")), "{found:?}");
}

#[test]
fn service_name_rules_follow_the_pattern() {
    assert!(is_slug("a"));
    assert!(is_slug("api-v2"));
    assert!(is_slug(&format!("a{}", "b".repeat(62))));
    assert!(!is_slug(&format!("a{}", "b".repeat(63))));
    assert!(!is_slug("2api"));
    assert!(!is_slug("-api"));
    assert!(!is_slug("api_v2"));
    assert!(!is_slug(""));
}
