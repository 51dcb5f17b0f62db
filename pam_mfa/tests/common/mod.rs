//! Real parts for the tests of the D-Bus client: a private dbus-daemon and
//! a fake mfad served in the test process.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A private dbus-daemon in a temp dir, killed on drop.
pub struct Bus {
    child: Child,
    pub dir: PathBuf,
    pub address: String,
}

impl Bus {
    /// `label` names the temp dir, for whoever finds one left behind.
    pub fn start(label: &str) -> Bus {
        // Tests of one binary run in parallel, in one process.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pam-mfa-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let child = Command::new("dbus-daemon")
            .args([
                "--session",
                "--nofork",
                "--nopidfile",
                &format!("--address={address}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed (Debian: dbus)");
        wait_for(|| socket.exists(), "the bus socket");
        Bus {
            child,
            dir,
            address,
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "no {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Serves `login` as org.mfad.Mfa1's Login interface on the bus from a
/// thread of its own, forever.
pub fn serve_fake_mfad<I: zbus::object_server::Interface>(address: &str, login: I) {
    let address = address.to_string();
    thread::Builder::new()
        .name("fake-mfad".into())
        .spawn(move || {
            zbus::block_on(async move {
                let conn = zbus::connection::Builder::address(address.as_str())
                    .name(mfa_api::BUS_NAME)
                    .serve_at(mfa_api::OBJECT_PATH, login)
                    .build()
                    .await
                    .expect("fake mfad connects");
                std::future::pending::<()>().await;
                drop(conn);
            })
        })
        .expect("thread");
}

/// Waits until org.mfad.Mfa1 has an owner (asked over a throwaway
/// connection).
pub fn wait_for_owner(address: &str) {
    wait_for(
        || {
            zbus::block_on(async {
                let conn = zbus::connection::Builder::address(address).build().await?;
                let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
                let has = dbus
                    .name_has_owner(mfa_api::BUS_NAME.try_into().expect("name"))
                    .await?;
                conn.close().await?;
                Ok::<bool, zbus::Error>(has)
            })
            .unwrap_or(false)
        },
        "owner for org.mfad.Mfa1",
    );
}
