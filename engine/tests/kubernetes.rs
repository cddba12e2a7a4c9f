//! The Kubernetes deploy target against a MOCK Kubernetes API server (kube's
//! mock transport, `tower_test::mock::pair`): no API server can run on this
//! machine. Postgres is real (a fresh database per test); only the cluster's
//! answers are scripted. Assertions are on the requests Slipway sends
//! (method, path, query, body fields) and on what it records on the
//! deployment.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use slipway_engine::builds::BoxFuture;
use slipway_engine::registry_auth::{SigningKey, TokenIssuer};
use slipway_engine::release::kubernetes::{ClusterConnector, KubernetesDeployer, RegisteredClusters};
use slipway_engine::release::{self, DeployTarget};
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use slipway_model::release::{DeployRequest, Deployment, DeploymentKind, Release};
use slipway_model::status::DeploymentStatus;
use sqlx::PgPool;

const MANIFEST: &str = "services:
  api:
    build: api
    ports:
      - \"8080:80\"
    environment:
      LOG_LEVEL: info
      DATABASE_URL: null
  worker:
    build: worker
    command: worker --queue jobs
environments:
  - name: prod
    target:
      kind: kubernetes
      namespace: shop
";

const SECRET_VALUE: &str = "postgres://shop:s3cr3t-value@db/shop";

// ---------------------------------------------------------------------------
// The mock API server
// ---------------------------------------------------------------------------

/// One request the mock API server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

/// Decides the mock API server's answer: `(request, how many earlier
/// requests had the same method and path)` → `(status, JSON body)`, or
/// `None` to fail the connection as an unreachable server would.
type Script = Box<dyn Fn(&Seen, usize) -> Option<(u16, Value)> + Send + Sync>;

/// A mock Kubernetes API server behind a `kube::Client`.
struct MockApiServer {
    client: kube::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockApiServer {
    fn start(script: Script) -> MockApiServer {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut counts: HashMap<(String, String), usize> = HashMap::new();
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let seen = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    content_type: parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let n = counts.entry((seen.method.clone(), seen.path.clone())).or_default();
                let answer = script(&seen, *n);
                *n += 1;
                log.lock().unwrap().push(seen);
                match answer {
                    Some((status, body)) => send.send_response(
                        Response::builder().status(status).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap(),
                    ),
                    None => send.send_error(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")),
                }
            }
        });
        MockApiServer { client: kube::Client::new(service, "default"), seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Hands out the mock's client for the cluster named `default`.
struct MockConnector(kube::Client);

impl ClusterConnector for MockConnector {
    fn connect<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<kube::Client, String>> {
        Box::pin(async move {
            assert_eq!(cluster, "default", "the environment names no cluster, so the default one");
            Ok(self.0.clone())
        })
    }
}

/// What an apply answers: the object sent, at generation 2.
fn applied(seen: &Seen) -> Value {
    let mut body = seen.body.clone();
    body["metadata"]["generation"] = json!(2);
    body["metadata"]["uid"] = json!("uid-1");
    body
}

/// A Deployment's status: `observed` generation, all replicas updated and available when `ready`.
fn deployment_status(seen: &Seen, observed: i64, ready: bool) -> Value {
    let name = seen.path.rsplit('/').next().unwrap_or_default();
    let n = if ready { 1 } else { 0 };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "shop", "generation": 2 },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app.kubernetes.io/instance": name } },
                  "template": { "spec": { "containers": [{ "name": "c", "image": "i" }] } } },
        "status": { "observedGeneration": observed, "replicas": 1, "updatedReplicas": n, "availableReplicas": n }
    })
}

/// A Deployment that Kubernetes reports as past its progress deadline.
fn stalled(seen: &Seen) -> Value {
    let mut d = deployment_status(seen, 2, false);
    d["status"]["conditions"] = json!([{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet has timed out progressing." }]);
    d
}

fn pod_list(pod_status: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [{ "metadata": { "name": "shop-prod-api-5d9f-abcde" }, "status": pod_status }] })
}

/// Answers every apply; Deployments roll out at once; pods as `pods` (for the `api` Deployment only,
/// which stalls when `pods` is given).
fn scenario(pods: Option<Value>) -> Script {
    Box::new(move |seen, _| {
        Some(match seen.method.as_str() {
            "PATCH" => (200, applied(seen)),
            "GET" if seen.path.contains("/deployments/") => match &pods {
                Some(_) if seen.path.ends_with("-api") => (200, stalled(seen)),
                _ => (200, deployment_status(seen, 2, true)),
            },
            "GET" if seen.path.ends_with("/pods") => (200, pod_list(pods.clone().unwrap_or(json!({})))),
            _ => (404, json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404 })),
        })
    })
}

// ---------------------------------------------------------------------------
// Fixture: a project whose `prod` environment deploys to Kubernetes
// ---------------------------------------------------------------------------

struct Fixture {
    store: Store,
    project: slipway_model::project::Project,
    release: Release,
    issuer: TokenIssuer,
}

fn digest(seed: &str) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(seed.as_bytes())))
}

async fn fixture(pool: PgPool) -> Fixture {
    let store = Store::from_pool(pool).with_secrets(Arc::new(SecretBox::new(MasterKey::generate())));
    let project = store
        .create_project(
            &slipway_model::project::NewProject { name: format!("shop{}", slipway_testkit::nonce()), repo_url: "https://git.example/shop.git".into(), ..Default::default() },
            None,
        )
        .await
        .expect("project");
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let release =
        support::recorded_release(&store, &project, sha, MANIFEST, &[("api", digest("api")), ("worker", digest("worker"))], "v1").await;
    let sb = store.secret_box().expect("master key");
    store.set_secret(sb, &project.id, None, "DATABASE_URL", SECRET_VALUE, None).await.expect("secret");
    let issuer = TokenIssuer::new(SigningKey::generate().expect("key"), "127.0.0.1:5000");
    Fixture { store, project, release, issuer }
}

impl Fixture {
    fn targets(&self, client: kube::Client) -> Arc<dyn DeployTarget> {
        let deployer = KubernetesDeployer::new(self.store.clone(), Arc::new(MockConnector(client)))
            .with_registry_tokens(Some(self.issuer.clone()))
            .with_timing(Duration::from_millis(300), Duration::from_millis(10));
        release::targets_for_process(&self.store, None, Some(Arc::new(deployer)))
    }

    /// Requests a deployment of the release to `prod` and runs it on `targets`.
    async fn deploy(&self, targets: &dyn DeployTarget) -> Deployment {
        let req = DeployRequest { environment: "prod".into(), release: self.release.tag.clone(), ..Default::default() };
        let d = slipway_engine::pipeline::request_deploy(&self.store, &self.project.slug, &req, None, DeploymentKind::Deploy).await.expect("request");
        assert_eq!(d.status, DeploymentStatus::Deploying);
        release::execute_deployment(&self.store, targets, &d.id).await.expect("executed")
    }

    fn workload(&self, service: &str) -> String {
        format!("{}-prod-{service}", self.project.slug)
    }
}

fn patches<'a>(seen: &'a [Seen], kind_path: &str) -> Vec<&'a Seen> {
    seen.iter().filter(|s| s.method == "PATCH" && s.path.contains(kind_path)).collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn a_release_is_applied_server_side_pinned_by_digest_with_a_pull_secret(pool: PgPool) {
    let fx = fixture(pool).await;
    let mock = MockApiServer::start(scenario(None));
    let done = fx.deploy(fx.targets(mock.client.clone()).as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Succeeded, "{:?}", done.error_message);
    let seen = mock.seen();

    // Every write is a server-side apply by field manager `slipway` into the environment's namespace.
    for s in seen.iter().filter(|s| s.method == "PATCH") {
        assert!(s.path.contains("/namespaces/shop/"), "{}", s.path);
        assert!(s.query.contains("fieldManager=slipway") && s.query.contains("force=true"), "{}", s.query);
        assert_eq!(s.content_type, "application/apply-patch+yaml");
    }
    // Order: pull Secret, env Secret, Deployments, Service.
    let order: Vec<String> = seen.iter().filter(|s| s.method == "PATCH").map(|s| s.path.clone()).collect();
    let pull = format!("/api/v1/namespaces/shop/secrets/slipway-pull-{}", fx.project.slug);
    assert_eq!(order[0], pull);
    assert_eq!(order[1], format!("/api/v1/namespaces/shop/secrets/{}-env", fx.workload("api")));
    assert_eq!(order[2], format!("/apis/apps/v1/namespaces/shop/deployments/{}", fx.workload("api")));
    assert_eq!(order[3], format!("/apis/apps/v1/namespaces/shop/deployments/{}", fx.workload("worker")));
    assert_eq!(order[4], format!("/api/v1/namespaces/shop/services/{}", fx.workload("api")));
    assert_eq!(order.len(), 5, "no Service for the worker, which has no port: {order:?}");

    // The pull Secret: a dockerconfigjson with a pull-only credential for Slipway's registry.
    let secret = &patches(&seen, "/secrets/slipway-pull-")[0].body;
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let config = base64::engine::general_purpose::STANDARD.decode(secret["data"][".dockerconfigjson"].as_str().unwrap()).unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    let auth = &config["auths"]["127.0.0.1:5000"];
    assert!(auth["username"].as_str().unwrap().contains(&fx.project.slug));
    assert!(!auth["password"].as_str().unwrap().is_empty());

    // The api Deployment.
    let api = &patches(&seen, "/deployments/")[0].body;
    assert_eq!((api["apiVersion"].as_str(), api["kind"].as_str()), (Some("apps/v1"), Some("Deployment")));
    let labels = &api["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "api");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "slipway");
    let notes = &api["metadata"]["annotations"];
    assert_eq!(notes["slipway.dev/release"], fx.release.id.as_str());
    assert_eq!(notes["slipway.dev/git-sha"], fx.release.git_sha.as_str());
    assert_eq!(notes["slipway.dev/approvals"], "");
    assert_eq!(notes["slipway.dev/deployment"], done.id.as_str());
    let pod = &api["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], format!("127.0.0.1:5000/{}/api@{}", fx.project.slug, digest("api")));
    assert_eq!(pod["imagePullSecrets"][0]["name"], format!("slipway-pull-{}", fx.project.slug));
    assert_eq!(container["ports"][0]["containerPort"], 80);
    let env = container["env"].as_array().unwrap();
    let var = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap_or(Value::Null);
    assert_eq!(var("LOG_LEVEL")["value"], "info");
    assert_eq!(var("DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"], format!("{}-env", fx.workload("api")));
    assert!(var("DATABASE_URL").get("value").is_none());
    assert!(!api.to_string().contains(SECRET_VALUE), "a secret value is in the Deployment");

    // The secret value travels only in the env Secret.
    let env_secret = &patches(&seen, "-env")[0].body;
    let stored = base64::engine::general_purpose::STANDARD.decode(env_secret["data"]["DATABASE_URL"].as_str().unwrap()).unwrap();
    assert_eq!(stored, SECRET_VALUE.as_bytes());

    // The worker: its command, no port, no Service.
    let worker = &patches(&seen, "/deployments/")[1].body;
    assert_eq!(worker["spec"]["template"]["spec"]["containers"][0]["command"], json!(["worker", "--queue", "jobs"]));
    assert!(worker["spec"]["template"]["spec"]["containers"][0].get("ports").is_none());

    // The Service maps the manifest's port to the container's.
    let service = &patches(&seen, "/services/")[0].body;
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(service["spec"]["selector"]["app.kubernetes.io/instance"], fx.workload("api"));

    // What the deployment records.
    let names: Vec<&str> = done.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [fx.workload("api"), fx.workload("worker")]);
    assert_eq!(done.containers[0].digest, digest("api"));
}

#[sqlx::test(migrations = "./migrations")]
async fn the_rollout_waits_until_the_new_generation_is_observed_and_available(pool: PgPool) {
    let fx = fixture(pool).await;
    let mock = MockApiServer::start(Box::new(|seen, n| {
        Some(match seen.method.as_str() {
            "PATCH" => (200, applied(seen)),
            // Twice the old generation, once the new one not yet available, then done.
            "GET" => match n {
                0 | 1 => (200, deployment_status(seen, 1, true)),
                2 => (200, deployment_status(seen, 2, false)),
                _ => (200, deployment_status(seen, 2, true)),
            },
            _ => (404, json!({})),
        })
    }));
    let done = fx.deploy(fx.targets(mock.client.clone()).as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Succeeded, "{:?}", done.error_message);
    let api_reads = mock.seen().iter().filter(|s| s.method == "GET" && s.path.ends_with(&fx.workload("api"))).count();
    assert_eq!(api_reads, 4, "the rollout was declared done before it was");
}

/// Deploys with the api Deployment stalled and its pod in `pod_status`; returns the recorded error.
async fn failure_reason(pool: PgPool, pod_status: Value) -> (String, Vec<Seen>) {
    let fx = fixture(pool).await;
    let mock = MockApiServer::start(scenario(Some(pod_status)));
    let done = fx.deploy(fx.targets(mock.client.clone()).as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Failed);
    assert!(done.containers.is_empty());
    let seen = mock.seen();
    let pods = seen.iter().find(|s| s.path == "/api/v1/namespaces/shop/pods").expect("the pods were read for a reason");
    assert!(pods.query.contains(&format!("labelSelector=app.kubernetes.io%2Finstance%3D{}", fx.workload("api"))), "{}", pods.query);
    let message = done.error_message.unwrap_or_default();
    assert!(message.contains("exceeded its progress deadline"), "{message}");
    (message, seen)
}

#[sqlx::test(migrations = "./migrations")]
async fn an_image_that_cannot_be_pulled_fails_the_rollout_with_image_pull_back_off(pool: PgPool) {
    let (message, _) = failure_reason(pool, json!({ "containerStatuses": [{ "name": "api", "image": "127.0.0.1:5000/x/api@sha256:1",
        "imageID": "", "ready": false, "restartCount": 0,
        "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } } }] })).await;
    assert!(message.contains("ImagePullBackOff") && message.contains("Back-off pulling image"), "{message}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_crashing_container_fails_the_rollout_with_crash_loop_back_off(pool: PgPool) {
    let (message, _) = failure_reason(pool, json!({ "containerStatuses": [{ "name": "api", "image": "i", "imageID": "",
        "ready": false, "restartCount": 5,
        "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container" } },
        "lastState": { "terminated": { "exitCode": 3, "reason": "Error" } } }] })).await;
    assert!(message.contains("CrashLoopBackOff") && message.contains("last exit code 3"), "{message}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_container_killed_for_memory_fails_the_rollout_with_oom_killed(pool: PgPool) {
    let (message, _) = failure_reason(pool, json!({ "containerStatuses": [{ "name": "api", "image": "i", "imageID": "",
        "ready": false, "restartCount": 2,
        "state": { "waiting": { "reason": "CrashLoopBackOff" } },
        "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } } }] })).await;
    // The kill explains the crash loop: the message names the kill, not the loop.
    assert!(message.contains("OOMKilled") && message.contains("out of memory"), "{message}");
    assert!(!message.contains("CrashLoopBackOff"), "{message}");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_unschedulable_pod_fails_the_rollout_with_the_schedulers_message(pool: PgPool) {
    let (message, _) = failure_reason(pool, json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory." }] })).await;
    assert!(message.contains("unschedulable") && message.contains("3 Insufficient memory"), "{message}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_rollout_kubernetes_never_reports_on_fails_at_slipways_own_deadline(pool: PgPool) {
    let fx = fixture(pool).await;
    let mock = MockApiServer::start(Box::new(|seen, _| {
        Some(match seen.method.as_str() {
            "PATCH" => (200, applied(seen)),
            "GET" if seen.path.contains("/deployments/") => (200, deployment_status(seen, 1, false)),
            _ => (200, pod_list(json!({}))),
        })
    }));
    let started = std::time::Instant::now();
    let done = fx.deploy(fx.targets(mock.client.clone()).as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Failed);
    let message = done.error_message.unwrap_or_default();
    assert!(message.contains("did not finish in time") && message.contains("give no reason"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[sqlx::test(migrations = "./migrations")]
async fn the_pull_secret_is_created_then_kept_current_by_every_deployment(pool: PgPool) {
    let fx = fixture(pool).await;
    // The first apply creates the Secret (201), later ones update it (200).
    let mock = MockApiServer::start(Box::new(|seen, n| {
        Some(match seen.method.as_str() {
            "PATCH" if seen.path.contains("/secrets/slipway-pull-") && n == 0 => (201, applied(seen)),
            "PATCH" => (200, applied(seen)),
            _ => (200, deployment_status(seen, 2, true)),
        })
    }));
    let targets = fx.targets(mock.client.clone());
    let first = fx.deploy(targets.as_ref()).await;
    assert_eq!(first.status, DeploymentStatus::Succeeded, "{:?}", first.error_message);
    // A second deployment one second later: the credential is fresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = fx.deploy(targets.as_ref()).await;
    assert_eq!(second.status, DeploymentStatus::Succeeded, "{:?}", second.error_message);
    let seen = mock.seen();
    let writes = patches(&seen, "/secrets/slipway-pull-");
    assert_eq!(writes.len(), 2, "each deployment applies the pull Secret");
    let password = |s: &Seen| {
        let raw = base64::engine::general_purpose::STANDARD.decode(s.body["data"][".dockerconfigjson"].as_str().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&raw).unwrap()["auths"]["127.0.0.1:5000"]["password"].as_str().unwrap().to_string()
    };
    assert_ne!(password(writes[0]), password(writes[1]), "the second deployment wrote a fresh credential");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_unreachable_cluster_fails_the_deployment_saying_so(pool: PgPool) {
    let fx = fixture(pool).await;
    let mock = MockApiServer::start(Box::new(|_, _| None));
    let done = fx.deploy(fx.targets(mock.client.clone()).as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Failed);
    let message = done.error_message.unwrap_or_default();
    assert!(message.contains("cluster `default`") && message.contains("unreachable"), "{message}");
    assert_eq!(mock.seen().len(), 1, "nothing is tried after the cluster failed to answer");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_cluster_that_is_not_registered_fails_the_deployment_naming_it(pool: PgPool) {
    let fx = fixture(pool).await;
    let deployer = KubernetesDeployer::new(fx.store.clone(), Arc::new(RegisteredClusters::new(fx.store.clone())));
    let targets = release::targets_for_process(&fx.store, None, Some(Arc::new(deployer)));
    let done = fx.deploy(targets.as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Failed);
    let message = done.error_message.unwrap_or_default();
    assert!(message.contains("cluster `default` is not registered"), "{message}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_missing_secret_reference_refuses_the_deployment_before_anything_is_applied(pool: PgPool) {
    let fx = fixture(pool).await;
    fx.store.delete_secret(&fx.project.id, None, "DATABASE_URL").await.expect("deleted");
    let mock = MockApiServer::start(scenario(None));
    let done = fx.deploy(fx.targets(mock.client.clone()).as_ref()).await;
    assert_eq!(done.status, DeploymentStatus::Failed);
    let message = done.error_message.unwrap_or_default();
    assert!(message.contains("DATABASE_URL") && message.contains("no secret"), "{message}");
    assert!(mock.seen().is_empty(), "nothing may be applied: {:?}", mock.seen());
}
