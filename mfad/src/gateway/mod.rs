//! Sending one text message through the gateway of `[sms]`: an HTTP form
//! POST, a command, or a file. The code goes only into the message sent;
//! errors describe the gateway's answer, never the code or the text.

mod command;
mod file;
mod http;
pub mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::Error;
use template::{Template, Values, Var, FIELD_VARS, MESSAGE_VARS};

/// Where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Http,
    Command,
    File,
}

/// `[sms]`. Present means SMS is on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    pub backend: Backend,
    /// How long a sent code is accepted.
    #[serde(
        default = "default_code_lifetime",
        deserialize_with = "de::code_lifetime"
    )]
    pub code_lifetime: Duration,
    /// Per user, enrollment and login sends together.
    #[serde(default = "default_max_sends", deserialize_with = "de::max_sends")]
    pub max_sends_per_hour: u32,
    /// All users together: what one hour of sends may cost at most.
    #[serde(
        default = "default_max_total_sends",
        deserialize_with = "de::max_total_sends"
    )]
    pub max_total_sends_per_hour: u32,
    /// The least time between two sends to one user; 0s for none.
    #[serde(
        default = "default_resend_cooldown",
        deserialize_with = "de::resend_cooldown"
    )]
    pub resend_cooldown: Duration,
    /// Numbers that may be enrolled start with one of these (`+` and
    /// digits); empty: any number.
    #[serde(default, deserialize_with = "de::allowed_prefixes")]
    pub allowed_prefixes: Vec<String>,
    #[serde(default = "default_sender")]
    pub sender: String,
    /// The text sent; contains `{code}`.
    #[serde(
        default = "Template::default_message",
        deserialize_with = "de::message"
    )]
    pub message: Template,
    pub http: Option<HttpConfig>,
    pub command: Option<CommandConfig>,
    pub file: Option<FileConfig>,
}

/// `[sms.http]`: a form POST, Twilio's API by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(deserialize_with = "de::url")]
    pub url: reqwest::Url,
    /// Field names and value templates (sent in name order: the config
    /// parser keeps no order, and form APIs need none).
    #[serde(default = "default_form", deserialize_with = "de::form")]
    pub form: Vec<(String, Template)>,
    pub username: Option<String>,
    #[serde(default, deserialize_with = "de::password_file")]
    pub password_file: Option<PathBuf>,
    /// The whole request, from connecting to the end of the answer.
    #[serde(default = "default_timeout", deserialize_with = "de::http_timeout")]
    pub timeout: Duration,
}

/// `[sms.command]`: a program run without a shell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// argv[0] is an absolute path without placeholders.
    #[serde(deserialize_with = "de::argv")]
    pub argv: Vec<Template>,
    #[serde(default = "default_timeout", deserialize_with = "de::command_timeout")]
    pub timeout: Duration,
}

/// `[sms.file]`: one JSON line per message, for development and demos.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(deserialize_with = "de::absolute_path")]
    pub path: PathBuf,
}

fn default_code_lifetime() -> Duration {
    Duration::from_secs(5 * 60)
}

fn default_max_sends() -> u32 {
    5
}

fn default_max_total_sends() -> u32 {
    100
}

fn default_resend_cooldown() -> Duration {
    Duration::from_secs(30)
}

fn default_sender() -> String {
    "MFA".into()
}

const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_form() -> Vec<(String, Template)> {
    vec![
        ("To".into(), Template::var(Var::Phone)),
        ("From".into(), Template::var(Var::Sender)),
        ("Body".into(), Template::var(Var::Message)),
    ]
}

impl SmsConfig {
    /// What the field types cannot say: the backend's table is there, and
    /// HTTP credentials come in pairs. The message is one line, without the
    /// file's path (the caller adds it).
    pub fn validate(&self) -> Result<(), String> {
        let name = match self.backend {
            Backend::Http => "http",
            Backend::Command => "command",
            Backend::File => "file",
        };
        let present = match self.backend {
            Backend::Http => self.http.is_some(),
            Backend::Command => self.command.is_some(),
            Backend::File => self.file.is_some(),
        };
        if !present {
            return Err(format!(
                "[sms] backend = \"{name}\" needs an [sms.{name}] table; see docs/configuration.md"
            ));
        }
        if let Some(http) = &self.http {
            match (&http.username, &http.password_file) {
                (Some(_), None) | (None, Some(_)) => {
                    return Err(
                        "[sms.http] username and password_file go together (HTTP basic auth)"
                            .into(),
                    );
                }
                (Some(u), Some(_)) if u.is_empty() || u.contains(':') || has_control(u) => {
                    return Err(
                        "[sms.http] username must be non-empty, without ':' or control characters"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// One message to send. `code` goes only into the text sent.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    /// E.164, `+` and digits.
    pub phone: &'a str,
    pub code: &'a str,
    pub user: &'a str,
    pub host: &'a str,
}

/// Without the code, so a debug print cannot leak it.
impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("phone", &self.phone)
            .field("user", &self.user)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Why a message was not (surely) sent. Display is one line for the admin
/// log: the gateway's status, the start of its answer, or the command's
/// exit status; never the code, the message text or the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The gateway refused or could not be reached (non-2xx, connection
    /// refused, command exit != 0, write error): nothing was sent.
    #[error("{0}")]
    Failed(String),
    /// Unknown whether it was sent (timeout after the request went out).
    #[error("{0}")]
    Uncertain(String),
}

pub trait Sender: Send + Sync {
    /// Sends one message. Blocking: call it from a plain thread or tokio's
    /// blocking pool (spawn_blocking), never from inside an async task.
    fn send(&self, msg: &Message<'_>) -> Result<(), SendError>;
}

enum Transport {
    Http(http::Http),
    Command(command::Command),
    File(file::File),
}

/// The configured backend, ready to send.
pub struct Gateway {
    transport: Transport,
    sender: String,
    message: Template,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.transport {
            Transport::Http(_) => "http",
            Transport::Command(_) => "command",
            Transport::File(_) => "file",
        };
        f.debug_struct("Gateway")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Reads the password file (refused unless only mfad's user may read
    /// it), builds the HTTP client once, checks the program or the outbox
    /// directory exists. `runtime` runs the sends; it needs IO and time
    /// enabled and must be multi-threaded.
    pub fn new(config: &SmsConfig, runtime: tokio::runtime::Handle) -> Result<Gateway, Error> {
        config.validate().map_err(Error::Config)?;
        let missing = |name: &str| Error::Config(format!("[sms.{name}] is missing"));
        let transport = match config.backend {
            Backend::Http => Transport::Http(http::Http::new(
                config.http.as_ref().ok_or_else(|| missing("http"))?,
            )?),
            Backend::Command => Transport::Command(command::Command::new(
                config.command.as_ref().ok_or_else(|| missing("command"))?,
            )?),
            Backend::File => Transport::File(file::File::new(
                config.file.as_ref().ok_or_else(|| missing("file"))?,
            )?),
        };
        Ok(Gateway {
            transport,
            sender: config.sender.clone(),
            message: config.message.clone(),
            runtime,
        })
    }
}

/// `+` and 1 to 15 digits. The service validates numbers before they get
/// here; this keeps anything else out of argv and forms all the same.
fn is_e164(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

impl Sender for Gateway {
    fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        if !is_e164(msg.phone) {
            return Err(SendError::Failed(
                "refused to send to a phone number not in E.164 form".into(),
            ));
        }
        let text = self.message.render(&Values {
            code: msg.code,
            host: msg.host,
            user: msg.user,
            ..Values::default()
        });
        let values = Values {
            phone: msg.phone,
            sender: &self.sender,
            message: &text,
            code: msg.code,
            host: msg.host,
            user: msg.user,
        };
        let secrets = [msg.code, text.as_str()];
        match &self.transport {
            Transport::Http(h) => self.runtime.block_on(h.send(&values, &secrets)),
            Transport::Command(c) => self.runtime.block_on(c.send(&values)),
            Transport::File(f) => f.send(msg.phone, &self.sender, &text),
        }
    }
}

/// `text` as one short line for the log: control characters become
/// spaces, every secret is replaced, and at most `max` characters remain.
/// A digit run cut by the limit is dropped, so no part of a code shows.
fn excerpt(text: &str, secrets: &[&str], max: usize) -> String {
    let mut text = text.to_owned();
    // Longest first: the code inside the message would otherwise be cut
    // out first and the rest of the message no longer match.
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        text = text.replace(s, "[redacted]");
    }
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    }
    let out = out.trim_end();
    if out.chars().count() <= max {
        return out.to_owned();
    }
    let cut: String = out.chars().take(max).collect();
    let cut = cut.trim_end_matches(|c: char| c.is_ascii_digit());
    format!("{}...", cut.trim_end())
}

fn read_password_file(path: &Path) -> Result<String, Error> {
    read_secret_file("[sms.http] password_file", path)
}

/// Checks the secret file's owner and mode, and returns its first line;
/// errors name the file as `key` (`[sms.http] password_file`).
pub(crate) fn read_secret_file(key: &str, path: &Path) -> Result<String, Error> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let bad = |what: String| Error::Config(format!("{key} {what}"));
    let mut file = std::fs::File::open(path)
        .map_err(|e| bad(format!("{}: cannot open it: {e}", path.display())))?;
    // The opened file, not the path: what is checked is what is read.
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(bad(format!("{} is not a regular file", path.display())));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(bad(format!(
            "{} belongs to uid {}; it must belong to mfad's user (uid {me})",
            path.display(),
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "{} has mode {mode:04o}: group or others may use it; chmod 600 it",
            path.display()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| bad(format!("{}: cannot read it: {e}", path.display())))?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err(bad(format!(
            "{}: the first line (the password) is empty",
            path.display()
        )));
    }
    Ok(line.to_owned())
}

/// Deserializers that check values where the parser still knows their line.
mod de {
    use super::*;

    fn custom<E: serde::de::Error>(msg: String) -> E {
        E::custom(msg)
    }

    fn positive_duration(key: &str, s: &str) -> Result<Duration, String> {
        let t = crate::config::parse_duration(s).map_err(|e| format!("{key}: {e}"))?;
        if t.is_zero() {
            return Err(format!("{key} must be longer than 0s"));
        }
        Ok(t)
    }

    pub fn code_lifetime<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        positive_duration("sms.code_lifetime", &String::deserialize(d)?).map_err(custom)
    }

    /// Longer would only keep a login waiting (pam_mfa gives up after its
    /// own timeout, 10s by default); more than minutes is surely a typo.
    fn timeout(key: &str, s: &str) -> Result<Duration, String> {
        let t = positive_duration(key, s)?;
        if t > MAX_TIMEOUT {
            return Err(format!("{key} must be at most 5m"));
        }
        Ok(t)
    }

    pub fn http_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        timeout("sms.http.timeout", &String::deserialize(d)?).map_err(custom)
    }

    pub fn command_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        timeout("sms.command.timeout", &String::deserialize(d)?).map_err(custom)
    }

    fn at_least_one<'de, D: Deserializer<'de>>(key: &str, d: D) -> Result<u32, D::Error> {
        let n = u32::deserialize(d)?;
        if n == 0 {
            return Err(custom(format!("{key} must be at least 1")));
        }
        Ok(n)
    }

    pub fn max_sends<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        at_least_one("sms.max_sends_per_hour", d)
    }

    pub fn max_total_sends<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        at_least_one("sms.max_total_sends_per_hour", d)
    }

    /// Sends are counted for an hour, so a longer cooldown could not be
    /// kept (and would be a typo anyway).
    pub fn resend_cooldown<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let key = "sms.resend_cooldown";
        let s = String::deserialize(d)?;
        let t = crate::config::parse_duration(&s).map_err(|e| custom(format!("{key}: {e}")))?;
        if t > Duration::from_secs(3600) {
            return Err(custom(format!("{key} must be at most 1h")));
        }
        Ok(t)
    }

    /// Each prefix is `+` and 1 to 15 digits, not starting with 0: the
    /// start of an E.164 number, so a typo cannot silently allow nothing.
    pub fn allowed_prefixes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let prefixes = Vec::<String>::deserialize(d).map_err(|e: D::Error| {
            custom(format!(
                "sms.allowed_prefixes must be a list like [\"+372\", \"+1\"] ({e})"
            ))
        })?;
        for (i, p) in prefixes.iter().enumerate() {
            if !super::is_e164(p) || p.starts_with("+0") {
                return Err(custom(format!(
                    "sms.allowed_prefixes[{i}] {p:?} is not a number prefix: write \"+\" and digits, like \"+372\""
                )));
            }
        }
        Ok(prefixes)
    }

    pub fn message<'de, D: Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
        let s = String::deserialize(d)?;
        let t = Template::parse(&s, "sms.message", MESSAGE_VARS).map_err(custom)?;
        if !t.uses(Var::Code) {
            return Err(custom(format!(
                "sms.message {s:?} must contain {{code}}, the code sent"
            )));
        }
        Ok(t)
    }

    fn absolute(key: &str, s: &str) -> Result<PathBuf, String> {
        let p = PathBuf::from(s);
        if !p.is_absolute() {
            return Err(format!("{key} must be an absolute path, not {s:?}"));
        }
        Ok(p)
    }

    pub fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let s = String::deserialize(d)?;
        absolute("sms.file.path", &s).map_err(custom)
    }

    pub fn password_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let s = String::deserialize(d)?;
        absolute("sms.http.password_file", &s)
            .map(Some)
            .map_err(custom)
    }

    pub fn url<'de, D: Deserializer<'de>>(d: D) -> Result<reqwest::Url, D::Error> {
        let s = String::deserialize(d)?;
        super::check_url(&s).map_err(custom)
    }

    /// The message must reach the phone: some value carries it or the code.
    fn carries_code(ts: &[&Template]) -> bool {
        ts.iter().any(|t| t.uses(Var::Message) || t.uses(Var::Code))
    }

    pub fn form<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Template)>, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Vec<(String, Template)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of form field names and value templates")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    if name.is_empty() || has_control(&name) {
                        return Err(custom(format!("sms.http.form: bad field name {name:?}")));
                    }
                    let key = format!("sms.http.form.{name}");
                    out.push((
                        name,
                        Template::parse(&value, &key, FIELD_VARS).map_err(custom)?,
                    ));
                }
                Ok(out)
            }
        }
        let form = d.deserialize_map(Visit)?;
        if !carries_code(&form.iter().map(|(_, t)| t).collect::<Vec<_>>()) {
            return Err(custom(
                "sms.http.form: no value contains {message} or {code}, so the code would never be sent"
                    .into(),
            ));
        }
        Ok(form)
    }

    pub fn argv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Template>, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        let Some(program) = raw.first() else {
            return Err(custom(
                "sms.command.argv is empty; give the program's absolute path first".into(),
            ));
        };
        let mut argv = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let key = format!("sms.command.argv[{i}]");
            argv.push(Template::parse(s, &key, FIELD_VARS).map_err(custom)?);
        }
        match argv[0].literal() {
            Some(p) if Path::new(p).is_absolute() => {}
            _ => {
                return Err(custom(format!(
                    "sms.command.argv[0] must be the program's absolute path without placeholders, not {program:?}"
                )));
            }
        }
        if !carries_code(&argv[1..].iter().collect::<Vec<_>>()) {
            return Err(custom(
                "sms.command.argv: no argument contains {message} or {code}, so the code would never be sent"
                    .into(),
            ));
        }
        Ok(argv)
    }
}

/// https anywhere; plain http only to this machine, where nothing on the
/// wire can read the message or the password.
fn check_url(s: &str) -> Result<reqwest::Url, String> {
    let key = "sms.http.url";
    let url = reqwest::Url::parse(s).map_err(|e| format!("{key} {s:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{key} must not contain credentials; use username and password_file"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "{key}: plain http:// is only allowed to 127.0.0.1, ::1 or localhost; use https://"
        )),
        other => Err(format!("{key}: scheme {other:?} is not http or https")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests;
