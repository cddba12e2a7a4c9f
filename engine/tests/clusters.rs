//! Registered Kubernetes clusters: the store on real Postgres (a fresh
//! database per test), kubeconfig checks, and `GET /version` checks against
//! a MOCK Kubernetes API server (kube's mock transport, `tower_test`): no
//! API server can run on this machine.

use std::sync::Arc;

use http::{Request, Response};
use kube::client::Body;
use slipway_engine::clusters::{self, ClusterAccess};
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use slipway_model::cluster::{ClusterSource, NewCluster};
use slipway_model::ErrorCode;
use sqlx::PgPool;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.very-secret-service-account-token";

fn kubeconfig(user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
current-context: ci
clusters:
  - name: eu
    cluster:
      server: https://k8s.example.com:6443
contexts:
  - name: ci
    context:
      cluster: eu
      user: deployer
users:
  - name: deployer
    user:
{user}
"
    )
}

fn store(pool: PgPool) -> Store {
    Store::from_pool(pool).with_secrets(Arc::new(SecretBox::new(MasterKey::generate())))
}

#[sqlx::test(migrations = "./migrations")]
async fn a_kubeconfig_is_stored_encrypted_and_never_listed(pool: PgPool) {
    let store = store(pool);
    let yaml = kubeconfig(&format!("      token: {TOKEN}"));
    let server = clusters::check_kubeconfig(&yaml).expect("a usable kubeconfig");
    assert_eq!(server.as_deref(), Some("https://k8s.example.com:6443"));
    let input = NewCluster { name: "default".into(), kubeconfig: Some(yaml.clone()), in_cluster: false };
    let added = store.add_cluster(&input, server.as_deref(), None).await.expect("added");
    assert_eq!(added.source, ClusterSource::Kubeconfig);

    // Nothing readable at rest, nothing in a listing.
    let (cipher,): (Vec<u8>,) = sqlx::query_as("SELECT ciphertext FROM clusters WHERE name = 'default'").fetch_one(store.pool()).await.unwrap();
    assert!(!String::from_utf8_lossy(&cipher).contains("very-secret"));
    let listed = serde_json::to_string(&store.list_clusters().await.unwrap()).unwrap();
    assert!(!listed.contains("very-secret") && listed.contains("k8s.example.com"), "{listed}");

    // Only the deployer's path opens it.
    match store.cluster_access("default").await.expect("access") {
        ClusterAccess::Kubeconfig(text) => assert_eq!(text, yaml),
        other => panic!("expected a kubeconfig, got {other:?}"),
    }
    // The ciphertext is bound to its row: copied onto another cluster, it does not open.
    store.add_cluster(&NewCluster { name: "other".into(), kubeconfig: Some(yaml), in_cluster: false }, None, None).await.unwrap();
    sqlx::query("UPDATE clusters SET ciphertext = (SELECT ciphertext FROM clusters WHERE name = 'default'), nonce = (SELECT nonce FROM clusters WHERE name = 'default') WHERE name = 'other'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.cluster_access("other").await.is_err());
}

#[sqlx::test(migrations = "./migrations")]
async fn cluster_names_are_unique_and_removal_is_by_name(pool: PgPool) {
    let store = store(pool);
    let inside = NewCluster { name: "home".into(), kubeconfig: None, in_cluster: true };
    store.add_cluster(&inside, None, None).await.expect("added");
    let again: slipway_model::AppError = store.add_cluster(&inside, None, None).await.unwrap_err().into();
    assert_eq!(again.code, ErrorCode::Conflict);
    assert!(matches!(store.cluster_access("home").await.unwrap(), ClusterAccess::InCluster));
    assert_eq!(store.remove_cluster("home").await.unwrap().name, "home");
    let gone: slipway_model::AppError = store.remove_cluster("home").await.unwrap_err().into();
    assert_eq!(gone.code, ErrorCode::NotFound);
    let bad: slipway_model::AppError =
        store.add_cluster(&NewCluster { name: "Bad Name".into(), kubeconfig: None, in_cluster: true }, None, None).await.unwrap_err().into();
    assert_eq!(bad.problems[0].field, "name");
}

#[test]
fn kubeconfigs_that_would_run_commands_or_read_files_are_refused() {
    let exec = kubeconfig("      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: /bin/sh\n        args: [\"-c\", \"id\"]");
    let e = clusters::check_kubeconfig(&exec).unwrap_err();
    assert_eq!(e.problems[0].field, "kubeconfig");
    assert!(e.problems[0].message.contains("plugin"), "{e:?}");
    let file = kubeconfig("      tokenFile: /var/lib/slipway/master.key");
    assert!(clusters::check_kubeconfig(&file).unwrap_err().problems[0].message.contains("files"));
    let no_context = kubeconfig(&format!("      token: {TOKEN}")).replace("current-context: ci", "current-context: missing");
    assert!(clusters::check_kubeconfig(&no_context).unwrap_err().problems[0].message.contains("missing"));
    assert!(clusters::check_kubeconfig("not: [a kubeconfig").is_err());
}

/// A client whose mock API server answers `GET /version` with `answer` (`None`: connection refused).
fn mock_version(answer: Option<serde_json::Value>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            assert_eq!((request.method().as_str(), request.uri().path()), ("GET", "/version"));
            match &answer {
                Some(body) => send.send_response(Response::builder().body(Body::from(serde_json::to_vec(body).unwrap())).unwrap()),
                None => send.send_error(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")),
            }
        }
    });
    kube::Client::new(service, "default")
}

#[tokio::test]
async fn a_check_reports_the_version_of_a_cluster_that_answers() {
    let info = serde_json::json!({ "major": "1", "minor": "31", "gitVersion": "v1.31.2", "gitCommit": "c", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64" });
    let check = clusters::check("eu", &mock_version(Some(info))).await;
    assert!(check.reachable);
    assert_eq!(check.version.as_deref(), Some("v1.31.2"));
}

#[tokio::test]
async fn a_check_of_an_unreachable_cluster_says_why() {
    let check = clusters::check("eu", &mock_version(None)).await;
    assert!(!check.reachable);
    assert!(check.message.unwrap_or_default().contains("GET /version"));
}
