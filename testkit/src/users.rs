//! Users and their API tokens.

use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal, User};

/// The password every fixture user has.
pub const PASSWORD: &str = "a long enough password";

/// A user (global admin or not) with [`PASSWORD`].
pub async fn user(store: &Store, username: &str, is_admin: bool) -> User {
    store.create_user(username, None, PASSWORD, is_admin).await.expect("user created")
}

/// The user as a caller with no token, from no particular address.
pub fn principal(user: &User) -> Principal {
    Principal { user: user.clone(), token_id: None, token_project: None, client: Default::default() }
}

/// A user (global admin or not) and an unscoped API token of theirs.
pub async fn token_for(store: &Store, username: &str, is_admin: bool) -> String {
    let user = user(store, username, is_admin).await;
    store
        .create_token(&principal(&user), &NewToken { name: "t".into(), project: None, expires_in_days: None })
        .await
        .expect("token created")
        .token
}
