//! What the server decides about a request before any handler runs, and the
//! per-process limits it enforces:
//!
//! - the client's address: the socket's peer, or — only when the server is
//!   configured with a trusted proxy header (`--trusted-proxy-header`) — the
//!   right-most address in that header, the one the proxy itself added;
//! - whether cookies get `Secure`: the request came over https (the URI's
//!   scheme, or `X-Forwarded-Proto` from a trusted proxy), or the server is
//!   told to always set it (`--force-secure-cookie`);
//! - request bodies of at most [`Limits::max_body_bytes`] (the import route
//!   has its own 2 GiB limit), else 413 naming the limit;
//! - log followers per caller and per build, and imports at a time, else 429
//!   naming the limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slipway_model::{limits, AppError, ErrorCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::problem::ApiError;

/// Per-process limits; [`Limits::default`] holds the documented numbers
/// (`slipway_model::limits`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub followers_per_caller: usize,
    pub followers_per_build: usize,
    pub concurrent_imports: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: limits::MAX_BODY_BYTES,
            followers_per_caller: limits::MAX_FOLLOWERS_PER_CALLER,
            followers_per_build: limits::MAX_FOLLOWERS_PER_BUILD,
            concurrent_imports: limits::MAX_CONCURRENT_IMPORTS,
        }
    }
}

#[derive(Default)]
struct FollowerCounts {
    by_caller: HashMap<String, usize>,
    by_build: HashMap<String, usize>,
}

/// The edge's settings and counters, shared by every request of a process.
pub struct Edge {
    /// A header set by a reverse proxy in front of Slipway holding the
    /// client's address (e.g. `x-forwarded-for`); `None`: the socket's peer.
    pub trusted_proxy_header: Option<HeaderName>,
    /// Mark cookies `Secure` even when the request does not look like https.
    pub force_secure_cookie: bool,
    pub limits: Limits,
    followers: Arc<Mutex<FollowerCounts>>,
    imports: Arc<Semaphore>,
}

impl Default for Edge {
    fn default() -> Self {
        Edge::new(None, false, Limits::default())
    }
}

impl Edge {
    pub fn new(trusted_proxy_header: Option<HeaderName>, force_secure_cookie: bool, limits: Limits) -> Edge {
        Edge {
            trusted_proxy_header,
            force_secure_cookie,
            imports: Arc::new(Semaphore::new(limits.concurrent_imports.max(1))),
            limits,
            followers: Arc::default(),
        }
    }

    /// The client's address (see the module documentation).
    pub fn client_ip(&self, req: &Request) -> Option<String> {
        if let Some(name) = &self.trusted_proxy_header {
            let forwarded = req
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if let Some(ip) = forwarded {
                return Some(ip.to_string());
            }
        }
        req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
    }

    /// Whether cookies set in answer to `req` must be `Secure`.
    pub fn secure_cookie(&self, req: &Request) -> bool {
        if self.force_secure_cookie || req.uri().scheme_str() == Some("https") {
            return true;
        }
        self.trusted_proxy_header.is_some()
            && req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next_back())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// Log followers connected to this process now.
    pub fn followers(&self) -> usize {
        self.followers.lock().unwrap_or_else(PoisonError::into_inner).by_build.values().sum()
    }

    /// A place for one more log follower of `build` by user `caller`, held
    /// until the returned slot is dropped; 429 naming the limit when full.
    pub fn follower_slot(&self, caller: &str, build: &str) -> Result<FollowerSlot, AppError> {
        let mut counts = self.followers.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.by_caller.get(caller).copied().unwrap_or(0);
        if mine >= self.limits.followers_per_caller {
            return Err(AppError::new(
                ErrorCode::RateLimited,
                format!(
                    "you already follow {mine} build logs; at most {} at a time per user: close one first",
                    self.limits.followers_per_caller
                ),
            ));
        }
        let theirs = counts.by_build.get(build).copied().unwrap_or(0);
        if theirs >= self.limits.followers_per_build {
            return Err(AppError::new(
                ErrorCode::RateLimited,
                format!("build {build} already has {theirs} log followers, the most allowed at a time ({}); try again later", self.limits.followers_per_build),
            ));
        }
        *counts.by_caller.entry(caller.to_string()).or_default() += 1;
        *counts.by_build.entry(build.to_string()).or_default() += 1;
        Ok(FollowerSlot { counts: self.followers.clone(), caller: caller.to_string(), build: build.to_string() })
    }

    /// A slot for one import, held until dropped; 429 naming the limit when
    /// as many imports as allowed are running.
    pub fn import_slot(&self) -> Result<OwnedSemaphorePermit, AppError> {
        self.imports.clone().try_acquire_owned().map_err(|_| {
            AppError::new(
                ErrorCode::RateLimited,
                format!(
                    "{} build import(s) already running, the most at a time on this server; try again when it finishes",
                    self.limits.concurrent_imports.max(1)
                ),
            )
        })
    }
}

/// One counted log follower; dropping it frees the place.
pub struct FollowerSlot {
    counts: Arc<Mutex<FollowerCounts>>,
    caller: String,
    build: String,
}

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        let mut guard = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = &mut *guard;
        for (map, key) in [(&mut counts.by_caller, &self.caller), (&mut counts.by_build, &self.build)] {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

fn body_too_large(limit: usize) -> Response {
    let kib = limit / 1024;
    ApiError::from(AppError::new(
        ErrorCode::TooLarge,
        format!("the request body is larger than {kib} KiB, the most this endpoint accepts"),
    ))
    .into_response()
}

/// Middleware: refuses a body over the limit with 413 (by its declared
/// length, else while reading it) and hands the handler the body in memory.
pub async fn limit_body(axum::extract::State(edge): axum::extract::State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let limit = edge.limits.max_body_bytes;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return body_too_large(limit);
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return body_too_large(limit),
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_slot_counts_until_dropped() {
        let edge = Edge::new(None, false, Limits { followers_per_caller: 2, followers_per_build: 3, ..Limits::default() });
        let a = edge.follower_slot("alice", "b1").unwrap();
        let _b = edge.follower_slot("alice", "b2").unwrap();
        let err = edge.follower_slot("alice", "b3").err().unwrap();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.message.contains("at most 2"), "{}", err.message);
        drop(a);
        let _c = edge.follower_slot("alice", "b3").unwrap();
        let _d = edge.follower_slot("bob", "b1").unwrap();
        let _e = edge.follower_slot("carol", "b1").unwrap();
        let _f = edge.follower_slot("dave", "b1").unwrap();
        assert!(edge.follower_slot("erin", "b1").err().unwrap().message.contains("(3)"));
    }

    #[test]
    fn the_proxy_header_is_used_only_when_configured() {
        let req = || {
            let mut r = Request::builder()
                .header("x-forwarded-for", "10.9.9.9, 203.0.113.7")
                .header("x-forwarded-proto", "https")
                .body(Body::empty())
                .unwrap();
            r.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
            r
        };
        let plain = Edge::default();
        assert_eq!(plain.client_ip(&req()).as_deref(), Some("127.0.0.1"));
        assert!(!plain.secure_cookie(&req()));
        let proxied = Edge::new(Some(HeaderName::from_static("x-forwarded-for")), false, Limits::default());
        assert_eq!(proxied.client_ip(&req()).as_deref(), Some("203.0.113.7"));
        assert!(proxied.secure_cookie(&req()));
        assert!(Edge::new(None, true, Limits::default()).secure_cookie(&req()));
    }
}
