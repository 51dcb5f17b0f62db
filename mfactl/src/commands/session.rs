//! Session duration: the user's choice, live sessions, and the admin's view
//! and end of them.

use std::time::Duration;

use mfa_api::{AdminProxy, SessionDuration, SessionInfo};
use serde_json::{json, Value};

use super::Ctx;
use crate::error::Error;
use crate::output::{self, Clock, LocalTime};

/// "4h", "90m", "1h 30m", "3600" (seconds); Err is the line for the user.
pub fn parse_duration(text: &str) -> Result<i64, Error> {
    let t = text.trim();
    let secs = match t.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(t)
            .map(|d: Duration| d.as_secs())
            .map_err(|_| {
                Error::Usage(format!(
                    "{} is not a duration; use a form like \"4h\", \"90m\" or \"3600\" (seconds), or \"default\".",
                    output::clean(text)
                ))
            })?,
    };
    if secs == 0 {
        return Err(Error::Usage(
            "A session duration must be at least 1 second; \"default\" goes back to the limit."
                .into(),
        ));
    }
    i64::try_from(secs).map_err(|_| Error::Usage("That duration is too long.".into()))
}

/// "4h", or "unlimited" for 0.
fn human(secs: i64) -> String {
    if secs <= 0 {
        return "unlimited".into();
    }
    humantime::format_duration(Duration::from_secs(u64::try_from(secs).unwrap_or(0))).to_string()
}

pub fn duration_json(d: &SessionDuration) -> Value {
    json!({
        "user": d.user,
        "duration": d.duration,
        "chosen": d.chosen,
        "limit": d.limit,
        "user_choice": d.user_choice,
    })
}

/// The lines `session-duration` and `status` show.
pub fn duration_text(d: &SessionDuration) -> String {
    if d.limit == 0 {
        return "Session duration: unlimited (not limited on this host)\n".into();
    }
    let whose = if d.chosen > 0 && d.user_choice {
        "your choice"
    } else {
        "the limit"
    };
    format!(
        "Session duration: {} ({whose}; limit {}{})\n",
        human(d.duration),
        human(d.limit),
        if d.user_choice {
            ""
        } else {
            ", users may not choose"
        }
    )
}

/// `mfactl session-duration [DURATION|default]`.
pub async fn duration(ctx: &Ctx, arg: Option<&str>) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    if let Some(arg) = arg {
        let secs = if arg.trim() == "default" {
            0
        } else {
            parse_duration(arg)?
        };
        account
            .set_session_duration("", secs)
            .await
            .map_err(|e| ctx.api(e))?;
    }
    let d = account.session_duration("").await.map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        ctx.term.print_json(&duration_json(&d))
    } else {
        let note = if arg.is_some() {
            "Applies to sessions opened from now on.\n"
        } else {
            ""
        };
        ctx.term.print(&format!("{}{note}", duration_text(&d)))
    }
}

pub fn sessions_json(sessions: &[SessionInfo]) -> Value {
    Value::Array(
        sessions
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "user": s.user,
                    "service": s.service,
                    "tty": s.tty,
                    "rhost": s.rhost,
                    "started": s.started,
                    "ends": s.ends,
                })
            })
            .collect(),
    )
}

pub fn sessions_text(sessions: &[SessionInfo], clock: Clock<'_>) -> String {
    if sessions.is_empty() {
        return "No limited sessions.\n".into();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "USER".into(),
        "SERVICE".into(),
        "FROM".into(),
        "STARTED".into(),
        "ENDS".into(),
    ]];
    for s in sessions {
        let from = if s.rhost.is_empty() { &s.tty } else { &s.rhost };
        rows.push(vec![
            output::clean(&s.id),
            output::clean(&s.user),
            output::clean(&s.service),
            output::clean(from),
            output::when(s.started, clock),
            output::when(s.ends, clock),
        ]);
    }
    output::table(&rows, "")
}

fn print_sessions(ctx: &Ctx, sessions: &[SessionInfo]) -> Result<(), Error> {
    if ctx.term.json {
        ctx.term.print_json(&sessions_json(sessions))
    } else {
        ctx.term.print(&sessions_text(sessions, &LocalTime::of))
    }
}

/// `mfactl sessions`.
pub async fn own(ctx: &Ctx) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let sessions = account.sessions("").await.map_err(|e| ctx.api(e))?;
    print_sessions(ctx, &sessions)
}

/// `mfactl admin sessions [USER]`.
pub async fn admin_list(ctx: &Ctx, admin: &AdminProxy<'_>, user: &str) -> Result<(), Error> {
    let sessions = admin.sessions(user).await.map_err(|e| ctx.api(e))?;
    print_sessions(ctx, &sessions)
}

/// `mfactl admin end-session ID`.
pub async fn end(ctx: &Ctx, admin: &AdminProxy<'_>, id: &str) -> Result<(), Error> {
    admin.end_session(id).await.map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        ctx.term.print_json(&output::ok_json())
    } else {
        ctx.term
            .print(&format!("Ending session {}.\n", output::clean(id)))
    }
}

/// `mfactl admin reset USER --end-sessions`.
pub async fn reset_and_end(ctx: &Ctx, admin: &AdminProxy<'_>, user: &str) -> Result<(), Error> {
    admin.reset(user).await.map_err(|e| ctx.api(e))?;
    let ended = admin.end_sessions(user).await.map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        ctx.term
            .print_json(&json!({"ok": true, "sessions_ended": ended}))
    } else {
        ctx.term.print(&format!(
            "Reset {}: every device, backup code, trusted device and lockout removed; {ended} session{} ended.\n",
            output::clean(user),
            if ended == 1 { "" } else { "s" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_units_or_seconds() {
        assert_eq!(parse_duration("4h").unwrap(), 14400);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("3s").unwrap(), 3);
        for bad in ["0", "soon", "-5", ""] {
            assert!(matches!(parse_duration(bad), Err(Error::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn the_duration_line_says_whose_it_is() {
        let d = SessionDuration {
            user: "alice".into(),
            duration: 3600,
            chosen: 3600,
            limit: 14400,
            user_choice: true,
        };
        assert_eq!(
            duration_text(&d),
            "Session duration: 1h (your choice; limit 4h)\n"
        );
        let off = SessionDuration {
            duration: 0,
            chosen: 0,
            limit: 0,
            ..d
        };
        assert!(duration_text(&off).contains("unlimited"));
    }
}
