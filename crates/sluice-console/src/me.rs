//! My credentials: the logged-in user's access keys (the new secret is shown once, in the
//! answer to the create form, and never again), groups and effective policies.

use crate::error::Result;
use crate::layout::{self, copy_button, csrf, dash, page};
use crate::session::{Change, User};
use crate::{ConsoleState, BASE};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sluice_service::auth::NewAccessKey;

async fn render(
    state: &ConsoleState,
    user: &User,
    new_key: Option<&NewAccessKey>,
) -> Result<Markup> {
    let p = &user.principal;
    let me = state.services.whoami(p).await?;
    let keys = state.services.list_user_keys(p, &p.user_name).await?;
    let body = html! {
        h1 { "My credentials" }
        dl.kv.card {
            dt { "User" } dd { (me.name) }
            dt { "Source" } dd { (me.source) }
            dt { "Email" } dd { (me.email.as_deref().unwrap_or("")) }
        }
        @if let Some(k) = new_key {
            section.secret role="status" aria-labelledby="new-key-h" {
                h2 #new-key-h { "New access key" }
                p { strong { "Copy the secret now: it is shown only this once." } }
                dl.kv {
                    dt { "Access key ID" } dd { code #new-key-id { (k.access_key_id) } " " (copy_button("new-key-id")) }
                    dt { "Secret access key" } dd { code #new-key-secret { (k.secret_access_key.expose()) } " " (copy_button("new-key-secret")) }
                }
            }
        }
        h2 { "Access keys" }
        form.actions method="post" action={(BASE) "/me/keys"} {
            (csrf(user))
            button type="submit" #create-key { "Create access key" }
        }
        @if keys.is_empty() {
            p.empty { "You have no access keys." }
        } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Access key ID" } th { "Created" } th { "Last used" } th { "Delete" } } }
                tbody { @for k in &keys {
                    tr {
                        td data-label="Access key ID" { code { (k.access_key_id) } }
                        td data-label="Created" { (layout::time(&k.created_at)) }
                        td data-label="Last used" { @match &k.last_used_at { Some(t) => (layout::time(t)), None => (dash()) } }
                        td data-label="Delete" {
                            form method="post" action={(BASE) "/me/keys/delete"} {
                                (csrf(user))
                                input type="hidden" name="key_id" value=(k.access_key_id);
                                button.danger type="submit" aria-label={"Delete key " (k.access_key_id)} { "Delete" }
                            }
                        }
                    }
                } }
            } }
        }
        h2 { "Groups" }
        @if me.groups.is_empty() { p.empty { "You are in no group." } }
        @else { ul { @for g in &me.groups { li { (g) } } } }
        h2 { "Effective policies" }
        @if me.policies.is_empty() { p.empty { "No policy applies to you." } }
        @else {
            ul { @for pol in &me.policies {
                li { (pol.policy) @if let Some(g) = &pol.via_group { span.muted { " (via group " (g) ")" } } }
            } }
        }
    };
    Ok(page("My credentials", user, "me", body))
}

pub async fn page_view(State(state): State<ConsoleState>, user: User) -> Result<Html<String>> {
    Ok(Html(render(&state, &user, None).await?.into_string()))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn create_key(
    State(state): State<ConsoleState>,
    Change { user, .. }: Change<Empty>,
) -> Result<Response> {
    let p = &user.principal;
    let key = state.services.create_user_key(p, &p.user_name).await?;
    Ok(Html(render(&state, &user, Some(&key)).await?.into_string()).into_response())
}

#[derive(Deserialize)]
pub struct DeleteKey {
    key_id: String,
}

pub async fn delete_key(
    State(state): State<ConsoleState>,
    Change { user, form }: Change<DeleteKey>,
) -> Result<Response> {
    let p = &user.principal;
    state
        .services
        .delete_user_key(p, &p.user_name, &form.key_id)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/me")).into_response())
}
