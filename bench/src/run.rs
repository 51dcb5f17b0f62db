//! The benchmark run: set up, enroll, measure each target, report.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{io, io_at, Error, Result};
use crate::pam::{self, Job, JobUser, Mode, WorkerInput};
use crate::pool::{shuffled, Pool, Ticket, User};
use crate::report::{Cpu, Results, Services};
use crate::stats::{self, Tally};
use crate::world::Paths;
use crate::world::{self, Bus, Mfad, Mounts};
use crate::{daemon, ssh, totp, Options};

/// Users of the small mfad, for the O(1) comparison.
const SMALL: usize = 1000;
/// Enrollments run this many at a time.
const ENROLL_CLIENTS: usize = 32;
/// Users in the private /etc/passwd at a time while enrolling.
const ENROLL_BATCH: usize = 2000;
/// mfad keeps a verified login session for 10 minutes unless the account
/// phase takes it, and refuses new logins beyond 10,000 sessions; the
/// benchmark calls pam_authenticate only (no account phase), so it
/// restarts mfad before it could reach that many.
const SESSION_BUDGET: usize = 9500;
/// PAM worker processes for the throughput target.
pub const WORKERS: usize = 8;
/// Concurrent bus clients for the daemon-alone target.
pub const CLIENTS: usize = 64;
/// Google Authenticator state files (users) at most.
const GA_USERS: usize = 20_000;

pub const SERVICE_PERMIT: &str = "mfa-bench-permit";
pub const SERVICE_GA: &str = "mfa-bench-ga";
pub const SERVICE_MFA: &str = "mfa-bench-mfa";
/// pam_mfa over the bus instead of the login socket, for comparison.
pub const SERVICE_MFA_BUS: &str = "mfa-bench-mfa-bus";
/// The SSH phase's services (and sshd program names): public key alone,
/// then a code with Google Authenticator, then a code with pam_mfa.
const SERVICE_SSH_KEY: &str = "mfa-bench-ssh-key";
const SERVICE_SSH_GA: &str = "mfa-bench-ssh-ga";
const SERVICE_SSH_MFA: &str = "mfa-bench-ssh-mfa";

/// Latency phase: rounds x block logins per service, after a warm-up.
const LAT_ROUNDS: usize = 10;
const LAT_BLOCK: usize = 100;
const WARMUP: usize = 20;
/// Throughput rounds through PAM (each service once per round).
const TP_ROUNDS: usize = 3;
/// Logins per worker of pam_mfa per round, at most (8 x this < budget).
const TP_MFA_PER_WORKER: usize = 1150;
/// Google Authenticator logins per worker per round, at most.
const TP_GA_PER_WORKER: usize = 1000;
/// The first part of each round is ramp-up and not counted.
const TP_RAMP_NS: u64 = 500_000_000;
/// Fairness: root's logins while one user floods mfad, the flood's length
/// and connections.
const FAIR_LOGINS: usize = 400;
const FLOOD_SECONDS: u64 = 6;
const FLOOD_CONNECTIONS: usize = 8;
/// Daemon-alone runs, logins per run, and how many of them are warm-up.
const DA_RUNS: usize = 3;
const DA_LOGINS: usize = 9000;
const DA_SKIP: usize = 1000;
/// Users enrolled on the PostgreSQL-backed daemons, and logins per daemon.
const FLEET_USERS: usize = 10_000;
const PG_LOGINS: usize = 5000;
/// Full SSH logins per method (after warm-up ones): about 30 s in all.
const SSH_LOGINS: usize = 40;
const SSH_WARMUP: usize = 2;
/// The SSH phase's name in the list of load averages.
pub const SSH_PHASE: &str = "6: SSH logins";
/// O(1): rounds of `block` sequential logins on each mfad.
const SCALE_ROUNDS: usize = 5;
const SCALE_BLOCK: usize = 100;

/// mfad B (the big one), its bus, and how many sessions it holds.
struct Big {
    mfad: Mfad,
    bus: Bus,
    sessions: usize,
}

impl Big {
    /// Restarts mfad when `n` more logins would pass the session budget.
    fn budget(&mut self, n: usize) -> Result<()> {
        if self.sessions + n > SESSION_BUDGET {
            self.fresh()?;
        }
        self.sessions += n;
        Ok(())
    }

    fn fresh(&mut self) -> Result<()> {
        self.mfad.restart()?;
        self.sessions = 0;
        Ok(())
    }

    /// CPU used so far: (mfad, dbus-daemon, this process, waited children).
    fn cpu(&self) -> [u64; 4] {
        [
            self.mfad.pid().map_or(0, world::cpu_ns),
            self.bus.pid().map_or(0, world::cpu_ns),
            world::cpu_ns(std::process::id()),
            world::children_cpu_ns(),
        ]
    }

    /// CPU used since `before` (from [`Big::cpu`]) on `logins` logins; the
    /// clients are this process's threads or its waited-for children.
    fn cpu_since(&self, before: [u64; 4], logins: usize, children: bool) -> Cpu {
        let now = self.cpu();
        let d = |i: usize| now[i].saturating_sub(before[i]);
        Cpu {
            logins: logins as u64,
            clients: if children { d(3) } else { d(2) },
            mfad: d(0),
            bus: d(1),
            sink: if children { d(2) } else { 0 },
        }
    }
}

pub fn run(o: &Options) -> Result<String> {
    crate::require_root()?;
    totp::self_check()?;
    let exe = std::env::current_exe().map_err(io("cannot find this program"))?;
    let ga_module = find_ga_module()?;
    let paths = &o.paths;
    for (what, p) in [("mfad", &paths.mfad), ("the PAM module", &paths.module)] {
        if !p.is_file() {
            return Err(Error::Setup(format!(
                "{what} is missing at {} (cargo build --release)",
                p.display()
            )));
        }
    }
    let started = Instant::now();
    let mut r = Results {
        users: o.users,
        small: SMALL,
        seconds: o.seconds,
        machine: machine(&paths.dir),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        ..Results::default()
    };

    let mounts = Mounts::new(paths)?;
    let bus_a = Bus::start(paths, &paths.dir.join("a"))?;
    let mfad_a = Mfad::start(paths, &paths.dir.join("a"), &bus_a)?;
    let bus_b = Bus::start(paths, &paths.dir.join("b"))?;
    let mut big = Big {
        mfad: Mfad::start(paths, &paths.dir.join("b"), &bus_b)?,
        bus: bus_b,
        sessions: 0,
    };

    // --- enrollment ---------------------------------------------------------
    let names: Vec<String> = (0..o.users).map(|i| format!("mfab{i:07}")).collect();
    mounts.set_users(0, &names[..SMALL])?;
    let small = daemon::enroll(&mfad_a.address, &names[..SMALL], ENROLL_CLIENTS)?;
    let t = Instant::now();
    let mut enrolled = Vec::with_capacity(o.users);
    for (k, chunk) in names.chunks(ENROLL_BATCH).enumerate() {
        mounts.set_users(k * ENROLL_BATCH, chunk)?;
        enrolled.extend(daemon::enroll(&big.mfad.address, chunk, ENROLL_CLIENTS)?);
        let done = enrolled.len();
        if done % 20_000 == 0 || done == o.users {
            eprintln!(
                "mfa-bench: enrolled {done} of {} users ({:.0}/s)",
                o.users,
                done as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    r.enroll_secs = t.elapsed().as_secs_f64();
    settle();
    r.fsync_ns = fsync_probe(&paths.dir)?;
    // State is kept by UID: every login looks its user up by name, so all
    // the users stay in the private passwd while mfad runs (both daemons
    // pay the same lookup).
    mounts.set_users(0, &names)?;
    r.mem_enrolled = big.mfad.memory()?;
    r.db_bytes = big.mfad.db_bytes();
    big.fresh()?;
    r.mem_idle = big.mfad.memory()?.0;

    let (users_a, last_a): (Vec<User>, Vec<u64>) = small.into_iter().unzip();
    let (users_b, last_b): (Vec<User>, Vec<u64>) = enrolled.into_iter().unzip();
    let mut pool_a = Pool::new(shuffled(users_a.len()), last_a);
    let order_b = shuffled(users_b.len());
    let ga_order: Vec<usize> = order_b.iter().copied().take(GA_USERS).collect();
    let mut pool_b = Pool::new(order_b, last_b);
    let mut pool_ga = Pool::new(ga_order.clone(), vec![0; users_b.len()]);

    // --- 4b: one login at a time, 1,000 vs N users ---------------------------
    r.load("4b: 1,000 vs all users");
    eprintln!(
        "mfa-bench: login latency on mfad with {SMALL} and with {} users",
        o.users
    );
    let (mut at_small, mut at_big) = (Tally::default(), Tally::default());
    for round in 0..SCALE_ROUNDS {
        for which in 0..2 {
            if (which + round) % 2 == 0 {
                let tickets = pool_a.take(SCALE_BLOCK)?;
                let t = daemon::sequential(&mfad_a.socket, &users_a, &tickets)?;
                pool_a.settle(&tickets, &t.used);
                at_small.merge(t);
            } else {
                big.budget(SCALE_BLOCK)?;
                let tickets = pool_b.take(SCALE_BLOCK)?;
                let t = daemon::sequential(&big.mfad.socket, &users_b, &tickets)?;
                pool_b.settle(&tickets, &t.used);
                at_big.merge(t);
            }
        }
    }
    at_small.check("logins on the small mfad")?;
    at_big.check("logins on the big mfad")?;
    r.scale_small = at_small.samples_ns;
    r.scale_big = at_big.samples_ns;
    drop(mfad_a);
    drop(bus_a);

    // --- PAM services ---------------------------------------------------------
    let ga_dir = paths.dir.join("ga");
    fs::create_dir(&ga_dir).map_err(io_at("cannot create", &ga_dir))?;
    for &i in &ga_order {
        let u = &users_b[i];
        // No RATE_LIMIT line: Google Authenticator's own limit (3 logins per
        // 30 s) is off. DISALLOW_REUSE is its replay protection, like mfad's,
        // and makes it rewrite (and fsync) the file after each login.
        let text = format!(
            "{}\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n\" WINDOW_SIZE 3\n",
            u.base32
        );
        world::write_private(&ga_dir.join(&u.name), &text)?;
    }
    // Every stack has an account phase; pam_mfa's is its own guard, as
    // installed (`account required pam_mfa.so`). The SSH phase uses the
    // same stacks.
    let permit_stack = "auth required pam_permit.so\naccount required pam_permit.so";
    let ga_stack = format!(
        "auth required {} secret={}/${{USER}} user=root\naccount required pam_permit.so",
        ga_module.display(),
        ga_dir.display()
    );
    mounts.pam_service(SERVICE_PERMIT, permit_stack)?;
    mounts.pam_service(SERVICE_GA, &ga_stack)?;
    let socket = big.mfad.socket.trim_start_matches("socket:").to_string();
    let mfa_stack = |arg: &str| {
        format!(
            "auth required {m} {arg}\naccount required {m} {arg}",
            m = paths.module.display()
        )
    };
    for (service, arg) in [
        (SERVICE_MFA, format!("socket={socket}")),
        (SERVICE_MFA_BUS, format!("bus={}", big.mfad.address)),
    ] {
        mounts.pam_service(service, &mfa_stack(&arg))?;
    }
    let permit_users: Vec<JobUser> = users_b
        .iter()
        .take(50)
        .enumerate()
        .map(|(idx, u)| JobUser {
            idx,
            name: u.name.clone(),
            secret: String::new(),
            last: 0,
        })
        .collect();

    // --- 1: PAM latency, one process, services interleaved ------------------
    settle();
    r.load("1: PAM latency");
    eprintln!("mfa-bench: PAM latency (pam_permit, pam_google_authenticator, pam_mfa)");
    let per_service = WARMUP + LAT_ROUNDS * LAT_BLOCK;
    big.budget(2 * per_service)?;
    let ga_tickets = pool_ga.take(per_service)?;
    let mfa_tickets = pool_b.take(per_service)?;
    let bus_tickets = pool_b.take(per_service)?;
    let input = WorkerInput {
        mode: Mode::Latency,
        jobs: vec![
            permit_job(&permit_users),
            code_job(SERVICE_GA, &users_b, &ga_tickets),
            code_job(SERVICE_MFA, &users_b, &mfa_tickets),
            code_job(SERVICE_MFA_BUS, &users_b, &bus_tickets),
        ],
        warmup: WARMUP,
        rounds: LAT_ROUNDS,
        block: LAT_BLOCK,
    };
    let mut t = pam::run_latency(&exe, &input)?.into_iter();
    let (permit, ga, mfa, mfa_bus) = (
        t.next().unwrap_or_default(),
        t.next().unwrap_or_default(),
        t.next().unwrap_or_default(),
        t.next().unwrap_or_default(),
    );
    pool_ga.settle(&ga_tickets, &ga.used);
    pool_b.settle(&mfa_tickets, &mfa.used);
    pool_b.settle(&bus_tickets, &mfa_bus.used);
    permit.check("pam_permit")?;
    ga.check("pam_google_authenticator")?;
    mfa.check("pam_mfa")?;
    mfa_bus.check("pam_mfa over the bus")?;
    r.pam_latency = Services {
        permit: permit.samples_ns,
        ga: ga.samples_ns,
        mfa: mfa.samples_ns,
        mfa_bus: mfa_bus.samples_ns,
    };

    // --- 2: PAM throughput, 8 worker processes --------------------------------
    settle();
    r.load("2: PAM, 8 workers");
    for round in 0..TP_ROUNDS {
        eprintln!(
            "mfa-bench: PAM with {WORKERS} workers, round {} of {TP_ROUNDS}",
            round + 1
        );
        let mut rates = [0.0f64; 3];
        for k in 0..3 {
            let svc = (k + round) % 3;
            let (inputs, tickets) = match svc {
                0 => (
                    (0..WORKERS)
                        .map(|_| throughput_input(permit_job(&permit_users)))
                        .collect::<Vec<_>>(),
                    Vec::new(),
                ),
                1 => {
                    let tickets = pool_ga.take(WORKERS * TP_GA_PER_WORKER)?;
                    let inputs = tickets
                        .chunks(TP_GA_PER_WORKER)
                        .map(|c| throughput_input(code_job(SERVICE_GA, &users_b, c)))
                        .collect();
                    (inputs, tickets)
                }
                _ => {
                    big.fresh()?;
                    big.budget(WORKERS * TP_MFA_PER_WORKER)?;
                    let tickets = pool_b.take(WORKERS * TP_MFA_PER_WORKER)?;
                    let inputs = tickets
                        .chunks(TP_MFA_PER_WORKER)
                        .map(|c| throughput_input(code_job(SERVICE_MFA, &users_b, c)))
                        .collect();
                    (inputs, tickets)
                }
            };
            let before = big.cpu();
            let (tallies, go) = pam::run_throughput(&exe, &inputs, o.seconds)?;
            let logins: usize = tallies.iter().map(|t| t.ok + t.failed).sum();
            r.pam_cpu[svc].add(big.cpu_since(before, logins, true));
            let mut all = Tally::default();
            let mut end = u64::MAX;
            for t in tallies {
                end = end.min(t.done_at_ns.iter().copied().max().unwrap_or(0));
                all.merge(t);
            }
            match svc {
                1 => pool_ga.settle(&tickets, &all.used),
                2 => pool_b.settle(&tickets, &all.used),
                _ => {}
            }
            let name = ["pam_permit", "pam_google_authenticator", "pam_mfa"][svc];
            all.check(&format!("{name} with {WORKERS} workers"))?;
            rates[svc] =
                stats::rate_in(&all.done_at_ns, go + TP_RAMP_NS, end).ok_or_else(|| {
                    Error::Protocol(format!(
                        "{name} with {WORKERS} workers: too few logins to measure a rate"
                    ))
                })?;
        }
        r.pam_rounds.push(rates);
    }

    // --- 3: mfad alone, 64 clients ----------------------------------------------
    settle();
    r.load("3: mfad alone");
    for run in 0..DA_RUNS {
        eprintln!(
            "mfa-bench: mfad alone, {CLIENTS} clients, run {} of {DA_RUNS}",
            run + 1
        );
        big.fresh()?;
        big.budget(DA_LOGINS)?;
        let tickets = pool_b.take(DA_LOGINS)?;
        let before = big.cpu();
        let t = daemon::concurrent(&big.mfad.socket, &users_b, &tickets, CLIENTS)?;
        r.daemon_cpu
            .add(big.cpu_since(before, t.ok + t.failed, false));
        pool_b.settle(&tickets, &t.used);
        t.check(&format!("mfad alone with {CLIENTS} clients"))?;
        let rate = stats::rate(&t.done_at_ns, DA_SKIP, 2 * CLIENTS)
            .ok_or_else(|| Error::Protocol("mfad alone: too few logins for a rate".into()))?;
        r.daemon_runs.push(rate);
        r.daemon_samples.extend(t.samples_ns);
    }
    r.mem_end = big.mfad.memory()?;

    // --- 3, for comparison: the same clients on the bus -------------------------
    eprintln!("mfa-bench: mfad alone, {CLIENTS} clients on the bus");
    big.fresh()?;
    big.budget(DA_LOGINS)?;
    let tickets = pool_b.take(DA_LOGINS)?;
    let before = big.cpu();
    let t = daemon::concurrent(&big.mfad.address, &users_b, &tickets, CLIENTS)?;
    r.daemon_bus_cpu = big.cpu_since(before, t.ok + t.failed, false);
    pool_b.settle(&tickets, &t.used);
    t.check(&format!("mfad alone with {CLIENTS} clients on the bus"))?;
    r.daemon_bus = stats::rate(&t.done_at_ns, DA_SKIP, 2 * CLIENTS)
        .ok_or_else(|| Error::Protocol("mfad on the bus: too few logins for a rate".into()))?;

    // --- 5: fairness: root's logins while a user floods mfad --------------------
    settle();
    r.load("5: fairness");
    eprintln!("mfa-bench: root's logins while one user floods mfad with Account calls");
    big.fresh()?;
    big.budget(FAIR_LOGINS)?;
    let (samples, flood) = fairness(&exe, &big, &users_b, &mut pool_b)?;
    r.fair_samples = samples;
    r.fair_flood = flood;

    // --- 6: full SSH logins ------------------------------------------------------
    settle();
    r.load(SSH_PHASE);
    eprintln!("mfa-bench: full SSH logins: public key alone, then a code with Google Authenticator, with pam_mfa");
    big.fresh()?;
    // One user more for each code method: the wrong-code check.
    let n = SSH_WARMUP + SSH_LOGINS + 1;
    big.budget(n)?;
    let tickets = vec![Vec::new(), pool_ga.take(n)?, pool_b.take(n)?];
    let bench = ssh::Bench::start(
        &paths.dir,
        &mounts,
        vec![
            ssh::Method {
                service: SERVICE_SSH_KEY,
                stack: permit_stack.into(),
                code: false,
            },
            ssh::Method {
                service: SERVICE_SSH_GA,
                stack: ga_stack.clone(),
                code: true,
            },
            ssh::Method {
                service: SERVICE_SSH_MFA,
                stack: mfa_stack(&format!("socket={socket}")),
                code: true,
            },
        ],
    )?;
    bench.check_refusal(&users_b, &tickets)?;
    let t = bench.run(&users_b, &tickets, SSH_LOGINS, SSH_WARMUP);
    drop(bench);
    let mut t = t?.into_iter();
    let (key, ga, mfa) = (
        t.next().unwrap_or_default(),
        t.next().unwrap_or_default(),
        t.next().unwrap_or_default(),
    );
    pool_ga.settle(&tickets[1], &ga.used);
    pool_b.settle(&tickets[2], &mfa.used);
    key.check("SSH logins with the public key alone")?;
    ga.check("SSH logins with pam_google_authenticator")?;
    mfa.check("SSH logins with pam_mfa")?;
    r.ssh = Services {
        permit: key.samples_ns,
        ga: ga.samples_ns,
        mfa: mfa.samples_ns,
        mfa_bus: Vec::new(),
    };

    // --- 3, for comparison: the same with the database on a tmpfs -------------
    eprintln!("mfa-bench: mfad alone, {CLIENTS} clients, database on tmpfs (no fsync cost)");
    big.mfad.stop();
    let ram = paths.dir.join("ram");
    world::tmpfs(&ram)?;
    world::copy_dir(&big.mfad.state_dir, &ram.join("state"))?;
    let mut ram_mfad = Mfad::start(paths, &ram, &big.bus)?;
    let tickets = pool_b.take(DA_LOGINS)?;
    let before = [
        ram_mfad.pid().map_or(0, world::cpu_ns),
        big.bus.pid().map_or(0, world::cpu_ns),
        world::cpu_ns(std::process::id()),
    ];
    let t = daemon::concurrent(&ram_mfad.socket, &users_b, &tickets, CLIENTS)?;
    pool_b.settle(&tickets, &t.used);
    t.check(&format!(
        "mfad alone with {CLIENTS} clients, database on tmpfs"
    ))?;
    r.daemon_ram_cpu = Cpu {
        logins: (t.ok + t.failed) as u64,
        mfad: ram_mfad
            .pid()
            .map_or(0, world::cpu_ns)
            .saturating_sub(before[0]),
        bus: big
            .bus
            .pid()
            .map_or(0, world::cpu_ns)
            .saturating_sub(before[1]),
        clients: world::cpu_ns(std::process::id()).saturating_sub(before[2]),
        sink: 0,
    };
    r.daemon_ram = stats::rate(&t.done_at_ns, DA_SKIP, 2 * CLIENTS)
        .ok_or_else(|| Error::Protocol("mfad on tmpfs: too few logins for a rate".into()))?;
    ram_mfad.stop();
    drop(ram_mfad);

    fleet(paths, &mounts, &names, &mut r)?;

    r.syslog_messages = mounts
        .syslog_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    r.end_phase();
    r.total_secs = started.elapsed().as_secs_f64();
    Ok(crate::report::render(&r))
}

/// Many servers: `FLEET_USERS` users in a private PostgreSQL server, then
/// verifications per second through one mfad on it and through two (on
/// two buses) sharing it.
fn fleet(paths: &Paths, mounts: &Mounts, names: &[String], r: &mut Results) -> Result<()> {
    r.load("PostgreSQL");
    eprintln!("mfa-bench: mfad on PostgreSQL, one daemon and two");
    let pg = world::Postgres::start(&paths.dir.join("pg"))?;
    let bus_p = Bus::start(paths, &paths.dir.join("p1"))?;
    let bus_q = Bus::start(paths, &paths.dir.join("p2"))?;
    let mut on_pg = Mfad::start_with(
        paths,
        &paths.dir.join("p1"),
        &bus_p,
        &pg.daemon_toml(),
        &pg.store_toml(),
    )?;
    let n = FLEET_USERS.min(names.len());
    let mut fleet = Vec::with_capacity(n);
    for (k, chunk) in names[..n].chunks(ENROLL_BATCH).enumerate() {
        mounts.set_users(k * ENROLL_BATCH, chunk)?;
        fleet.extend(daemon::enroll(&on_pg.address, chunk, ENROLL_CLIENTS)?);
    }
    // Logins look the users up now that state is kept by UID.
    mounts.set_users(0, &names[..n])?;
    let (users_p, last_p): (Vec<User>, Vec<u64>) = fleet.into_iter().unzip();
    let mut pool_p = Pool::new(shuffled(users_p.len()), last_p);
    settle();
    let tickets = pool_p.take(PG_LOGINS)?;
    let t = daemon::concurrent(&on_pg.socket, &users_p, &tickets, CLIENTS)?;
    pool_p.settle(&tickets, &t.used);
    t.check("mfad on PostgreSQL")?;
    r.pg_one = stats::rate(&t.done_at_ns, DA_SKIP, 2 * CLIENTS)
        .ok_or_else(|| Error::Protocol("mfad on PostgreSQL: too few logins for a rate".into()))?;
    // A second daemon on another bus, the same database; each gets half
    // the clients, both at once.
    on_pg.restart()?;
    let second = Mfad::start_with(
        paths,
        &paths.dir.join("p2"),
        &bus_q,
        &pg.daemon_toml(),
        &pg.store_toml(),
    )?;
    let tickets = pool_p.take(2 * PG_LOGINS)?;
    let (first_half, second_half) = tickets.split_at(PG_LOGINS);
    let (ta, tb) = std::thread::scope(|s| {
        let a = s.spawn(|| daemon::concurrent(&on_pg.socket, &users_p, first_half, CLIENTS / 2));
        let b = s.spawn(|| daemon::concurrent(&second.socket, &users_p, second_half, CLIENTS / 2));
        (a.join(), b.join())
    });
    let panicked = || Error::Protocol("a client thread panicked".into());
    let (ta, tb) = (ta.map_err(|_| panicked())??, tb.map_err(|_| panicked())??);
    pool_p.settle(first_half, &ta.used);
    pool_p.settle(second_half, &tb.used);
    ta.check("the first of two mfad on PostgreSQL")?;
    tb.check("the second of two mfad on PostgreSQL")?;
    let mut done: Vec<u64> = ta.done_at_ns.clone();
    done.extend(&tb.done_at_ns);
    r.pg_two = stats::rate(&done, DA_SKIP, 2 * CLIENTS).ok_or_else(|| {
        Error::Protocol("two mfad on PostgreSQL: too few logins for a rate".into())
    })?;
    r.pg_users = n;
    drop((second, on_pg, bus_p, bus_q, pg));
    mounts.set_users(0, &[])?;
    Ok(())
}

/// Root's logins over the login socket, one at a time, while the first
/// benchmark user floods mfad on the bus from `FLOOD_CONNECTIONS`
/// connections: the login times, and the flood's (calls, refused).
fn fairness(
    exe: &Path,
    big: &Big,
    users: &[User],
    pool: &mut Pool,
) -> Result<(Vec<u64>, (u64, u64))> {
    let uid = world::UID_BASE;
    let child = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(exe)
        .args([
            "flood",
            &big.mfad.address,
            &FLOOD_SECONDS.to_string(),
            &FLOOD_CONNECTIONS.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(io("cannot start the flood"))?;
    // Let it reach full speed.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let tickets = pool.take(FAIR_LOGINS)?;
    let t = daemon::sequential(&big.mfad.socket, users, &tickets);
    let out = child.wait_with_output().map_err(io("the flood"))?;
    let t = t?;
    pool.settle(&tickets, &t.used);
    t.check("root's logins during the flood")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let flood = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    Ok((t.samples_ns, flood))
}

/// Lets the disk write back what the setup wrote (the database of the
/// enrollments, Google Authenticator's files) before a measurement, whose
/// fsyncs would otherwise wait for it.
fn settle() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::thread::sleep(std::time::Duration::from_secs(1));
}

fn permit_job(users: &[JobUser]) -> Job {
    Job {
        service: SERVICE_PERMIT.into(),
        prompts: false,
        reuse: true,
        users: users.to_vec(),
    }
}

fn code_job(service: &str, users: &[User], tickets: &[Ticket]) -> Job {
    Job {
        service: service.into(),
        prompts: true,
        reuse: false,
        users: tickets
            .iter()
            .map(|t| JobUser {
                idx: t.idx,
                name: users[t.idx].name.clone(),
                secret: users[t.idx].base32.clone(),
                last: t.last,
            })
            .collect(),
    }
}

fn throughput_input(job: Job) -> WorkerInput {
    WorkerInput {
        mode: Mode::Throughput,
        jobs: vec![job],
        warmup: 3,
        rounds: 0,
        block: 0,
    }
}

/// The median time of appending 4 KiB to a file in `dir` and fsyncing it
/// (a WAL commit's disk cost), over 200 tries.
fn fsync_probe(dir: &Path) -> Result<u64> {
    use std::io::Write as _;
    let path = dir.join("fsync-probe");
    let mut f = fs::File::create(&path).map_err(io_at("cannot create", &path))?;
    let block = [0u8; 4096];
    let mut samples = Vec::with_capacity(200);
    for _ in 0..200 {
        f.write_all(&block).map_err(io_at("cannot write", &path))?;
        let t = Instant::now();
        f.sync_data().map_err(io_at("cannot fsync", &path))?;
        samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    drop(f);
    fs::remove_file(&path).map_err(io_at("cannot remove", &path))?;
    Ok(stats::median(&samples))
}

/// pam_google_authenticator.so in one of PAM's module directories.
fn find_ga_module() -> Result<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib/security"),
    ];
    for base in ["/lib", "/usr/lib"] {
        if let Ok(rd) = fs::read_dir(base) {
            for e in rd.flatten() {
                dirs.push(e.path().join("security"));
            }
        }
    }
    dirs.into_iter()
        .map(|d| d.join("pam_google_authenticator.so"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Setup(
                "pam_google_authenticator.so not found: install libpam-google-authenticator \
                 (scripts/bench-deps.sh does)"
                    .into(),
            )
        })
}

/// One line about the machine: CPUs, load, and the disk under test.
fn machine(dir: &Path) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!(
        "{cpus} CPUs ({model}), load average {load} at start; state on {} ({})",
        fs_type(dir),
        dir.display()
    )
}

/// The file system type of `dir`, by statfs magic.
fn fs_type(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return "?".into();
    };
    // SAFETY: statfs is plain data; zeroed is a valid value to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    match st.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs (fsync costs nothing: not a durable measurement)".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("file system 0x{other:x}"),
    }
}
