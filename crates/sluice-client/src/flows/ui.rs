//! The person-facing side of the interactive flows: what is shown (always on stderr by
//! default) and how a browser is opened. Both are injectable so tests (and GUIs) can drive
//! the flows without a terminal or a browser.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Something an interactive flow tells the person logging in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prompt {
    /// Browser login: the flow is about to open `url` in a browser. Shown before the attempt,
    /// so the URL is visible even when no browser opens.
    OpenUrl { url: String },
    /// The browser could not be opened; the person has to open the URL themselves.
    BrowserUnavailable { url: String, reason: String },
    /// Device login (RFC 8628 §3.3): visit `verification_uri` and enter `user_code`, or visit
    /// `verification_uri_complete` (which carries the code) when the provider sent one.
    DeviceCode {
        verification_uri: String,
        verification_uri_complete: Option<String>,
        user_code: String,
        expires_in: Duration,
    },
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prompt::OpenUrl { url } => write!(
                f,
                "Opening a browser to log in. If it does not open, visit this URL:\n\n    {url}\n"
            ),
            Prompt::BrowserUnavailable { url, reason } => write!(
                f,
                "Could not open a browser ({reason}). Open this URL yourself to log in:\n\n    {url}\n"
            ),
            Prompt::DeviceCode { verification_uri, verification_uri_complete, user_code, expires_in } => {
                write!(f, "To log in, visit:\n\n    {verification_uri}\n\nand enter the code:\n\n    {user_code}\n")?;
                if let Some(c) = verification_uri_complete {
                    write!(f, "\nor open this URL, which carries the code:\n\n    {c}\n")?;
                }
                write!(f, "\nThe code expires in {} minutes.", expires_in.as_secs().div_ceil(60))
            }
        }
    }
}

/// Where interactive flows show their [`Prompt`]s.
pub trait PromptSink: Send + Sync {
    fn show(&self, prompt: &Prompt);
}

impl<F: Fn(&Prompt) + Send + Sync> PromptSink for F {
    fn show(&self, prompt: &Prompt) {
        self(prompt)
    }
}

/// The default sink: writes every prompt to stderr (stdout stays for the program's output).
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrPrompt;

impl PromptSink for StderrPrompt {
    fn show(&self, prompt: &Prompt) {
        eprintln!("{prompt}");
    }
}

/// Opens a URL for the person logging in. Called on a blocking thread (inside the tokio
/// runtime, so an implementation may `tokio::spawn`); an `Err` makes the flow print the URL
/// with the reason and keep waiting for the redirect.
pub trait BrowserOpener: Send + Sync {
    fn open(&self, url: &str) -> Result<(), String>;
}

impl<F: Fn(&str) -> Result<(), String> + Send + Sync> BrowserOpener for F {
    fn open(&self, url: &str) -> Result<(), String> {
        self(url)
    }
}

/// The default opener: the system browser (the `webbrowser` crate).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemBrowser;

impl BrowserOpener for SystemBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        webbrowser::open(url).map_err(|e| e.to_string())
    }
}

pub(crate) fn default_sink() -> Arc<dyn PromptSink> {
    Arc::new(StderrPrompt)
}

pub(crate) fn default_opener() -> Arc<dyn BrowserOpener> {
    Arc::new(SystemBrowser)
}

/// Shows the URL, then tries the opener (on a blocking thread, for at most a few seconds:
/// a text-mode browser may hold it) and reports a failure through the sink.
pub(crate) async fn open_browser(
    opener: &Arc<dyn BrowserOpener>,
    sink: &Arc<dyn PromptSink>,
    url: &str,
) {
    sink.show(&Prompt::OpenUrl {
        url: url.to_string(),
    });
    let o = opener.clone();
    let u = url.to_string();
    let task = tokio::task::spawn_blocking(move || o.open(&u));
    let reason = match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(()))) => return,
        Ok(Ok(Err(e))) => e,
        Ok(Err(e)) => format!("the opener failed: {e}"),
        // Still running (e.g. a terminal browser): the URL is on screen already.
        Err(_) => return,
    };
    sink.show(&Prompt::BrowserUnavailable {
        url: url.to_string(),
        reason,
    });
}
