//! The report: what was measured, then each target with PASS or MISS.

use std::fmt::Write as _;

use crate::run::{CLIENTS, SSH_PHASE, WORKERS};
use crate::stats::{median, ms, ms_signed, p90};

/// Per-login durations (ns) of the three PAM services.
#[derive(Debug, Default, Clone)]
pub struct Services {
    pub permit: Vec<u64>,
    pub ga: Vec<u64>,
    /// Over the login socket (the default), and over the bus.
    pub mfa: Vec<u64>,
    pub mfa_bus: Vec<u64>,
}

/// CPU time spent on a number of logins, by process, in ns.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu {
    pub logins: u64,
    /// PAM worker processes, or the bus clients (this process).
    pub clients: u64,
    pub mfad: u64,
    pub bus: u64,
    /// This process while PAM workers run: the syslog sink.
    pub sink: u64,
}

impl Cpu {
    pub fn add(&mut self, o: Cpu) {
        self.logins += o.logins;
        self.clients += o.clients;
        self.mfad += o.mfad;
        self.bus += o.bus;
        self.sink += o.sink;
    }

    /// Microseconds per login of `ns`.
    fn us(&self, ns: u64) -> String {
        format!("{:.0} us", ns as f64 / 1000.0 / self.logins.max(1) as f64)
    }

    fn total(&self) -> u64 {
        self.clients + self.mfad + self.bus + self.sink
    }
}

#[derive(Debug, Default, Clone)]
pub struct Results {
    pub machine: String,
    pub cpus: usize,
    pub users: usize,
    pub small: usize,
    pub seconds: f64,
    pub enroll_secs: f64,
    /// Median fsync of a 4 KiB append in the temp dir, before measuring.
    pub fsync_ns: u64,
    pub db_bytes: u64,
    /// (VmRSS, VmHWM) of the mfad that enrolled everyone.
    pub mem_enrolled: (u64, u64),
    /// VmRSS of a fresh mfad over the full database.
    pub mem_idle: u64,
    /// (VmRSS, VmHWM) of the mfad after the last daemon-alone run.
    pub mem_end: (u64, u64),
    pub pam_latency: Services,
    /// Logins/s per round: [pam_permit, pam_google_authenticator, pam_mfa].
    pub pam_rounds: Vec<[f64; 3]>,
    /// CPU per service over all rounds: [pam_permit, GA, pam_mfa].
    pub pam_cpu: [Cpu; 3],
    pub daemon_cpu: Cpu,
    /// The same clients on the bus instead of the login socket.
    pub daemon_bus: f64,
    pub daemon_bus_cpu: Cpu,
    /// Root's login times while a user floods mfad; the flood's (calls,
    /// refused) (0 calls: it was stopped before it printed).
    pub fair_samples: Vec<u64>,
    pub fair_flood: (u64, u64),
    /// Each phase's load, in order.
    pub loads: Vec<PhaseLoad>,
    /// When the phase under way began: (instant, the machine's busy CPU,
    /// the benchmark's CPU), in ns.
    pub phase_start: Option<(std::time::Instant, u64, u64)>,
    /// The same with the database on a tmpfs: rate and CPU.
    pub daemon_ram: f64,
    /// Verifications per second with the state in PostgreSQL: one mfad,
    /// then two (on two buses) sharing the database; `pg_users` enrolled.
    pub pg_one: f64,
    pub pg_two: f64,
    pub pg_users: usize,
    pub daemon_ram_cpu: Cpu,
    pub syslog_messages: u64,
    pub daemon_runs: Vec<f64>,
    pub daemon_samples: Vec<u64>,
    pub scale_small: Vec<u64>,
    pub scale_big: Vec<u64>,
    /// Full SSH logins: `permit` is the public key alone (the floor), `ga`
    /// and `mfa` the key then a code; `mfa_bus` is not used.
    pub ssh: Services,
    pub total_secs: f64,
}

/// What else ran during a phase. The load average counts the benchmark's
/// own work (the phase before included), so it says little; the CPU that
/// everything outside the benchmark used during the phase (other
/// programs, kernel threads, the hypervisor's other guests) says whether
/// the phase's figures can be trusted.
#[derive(Debug, Clone, Default)]
pub struct PhaseLoad {
    pub name: String,
    /// The 1-minute load average as the phase began.
    pub load: f64,
    /// CPUs used on average by everything outside the benchmark during
    /// the phase (None: not measured).
    pub others: Option<f64>,
}

/// Above this many CPUs used by others, on average, a phase is "busy".
pub const BUSY_OTHERS: f64 = 0.25;

impl PhaseLoad {
    pub fn busy(&self) -> bool {
        self.others.is_some_and(|o| o > BUSY_OTHERS)
    }
}

impl Results {
    fn phase(&self, name: &str) -> Option<&PhaseLoad> {
        self.loads.iter().find(|p| p.name == name)
    }

    /// Ends the phase under way, if any, and begins phase `name`.
    pub fn load(&mut self, name: &str) {
        self.end_phase();
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().and_then(|x| x.parse().ok()))
            .unwrap_or(f64::NAN);
        self.loads.push(PhaseLoad {
            name: name.to_string(),
            load,
            others: None,
        });
        self.phase_start = Some((
            std::time::Instant::now(),
            crate::world::machine_busy_ns(),
            crate::world::namespace_cpu_ns(),
        ));
    }

    /// Ends the phase under way: what others used during it.
    pub fn end_phase(&mut self) {
        let Some((at, machine, own)) = self.phase_start.take() else {
            return;
        };
        let secs = at.elapsed().as_secs_f64();
        let machine = crate::world::machine_busy_ns().saturating_sub(machine);
        let own = crate::world::namespace_cpu_ns().saturating_sub(own);
        if let Some(p) = self.loads.last_mut().filter(|_| secs > 0.0) {
            p.others = Some(machine.saturating_sub(own) as f64 / 1e9 / secs);
        }
    }
}

/// The CPUs others used during a phase, as printed.
fn others(p: &PhaseLoad) -> String {
    p.others.map_or("?".into(), |o| format!("{o:.2} CPU"))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

fn median_f(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// One target line.
struct Target {
    id: &'static str,
    what: String,
    measured: String,
    pass: bool,
}

pub fn render(r: &Results) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\nmfa benchmarks (make bench)");
    let _ = writeln!(
        o,
        "machine: {}; fsync of a 4 KiB append there: median {}",
        r.machine,
        ms(r.fsync_ns)
    );
    let _ = writeln!(
        o,
        "mfad: release build, stock settings (window 1, SQLite WAL, accepts under a durable step mark); \
         {} users enrolled in {:.0} s ({:.0}/s), database {}",
        r.users,
        r.enroll_secs,
        r.users as f64 / r.enroll_secs.max(0.001),
        mb(r.db_bytes)
    );

    // 1. PAM latency.
    let l = &r.pam_latency;
    let floor = median(&l.permit);
    let added = |v: &[u64]| median(v) as i64 - floor as i64;
    let (ga_added, mfa_added) = (added(&l.ga), added(&l.mfa));
    let _ = writeln!(
        o,
        "\n1. One PAM login (pam_start + pam_authenticate with a valid code + pam_acct_mgmt + \
         pam_end), one process, services interleaved, {} logins each:",
        l.permit.len()
    );
    let _ = writeln!(
        o,
        "   {:<28}{:>12}{:>12}{:>14}",
        "service", "median", "p90", "added"
    );
    let _ = writeln!(
        o,
        "   {:<28}{:>12}{:>12}{:>14}",
        "pam_permit (floor)",
        ms(floor),
        ms(p90(&l.permit)),
        "-"
    );
    let bus_added = added(&l.mfa_bus);
    for (name, v, a) in [
        ("pam_google_authenticator", &l.ga, ga_added),
        ("pam_mfa (login socket)", &l.mfa, mfa_added),
        ("pam_mfa (bus)", &l.mfa_bus, bus_added),
    ] {
        let _ = writeln!(
            o,
            "   {:<28}{:>12}{:>12}{:>14}",
            name,
            ms(median(v)),
            ms(p90(v)),
            ms_signed(a)
        );
    }

    // 2. PAM throughput.
    let col = |k: usize| -> Vec<f64> { r.pam_rounds.iter().map(|x| x[k]).collect() };
    let (permit_tp, ga_tp, mfa_tp) = (median_f(&col(0)), median_f(&col(1)), median_f(&col(2)));
    let _ = writeln!(
        o,
        "\n2. Through PAM with {WORKERS} worker processes, {} rounds of {:.0} s (median of rounds):",
        r.pam_rounds.len(),
        r.seconds
    );
    let _ = writeln!(
        o,
        "   {:<28}{:>12}{:>12}   rounds",
        "service", "logins/s", "of floor"
    );
    for (k, name, tp) in [
        (0, "pam_permit (floor)", permit_tp),
        (1, "pam_google_authenticator", ga_tp),
        (2, "pam_mfa", mfa_tp),
    ] {
        let rounds: Vec<String> = col(k).iter().map(|x| format!("{x:.0}")).collect();
        let _ = writeln!(
            o,
            "   {:<28}{:>12.0}{:>11.0}%   {}",
            name,
            tp,
            100.0 * tp / permit_tp.max(1e-9),
            rounds.join(" ")
        );
    }

    let c = &r.pam_cpu;
    let _ = writeln!(
        o,
        "   CPU per login: pam_permit: workers {}; pam_google_authenticator: workers {}, \
         syslog sink {}; pam_mfa: workers {}, mfad {}, dbus-daemon {}, syslog sink {} \
         (total {}; {} CPUs)",
        c[0].us(c[0].clients),
        c[1].us(c[1].clients),
        c[1].us(c[1].sink),
        c[2].us(c[2].clients),
        c[2].us(c[2].mfad),
        c[2].us(c[2].bus),
        c[2].us(c[2].sink),
        c[2].us(c[2].total()),
        r.cpus
    );

    // 3. mfad alone.
    let da = median_f(&r.daemon_runs);
    let runs: Vec<String> = r.daemon_runs.iter().map(|x| format!("{x:.0}")).collect();
    let _ = writeln!(
        o,
        "\n3. mfad alone: {CLIENTS} clients on the login socket, each Login.Begin + Login.Answer with a valid code, \
         {} runs:\n   {da:.0} verifications/s (runs: {}); per login under this load: median {}, p90 {}",
        r.daemon_runs.len(),
        runs.join(", "),
        ms(median(&r.daemon_samples)),
        ms(p90(&r.daemon_samples))
    );
    let d = &r.daemon_cpu;
    let _ = writeln!(
        o,
        "   CPU per verification: mfad {}, dbus-daemon {}, the {CLIENTS} clients {} (total {}; {} CPUs)",
        d.us(d.mfad),
        d.us(d.bus),
        d.us(d.clients),
        d.us(d.total()),
        r.cpus
    );
    let d = &r.daemon_bus_cpu;
    let _ = writeln!(
        o,
        "   the same {CLIENTS} clients on the bus: {:.0} verifications/s; CPU per verification: \
         mfad {}, dbus-daemon {}, clients {}",
        r.daemon_bus,
        d.us(d.mfad),
        d.us(d.bus),
        d.us(d.clients)
    );
    let d = &r.daemon_ram_cpu;
    let _ = writeln!(
        o,
        "   for comparison, the database on a tmpfs (fsync costs nothing, not durable): {:.0}/s; \
         CPU per verification: mfad {}, dbus-daemon {}, clients {}",
        r.daemon_ram,
        d.us(d.mfad),
        d.us(d.bus),
        d.us(d.clients)
    );
    let _ = writeln!(
        o,
        "   many servers, the state in one PostgreSQL ({} users, durable, same machine): \
         one mfad {:.0}/s; two mfad on one database {:.0}/s together",
        r.pg_users, r.pg_one, r.pg_two
    );

    // 4. Scale.
    let (small_med, big_med) = (median(&r.scale_small), median(&r.scale_big));
    let ratio = big_med as f64 / small_med.max(1) as f64;
    let _ = writeln!(
        o,
        "\n4. mfad with {} users: resident {} at start, {} (peak {}) after the runs of 3; \
         the mfad that enrolled them all: {} (peak {})",
        r.users,
        mb(r.mem_idle),
        mb(r.mem_end.0),
        mb(r.mem_end.1),
        mb(r.mem_enrolled.0),
        mb(r.mem_enrolled.1)
    );
    let _ = writeln!(
        o,
        "   one client, one login at a time (Begin + Answer), users picked at random, {} logins each:\n   \
         {:>7} users: median {}, p90 {}\n   {:>7} users: median {}, p90 {}",
        r.scale_small.len(),
        r.small,
        ms(small_med),
        ms(p90(&r.scale_small)),
        r.users,
        ms(big_med),
        ms(p90(&r.scale_big))
    );

    // 6. SSH.
    let s = &r.ssh;
    let ssh_floor = median(&s.permit);
    let (ssh_ga, ssh_mfa) = (median(&s.ga), median(&s.mfa));
    let ssh_phase = r.phase(SSH_PHASE).cloned().unwrap_or_default();
    let ssh_load = others(&ssh_phase);
    let ssh_busy = if ssh_phase.busy() { ", busy" } else { "" };
    let _ = writeln!(
        o,
        "\n6. Full SSH logins (`ssh USER@127.0.0.1 true`: a new ssh and sshd session each, \
         the code through SSH_ASKPASS), one at a time, methods interleaved, {} logins each \
         (others used {ssh_load}{ssh_busy}):",
        s.permit.len()
    );
    let _ = writeln!(
        o,
        "   {:<28}{:>12}{:>12}{:>14}",
        "method", "median", "p90", "added"
    );
    for (name, v, floor) in [
        ("public key alone (floor)", &s.permit, true),
        ("key, then Google Auth.", &s.ga, false),
        ("key, then pam_mfa", &s.mfa, false),
    ] {
        let added = if floor {
            "-".to_string()
        } else {
            ms_signed(median(v) as i64 - ssh_floor as i64)
        };
        let _ = writeln!(
            o,
            "   {:<28}{:>12}{:>12}{:>14}",
            name,
            ms(median(v)),
            ms(p90(v)),
            added
        );
    }

    let _ = writeln!(
        o,
        "   (syslog: {} messages went to the benchmark's sink at /dev/log)",
        r.syslog_messages
    );

    let scale_note = if r.users < 100_000 { " *" } else { "" };
    let targets = [
        Target {
            id: "1a",
            what: "PAM: pam_mfa's added latency, median <= 1.0 ms".into(),
            measured: ms_signed(mfa_added),
            pass: mfa_added <= 1_000_000,
        },
        Target {
            id: "1b",
            what: "PAM: pam_mfa adds <= 50% of what pam_google_authenticator adds".into(),
            measured: format!(
                "{:.0}% ({} / {})",
                100.0 * mfa_added as f64 / (ga_added.max(1)) as f64,
                ms_signed(mfa_added),
                ms_signed(ga_added)
            ),
            pass: ga_added > 0 && mfa_added * 2 <= ga_added,
        },
        Target {
            id: "2",
            what: format!("PAM, {WORKERS} workers: pam_mfa >= 80% of pam_permit's logins/s"),
            measured: format!(
                "{:.0}% ({mfa_tp:.0} / {permit_tp:.0} per s)",
                100.0 * mfa_tp / permit_tp.max(1e-9)
            ),
            pass: mfa_tp >= 0.8 * permit_tp,
        },
        Target {
            id: "3",
            what: format!("mfad alone, {CLIENTS} clients: >= 5,000 verifications/s"),
            measured: format!("{da:.0}/s"),
            pass: da >= 5000.0,
        },
        Target {
            id: "5",
            what: "fairness: root's login p99 <= 10 ms while a user floods mfad".into(),
            measured: format!(
                "p99 {} (median {}; flood {} calls, {} refused)",
                ms(crate::stats::quantile(&r.fair_samples, 0.99)),
                ms(median(&r.fair_samples)),
                r.fair_flood.0,
                r.fair_flood.1
            ),
            // No flood measured is no pass.
            pass: r.fair_flood.0 > 0
                && !r.fair_samples.is_empty()
                && crate::stats::quantile(&r.fair_samples, 0.99) <= 10_000_000,
        },
        Target {
            id: "4a",
            what: format!("mfad resident memory <= 20 MB with {} users", r.users),
            measured: format!("{} peak{scale_note}", mb(r.mem_end.1)),
            pass: r.mem_end.1 <= 20 * 1024 * 1024,
        },
        Target {
            id: "4b",
            what: format!(
                "login O(1): median at {} users <= 1.25 x at {}",
                r.users, r.small
            ),
            measured: format!("{ratio:.2} x{scale_note}"),
            pass: ratio <= 1.25,
        },
        Target {
            id: "6",
            what: "SSH login, key then code: pam_mfa <= 1.1 x Google Authenticator".into(),
            measured: format!(
                "{:.2} x ({} / {}; others used {ssh_load}{ssh_busy})",
                ssh_mfa as f64 / ssh_ga.max(1) as f64,
                ms(ssh_mfa),
                ms(ssh_ga)
            ),
            pass: !s.mfa.is_empty() && !s.ga.is_empty() && ssh_mfa * 10 <= ssh_ga * 11,
        },
    ];
    let _ = writeln!(
        o,
        "\neach phase: the load average (1 min) as it began, which counts the benchmark's own \
         work, and the CPUs used on average during it by everything else ({} CPUs; \"busy\": \
         others used more than {BUSY_OTHERS} CPU, the phase's figures are not to be trusted):",
        r.cpus
    );
    let _ = writeln!(o, "   {:<28}{:>6}{:>10}", "phase", "load", "others");
    for p in &r.loads {
        let busy = if p.busy() { "  busy" } else { "" };
        let _ = writeln!(o, "   {:<28}{:>6.2}{:>10}{busy}", p.name, p.load, others(p));
    }
    let _ = writeln!(o, "\ntargets (docs/performance.md):");
    let _ = writeln!(o, "   {:<4}{:<66}{:<30} result", "", "target", "measured");
    for t in &targets {
        let _ = writeln!(
            o,
            "   {:<4}{:<66}{:<30} {}",
            t.id,
            t.what,
            t.measured,
            if t.pass { "PASS" } else { "MISS" }
        );
    }
    if !scale_note.is_empty() {
        let _ = writeln!(
            o,
            "   * measured with {} users, not the targets' 100,000 (BENCH_USERS)",
            r.users
        );
    }
    let missed: Vec<&str> = targets.iter().filter(|t| !t.pass).map(|t| t.id).collect();
    let _ = writeln!(
        o,
        "\nsummary: {} of {} targets met{}; run took {:.0} s",
        targets.len() - missed.len(),
        targets.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(", missed: {}", missed.join(", "))
        },
        r.total_secs
    );
    o
}
