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
    /// A session-like bus for this process's user alone. `label` names the
    /// temp dir, for whoever finds one left behind.
    pub fn start(label: &str) -> Bus {
        Bus::spawn(label, |address| {
            vec!["--session".into(), format!("--address={address}")]
        })
    }

    /// A bus any local user may connect to and own any name on (the
    /// policy an impostor hopes for), listening on `unix:path=DIR/bus` and
    /// on the abstract socket `abstract_name`.
    pub fn start_open(label: &str, abstract_name: &str) -> Bus {
        let abstract_name = abstract_name.to_string();
        Bus::spawn(label, move |address| {
            let dir = address
                .strip_prefix("unix:path=")
                .and_then(|p| p.strip_suffix("/bus"))
                .expect("a unix:path=DIR/bus address");
            let conf = format!("{dir}/bus.conf");
            let xml = format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>{address}</listen>
  <listen>unix:abstract={abstract_name}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#
            );
            std::fs::write(&conf, xml).expect("write bus.conf");
            vec![format!("--config-file={conf}")]
        })
    }

    fn spawn(label: &str, args: impl FnOnce(&str) -> Vec<String>) -> Bus {
        // Tests of one binary run in parallel, in one process.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pam-mfa-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let child = Command::new("dbus-daemon")
            .args(["--nofork", "--nopidfile"])
            .args(args(&address))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed (Debian: dbus)");
        // The file appears at bind(), before listen(): wait for a connect.
        wait_for(
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
            "the bus socket",
        );
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

/// The real client, expecting org.mfad.Mfa1's owner to run as this
/// process's user (the fake mfad here runs in the test process).
pub fn client(address: &str, timeout: Duration) -> pam_mfa::client::LeanDaemon {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    pam_mfa::client::LeanDaemon::new(address, timeout).with_owner_uid(uid)
}

/// Serves `login` as org.mfad.Mfa1's Login interface on the bus from a
/// thread of its own, forever.
pub fn serve_fake_mfad<I: zbus::object_server::Interface>(address: &str, login: I) {
    let address = address.to_string();
    thread::Builder::new()
        .name("fake-mfad".into())
        .spawn(move || {
            zbus::block_on(async move {
                // A loaded machine (the whole suite in parallel) can refuse
                // a connection for a moment; a fake that gave up at once
                // would fail the test for the machine's sake, not the code's.
                let start = Instant::now();
                let conn = loop {
                    match zbus::connection::Builder::address(address.as_str())
                        .build()
                        .await
                    {
                        Ok(conn) => break conn,
                        Err(e) if start.elapsed() < Duration::from_secs(10) => {
                            eprintln!("fake mfad: {e}; retrying");
                            thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => panic!("fake mfad cannot connect: {e}"),
                    }
                };
                conn.object_server()
                    .at(mfa_api::OBJECT_PATH, login)
                    .await
                    .expect("fake mfad serves its object");
                conn.request_name(mfa_api::BUS_NAME)
                    .await
                    .expect("fake mfad owns its name");
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
