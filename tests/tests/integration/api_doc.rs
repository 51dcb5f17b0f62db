//! docs/dbus-api.md cannot drift from the live interface: the methods the
//! real mfad reports through Introspect must be exactly the ones the doc
//! lists, and the wire contract below must stay served as it is.

use std::collections::BTreeSet;

use mfa_tests::{paths, Env};

const INTERFACES: [&str; 3] = [
    "org.mfad.Mfa1.Login",
    "org.mfad.Mfa1.Account",
    "org.mfad.Mfa1.Admin",
];

/// The wire contract: the methods of the first release, which modules and
/// mfactl of that release call, with their exact signatures. UserStatus is
/// (sba(sssxx)uux) as mfa_api defines it.
const CONTRACT: &[&str] = &[
    "org.mfad.Mfa1.Login.Begin(s user, s service, s rhost, s tty, s auth_info) -> (s action, s attempt, s message)",
    "org.mfad.Mfa1.Login.Answer(s attempt, ay code) -> (s result, s message)",
    "org.mfad.Mfa1.Account.EnrollTotpBegin(s user, s name, s code) -> (s enrollment_id, s uri, s secret)",
    "org.mfad.Mfa1.Account.EnrollTotpConfirm(s user, s enrollment_id, s code1, s code2) -> (s device_id, as backup_codes)",
    "org.mfad.Mfa1.Account.Status(s user) -> ((sba(sssxx)uux) status)",
    "org.mfad.Mfa1.Account.RemoveDevice(s user, s device_id, s code) -> ()",
    "org.mfad.Mfa1.Account.RegenerateBackupCodes(s user, s code) -> (as backup_codes)",
    "org.mfad.Mfa1.Admin.ListUsers() -> (a(suux) users)",
    "org.mfad.Mfa1.Admin.UserStatus(s user) -> ((sba(sssxx)uux) status)",
    "org.mfad.Mfa1.Admin.Reset(s user) -> ()",
    "org.mfad.Mfa1.Admin.Unlock(s user) -> ()",
];

const ERRORS: [&str; 9] = [
    "AccessDenied",
    "NotEnrolled",
    "LockedOut",
    "InvalidCode",
    "InvalidArgument",
    "NotFound",
    "Expired",
    "RateLimited",
    "Internal",
];

/// One XML tag: name, attributes, whether it closes (`</x>`) and whether it
/// is self-closing (`<x/>`).
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
    closing: bool,
    self_closing: bool,
}

impl Tag {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Enough XML for D-Bus introspection data: tags and attributes; comments,
/// declarations and text are skipped.
fn tags(xml: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").expect("unterminated comment");
            rest = &r[end + 3..];
            continue;
        }
        let end = rest.find('>').expect("unterminated tag");
        let inner = &rest[1..end];
        rest = &rest[end + 1..];
        if inner.starts_with('!') || inner.starts_with('?') {
            continue;
        }
        let closing = inner.starts_with('/');
        let inner = inner.trim_start_matches('/');
        let self_closing = inner.ends_with('/');
        let inner = inner.trim_end_matches('/').trim();
        let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
        let name = inner[..name_end].to_string();
        let mut attrs = Vec::new();
        let mut a = inner[name_end..].trim_start();
        while let Some(eq) = a.find('=') {
            let key = a[..eq].trim().to_string();
            let after = a[eq + 1..].trim_start();
            let quote = after.chars().next().expect("attribute value");
            let close = after[1..].find(quote).expect("closing quote") + 1;
            let value = after[1..close]
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            attrs.push((key, value));
            a = after[close + 1..].trim_start();
        }
        out.push(Tag {
            name,
            attrs,
            closing,
            self_closing,
        });
    }
    out
}

/// Canonical lines `Interface.Method(in-sig name, ...) -> (out-sig name, ...)`
/// for the org.mfad.Mfa1.* interfaces in introspection XML.
fn canonical_from_xml(xml: &str) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    let mut iface: Option<String> = None;
    let mut method: Option<(String, Vec<String>, Vec<String>)> = None;
    for t in tags(xml) {
        match (t.name.as_str(), t.closing) {
            ("interface", false) => {
                iface = t.attr("name").map(str::to_string);
            }
            ("interface", true) => iface = None,
            ("method", false) => {
                let m = (
                    t.attr("name").expect("method name").to_string(),
                    Vec::new(),
                    Vec::new(),
                );
                if t.self_closing {
                    if let Some(i) = iface.as_ref().filter(|i| INTERFACES.contains(&i.as_str())) {
                        lines.insert(format!("{i}.{}() -> ()", m.0));
                    }
                } else {
                    method = Some(m);
                }
            }
            ("method", true) => {
                if let (Some(i), Some((name, ins, outs))) = (iface.as_ref(), method.take()) {
                    if INTERFACES.contains(&i.as_str()) {
                        lines.insert(format!(
                            "{i}.{name}({}) -> ({})",
                            ins.join(", "),
                            outs.join(", ")
                        ));
                    }
                }
            }
            ("arg", false) => {
                if let Some((_, ins, outs)) = method.as_mut() {
                    let ty = t.attr("type").expect("arg type");
                    let arg = match t.attr("name") {
                        Some(n) => format!("{ty} {n}"),
                        None => ty.to_string(),
                    };
                    if t.attr("direction") == Some("out") {
                        outs.push(arg);
                    } else {
                        ins.push(arg);
                    }
                }
            }
            _ => {}
        }
    }
    lines
}

/// Canonical lines from the doc's "## `Interface`" / "### `Method(...) ->
/// (...)`" headings, and the interfaces it has headings for.
fn canonical_from_doc(doc: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut lines = BTreeSet::new();
    let mut ifaces = BTreeSet::new();
    let mut iface: Option<String> = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            iface = h
                .trim()
                .strip_prefix('`')
                .and_then(|s| s.strip_suffix('`'))
                .filter(|s| s.starts_with("org.mfad.Mfa1."))
                .map(str::to_string);
            if let Some(i) = &iface {
                ifaces.insert(i.clone());
            }
        } else if let Some(h) = line.strip_prefix("### ") {
            let sig = h.trim().strip_prefix('`').and_then(|s| s.strip_suffix('`'));
            if let (Some(i), Some(sig)) = (&iface, sig) {
                lines.insert(format!("{i}.{sig}"));
            }
        }
    }
    (lines, ifaces)
}

fn introspect(env: &Env) -> String {
    zbus::block_on(async {
        let conn = env.connect().await;
        let proxy = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(mfa_api::BUS_NAME)
            .path(mfa_api::OBJECT_PATH)
            .build()
            .await
            .expect("introspectable proxy");
        proxy.introspect().await.expect("Introspect")
    })
}

fn diff(a_name: &str, a: &BTreeSet<String>, b_name: &str, b: &BTreeSet<String>) -> String {
    let mut s = String::new();
    for x in a.difference(b) {
        s.push_str(&format!("\n  only in {a_name}: {x}"));
    }
    for x in b.difference(a) {
        s.push_str(&format!("\n  only in {b_name}: {x}"));
    }
    s
}

fn doc_text() -> String {
    let path = paths::repo_root().join("docs/dbus-api.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn dbus_api_doc_matches_live_introspection() {
    let env = Env::new();
    let live = canonical_from_xml(&introspect(&env));
    assert!(!live.is_empty(), "no org.mfad.Mfa1 methods introspected");
    let (doc, ifaces) = canonical_from_doc(&doc_text());
    let want: BTreeSet<String> = INTERFACES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        ifaces, want,
        "docs/dbus-api.md must have a \"## `org.mfad.Mfa1.X`\" heading for each interface"
    );
    assert!(
        live == doc,
        "docs/dbus-api.md has drifted from the live interface:{}",
        diff("mfad (introspection)", &live, "docs/dbus-api.md", &doc)
    );
}

/// Every method of the wire contract is served with exactly that
/// signature (later issues may add methods; the doc test covers those).
#[test]
fn live_interface_keeps_the_wire_contract() {
    let env = Env::new();
    let live = canonical_from_xml(&introspect(&env));
    let contract: BTreeSet<String> = CONTRACT.iter().map(|s| s.to_string()).collect();
    let missing: Vec<&String> = contract.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "mfad does not serve these contract methods as specified:{}\nlive interface:\n  {}",
        missing
            .iter()
            .map(|m| format!("\n  {m}"))
            .collect::<String>(),
        live.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn dbus_api_doc_lists_every_error() {
    let doc = doc_text();
    let missing: Vec<&str> = ERRORS
        .iter()
        .copied()
        .filter(|e| {
            !doc.contains(&format!("org.mfad.Mfa1.Error.{e}")) && !doc.contains(&format!("`{e}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/dbus-api.md does not document these errors: {missing:?}"
    );
}

#[test]
fn xml_parser_reads_introspection_data() {
    let xml = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.freedesktop.DBus.Peer"><method name="Ping"/></interface>
  <interface name="org.mfad.Mfa1.Admin">
    <!-- a comment with <method name="Fake"/> -->
    <method name="Reset">
      <arg name="user" type="s" direction="in"/>
    </method>
    <method name="ListUsers">
      <arg name="users" type="a(suux)" direction="out"/>
    </method>
    <method name="Nothing"/>
  </interface>
</node>"#;
    let got = canonical_from_xml(xml);
    let want: BTreeSet<String> = [
        "org.mfad.Mfa1.Admin.Reset(s user) -> ()",
        "org.mfad.Mfa1.Admin.ListUsers() -> (a(suux) users)",
        "org.mfad.Mfa1.Admin.Nothing() -> ()",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);
    let (doc, _) = canonical_from_doc(
        "## `org.mfad.Mfa1.Admin`\n### `Reset(s user) -> ()`\n## Errors\n### `NotAMethod() -> ()`\n",
    );
    assert_eq!(
        doc,
        ["org.mfad.Mfa1.Admin.Reset(s user) -> ()".to_string()]
            .into_iter()
            .collect()
    );
}
