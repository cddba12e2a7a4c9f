//! The pure pieces of the authorisation decision: the role a principal acts
//! with in a project (narrowed by token scope) and whether that role grants a
//! permission. The decision itself — endpoint rule, caller, project — is made
//! in one place, `slipway_app::auth::authorize`, which every server function,
//! plain route and websocket reaches.

use slipway_model::auth::{Permission, Principal, Role};
use slipway_model::{AppError, ErrorCode};

/// The outcome of checking a role against a permission. The caller decides
/// how to answer [`Access::NotMember`]: a 403, or a 404 so that the response
/// does not reveal whether another project's resource exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The role grants the permission.
    Allowed,
    /// No role in the project: not a member, or a project-scoped token used
    /// on another project.
    NotMember,
    /// A member whose role lacks the permission.
    Insufficient,
}

impl Access {
    /// 403 for both refusals (for callers that already revealed the project).
    pub fn require(self) -> Result<(), AppError> {
        match self {
            Access::Allowed => Ok(()),
            Access::NotMember => Err(not_a_member()),
            Access::Insufficient => Err(insufficient()),
        }
    }

    /// 404 "`what` not found" for a non-member, 403 for a member whose role
    /// is not enough: a stranger learns nothing about the project.
    pub fn require_or_hide(self, what: impl Into<String>) -> Result<(), AppError> {
        match self {
            Access::Allowed => Ok(()),
            Access::NotMember => Err(AppError::not_found(what)),
            Access::Insufficient => Err(insufficient()),
        }
    }
}

fn not_a_member() -> AppError {
    AppError::new(ErrorCode::Forbidden, "you are not a member of this project")
}

fn insufficient() -> AppError {
    AppError::new(ErrorCode::Forbidden, "your role in this project does not allow this")
}

/// The 401 for a request without a valid session or token.
pub fn unauthenticated() -> AppError {
    AppError::new(ErrorCode::Unauthenticated, "log in or send an API token first")
}

/// Checks a role (from [`crate::Store::project_role`]) against a permission.
pub fn access(role: Option<Role>, needed: Permission) -> Access {
    match role {
        None => Access::NotMember,
        Some(r) if r.allows(needed) => Access::Allowed,
        Some(_) => Access::Insufficient,
    }
}

/// The whole decision for a project endpoint: the principal's role in
/// `project_id` (`member_role` from [`crate::Store::role_in`], narrowed by
/// token scope with [`scoped_role`]) checked against `needed`.
pub fn check(principal: &Principal, project_id: &str, member_role: Option<Role>, needed: Permission) -> Access {
    access(scoped_role(principal, project_id, member_role), needed)
}

/// The role a principal acts with in `project_id`, given the user's own role
/// there (`member_role`, which is `Admin` for a global admin): `None` when
/// the principal's token is scoped to another project.
pub fn scoped_role(principal: &Principal, project_id: &str, member_role: Option<Role>) -> Option<Role> {
    if !principal.may_touch_project(project_id) {
        return None;
    }
    if principal.user.is_admin {
        return Some(Role::Admin);
    }
    member_role
}
