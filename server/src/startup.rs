//! Start-up: embedded services when none is configured, migrations, the demo
//! project, then serving until Ctrl-C or SIGTERM; on the way out, everything
//! this process started is stopped again.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use leptos::config::LeptosOptions;
use slipway_engine::embedded::{self, DockerEngine, EmbeddedPostgres, EmbeddedRegistry, RegistryTokenAuth};
use slipway_engine::registry_auth::{SigningKey, TokenIssuer};
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::legacy::LegacyBackend;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::builds::BuildBackend;
use slipway_engine::release::DeployTarget;
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::{Common, Serve};
use crate::http::{app, AppState};

/// The services this process started (or adopted) and must stop on exit.
#[derive(Default)]
struct Started {
    postgres: Option<EmbeddedPostgres>,
    docker: Option<DockerEngine>,
    registry: Option<EmbeddedRegistry>,
}

impl Started {
    async fn stop(&mut self) {
        if let Some(mut r) = self.registry.take() {
            r.stop().await;
        }
        if let Some(mut d) = self.docker.take() {
            d.stop().await;
        }
        if let Some(p) = self.postgres.take() {
            p.stop().await;
        }
    }
}

fn prepare_data_dir(common: &Common) -> anyhow::Result<PathBuf> {
    let dir = common.data_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    tracing::info!(data_dir = %dir.display(), "data directory");
    Ok(dir)
}

/// The registry builds push to, and the issuer of its tokens when it
/// authenticates with Slipway's.
#[derive(Default)]
struct Registry {
    host: Option<String>,
    tokens: Option<TokenIssuer>,
}

/// The realm URL dockerd reaches this process's `/internal/registry/token` at.
fn realm_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}{}", SocketAddr::new(ip, addr.port()), crate::realm::PATH)
}

/// Docker engine, registry and base image, in that order. The embedded
/// registry authenticates with tokens Slipway signs, handed out at `realm`.
async fn start_engine_and_registry(common: &Common, data_dir: &Path, started: &mut Started, realm: &str) -> anyhow::Result<Registry> {
    let engine = embedded::connect_or_start_docker(data_dir, common.start_docker).await?;
    embedded::ensure_base_image(&engine.docker).await?;
    started.docker = Some(engine);
    let registry = match common.registry.as_deref() {
        Some("none") => {
            tracing::info!("registry disabled (SLIPWAY_REGISTRY=none): builds will not be pushed");
            Registry::default()
        }
        Some(host) => {
            match embedded::probe_registry(host) {
                Ok(v) => tracing::info!(registry = host, api = %v, "using the configured registry"),
                Err(e) => tracing::warn!(registry = host, error = %e, "the configured registry does not answer yet"),
            }
            // Tokens only when told whose key signs them (a registry another Slipway process runs).
            let tokens = match &common.registry_token_key {
                Some(path) => Some(TokenIssuer::new(SigningKey::load_or_create(path)?, host)),
                None => None,
            };
            Registry { host: Some(host.to_string()), tokens }
        }
        None => {
            if !common.registry_addr.ip().is_loopback() {
                return Err(anyhow!(
                    "--registry-addr {} is not a loopback address; the embedded registry only listens on 127.0.0.1",
                    common.registry_addr
                ));
            }
            let key_path = common.registry_token_key.clone().unwrap_or_else(|| TokenIssuer::default_key_path(data_dir));
            let key = SigningKey::load_or_create(&key_path)?;
            let auth = RegistryTokenAuth { realm: realm.to_string(), certificate_pem: key.certificate_pem()? };
            let registry = EmbeddedRegistry::start(data_dir, common.registry_addr, Some(&auth)).await?;
            let host = registry.addr.to_string();
            started.registry = Some(registry);
            tracing::info!(realm, key = %key_path.display(), "the registry refuses anonymous access; Slipway issues its tokens");
            Registry { tokens: Some(TokenIssuer::new(key, &host)), host: Some(host) }
        }
    };
    Ok(registry)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!("{addr} is already in use: stop what listens there, or choose another address with --addr / SLIPWAY_ADDR")
        } else {
            anyhow!("cannot listen on {addr}: {e}")
        }
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// `slipway-server serve`.
pub async fn run(common: Common, serve: Serve) -> anyhow::Result<()> {
    // Fail on a busy port before starting anything that would need stopping.
    let listener = bind(serve.addr)?;
    let site_root = serve.site_root.clone();
    if !site_root.join("pkg").join(format!("{}.js", slipway_app::OUTPUT_NAME)).is_file() {
        return Err(anyhow!(
            "the dashboard is not built at {}: run `cargo xtask run` (it builds it), or point --site-root / LEPTOS_SITE_ROOT at a built site",
            site_root.display()
        ));
    }
    let data_dir = prepare_data_dir(&common)?;
    let mut started = Started::default();
    let result = serve_inner(&common, &serve, &data_dir, listener, &mut started).await;
    started.stop().await;
    result
}

async fn serve_inner(
    common: &Common,
    serve: &Serve,
    data_dir: &Path,
    listener: std::net::TcpListener,
    started: &mut Started,
) -> anyhow::Result<()> {
    let database_url = match &common.database_url {
        Some(url) => url.clone(),
        None => {
            let pg = EmbeddedPostgres::start(&data_dir.join("postgres")).await?;
            pg.ensure_database(&serve.database_name).await?;
            let url = pg.url(&serve.database_name);
            started.postgres = Some(pg);
            url
        }
    };
    let store = Store::connect(&database_url).await.context("connecting to the database")?;
    store.migrate().await.context("applying database migrations")?;
    tracing::info!("database ready, migrations applied");

    let Registry { host: registry, tokens: registry_tokens } = start_engine_and_registry(common, data_dir, started, &realm_url(serve.addr)).await?;
    let (docker, docker_endpoint) = match &started.docker {
        Some(e) => (Some(e.docker.clone()), e.endpoint.clone()),
        None => (None, "not connected".to_string()),
    };

    if serve.seed_demo {
        slipway_engine::demo::seed_demo_project(&store, data_dir).await.context("seeding the demo project")?;
    }

    let shutdown = CancellationToken::new();
    let secrets = Arc::new(SecretBox::new(MasterKey::from_env_or_file(data_dir)?));
    // Git reads a project's credential from its secrets wherever it runs.
    let store = store.with_secrets(secrets.clone());
    let worker = match (&docker, serve.build_worker) {
        (Some(docker), true) => Some(start_build_worker(serve, data_dir, &store, docker.clone(), registry.clone(), registry_tokens.clone(), secrets.clone(), shutdown.clone())?),
        _ => None,
    };

    let leptos = LeptosOptions::builder()
        .output_name(slipway_app::OUTPUT_NAME)
        .site_root(serve.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(serve.addr)
        .build();
    let log_hub = slipway_engine::logs::LogHub::start(store.clone());
    if store.user_count().await? == 0 {
        let token = store.create_setup_token().await?;
        // The one way to create the first administrator: no default password exists.
        eprintln!(
            "\n  Slipway has no users yet. Create the first administrator at:\n\n    http://{}/setup?token={token}\n\n  (this link works once; run `slipway-server admin create` to make an administrator from the shell instead)\n",
            serve.addr
        );
    }
    // Each deployment goes to the target its environment names, never another; deployments are rolled out as
    // they become `deploying` (woken by Postgres NOTIFY from any process), and pipeline runs (build → release →
    // deploy) are driven in the background, one driver per run across processes.
    let targets = deploy_targets(&store, docker.as_ref(), registry_tokens.clone());
    let deploys = Some(slipway_engine::release::spawn_executor(store.clone(), targets.clone(), slipway_engine::release::executor::POLL, shutdown.clone()));
    let pipelines = Some(slipway_engine::pipeline::spawn_driver(store.clone(), targets, shutdown.clone()));
    let edge = Arc::new(crate::edge::Edge::new(trusted_proxy_header(serve)?, serve.force_secure_cookie, Default::default()));
    let metrics = crate::metrics::Metrics::new(serve.metrics_token.clone());
    let upkeep = metrics.clone().map(crate::metrics::spawn_upkeep);
    let state = AppState { leptos, store, docker, docker_endpoint, registry, registry_tokens, log_hub: log_hub.clone(), secrets: Some(secrets), edge, metrics };
    if let Some(addr) = serve.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the metrics address {addr}"))?;
        let metrics_router = crate::metrics::router(state.clone());
        tracing::info!(url = %format!("http://{addr}{}", crate::metrics::PATH), "serving the metrics");
        tokio::spawn(async move {
            let service = metrics_router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(shutdown_signal()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let router = app(state);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(url = %format!("http://{}", serve.addr), "Slipway is serving the dashboard");
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Every background worker is awaited: nothing of this process runs on after this returns.
    shutdown.cancel();
    for handle in [worker, deploys, pipelines].into_iter().flatten() {
        let _ = handle.await;
    }
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    log_hub.shutdown().await;
    Ok(())
}

/// Starts this process's build worker on the shared queue.
fn start_build_worker(
    serve: &Serve,
    data_dir: &Path,
    store: &Store,
    docker: bollard::Docker,
    registry: Option<String>,
    registry_tokens: Option<TokenIssuer>,
    secrets: Arc<SecretBox>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let backend: Arc<dyn BuildBackend> = match serve.build_backend.as_str() {
        "legacy" => Arc::new(LegacyBackend::new(docker.clone())),
        _ => Arc::new(BuildKitBackend::new(docker.clone())),
    };
    let mut config = RunnerConfig::new(data_dir.join("work"), registry);
    config.registry_tokens = registry_tokens;
    config.concurrency = serve.build_concurrency.max(1);
    config.reuse = serve.build_reuse;
    config.default_timeout = std::time::Duration::from_secs(serve.build_timeout.max(1));
    let runner = Arc::new(Runner::new(store.clone(), docker, backend, Some(secrets), config));
    Ok(runner.start(shutdown))
}

/// `slipway-server services`: start the embedded services, print how to reach
/// them, and keep them up until interrupted.
pub async fn run_services(common: Common) -> anyhow::Result<()> {
    let data_dir = prepare_data_dir(&common)?;
    let mut started = Started::default();
    let result = async {
        let database_url = match &common.database_url {
            Some(url) => url.clone(),
            None => {
                let pg = EmbeddedPostgres::start(&data_dir.join("postgres")).await?;
                let url = pg.url("postgres");
                started.postgres = Some(pg);
                url
            }
        };
        // The registry's realm: a token endpoint served by this process, so
        // builds and tests (routers on random ports, or none) can push.
        let realm_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let realm = realm_url(realm_listener.local_addr()?);
        let registry = start_engine_and_registry(&common, &data_dir, &mut started, &realm).await?;
        let key_path = common.registry_token_key.clone().unwrap_or_else(|| TokenIssuer::default_key_path(&data_dir));
        if let Some(issuer) = registry.tokens.clone() {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(realm_listener, crate::realm::router(issuer)).await {
                    tracing::error!(error = %e, "the registry token realm stopped");
                }
            });
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "DATABASE_URL={database_url}")?;
        if let Some(engine) = &started.docker {
            writeln!(out, "SLIPWAY_DOCKER_ENDPOINT={}", engine.endpoint)?;
        }
        if registry.tokens.is_some() {
            // Where the key that signs the registry's tokens is: test processes mint their credentials with it.
            writeln!(out, "SLIPWAY_REGISTRY_TOKEN_KEY={}", key_path.display())?;
        }
        writeln!(out, "SLIPWAY_REGISTRY={}", registry.host.unwrap_or_else(|| "none".into()))?;
        writeln!(out, "SLIPWAY_SERVICES_READY=1")?;
        out.flush()?;
        drop(out);
        shutdown_signal().await;
        anyhow::Ok(())
    }
    .await;
    started.stop().await;
    result
}

/// `slipway-server admin create --username NAME`: makes a global administrator
/// directly in the database (the password is read from standard input), for
/// automation and for recovering a lost administrator.
pub async fn run_admin_create(common: Common, serve: Serve, username: String) -> anyhow::Result<()> {
    use std::io::Read;
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    let data_dir = prepare_data_dir(&common)?;
    let mut started = Started::default();
    let result = async {
        let url = match &common.database_url {
            Some(url) => url.clone(),
            None => {
                let pg = EmbeddedPostgres::start(&data_dir.join("postgres")).await?;
                pg.ensure_database(&serve.database_name).await?;
                let url = pg.url(&serve.database_name);
                started.postgres = Some(pg);
                url
            }
        };
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        let user = store.create_user(&username, None, &password, true).await.map_err(|e| anyhow::anyhow!(slipway_model::AppError::from(e).message))?;
        println!("created administrator {} ({})", user.username, user.id);
        anyhow::Ok(())
    }
    .await;
    started.stop().await;
    result
}

/// The deploy targets of this process (see `release::select`): `docker`
/// environments on the connected engine, `kubernetes` ones on the
/// registered clusters (`store` opens their kubeconfigs).
fn deploy_targets(store: &Store, docker: Option<&bollard::Docker>, registry_tokens: Option<TokenIssuer>) -> Arc<dyn DeployTarget> {
    use slipway_engine::release::kubernetes::{KubernetesDeployer, RegisteredClusters};
    let local = docker.map(|d| {
        Arc::new(slipway_engine::release::LocalDockerTarget::new(d.clone()).with_registry_tokens(registry_tokens.clone())) as Arc<dyn DeployTarget>
    });
    let clusters = KubernetesDeployer::new(store.clone(), Arc::new(RegisteredClusters::new(store.clone()))).with_registry_tokens(registry_tokens);
    slipway_engine::release::targets_for_process(store, local, Some(Arc::new(clusters)))
}

/// The `--trusted-proxy-header` setting as a header name (a bad name stops start-up).
fn trusted_proxy_header(serve: &Serve) -> anyhow::Result<Option<axum::http::HeaderName>> {
    let Some(name) = serve.trusted_proxy_header.as_deref().map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let header = axum::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("--trusted-proxy-header: `{name}` is not a valid header name"))?;
    tracing::info!(header = %header, "client addresses are read from the trusted proxy header");
    Ok(Some(header))
}
