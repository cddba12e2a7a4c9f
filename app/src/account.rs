//! Accounts: login, logout, first-admin setup, password, API tokens, users,
//! project members, secrets and the audit trail — server functions and pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use server_fn::codec::Json;
use slipway_model::auth::{AuditPage, AuditQuery, CreatedToken, Member, NewToken, Role, TokenInfo, User};
use slipway_model::secret::SecretMeta;
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "slipway_session";

#[cfg(feature = "ssr")]
fn client_info(g: &crate::auth::Guard) -> slipway_model::auth::ClientInfo {
    slipway_model::auth::ClientInfo { ip: g.info.ip.clone(), user_agent: g.info.user_agent.clone() }
}

/// Sets (or clears) the session cookie; `Secure` when the request came over
/// https or the server is told to always mark it.
#[cfg(feature = "ssr")]
fn set_session_cookie(token: Option<&str>) {
    let secure = if crate::auth::auth_info().secure_cookie { "; Secure" } else { "" };
    let value = match token {
        Some(t) => format!("{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age=604800{secure}"),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    if let (Some(res), Ok(v)) = (use_context::<leptos_axum::ResponseOptions>(), axum::http::HeaderValue::from_str(&value)) {
        res.append_header(axum::http::header::SET_COOKIE, v);
    }
}

/// The logged-in user, if any.
#[server(prefix = "/api", endpoint = "auth/me", input = Json)]
pub async fn me() -> Result<Option<User>, AppError> {
    let g = crate::auth::require("auth/me", None, || AppError::not_found("user")).await?;
    Ok(g.principal.map(|p| p.user))
}

/// Logs in with a username and password; sets the session cookie.
#[server(prefix = "/api", endpoint = "auth/login", input = Json)]
pub async fn login(username: String, password: String) -> Result<User, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("auth/login", None, || AppError::not_found("user")).await?;
    let (user, token) = ctx.store.login(&username, &password, &client_info(&g)).await?;
    set_session_cookie(Some(token.expose()));
    Ok(user)
}

/// Creates the first administrator with the one-time setup token Slipway printed.
#[server(prefix = "/api", endpoint = "auth/setup", input = Json)]
pub async fn setup(token: String, username: String, password: String) -> Result<User, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("auth/setup", None, || AppError::not_found("setup")).await?;
    let client = client_info(&g);
    let user = ctx.store.consume_setup_token(&token, &username, &password, &client).await?;
    // The password was just set: open the session without checking it again.
    let ttl = slipway_engine::auth::AuthPolicy::default().session_ttl;
    let session = ctx.store.create_session(&user, ttl, &client).await?;
    set_session_cookie(Some(session.expose()));
    Ok(user)
}

/// Ends the session.
#[server(prefix = "/api", endpoint = "auth/logout", input = Json)]
pub async fn logout() -> Result<(), AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("auth/logout", None, || AppError::not_found("session")).await?;
    if let Some(token) = g.info.session_token.as_deref() {
        ctx.store.logout(token).await?;
    }
    crate::auth::audit(&g, "logout", None, None, serde_json::json!({})).await;
    set_session_cookie(None);
    Ok(())
}

/// Changes the caller's password (the old one must be right).
#[server(prefix = "/api", endpoint = "auth/password", input = Json)]
pub async fn change_password(old_password: String, new_password: String) -> Result<(), AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("auth/password", None, || AppError::not_found("user")).await?;
    let user = g.user()?;
    ctx.store.set_password(&user.user.id, &old_password, &new_password).await?;
    ctx.store.end_other_sessions(&user.user.id, g.info.session_token.as_deref()).await?;
    crate::auth::audit(&g, "password.changed", None, Some(("user", &user.user.id)), serde_json::json!({})).await;
    Ok(())
}

/// The caller's API tokens (never their values).
#[server(prefix = "/api", endpoint = "tokens/list", input = Json)]
pub async fn list_tokens() -> Result<Vec<TokenInfo>, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("tokens/list", None, || AppError::not_found("token")).await?;
    Ok(ctx.store.list_tokens(&g.user()?.user.id).await?)
}

/// Creates an API token; its value is in the answer once and never again.
#[server(prefix = "/api", endpoint = "tokens/create", input = Json)]
pub async fn create_token(input: NewToken) -> Result<CreatedToken, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("tokens/create", None, || AppError::not_found("token")).await?;
    Ok(ctx.store.create_token(g.user()?, &input).await?)
}

/// Revokes one of the caller's tokens (administrators: any token).
#[server(prefix = "/api", endpoint = "tokens/revoke", input = Json)]
pub async fn revoke_token(token: String) -> Result<(), AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("tokens/revoke", None, || AppError::not_found("token")).await?;
    ctx.store.revoke_token(g.user()?, &token).await?;
    Ok(())
}

/// Every user (administrators).
#[server(prefix = "/api", endpoint = "users/list", input = Json)]
pub async fn list_users() -> Result<Vec<User>, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require("users/list", None, || AppError::not_found("user")).await?;
    Ok(ctx.store.list_users().await?)
}

/// Creates a user (administrators).
#[server(prefix = "/api", endpoint = "users/create", input = Json)]
pub async fn create_user(
    username: String,
    password: String,
    #[server(default)] display_name: Option<String>,
    #[server(default)] is_admin: bool,
) -> Result<User, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("users/create", None, || AppError::not_found("user")).await?;
    let user = ctx.store.create_user(&username, display_name.as_deref(), &password, is_admin).await?;
    crate::auth::audit(&g, "user.created", None, Some(("user", &user.id)), serde_json::json!({ "username": user.username, "is_admin": is_admin })).await;
    Ok(user)
}

#[cfg(feature = "ssr")]
async fn project_id(project: &str) -> Result<String, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    Ok(ctx.store.get_project(project).await?.id)
}

#[cfg(feature = "ssr")]
fn project_not_found(project: &str) -> impl FnOnce() -> AppError + '_ {
    move || AppError::not_found(format!("project `{project}`"))
}

/// Members of a project and their roles.
#[server(prefix = "/api", endpoint = "members/list", input = Json)]
pub async fn list_members(project: String) -> Result<Vec<Member>, AppError> {
    let ctx = crate::server::context()?;
    let pid = project_id(&project).await?;
    crate::auth::require("members/list", Some(&pid), project_not_found(&project)).await?;
    Ok(ctx.store.list_members(&pid).await?)
}

/// Adds a member or changes their role (project admins).
#[server(prefix = "/api", endpoint = "members/set", input = Json)]
pub async fn set_member(project: String, username: String, role: Role) -> Result<Vec<Member>, AppError> {
    let ctx = crate::server::context()?;
    let pid = project_id(&project).await?;
    let g = crate::auth::require("members/set", Some(&pid), project_not_found(&project)).await?;
    ctx.store.set_member(&pid, &username, role, g.user()?).await?;
    Ok(ctx.store.list_members(&pid).await?)
}

/// Removes a member (project admins).
#[server(prefix = "/api", endpoint = "members/remove", input = Json)]
pub async fn remove_member(project: String, username: String) -> Result<Vec<Member>, AppError> {
    let ctx = crate::server::context()?;
    let pid = project_id(&project).await?;
    let g = crate::auth::require("members/remove", Some(&pid), project_not_found(&project)).await?;
    ctx.store.remove_member(&pid, &username, g.user()?).await?;
    Ok(ctx.store.list_members(&pid).await?)
}

/// Names and timestamps of a project's secrets; never values.
#[server(prefix = "/api", endpoint = "secrets/list", input = Json)]
pub async fn list_secrets(project: String) -> Result<Vec<SecretMeta>, AppError> {
    let ctx = crate::server::context()?;
    let pid = project_id(&project).await?;
    crate::auth::require("secrets/list", Some(&pid), project_not_found(&project)).await?;
    Ok(ctx.store.list_secrets(&pid).await?)
}

/// Sets a secret (project admins); the value is encrypted and never returned.
#[server(prefix = "/api", endpoint = "secrets/set", input = Json)]
pub async fn set_secret(project: String, name: String, value: String) -> Result<SecretMeta, AppError> {
    let ctx = crate::server::context()?;
    let pid = project_id(&project).await?;
    let g = crate::auth::require("secrets/set", Some(&pid), project_not_found(&project)).await?;
    let sb = ctx.secrets.clone().ok_or_else(|| AppError::unavailable("this server has no secret store configured"))?;
    let meta = ctx.store.set_secret(&sb, &pid, None, &name, &value, g.user_id()).await?;
    crate::auth::audit(&g, "secret.set", Some(&pid), Some(("secret", &meta.id)), serde_json::json!({ "name": meta.name })).await;
    Ok(meta)
}

/// Deletes a secret (project admins).
#[server(prefix = "/api", endpoint = "secrets/delete", input = Json)]
pub async fn delete_secret(project: String, name: String) -> Result<bool, AppError> {
    let ctx = crate::server::context()?;
    let pid = project_id(&project).await?;
    let g = crate::auth::require("secrets/delete", Some(&pid), project_not_found(&project)).await?;
    let deleted = ctx.store.delete_secret(&pid, None, &name).await?;
    if !deleted {
        return Err(AppError::not_found(format!("secret `{name}`")));
    }
    crate::auth::audit(&g, "secret.deleted", Some(&pid), Some(("secret", &name)), serde_json::json!({ "name": name })).await;
    Ok(true)
}

/// The audit trail: global admins see everything, others the events of the
/// projects they administer.
#[server(prefix = "/api", endpoint = "audit/list", input = Json)]
pub async fn list_audit(#[server(default)] query: AuditQuery) -> Result<AuditPage, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("audit/list", None, || AppError::not_found("audit")).await?;
    Ok(ctx.store.list_audit_for(g.user()?, &query).await?)
}

/// The login page.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(_)) = login.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(w) = web_sys::window() {
                let _ = w.location().set_href("/projects");
            }
        }
    });
    view! {
        <Title text="Log in"/>
        <section class="panel narrow">
            <h1>"Log in"</h1>
            <form id="login" class="form column" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                login.dispatch(Login { username: username.get_untracked(), password: password.get_untracked() });
            }>
                <label>"Username"<input name="username" autocomplete="username" required bind:value=username/></label>
                <label>"Password"<input name="password" type="password" autocomplete="current-password" required bind:value=password/></label>
                <button type="submit" disabled=move || login.pending().get()>"Log in"</button>
            </form>
            {move || login.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        </section>
    }
}

/// First-run setup: the one-time link Slipway printed creates the first administrator.
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let setup = ServerAction::<Setup>::new();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(_)) = setup.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(w) = web_sys::window() {
                let _ = w.location().set_href("/projects");
            }
        }
    });
    view! {
        <Title text="Set up Slipway"/>
        <section class="panel narrow">
            <h1>"Create the first administrator"</h1>
            <p class="muted">"This link works once, and only while Slipway has no users. There is no default password."</p>
            <form id="setup" class="form column" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                setup.dispatch(Setup {
                    token: query.read_untracked().get("token").unwrap_or_default(),
                    username: username.get_untracked(),
                    password: password.get_untracked(),
                });
            }>
                <label>"Username"<input name="username" required bind:value=username/></label>
                <label>"Password (10 characters or more)"<input name="password" type="password" autocomplete="new-password" required bind:value=password/></label>
                <button type="submit">"Create administrator"</button>
            </form>
            {move || setup.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        </section>
    }
}

/// The account page: password and API tokens.
#[component]
pub fn AccountPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let password = ServerAction::<ChangePassword>::new();
    let tokens = Resource::new(move || (create.version().get(), revoke.version().get()), |_| list_tokens());
    let name = RwSignal::new(String::new());
    let scope = RwSignal::new(String::new());
    let days = RwSignal::new(String::from("90"));
    let old_pw = RwSignal::new(String::new());
    let new_pw = RwSignal::new(String::new());
    view! {
        <Title text="Account"/>
        <header class="page-header"><h1>"Account"</h1></header>
        <section class="panel">
            <h2>"API tokens"</h2>
            <p class="muted">"For scripts and the CLI (" <code>"slipway login"</code> "). A token is shown once; Slipway keeps only its hash."</p>
            <form id="new-token" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let scope = scope.get_untracked();
                create.dispatch(CreateToken { input: NewToken {
                    name: name.get_untracked(),
                    project: (!scope.trim().is_empty()).then_some(scope),
                    expires_in_days: days.get_untracked().trim().parse().ok(),
                }});
            }>
                <label>"Name"<input name="token-name" required placeholder="ci" bind:value=name/></label>
                <label>"Project scope"<input name="token-project" placeholder="all my projects" bind:value=scope/></label>
                <label>"Expires in days"<input name="token-days" placeholder="never" bind:value=days/></label>
                <button type="submit">"Create token"</button>
            </form>
            {move || match create.value().get() {
                Some(Ok(t)) => view! { <p class="notice" role="status">"Copy it now, it will not be shown again: "<code id="new-token-value">{t.token}</code></p> }.into_any(),
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                None => ().into_any(),
            }}
            <Transition fallback=|| view! { <Loading what="tokens"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let tokens = tokens.await?;
                        Ok::<_, AppError>(view! {
                            <table id="tokens" class="table">
                                <thead><tr><th>"Name"</th><th>"Scope"</th><th>"Created"</th><th>"Expires"</th><th>"Last used"</th><th></th></tr></thead>
                                <tbody>{tokens.into_iter().map(|t| {
                                    let id = t.id.clone();
                                    view! {
                                        <tr>
                                            <td>{t.name.clone()}</td>
                                            <td>{t.project_id.clone().unwrap_or_else(|| "all".into())}</td>
                                            <td>{format_time(&t.created_at)}</td>
                                            <td>{t.expires_at.as_ref().map(format_time).unwrap_or_else(|| "never".into())}</td>
                                            <td>{t.last_used_at.as_ref().map(format_time).unwrap_or_else(|| "—".into())}</td>
                                            <td>{if t.revoked_at.is_some() {
                                                view! { <span class="badge muted">"revoked"</span> }.into_any()
                                            } else {
                                                view! { <button class="danger small" on:click=move |_| { revoke.dispatch(RevokeToken { token: id.clone() }); }>"Revoke"</button> }.into_any()
                                            }}</td>
                                        </tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        })
                    })}
                </ErrorBoundary>
            </Transition>
        </section>
        <section class="panel">
            <h2>"Password"</h2>
            <form id="password" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                password.dispatch(ChangePassword { old_password: old_pw.get_untracked(), new_password: new_pw.get_untracked() });
            }>
                <label>"Current password"<input type="password" name="old" autocomplete="current-password" bind:value=old_pw/></label>
                <label>"New password"<input type="password" name="new" autocomplete="new-password" bind:value=new_pw/></label>
                <button type="submit">"Change password"</button>
            </form>
            {move || match password.value().get() {
                Some(Ok(())) => view! { <p class="notice" role="status">"Password changed."</p> }.into_any(),
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                None => ().into_any(),
            }}
        </section>
    }
}

/// Members and secrets of a project (its admins change them).
#[component]
pub fn ProjectSettings(slug: String) -> impl IntoView {
    let set = ServerAction::<SetMember>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let set_secret_action = ServerAction::<SetSecret>::new();
    let delete_secret_action = ServerAction::<DeleteSecret>::new();
    let p1 = slug.clone();
    let members = Resource::new(move || (set.version().get(), remove.version().get()), move |_| list_members(p1.clone()));
    let p2 = slug.clone();
    let secrets = Resource::new(
        move || (set_secret_action.version().get(), delete_secret_action.version().get()),
        move |_| list_secrets(p2.clone()),
    );
    let username = RwSignal::new(String::new());
    let role = RwSignal::new(String::from("developer"));
    let secret_name = RwSignal::new(String::new());
    let secret_value = RwSignal::new(String::new());
    let (s1, s2, s3, s4) = (slug.clone(), slug.clone(), slug.clone(), slug.clone());
    view! {
        <section class="panel">
            <h2>"Members"</h2>
            <Transition fallback=|| view! { <Loading what="members"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || { let s2 = s2.clone(); Suspend::new(async move {
                        let members = members.await?;
                        Ok::<_, AppError>(view! {
                            <table id="members" class="table">
                                <thead><tr><th>"User"</th><th>"Role"</th><th>"Since"</th><th></th></tr></thead>
                                <tbody>{members.into_iter().map(|m| {
                                    let (u, s) = (m.user.username.clone(), s2.clone());
                                    view! {
                                        <tr data-member=m.user.username.clone()>
                                            <td>{m.user.username.clone()}</td><td>{m.role.as_str()}</td><td>{format_time(&m.created_at)}</td>
                                            <td><button class="secondary small" on:click=move |_| { remove.dispatch(RemoveMember { project: s.clone(), username: u.clone() }); }>"Remove"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        })
                    })}}
                </ErrorBoundary>
            </Transition>
            <form id="add-member" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let role = role.get_untracked().parse().unwrap_or(Role::Viewer);
                set.dispatch(SetMember { project: s1.clone(), username: username.get_untracked(), role });
            }>
                <label>"Username"<input name="member-username" required bind:value=username/></label>
                <label>"Role"
                    <select name="member-role" on:change=move |ev| role.set(event_target_value(&ev))>
                        {Role::ALL.iter().map(|r| view! { <option value=r.as_str() selected=*r == Role::Developer>{r.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Add or change"</button>
            </form>
            {move || set.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
            {move || remove.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        </section>
        <section class="panel">
            <h2>"Secrets"</h2>
            <p class="muted">"Encrypted at rest; values are never shown again, and are masked in build logs."</p>
            <Transition fallback=|| view! { <Loading what="secrets"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || { let s4 = s4.clone(); Suspend::new(async move {
                        let secrets = secrets.await?;
                        Ok::<_, AppError>(view! {
                            <table id="secrets" class="table">
                                <thead><tr><th>"Name"</th><th>"Updated"</th><th></th></tr></thead>
                                <tbody>{secrets.into_iter().map(|s| {
                                    let (n, p) = (s.name.clone(), s4.clone());
                                    view! {
                                        <tr><td><code>{s.name.clone()}</code></td><td>{format_time(&s.updated_at)}</td>
                                        <td><button class="secondary small" on:click=move |_| { delete_secret_action.dispatch(DeleteSecret { project: p.clone(), name: n.clone() }); }>"Delete"</button></td></tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        })
                    })}}
                </ErrorBoundary>
            </Transition>
            <form id="set-secret" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                set_secret_action.dispatch(SetSecret { project: s3.clone(), name: secret_name.get_untracked(), value: secret_value.get_untracked() });
                secret_value.set(String::new());
            }>
                <label>"Name"<input name="secret-name" required placeholder="REGISTRY_PASSWORD" bind:value=secret_name/></label>
                <label>"Value"<input name="secret-value" type="password" autocomplete="off" required bind:value=secret_value/></label>
                <button type="submit">"Set secret"</button>
            </form>
            {move || set_secret_action.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        </section>
    }
}

/// The audit trail with filters.
#[component]
pub fn AuditPage() -> impl IntoView {
    let actor = RwSignal::new(String::new());
    let action = RwSignal::new(String::new());
    let project = RwSignal::new(String::new());
    let events = Resource::new(
        move || (actor.get(), action.get(), project.get()),
        |(actor, action, project)| {
            let some = |s: String| (!s.trim().is_empty()).then_some(s);
            list_audit(AuditQuery { actor: some(actor), action: some(action), project: some(project), limit: Some(100), ..Default::default() })
        },
    );
    view! {
        <Title text="Audit"/>
        <header class="page-header"><h1>"Audit trail"</h1></header>
        <section class="panel">
            <div class="filters">
                <label>"Who "<input name="audit-actor" on:change=move |ev| actor.set(event_target_value(&ev))/></label>
                <label>"Action "<input name="audit-action" placeholder="login.failed" on:change=move |ev| action.set(event_target_value(&ev))/></label>
                <label>"Project "<input name="audit-project" on:change=move |ev| project.set(event_target_value(&ev))/></label>
            </div>
            <Transition fallback=|| view! { <Loading what="events"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let page = events.await?;
                        Ok::<_, AppError>(view! {
                            <table id="audit" class="table">
                                <thead><tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"Target"</th><th>"Change"</th><th>"From"</th></tr></thead>
                                <tbody>{page.events.into_iter().map(|e| view! {
                                    <tr>
                                        <td>{format_time(&e.at)}</td>
                                        <td>{e.actor_label.clone()}</td>
                                        <td><code>{e.action.clone()}</code></td>
                                        <td>{e.target_id.clone().unwrap_or_default()}</td>
                                        <td>{e.change().unwrap_or_default()}</td>
                                        <td>{e.ip.clone().unwrap_or_default()}</td>
                                    </tr>
                                }).collect_view()}</tbody>
                            </table>
                        })
                    })}
                </ErrorBoundary>
            </Transition>
        </section>
    }
}
