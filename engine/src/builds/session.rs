//! A BuildKit client session on the Docker engine that serves build secrets.
//!
//! `docker build --secret` works this way, and so does this module: the
//! client opens `POST /session` on the engine (upgraded to h2c), announces the
//! gRPC methods it serves (`Secrets/GetSecret`, `Health/Check`) and then
//! answers BuildKit's calls over that connection. A `/build` request naming
//! the session's id can then `RUN --mount=type=secret,id=<id>`: the value is
//! mounted as a file for that step only and is recorded nowhere in the image
//! (unlike a build arg, which `docker history` shows). The build itself still
//! goes through the classic `/build` endpoint, so its progress stream (and
//! Slipway's live step logs) stays the same.
//!
//! The session lives until the [`SecretSession`] is dropped.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::health::health_check_response::ServingStatus;
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use bollard::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use slipway_model::status::ErrorClass;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use futures::StreamExt;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::BuildFailure;

/// Longest answer to the upgrade request read before giving up.
const MAX_HANDSHAKE: usize = 16 * 1024;

/// The gRPC methods this session serves (the engine only routes these).
const METHODS: [&str; 2] = ["/moby.buildkit.secrets.v1.Secrets/GetSecret", "/grpc.health.v1.Health/Check"];

/// An open session serving secrets; closed when dropped.
pub(crate) struct SecretSession {
    id: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for SecretSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSession").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SecretSession {
    /// Opens a session on the engine at `DOCKER_HOST` (or the default
    /// socket) serving `secrets` by id, under the session id `id`.
    pub async fn open(id: &str, secrets: &BTreeMap<String, String>) -> Result<SecretSession, BuildFailure> {
        let endpoint = Endpoint::from_env()?;
        let mut conn = endpoint.connect().await.map_err(|e| failure(format!("connecting to the Docker engine at {endpoint}: {e}")))?;
        handshake(&mut conn, id).await?;
        let store = SecretStore { values: secrets.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect() };
        let router = tonic::transport::Server::builder()
            .add_service(HealthServer::new(Healthy))
            .add_service(SecretsServer::new(store));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // One connection, then nothing: an incoming stream that ended
            // would shut the server (and that connection) down at once.
            let incoming = futures::stream::iter(vec![Ok::<_, io::Error>(conn)]).chain(futures::stream::pending());
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, async { rx.await.unwrap_or(()) }).await {
                tracing::debug!(error = %e, "the build secrets session ended with an error");
            }
        });
        Ok(SecretSession { id: id.to_string(), shutdown: Some(tx) })
    }
}

impl Drop for SecretSession {
    /// Shuts the session down gracefully (the engine is told with a GOAWAY and
    /// closes the connection; the task ends then).
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn failure(message: String) -> BuildFailure {
    BuildFailure::new(ErrorClass::Unknown, format!("opening a build secrets session failed: {message}"))
}

/// Sends the upgrade request and reads the engine's `101 Switching Protocols`
/// byte by byte, so that nothing of the h2 stream that follows is consumed.
async fn handshake(conn: &mut Conn, id: &str) -> Result<(), BuildFailure> {
    let mut request = format!(
        "POST /session HTTP/1.1\r\nHost: docker\r\nUser-Agent: slipway\r\nContent-Length: 0\r\n\
         Connection: Upgrade\r\nUpgrade: h2c\r\nX-Docker-Expose-Session-Uuid: {id}\r\n\
         X-Docker-Expose-Session-Name: slipway\r\nX-Docker-Expose-Session-Sharedkey: {id}\r\n"
    );
    for m in METHODS {
        request.push_str(&format!("X-Docker-Expose-Session-Grpc-Method: {m}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes()).await.map_err(|e| failure(format!("sending the session request: {e}")))?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HANDSHAKE {
            return Err(failure("the engine's answer to the session request is too long".into()));
        }
        match conn.read(&mut byte).await {
            Ok(0) => return Err(failure("the engine closed the connection during the session request".into())),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(failure(format!("reading the session answer: {e}"))),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(failure(format!("the engine answered `{status}` instead of switching protocols")));
    }
    Ok(())
}

/// Where the engine listens: `DOCKER_HOST` (`unix://` or `tcp://`) or the default socket.
enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Endpoint {
    fn from_env() -> Result<Endpoint, BuildFailure> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            return Ok(Endpoint::Tcp(addr.trim_end_matches('/').to_string()));
        }
        Err(failure(format!("DOCKER_HOST={host}: build secrets need the engine on a unix socket or plain tcp://")))
    }

    async fn connect(&self) -> io::Result<Conn> {
        Ok(match self {
            Endpoint::Unix(p) => Conn::Unix(UnixStream::connect(p).await?),
            Endpoint::Tcp(a) => Conn::Tcp(TcpStream::connect(a).await?),
        })
    }
}

/// The hijacked engine connection the session is served on.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Answers BuildKit's `GetSecret` with this build's values (no `Debug`: values).
struct SecretStore {
    values: HashMap<String, Vec<u8>>,
}

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(&self, request: Request<GetSecretRequest>) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        match self.values.get(id) {
            Some(data) => Ok(Response::new(GetSecretResponse { data: data.clone() })),
            None => Err(Status::not_found(format!("secret `{id}` is not given to this build"))),
        }
    }
}

/// The session's health: serving while it exists.
struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn check(&self, _request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse { status: ServingStatus::Serving as i32 }))
    }

    async fn list(&self, _request: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list is not served"))
    }

    async fn watch(&self, _request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch is not served"))
    }
}
