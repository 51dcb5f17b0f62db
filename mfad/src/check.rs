//! `mfad --check-config`: what a valid configuration would do, for the
//! admin about to switch it on.

use std::path::Path;

use mfa_api::MissingUser;

use crate::config::Config;
use crate::users::Directory;

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// The report: the effective policy, how many users must still enroll,
/// and a warning for root and each member of `admin_group` among them
/// (whoever switches 2-step on must be able to log in with it).
pub fn report(
    config: &Config,
    path: &Path,
    missing: &[MissingUser],
    users: &dyn Directory,
) -> String {
    let p = &config.policy;
    let mut out = format!(
        "{}: valid\n\
         [policy] mode = {:?}, grace_period = {:?}, enroll_at_login = {}\n  \
         required_groups: {}\n  exempt_groups: {}\n  exempt_users: {}\n",
        path.display(),
        p.mode.as_str(),
        humantime::format_duration(p.grace_period).to_string(),
        p.enroll_at_login,
        list(&p.required_groups),
        list(&p.exempt_groups),
        list(&p.exempt_users),
    );
    for (name, s) in &p.service {
        out.push_str(&format!(
            "  [policy.service.{name}] mode = {:?}\n",
            s.mode.as_str()
        ));
    }
    out.push_str(&format!(
        "users who must use 2-step verification and have no device: {} \
         (mfactl admin list --missing)\n",
        missing.len()
    ));
    let admin_group = &config.daemon.admin_group;
    for m in missing {
        let Some(uid) = users.uid_of(&m.user) else {
            continue;
        };
        let role = if uid == 0 {
            "root".to_string()
        } else if users.in_group(uid, admin_group) {
            format!("{} (admin_group {admin_group})", m.user)
        } else {
            continue;
        };
        out.push_str(&format!(
            "warning: {role} must use 2-step verification but has no device; \
             enroll it first: mfactl enroll totp\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Fake;

    #[test]
    fn the_report_shows_the_policy_the_count_and_warns_about_admins() {
        let config = Config::parse(
            "[daemon]\nadmin_group = \"wheel\"\n[policy]\nmode = \"required\"\n\
             exempt_users = [\"backup\"]\ngrace_period = \"7d\"\n\
             [policy.service.sudo]\nmode = \"required\"\n",
            Path::new("/etc/mfad/mfad.toml"),
        )
        .unwrap();
        let users = Fake::default()
            .with("root", 0, &["root"])
            .with("ada", 1000, &["wheel"])
            .with("bob", 1001, &[]);
        let missing: Vec<MissingUser> = ["ada", "bob", "root"]
            .iter()
            .map(|u| MissingUser {
                user: u.to_string(),
                grace_left: -1,
            })
            .collect();
        let r = report(&config, Path::new("/etc/mfad/mfad.toml"), &missing, &users);
        for want in [
            "/etc/mfad/mfad.toml: valid",
            "mode = \"required\", grace_period = \"7days\", enroll_at_login = true",
            "exempt_users: backup",
            "required_groups: (none)",
            "[policy.service.sudo] mode = \"required\"",
            "no device: 3",
            "warning: root must use",
            "warning: ada (admin_group wheel) must use",
        ] {
            assert!(r.contains(want), "{want:?} in:\n{r}");
        }
        assert!(!r.contains("warning: bob"), "{r}");
        let none = report(&config, Path::new("/x"), &[], &users);
        assert!(
            none.contains("no device: 0") && !none.contains("warning"),
            "{none}"
        );
    }
}
