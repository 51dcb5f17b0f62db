//! A private PostgreSQL server for the fleet tests: Debian's binaries, a
//! cluster in a temp dir owned by the postgres user, reachable only on a
//! unix socket in a directory open to all, as Debian's /run/postgresql
//! (mfad runs without CAP_DAC_OVERRIDE). It can be stopped and started again (the
//! "database down" tests); dropping it stops it and removes its files.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::proc::{Cmd, Output};
use crate::{paths, random_letters};

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    /// With TLS: the 127.0.0.1 port it listens on (with a certificate for
    /// "localhost" from the test CA `ca.pem`), TLS connections only.
    tls_port: Option<u16>,
}

/// The newest `/usr/lib/postgresql/N/bin` with initdb in it.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not installed (/usr/lib/postgresql: {e}); run scripts/install-deps.sh")
        })
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb; run scripts/install-deps.sh")
}

impl Postgres {
    /// initdb and start; panics with the server's log if it does not come up.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// Also on 127.0.0.1 over TLS only, its certificate signed by a CA of
    /// the test's own (see [`Postgres::ca`]).
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        paths::require_root();
        paths::tool("setpriv", "util-linux");
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("mfa-pg-{}", random_letters(10)));
        std::fs::create_dir(&dir).expect("create the PostgreSQL temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let tls_port = tls.then(|| {
            // A port free now; the server takes it a moment later.
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        });
        let pg = Postgres { dir, bin, tls_port };
        std::fs::create_dir(pg.data()).expect("create the data dir");
        std::fs::create_dir(pg.socket_dir()).expect("create the socket dir");
        Cmd::new("chown")
            .arg("postgres:postgres")
            .arg(pg.data())
            .arg(pg.socket_dir())
            .run()
            .assert_success();
        std::fs::set_permissions(pg.socket_dir(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the socket dir");
        pg.as_postgres("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--locale=C",
                "--encoding=UTF8",
                "-N",
                "-D",
            ])
            .arg(pg.data())
            .timeout(Duration::from_secs(60))
            .run()
            .assert_success();
        if tls {
            pg.make_certificates();
        }
        pg.start_server();
        pg.psql("postgres", "CREATE DATABASE mfa").assert_success();
        pg
    }

    /// A CA (`ca.pem`), a server certificate for localhost and 127.0.0.1
    /// signed by it, and a pg_hba.conf that takes TCP over TLS only.
    fn make_certificates(&self) {
        paths::tool("openssl", "openssl");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let d = &self.dir;
        Cmd::new("openssl")
            .args(["req", "-x509", "-days", "2", "-subj", "/CN=mfa-test-ca"])
            .args(ec)
            .arg("-keyout")
            .arg(d.join("ca.key"))
            .arg("-out")
            .arg(d.join("ca.pem"))
            .run()
            .assert_success();
        Cmd::new("openssl")
            .args(["req", "-subj", "/CN=localhost"])
            .args(ec)
            .arg("-keyout")
            .arg(self.data().join("server.key"))
            .arg("-out")
            .arg(d.join("server.csr"))
            .run()
            .assert_success();
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write san.ext");
        Cmd::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(d.join("server.csr"))
            .arg("-CA")
            .arg(d.join("ca.pem"))
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .arg("-extfile")
            .arg(d.join("san.ext"))
            .arg("-out")
            .arg(self.data().join("server.crt"))
            .run()
            .assert_success();
        std::fs::write(
            self.data().join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        Cmd::new("chown")
            .arg("postgres:postgres")
            .arg(self.data().join("server.key"))
            .arg(self.data().join("server.crt"))
            .arg(self.data().join("pg_hba.conf"))
            .run()
            .assert_success();
        std::fs::set_permissions(
            self.data().join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod server.key");
    }

    /// The test CA's certificate (TLS servers only).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The connection string over TLS to 127.0.0.1 as "localhost", the
    /// server checked against `roots` (a PEM file).
    pub fn tls_url(&self, roots: &Path) -> String {
        format!(
            "host=localhost port={} user=postgres dbname=mfa sslmode=require sslrootcert={}",
            self.tls_port.expect("a TLS server (Postgres::start_tls)"),
            roots.display()
        )
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn as_postgres(&self, program: &str) -> Cmd {
        Cmd::new("setpriv")
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(self.bin.join(program))
    }

    /// The connection string mfad gets: the unix socket, no password.
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=mfa",
            self.socket_dir().display(),
            self.tls_port.unwrap_or(5432)
        )
    }

    /// `[store]` for mfad with this server and `timeout`.
    pub fn store_toml(&self, timeout: &str) -> String {
        store_toml(&self.url(), timeout)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_server(&self) {
        // Inside the data dir: the server writes it as postgres.
        let log = self.data().join("server.log");
        let out = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(match self.tls_port {
                None => format!(
                    "-k {} -c listen_addresses= -c fsync=off",
                    self.socket_dir().display()
                ),
                Some(port) => format!(
                    "-k {} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c ssl=on",
                    self.socket_dir().display()
                ),
            })
            .args(["-w", "-t", "60", "start"])
            .timeout(Duration::from_secs(70))
            .run();
        assert!(
            out.success(),
            "PostgreSQL did not start: {}\nits log:\n{}",
            out.all(),
            crate::bus::read_lossy(&log)
        );
    }

    /// Stops the server (fast: open connections are cut).
    pub fn stop_server(&self) {
        self.pg_ctl_stop("fast").assert_success();
    }

    fn pg_ctl_stop(&self, mode: &str) -> Output {
        self.as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .timeout(Duration::from_secs(60))
            .run()
    }

    /// One SQL command (or several) with psql, as the postgres role.
    pub fn psql(&self, db: &str, sql: &str) -> Output {
        Cmd::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.tls_port.unwrap_or(5432).to_string())
            .args([
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ])
            .timeout(Duration::from_secs(30))
            .run()
    }

    /// A psql session that takes `sql` (e.g. a table lock in an open
    /// transaction) and holds it until the guard is dropped: the "slow
    /// database" case.
    pub fn hold(&self, sql: &str) -> Held {
        let mut child = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.tls_port.unwrap_or(5432).to_string())
            .args(["-U", "postgres", "-d", "mfa", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start psql");
        let stdin = child.stdin.as_mut().expect("psql stdin");
        writeln!(stdin, "{sql}").expect("write to psql");
        stdin.flush().expect("flush psql");
        Held { child }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fleet's key file: every mfad on this database must use the same
    /// one (`[daemon] key_file`), as every host of a fleet must. Made once,
    /// root's alone, like the file an admin copies to each host.
    pub fn key_file(&self) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join("fleet.key");
        if !path.exists() {
            let mut key = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
                .expect("random bytes for the fleet's key");
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(&key))
                .expect("write the fleet's key file");
        }
        path
    }

    /// `[daemon]` lines for an mfad of this fleet: the shared key file.
    pub fn daemon_toml(&self) -> String {
        format!(
            "key_file = {}\n",
            crate::daemon::toml_str(&self.key_file().to_string_lossy())
        )
    }
}

/// `[store]` for mfad with this connection string and `timeout`.
pub fn store_toml(url: &str, timeout: &str) -> String {
    format!(
        "[store]\nbackend = \"postgres\"\nurl = {}\npool_size = 4\ntimeout = {}\n",
        crate::daemon::toml_str(url),
        crate::daemon::toml_str(timeout)
    )
}

/// A psql session holding something; dropping it ends the session.
pub struct Held {
    child: Child,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let out = self.pg_ctl_stop("immediate");
        if !out.success()
            && !out.all().contains("not running")
            && !out.all().contains("does not exist")
        {
            eprintln!(
                "mfa-tests: cannot stop PostgreSQL in {}: {}",
                self.dir.display(),
                out.all()
            );
        }
        if std::env::var_os("MFA_TESTS_KEEP").is_some() {
            eprintln!("mfa-tests: keeping {} (MFA_TESTS_KEEP)", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("mfa-tests: cannot remove {}: {e}", self.dir.display());
        }
    }
}
