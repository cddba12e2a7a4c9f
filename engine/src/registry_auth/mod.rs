//! Token authentication for Slipway's registry: the signing key and its
//! certificate ([`key`]), compact JWS ([`jwt`]), what a credential grants
//! ([`grant`]) and the issuer the realm endpoint and Slipway's own registry
//! calls use ([`issuer`]).

pub mod grant;
pub mod issuer;
pub mod jwt;
pub mod key;

pub use grant::{Grant, Scope};
pub use issuer::{basic_credentials, IssuedToken, Refusal, ResourceActions, TokenIssuer, ISSUER, SERVICE};
pub use key::SigningKey;
