//! Fixtures the workspace's tests share, each written once: git repositories
//! ([`git`]), the test services `cargo xtask test` starts ([`services`]),
//! projects on those repositories ([`projects`]), builds recorded without
//! running one ([`records`]), a private registry for one test
//! ([`registry`]), and users with API tokens ([`users`]). A dev-dependency of the engine, the server and the
//! CLI; never part of a shipped binary.
//!
//! Fixtures panic on failure, with what failed: they are for tests only.

pub mod git;
pub mod projects;
pub mod records;
pub mod registry;
pub mod services;
pub mod users;

/// A short random suffix for names that must not collide between tests.
pub fn nonce() -> String {
    slipway_model::id::new_id("x")[2..14].to_string()
}
