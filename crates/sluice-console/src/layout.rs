//! The page frame (header, navigation, main) and small shared pieces of markup.

use crate::session::User;
use crate::BASE;
use maud::{html, Markup, PreEscaped, DOCTYPE};

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Sluice" }
            link rel="stylesheet" href={(BASE) "/static/" (crate::assets::CSS_NAME)};
            link rel="icon" href={(BASE) "/static/favicon.svg"} type="image/svg+xml";
            script src={(BASE) "/static/" (crate::assets::JS_NAME)} defer {}
        }
    }
}

/// A page without navigation (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { a.brand href={(BASE) "/"} { "Sluice" } }
                main #main .narrow { (body) }
            }
        }
    }
}

/// A page of the logged-in console. `section` marks the current navigation entry.
pub fn page(title: &str, user: &User, section: &str, body: Markup) -> Markup {
    let nav = |href: &str, label: &str, key: &str| {
        html! {
            li {
                @if key == section {
                    a href={(BASE) (href)} aria-current="page" { (label) }
                } @else {
                    a href={(BASE) (href)} { (label) }
                }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href={(BASE) "/"} { "Sluice" }
                    nav aria-label="Main" {
                        ul {
                            (nav("/warehouses", "Warehouses", "warehouses"))
                            (nav("/me", "My credentials", "me"))
                            @if user.caps.administer {
                                (nav("/admin", "Administration", "admin"))
                            }
                        }
                    }
                    form.logout method="post" action={(BASE) "/logout"} {
                        (csrf(user))
                        span.who { (user.principal.user_name) }
                        button type="submit" { "Log out" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf(user: &User) -> Markup {
    html! { input type="hidden" name="csrf" value=(user.csrf); }
}

/// An error box for a failed action, announced to screen readers.
pub fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
    }
}

/// A labelled text input.
pub fn field(label: &str, name: &str, value: &str, required: bool, error: Option<&str>) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) name=(name) type="text" value=(value) required[required]
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| format!("{id}-err"))];
            @if let Some(e) = error { p.field-error id={(id) "-err"} role="alert" { (e) } }
        }
    }
}

/// A "copy" button for the element with `target` id (console.js).
pub fn copy_button(target: &str) -> Markup {
    html! { button type="button" .copy data-copy=(target) { "Copy" } }
}

/// Preformatted JSON.
pub fn json_block(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre.json { (text) } }
}

pub fn time(t: &chrono::DateTime<chrono::Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

pub fn ms_time(ms: i64) -> Markup {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) {
        Some(t) => time(&t),
        None => html! { (ms) },
    }
}

/// A literal non-breaking space, for empty cells.
pub fn dash() -> Markup {
    PreEscaped("&mdash;".to_string())
}
