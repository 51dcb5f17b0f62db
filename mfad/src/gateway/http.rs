//! The HTTP backend: one form POST per message, Twilio-style.

use std::time::Duration;

use base64::Engine;

use super::template::{Template, Values};
use super::{excerpt, is_loopback, read_password_file, HttpConfig, SendError};
use crate::error::Error;

/// How much of a refusal's body the log line shows.
const BODY_BYTES: usize = 512;
const BODY_CHARS: usize = 160;

pub struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    /// Names the gateway in errors; the path or query may hold an API key.
    host: String,
    form: Vec<(String, Template)>,
    auth: Option<(String, String)>,
    timeout: Duration,
}

impl Http {
    pub fn new(c: &HttpConfig) -> Result<Http, Error> {
        let auth = match (&c.username, &c.password_file) {
            (Some(user), Some(path)) => Some((user.clone(), read_password_file(path)?)),
            _ => None,
        };
        // reqwest is built without a provider of its own (its default,
        // aws-lc-rs, is a slow C build); ring is the process's one. Another
        // Gateway may have installed it already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            // A gateway that redirects is misconfigured; following it would
            // send the password and the code somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(c.timeout)
            // Ends a hopeless connect (a gateway that drops packets) a little
            // before the whole timeout, so it reads as "nothing was sent"
            // rather than "maybe sent".
            .connect_timeout(c.timeout.mul_f64(0.9))
            .user_agent(concat!("mfad/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&c.url) {
            // A proxy from the environment has no business with this machine.
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| {
            Error::Config(format!(
                "[sms.http]: cannot set up the HTTP client: {}",
                chain(&e)
            ))
        })?;
        Ok(Http {
            client,
            host: c.url.host_str().unwrap_or("the gateway").to_owned(),
            url: c.url.clone(),
            form: c.form.clone(),
            auth,
            timeout: c.timeout,
        })
    }

    /// `secrets` (the code, the text) are cut out of any answer logged.
    pub async fn send(&self, values: &Values<'_>, secrets: &[&str]) -> Result<(), SendError> {
        let fields: Vec<(&str, String)> = self
            .form
            .iter()
            .map(|(name, t)| (name.as_str(), t.render(values)))
            .collect();
        // serde_urlencoded: every name and value is percent-encoded, so no
        // value can add a field.
        let mut request = self.client.post(self.url.clone()).form(&fields);
        let mut secrets = secrets.to_vec();
        let basic;
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
            basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            secrets.extend([password.as_str(), basic.as_str()]);
        }
        let response = request.send().await.map_err(|e| self.classify(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = first_bytes(response).await;
        let body = excerpt(&String::from_utf8_lossy(&body), &secrets, BODY_CHARS);
        let mut detail = format!("{} answered HTTP {status}", self.host);
        if status.is_redirection() {
            detail.push_str(" (redirects are not followed; fix sms.http.url)");
        }
        if !body.is_empty() {
            detail.push_str(": ");
            detail.push_str(&body);
        }
        Err(SendError::Failed(detail))
    }

    fn classify(&self, e: reqwest::Error) -> SendError {
        // The URL's path or query may hold an API key.
        let e = &e.without_url();
        let host = &self.host;
        if e.is_builder() {
            SendError::Failed(format!("cannot build the request to {host}: {}", chain(e)))
        } else if e.is_connect() {
            // TLS failures land here too: nothing was sent.
            SendError::Failed(format!("cannot connect to {host}: {}", chain(e)))
        } else if e.is_timeout() {
            SendError::Uncertain(format!(
                "no answer from {host} within {}s; the message may have been sent",
                self.timeout.as_secs_f64()
            ))
        } else {
            SendError::Uncertain(format!(
                "the exchange with {host} failed after the request went out, so the message may have been sent: {}",
                chain(e)
            ))
        }
    }
}

/// The start of a refusal's body; a slow or broken body is not an error
/// worth more than the status.
async fn first_bytes(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(BODY_BYTES);
    body
}

/// The error and its causes on one line.
fn chain(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        current = err.source();
    }
    excerpt(&out, &[], 300)
}
