//! The documented limits of what one request may carry, shared by the server
//! (which enforces them) and the clients (which can check before sending).
//! Over a limit the answer is 413 ([`crate::ErrorCode::TooLarge`]) or 429
//! ([`crate::ErrorCode::RateLimited`]) with the limit in the message.

/// Largest request body of every endpoint but the build import, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Most entries of a list in a request: `services` and `build_args` of a
/// build, `approvers` of an environment.
pub const MAX_LIST_ITEMS: usize = 100;

/// Log websockets one user may hold open at a time, per server process.
pub const MAX_FOLLOWERS_PER_CALLER: usize = 20;

/// Log websockets following one build at a time, per server process.
pub const MAX_FOLLOWERS_PER_BUILD: usize = 200;

/// Build imports running at a time, per server process; each may upload at
/// most 2 GiB (so scratch space for uploads stays bounded).
pub const MAX_CONCURRENT_IMPORTS: usize = 1;

/// Password hashes (argon2id, ~19 MiB each) computed at a time, per server process.
pub const MAX_CONCURRENT_HASHES: usize = 4;

/// Password checks allowed to wait for a hashing slot; beyond that a login
/// or setup is answered 429 at once.
pub const MAX_QUEUED_HASHES: usize = 32;
