//! `{placeholder}` templates of the `[sms]` config: parsed once at load,
//! rendered in one pass. A substituted value is copied as it is and never
//! read as a template again, so a user name or message containing `{code}`
//! stays literal text.

use std::fmt;

/// A value a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Phone,
    Sender,
    Message,
    Code,
    Host,
    User,
}

impl Var {
    const ALL: [Var; 6] = [
        Var::Phone,
        Var::Sender,
        Var::Message,
        Var::Code,
        Var::Host,
        Var::User,
    ];

    fn name(self) -> &'static str {
        match self {
            Var::Phone => "phone",
            Var::Sender => "sender",
            Var::Message => "message",
            Var::Code => "code",
            Var::Host => "host",
            Var::User => "user",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// What `message` may name.
pub const MESSAGE_VARS: &[Var] = &[Var::Code, Var::Host, Var::User];
/// What form values and argv elements may name.
pub const FIELD_VARS: &[Var] = &Var::ALL;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// The values one rendering substitutes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    pub phone: &'a str,
    pub sender: &'a str,
    pub message: &'a str,
    pub code: &'a str,
    pub host: &'a str,
    pub user: &'a str,
}

impl Values<'_> {
    fn get(&self, var: Var) -> &str {
        match var {
            Var::Phone => self.phone,
            Var::Sender => self.sender,
            Var::Message => self.message,
            Var::Code => self.code,
            Var::Host => self.host,
            Var::User => self.user,
        }
    }
}

fn list(allowed: &[Var]) -> String {
    allowed
        .iter()
        .map(|v| format!("{{{}}}", v.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Template {
    /// Parses `source`, the value of config key `key`; `allowed` are the
    /// placeholders that key may use. Errors name the key and are one line.
    pub fn parse(source: &str, key: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        let hint = "write {{ and }} for literal braces";
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(format!("{key}: single '}}' in {source:?} ({hint})")),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!("{key}: unclosed '{{' in {source:?} ({hint})"));
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    let var = Var::from_name(&name)
                        .filter(|v| allowed.contains(v))
                        .ok_or_else(|| {
                            let shown: String = name.chars().filter(|c| !c.is_control()).collect();
                            format!(
                                "{key}: unknown placeholder {{{shown}}}; use {} ({hint})",
                                list(allowed)
                            )
                        })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Var(var));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// `{var}` alone, as the parser would make it.
    pub fn var(var: Var) -> Template {
        Template {
            source: format!("{{{}}}", var.name()),
            parts: vec![Part::Var(var)],
        }
    }

    /// The default message, `Your verification code for {host} is {code}`,
    /// built without a parse that could fail.
    pub fn default_message() -> Template {
        Template {
            source: "Your verification code for {host} is {code}".into(),
            parts: vec![
                Part::Text("Your verification code for ".into()),
                Part::Var(Var::Host),
                Part::Text(" is ".into()),
                Part::Var(Var::Code),
            ],
        }
    }

    /// A template with no placeholders, e.g. a program path.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(values.get(*v)),
            }
        }
        out
    }
}

/// The text as written in the config.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            phone: "+37255512345",
            sender: "MFA",
            message: "hello",
            code: "123456",
            host: "box",
            user: "alice",
        }
    }

    fn render(source: &str) -> String {
        Template::parse(source, "k", FIELD_VARS)
            .unwrap()
            .render(&values())
    }

    #[test]
    fn substitutes_every_placeholder() {
        assert_eq!(
            render("{phone} {sender} {message} {code} {host} {user}"),
            "+37255512345 MFA hello 123456 box alice"
        );
        assert_eq!(render(""), "");
        assert_eq!(render("plain"), "plain");
        assert_eq!(render("{code}{code}"), "123456123456");
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(render("{{code}}"), "{code}");
        assert_eq!(render("{{{code}}}"), "{123456}");
        assert_eq!(render("a}}b{{c"), "a}b{c");
        assert_eq!(
            Template::parse("{{x}}", "k", FIELD_VARS).unwrap().literal(),
            Some("{x}")
        );
    }

    #[test]
    fn values_are_not_expanded_again() {
        let t = Template::parse("[{user}] {message}", "k", FIELD_VARS).unwrap();
        let v = Values {
            user: "{code}",
            message: "{{host}} {phone}",
            ..values()
        };
        assert_eq!(t.render(&v), "[{code}] {{host}} {phone}");
    }

    #[test]
    fn unknown_placeholder_names_it_and_the_key() {
        let e = Template::parse("Code {cod}", "sms.message", MESSAGE_VARS).unwrap_err();
        assert!(
            e.starts_with("sms.message: unknown placeholder {cod}"),
            "{e}"
        );
        assert!(e.contains("{code}, {host}, {user}"), "{e}");
        // Known names that the key may not use are unknown there too.
        let e = Template::parse("{phone} {code}", "sms.message", MESSAGE_VARS).unwrap_err();
        assert!(e.contains("{phone}"), "{e}");
        let e = Template::parse("{}", "k", FIELD_VARS).unwrap_err();
        assert!(e.contains("unknown placeholder {}"), "{e}");
        let e = Template::parse("{Code}", "k", FIELD_VARS).unwrap_err();
        assert!(e.contains("{Code}"), "{e}");
        let e = Template::parse("{a\nb}", "k", FIELD_VARS).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn stray_braces_are_errors() {
        for s in ["{code", "a { b", "{co{de}", "}", "a}b", "{code}}"] {
            let e = Template::parse(s, "sms.http.form.Body", FIELD_VARS).unwrap_err();
            assert!(e.starts_with("sms.http.form.Body: "), "{s:?}: {e}");
            assert!(e.contains("{{ and }}"), "{s:?}: {e}");
        }
    }

    #[test]
    fn built_templates_match_parsed_ones() {
        assert_eq!(
            Template::default_message(),
            Template::parse(
                "Your verification code for {host} is {code}",
                "k",
                MESSAGE_VARS
            )
            .unwrap()
        );
        for v in Var::ALL {
            let t = Template::var(v);
            assert_eq!(t, Template::parse(&t.to_string(), "k", FIELD_VARS).unwrap());
        }
    }

    #[test]
    fn literal_and_uses() {
        let t = Template::parse("/usr/bin/x", "k", FIELD_VARS).unwrap();
        assert_eq!(t.literal(), Some("/usr/bin/x"));
        let t = Template::parse("/usr/bin/{user}", "k", FIELD_VARS).unwrap();
        assert_eq!(t.literal(), None);
        assert!(t.uses(Var::User) && !t.uses(Var::Code));
        assert_eq!(t.to_string(), "/usr/bin/{user}");
    }
}
