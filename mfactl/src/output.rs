//! Rendering: human text and the `--json` shapes (a contract with scripts),
//! plus where each goes. The renderers are pure; `Term` does the writing.

use std::io::{self, Write};
use std::sync::OnceLock;

use mfa_api::{MissingUser, TrustedDevice, UserStatus, UserSummary};
use serde_json::{json, Value};

use crate::error::Error;

/// Where output goes. With `--json`, stdout holds only the JSON document, so
/// everything meant for a person (prompts, the QR code) goes to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Term {
    pub json: bool,
}

impl Term {
    /// Text for a person: stdout, or stderr under `--json`.
    pub fn say(&self, text: &str) -> Result<(), Error> {
        if self.json {
            write_all(&mut io::stderr().lock(), text)
        } else {
            write_all(&mut io::stdout().lock(), text)
        }
    }

    /// The result: text on stdout.
    pub fn print(&self, text: &str) -> Result<(), Error> {
        write_all(&mut io::stdout().lock(), text)
    }

    /// A JSON document as one line on stdout.
    pub fn print_json(&self, v: &Value) -> Result<(), Error> {
        self.print(&format!("{v}\n"))
    }

    /// Whether `say` reaches a terminal (for colours).
    pub fn say_is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        if self.json {
            io::stderr().is_terminal()
        } else {
            io::stdout().is_terminal()
        }
    }
}

fn write_all(w: &mut impl Write, text: &str) -> Result<(), Error> {
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(Error::Output)
}

// ---- JSON shapes -------------------------------------------------------

pub fn begin_json(enrollment_id: &str, uri: &str, secret: &str) -> Value {
    json!({"enrollment_id": enrollment_id, "uri": uri, "secret": secret})
}

pub fn confirm_json(device_id: &str, backup_codes: &[String]) -> Value {
    json!({"device_id": device_id, "backup_codes": backup_codes})
}

/// `enroll sms --begin`: the enrollment and where the code went (masked).
pub fn sms_begin_json(enrollment_id: &str, phone: &str) -> Value {
    json!({"enrollment_id": enrollment_id, "phone": phone})
}

/// `enroll sms --resend`: where the new code went (masked).
pub fn sms_resend_json(phone: &str) -> Value {
    json!({ "phone": phone })
}

pub fn backup_codes_json(backup_codes: &[String]) -> Value {
    json!({ "backup_codes": backup_codes })
}

pub fn ok_json() -> Value {
    json!({"ok": true})
}

/// `status` and `admin status`. Written out field by field (not derived
/// from the wire type) so the document stays the agreed one when the wire
/// type grows.
pub fn status_json(s: &UserStatus) -> Value {
    let devices: Vec<Value> = s
        .devices
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "kind": d.kind,
                "name": d.name,
                "created": d.created,
                "last_used": d.last_used,
            })
        })
        .collect();
    json!({
        "user": s.user,
        "enrolled": s.enrolled,
        "devices": devices,
        "backup_codes_left": s.backup_codes_left,
        "failures": s.failures,
        "locked_until": s.locked_until,
    })
}

pub fn list_json(users: &[UserSummary]) -> Value {
    Value::Array(
        users
            .iter()
            .map(|u| {
                json!({
                    "user": u.user,
                    "devices": u.devices,
                    "backup_codes_left": u.backup_codes_left,
                    "locked_until": u.locked_until,
                })
            })
            .collect(),
    )
}

/// `admin list --missing`, field by field like `status_json`.
pub fn missing_json(users: &[MissingUser]) -> Value {
    Value::Array(
        users
            .iter()
            .map(|u| json!({"user": u.user, "grace_left": u.grace_left}))
            .collect(),
    )
}

/// `admin list --missing`: who still has to enroll, and by when.
pub fn missing_text(users: &[MissingUser]) -> String {
    if users.is_empty() {
        return "Everyone who must use 2-step verification has a device.\n".into();
    }
    let mut rows = vec![vec!["USER".to_string(), "GRACE PERIOD".into()]];
    for u in users {
        let grace = match u.grace_left {
            n if n < 0 => "starts at the next login".to_string(),
            0 => "over: refused until enrolled".to_string(),
            n => format!("{} left", span(n)),
        };
        rows.push(vec![clean(&u.user), grace]);
    }
    table(&rows, "")
}

/// A length of time in its largest unit: "6d 23h", "5h 10m", "3m", "20s".
fn span(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `trusted list` and `admin trusted USER`, field by field like `status_json`.
pub fn trusted_json(devices: &[TrustedDevice]) -> Value {
    Value::Array(
        devices
            .iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "kind": d.kind,
                    "identity": d.identity,
                    "first_used": d.first_used,
                    "last_used": d.last_used,
                    "expires": d.expires,
                })
            })
            .collect(),
    )
}

/// `trusted remove --all`: how many were removed.
pub fn removed_json(removed: u32) -> Value {
    json!({ "removed": removed })
}

// ---- Times -------------------------------------------------------------

/// A local calendar time, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

impl LocalTime {
    /// The local time of Unix time `t` in the system's time zone (`TZ`, else
    /// /etc/localtime, else UTC, as the C library decides), or `None` when
    /// it cannot be represented.
    pub fn of(t: i64) -> Option<LocalTime> {
        LocalTime::in_zone(t, local_zone())
    }

    fn in_zone(t: i64, zone: &tz::TimeZone) -> Option<LocalTime> {
        let dt = tz::UtcDateTime::from_timespec(t, 0)
            .ok()?
            .project(zone.as_ref())
            .ok()?;
        Some(LocalTime {
            year: dt.year(),
            month: u32::from(dt.month()),
            day: u32::from(dt.month_day()),
            hour: u32::from(dt.hour()),
            minute: u32::from(dt.minute()),
        })
    }

    pub fn date_time(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }

    pub fn clock(&self) -> String {
        format!("{:02}:{:02}", self.hour, self.minute)
    }

    fn same_day(&self, other: &LocalTime) -> bool {
        (self.year, self.month, self.day) == (other.year, other.month, other.day)
    }
}

/// The system's time zone, read once: `TZ` when set (a zone name, a file
/// or a POSIX rule; empty means UTC), else /etc/localtime, else UTC.
fn local_zone() -> &'static tz::TimeZone {
    static ZONE: OnceLock<tz::TimeZone> = OnceLock::new();
    ZONE.get_or_init(|| zone_for(std::env::var("TZ").ok().as_deref()))
}

fn zone_for(tz_env: Option<&str>) -> tz::TimeZone {
    let zone = match tz_env {
        Some("") => Ok(tz::TimeZone::utc()),
        Some(spec) => tz::TimeZone::from_posix_tz(spec),
        None => tz::TimeZone::local(),
    };
    zone.unwrap_or_else(|_| tz::TimeZone::utc())
}

/// Turns Unix times into local times; a parameter so tests need no time
/// zone.
pub type Clock<'a> = &'a dyn Fn(i64) -> Option<LocalTime>;

/// "2026-11-23 14:05", or "never" for 0.
pub fn when(t: i64, clock: Clock<'_>) -> String {
    if t == 0 {
        return "never".into();
    }
    match clock(t) {
        Some(lt) => lt.date_time(),
        None => format!("@{t}"),
    }
}

/// "not locked", "not locked (2 failed attempts)", or
/// "locked until 14:20 (5 failed attempts)" (with the date when it is not
/// today).
pub fn lockout(locked_until: i64, failures: u32, now: i64, clock: Clock<'_>) -> String {
    let attempts = match failures {
        0 => String::new(),
        1 => " (1 failed attempt)".into(),
        n => format!(" ({n} failed attempts)"),
    };
    if locked_until <= now {
        return format!("not locked{attempts}");
    }
    let until = match (clock(locked_until), clock(now)) {
        (Some(u), Some(n)) if u.same_day(&n) => u.clock(),
        (Some(u), _) => u.date_time(),
        (None, _) => format!("@{locked_until}"),
    };
    format!("locked until {until}{attempts}")
}

/// When trust ends: "never" for 0, "expired" once past, else the local time.
pub fn expiry(expires: i64, now: i64, clock: Clock<'_>) -> String {
    if expires != 0 && expires <= now {
        return "expired".into();
    }
    when(expires, clock)
}

// ---- Human text --------------------------------------------------------

/// Replaces control characters, so names from the daemon cannot move the
/// cursor or change colours.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Left-aligned columns separated by two spaces, each line indented by
/// `indent`; no trailing blanks.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = indent.to_string();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn status_text(s: &UserStatus, now: i64, clock: Clock<'_>) -> String {
    let mut out = format!("User: {}\n", clean(&s.user));
    if s.devices.is_empty() {
        out.push_str("Devices: none (not enrolled)\n");
    } else {
        out.push_str("Devices:\n");
        // A phone's "name" is its number (masked for the user, in full for
        // an admin); the header says so when there is one.
        let name = if s
            .devices
            .iter()
            .any(|d| d.device_kind() == mfa_api::DeviceKind::Sms)
        {
            "NAME / NUMBER"
        } else {
            "NAME"
        };
        let mut rows = vec![vec![
            "ID".to_string(),
            "KIND".into(),
            name.into(),
            "CREATED".into(),
            "LAST USED".into(),
        ]];
        for d in &s.devices {
            let name = if d.name.is_empty() {
                "-".to_string()
            } else {
                clean(&d.name)
            };
            rows.push(vec![
                clean(&d.id),
                clean(&d.kind),
                name,
                when(d.created, clock),
                when(d.last_used, clock),
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }
    out.push_str(&format!("Backup codes left: {}\n", s.backup_codes_left));
    out.push_str(&format!(
        "Lockout: {}\n",
        lockout(s.locked_until, s.failures, now, clock)
    ));
    out
}

pub fn list_text(users: &[UserSummary], now: i64, clock: Clock<'_>) -> String {
    if users.is_empty() {
        return "No users are enrolled.\n".into();
    }
    let mut rows = vec![vec![
        "USER".to_string(),
        "DEVICES".into(),
        "BACKUP CODES".into(),
        "LOCKED UNTIL".into(),
    ]];
    for u in users {
        let locked = if u.locked_until > now {
            when(u.locked_until, clock)
        } else {
            "-".into()
        };
        rows.push(vec![
            clean(&u.user),
            u.devices.to_string(),
            u.backup_codes_left.to_string(),
            locked,
        ]);
    }
    table(&rows, "")
}

pub fn trusted_text(devices: &[TrustedDevice], now: i64, clock: Clock<'_>) -> String {
    if devices.is_empty() {
        return "No trusted devices.\n".into();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "KIND".into(),
        "DEVICE".into(),
        "FIRST USED".into(),
        "LAST USED".into(),
        "EXPIRES".into(),
    ]];
    for d in devices {
        rows.push(vec![
            clean(&d.id),
            clean(&d.kind),
            clean(&d.identity),
            when(d.first_used, clock),
            when(d.last_used, clock),
            expiry(d.expires, now, clock),
        ]);
    }
    table(&rows, "")
}

/// The line `status` adds: "Trusted devices: none", "Trusted devices: 2"
/// or "Trusted devices: 3 (1 expired)".
pub fn trusted_count_line(devices: &[TrustedDevice], now: i64) -> String {
    let expired = devices
        .iter()
        .filter(|d| d.expires != 0 && d.expires <= now)
        .count();
    match (devices.len(), expired) {
        (0, _) => "Trusted devices: none\n".into(),
        (n, 0) => format!("Trusted devices: {n}\n"),
        (n, e) => format!("Trusted devices: {n} ({e} expired)\n"),
    }
}

/// `trusted remove --all`.
pub fn removed_text(removed: u32) -> String {
    match removed {
        1 => "Removed 1 trusted device.\n".into(),
        n => format!("Removed {n} trusted devices.\n"),
    }
}

/// `enroll sms --begin`, for a person running the steps by hand.
pub fn sms_begin_text(enrollment_id: &str, phone: &str) -> String {
    format!(
        "Code sent by SMS to {phone}. Enrollment {id} expires in 10 minutes.\n\
         Finish it with `mfactl enroll sms --confirm {id}` (the code on stdin or after the id);\n\
         `mfactl enroll sms --resend {id}` sends a new code.\n",
        phone = clean(phone),
        id = clean(enrollment_id)
    )
}

/// A code sent again: the ones before still work.
pub fn sms_resent_line(phone: &str) -> String {
    format!(
        "New code sent by SMS to {}; the ones sent before still work.\n",
        clean(phone)
    )
}

/// The secret in groups of 4, as pam_mfa shows it too.
pub use mfa_api::qr::group_secret;

/// The backup codes, two to a line, and what to do with them.
/// New backup codes to store, or, after a further device (mfad makes
/// backup codes with the first one only), that the old ones stand.
pub fn backup_codes_text(codes: &[String]) -> String {
    if codes.is_empty() {
        return "Your backup codes are unchanged (`mfactl backup-codes` makes new ones).\n".into();
    }
    let mut out = String::from(
        "Backup codes: each one works once, in place of a verification code.\n\
         They replace any backup codes you had before.\n\
         Store them now, somewhere safe: they are shown only this once.\n\n",
    );
    for pair in codes.chunks(2) {
        out.push_str("    ");
        out.push_str(
            &pair
                .iter()
                .map(|c| clean(c))
                .collect::<Vec<_>>()
                .join("    "),
        );
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_api::Device;

    /// A fake time zone: UTC, minutes precision, good for 2026.
    fn utc(t: i64) -> Option<LocalTime> {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        // 2026-01-01 is day 20454 since the epoch.
        let mut day_of_year = days - 20_454;
        let months = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut month = 0;
        while day_of_year >= months[month] {
            day_of_year -= months[month];
            month += 1;
        }
        Some(LocalTime {
            year: 2026,
            month: month as u32 + 1,
            day: day_of_year as u32 + 1,
            hour: (secs / 3600) as u32,
            minute: (secs % 3600 / 60) as u32,
        })
    }

    // 2026-11-23 14:05:00 UTC
    const T: i64 = 1_795_442_700;

    fn status() -> UserStatus {
        UserStatus {
            user: "alice".into(),
            enrolled: true,
            devices: vec![
                Device {
                    id: "a1b2c3d4".into(),
                    kind: "totp".into(),
                    name: "work phone".into(),
                    created: T,
                    last_used: 0,
                },
                Device {
                    id: "ffee0011".into(),
                    kind: "totp".into(),
                    name: "tablet\x1b[31m".into(),
                    created: T + 60,
                    last_used: T + 120,
                },
            ],
            backup_codes_left: 9,
            failures: 5,
            locked_until: T + 15 * 60,
        }
    }

    #[test]
    fn fake_clock_is_right() {
        assert_eq!(
            utc(T).map(|t| t.date_time()).as_deref(),
            Some("2026-11-23 14:05")
        );
    }

    #[test]
    fn local_time_has_the_shape() {
        let s = LocalTime::of(T).expect("local time").date_time();
        let b = s.as_bytes();
        assert_eq!(b.len(), 16, "{s}");
        assert_eq!((b[4], b[7], b[10], b[13]), (b'-', b'-', b' ', b':'), "{s}");
        assert!(s.starts_with("2026-11-2"), "{s}");
    }

    #[test]
    fn local_time_follows_tz() {
        let at = |spec| LocalTime::in_zone(T, &zone_for(Some(spec))).map(|t| t.date_time());
        // T is 14:05 UTC, in November: Eastern European winter time, UTC+2.
        assert_eq!(
            at("EET-2EEST,M3.5.0/3,M10.5.0/4").as_deref(),
            Some("2026-11-23 16:05")
        );
        assert_eq!(at("").as_deref(), Some("2026-11-23 14:05"));
        // Garbage in TZ is UTC, as with the C library.
        assert_eq!(at("not a zone!").as_deref(), Some("2026-11-23 14:05"));
    }

    #[test]
    fn times() {
        assert_eq!(when(0, &utc), "never");
        assert_eq!(when(T, &utc), "2026-11-23 14:05");
        assert_eq!(when(T, &|_| None), format!("@{T}"));
        assert_eq!(lockout(0, 0, T, &utc), "not locked");
        assert_eq!(lockout(0, 2, T, &utc), "not locked (2 failed attempts)");
        assert_eq!(lockout(T - 1, 1, T, &utc), "not locked (1 failed attempt)");
        assert_eq!(
            lockout(T + 15 * 60, 5, T, &utc),
            "locked until 14:20 (5 failed attempts)"
        );
        assert_eq!(
            lockout(T + 86_400, 5, T, &utc),
            "locked until 2026-11-24 14:05 (5 failed attempts)"
        );
    }

    #[test]
    fn status_human() {
        let text = status_text(&status(), T, &utc);
        assert_eq!(
            text,
            "User: alice\n\
             Devices:\n  \
             ID        KIND  NAME         CREATED           LAST USED\n  \
             a1b2c3d4  totp  work phone   2026-11-23 14:05  never\n  \
             ffee0011  totp  tablet?[31m  2026-11-23 14:06  2026-11-23 14:07\n\
             Backup codes left: 9\n\
             Lockout: locked until 14:20 (5 failed attempts)\n"
        );
        let mut empty = status();
        empty.devices.clear();
        empty.enrolled = false;
        assert!(status_text(&empty, T, &utc).contains("Devices: none (not enrolled)\n"));
    }

    #[test]
    fn status_human_with_a_phone() {
        let mut s = status();
        s.devices[1] = Device {
            id: "77aa88bb".into(),
            kind: "sms".into(),
            name: "+372*****345".into(),
            created: T + 60,
            last_used: 0,
        };
        s.devices[0].name = String::new();
        s.failures = 0;
        s.locked_until = 0;
        assert_eq!(
            status_text(&s, T, &utc),
            "User: alice\n\
             Devices:\n  \
             ID        KIND  NAME / NUMBER  CREATED           LAST USED\n  \
             a1b2c3d4  totp  -              2026-11-23 14:05  never\n  \
             77aa88bb  sms   +372*****345   2026-11-23 14:06  never\n\
             Backup codes left: 9\n\
             Lockout: not locked\n"
        );
    }

    #[test]
    fn list_human() {
        let users = vec![
            UserSummary {
                user: "alice".into(),
                devices: 2,
                backup_codes_left: 10,
                locked_until: 0,
            },
            UserSummary {
                user: "bartholomew".into(),
                devices: 1,
                backup_codes_left: 3,
                locked_until: T + 600,
            },
        ];
        assert_eq!(
            list_text(&users, T, &utc),
            "USER         DEVICES  BACKUP CODES  LOCKED UNTIL\n\
             alice        2        10            -\n\
             bartholomew  1        3             2026-11-23 14:15\n"
        );
        assert_eq!(list_text(&[], T, &utc), "No users are enrolled.\n");
    }

    #[test]
    fn json_status_shape() {
        let v = status_json(&status());
        assert_eq!(
            v,
            json!({
                "user": "alice",
                "enrolled": true,
                "devices": [
                    {"id": "a1b2c3d4", "kind": "totp", "name": "work phone", "created": T, "last_used": 0},
                    {"id": "ffee0011", "kind": "totp", "name": "tablet\x1b[31m", "created": T + 60, "last_used": T + 120},
                ],
                "backup_codes_left": 9,
                "failures": 5,
                "locked_until": T + 900,
            })
        );
    }

    #[test]
    fn json_list_shape() {
        let v = list_json(&[UserSummary {
            user: "bob".into(),
            devices: 1,
            backup_codes_left: 10,
            locked_until: 0,
        }]);
        assert_eq!(
            v,
            json!([{"user": "bob", "devices": 1, "backup_codes_left": 10, "locked_until": 0}])
        );
        assert_eq!(list_json(&[]), json!([]));
    }

    #[test]
    fn json_small_shapes() {
        assert_eq!(
            begin_json("e1", "otpauth://totp/x", "ABCD"),
            json!({"enrollment_id": "e1", "uri": "otpauth://totp/x", "secret": "ABCD"})
        );
        let codes = vec!["12345678".to_string(), "87654321".to_string()];
        assert_eq!(
            confirm_json("d1", &codes),
            json!({"device_id": "d1", "backup_codes": ["12345678", "87654321"]})
        );
        assert_eq!(
            backup_codes_json(&codes),
            json!({"backup_codes": ["12345678", "87654321"]})
        );
        assert_eq!(
            sms_begin_json("e1", "+372*****345"),
            json!({"enrollment_id": "e1", "phone": "+372*****345"})
        );
        assert_eq!(
            sms_resend_json("+372*****345"),
            json!({"phone": "+372*****345"})
        );
        assert_eq!(ok_json(), json!({"ok": true}));
        assert_eq!(ok_json().to_string(), r#"{"ok":true}"#);
    }

    fn trusted() -> Vec<TrustedDevice> {
        vec![
            TrustedDevice {
                id: "0a1b2c3d".into(),
                kind: "key".into(),
                identity: "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into(),
                first_used: T,
                last_used: T + 60,
                expires: T + 30 * 86_400,
            },
            TrustedDevice {
                id: "9f8e7d6c".into(),
                kind: "host".into(),
                identity: "10.1.2.3".into(),
                first_used: T - 86_400,
                last_used: T - 86_400,
                expires: 0,
            },
            TrustedDevice {
                id: "5555aaaa".into(),
                kind: "host".into(),
                identity: "evil\x1b]0;x\x07".into(),
                first_used: T - 2 * 86_400,
                last_used: T - 2 * 86_400,
                expires: T,
            },
        ]
    }

    #[test]
    fn trusted_human() {
        assert_eq!(
            trusted_text(&trusted(), T, &utc),
            "ID        KIND  DEVICE                                              FIRST USED        LAST USED         EXPIRES\n\
             0a1b2c3d  key   SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s  2026-11-23 14:05  2026-11-23 14:06  2026-12-23 14:05\n\
             9f8e7d6c  host  10.1.2.3                                            2026-11-22 14:05  2026-11-22 14:05  never\n\
             5555aaaa  host  evil?]0;x?                                          2026-11-21 14:05  2026-11-21 14:05  expired\n"
        );
        assert_eq!(trusted_text(&[], T, &utc), "No trusted devices.\n");
    }

    #[test]
    fn expiry_cases() {
        assert_eq!(expiry(0, T, &utc), "never");
        assert_eq!(expiry(T, T, &utc), "expired");
        assert_eq!(expiry(T - 1, T, &utc), "expired");
        assert_eq!(expiry(T + 60, T, &utc), "2026-11-23 14:06");
        assert_eq!(expiry(T + 60, T, &|_| None), format!("@{}", T + 60));
    }

    #[test]
    fn trusted_counts_and_removals() {
        assert_eq!(trusted_count_line(&[], T), "Trusted devices: none\n");
        assert_eq!(
            trusted_count_line(&trusted()[..2], T),
            "Trusted devices: 2\n"
        );
        assert_eq!(
            trusted_count_line(&trusted(), T),
            "Trusted devices: 3 (1 expired)\n"
        );
        assert_eq!(removed_text(0), "Removed 0 trusted devices.\n");
        assert_eq!(removed_text(1), "Removed 1 trusted device.\n");
        assert_eq!(removed_text(4), "Removed 4 trusted devices.\n");
    }

    #[test]
    fn json_trusted_shapes() {
        let v = trusted_json(&trusted()[..2]);
        assert_eq!(
            v,
            json!([
                {
                    "id": "0a1b2c3d",
                    "kind": "key",
                    "identity": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
                    "first_used": T,
                    "last_used": T + 60,
                    "expires": T + 30 * 86_400,
                },
                {
                    "id": "9f8e7d6c",
                    "kind": "host",
                    "identity": "10.1.2.3",
                    "first_used": T - 86_400,
                    "last_used": T - 86_400,
                    "expires": 0,
                },
            ])
        );
        assert_eq!(trusted_json(&[]).to_string(), "[]");
        assert_eq!(removed_json(3).to_string(), r#"{"removed":3}"#);
    }

    #[test]
    fn backup_codes_block() {
        let codes: Vec<String> = (0..10).map(|i| format!("{}", 10_000_000 + i)).collect();
        let text = backup_codes_text(&codes);
        assert!(text.contains("shown only this once"));
        assert!(text.contains("replace any backup codes"));
        assert!(text.contains("    10000000    10000001\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("    1")).count(), 5);
    }
}

#[cfg(test)]
mod missing_tests {
    use super::*;

    #[test]
    fn the_missing_list_says_how_long_each_has_left() {
        assert_eq!(
            missing_text(&[]),
            "Everyone who must use 2-step verification has a device.\n"
        );
        let users = [
            MissingUser {
                user: "ann".into(),
                grace_left: 7 * 86_400 - 3600,
            },
            MissingUser {
                user: "bob".into(),
                grace_left: -1,
            },
            MissingUser {
                user: "cy\u{1b}[2J".into(),
                grace_left: 0,
            },
            MissingUser {
                user: "dee".into(),
                grace_left: 90,
            },
        ];
        let text = missing_text(&users);
        assert!(text.contains("6d 23h left"), "{text}");
        assert!(text.contains("starts at the next login"), "{text}");
        assert!(text.contains("over: refused until enrolled"), "{text}");
        assert!(text.contains("1m left"), "{text}");
        assert!(!text.contains('\u{1b}'), "names are cleaned: {text}");
        assert_eq!(
            missing_json(&users[..2]),
            json!([
                {"user": "ann", "grace_left": 7 * 86_400 - 3600},
                {"user": "bob", "grace_left": -1},
            ])
        );
        assert_eq!(span(20), "20s");
        assert_eq!(span(3600 * 5 + 600), "5h 10m");
    }
}
