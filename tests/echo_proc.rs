//! Running the real `echo_server` and `echo_client` binaries from a test,
//! and looking at the server process from outside (its lines, its open fds,
//! its memory and CPU time in `/proc`).
//!
//! Used by `tests/echo_binaries.rs` (the command line, the lines, signals)
//! and `tests/echo_hostile.rs` (hostile peers and the soak).
//!
//! The binaries are built from the test with `cargo build --example`, in the
//! test's own profile (`--release` when the tests are built without debug
//! assertions), so `cargo test` on a fresh clone needs nothing else. Nothing
//! here decides a test by timing: [`wait_until`] and the `wait_*` methods
//! wait for what is expected and fail only after the generous
//! [`HANG_GUARD`].

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a test waits for something it expects before failing.
pub const HANG_GUARD: Duration = Duration::from_secs(90);

/// The path of an example binary of the `examples` package (`echo_server`,
/// `echo_client`, `echo_raw` or `fetch`); they are built once per test process, in
/// the profile the test was built in.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--message-format=json",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args([
            "-p",
            "examples",
            "--example",
            "echo_server",
            "--example",
            "echo_client",
            "--example",
            "echo_raw",
            "--example",
            "fetch",
        ]);
        if !cfg!(debug_assertions) {
            // `cargo test --release`: measure the release server.
            cmd.arg("--release");
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "cargo build --example failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut found = Vec::new();
        for line in text.lines() {
            // {"reason":"compiler-artifact",...,"executable":"/path/echo_server",...}
            let Some(i) = line.find("\"executable\":\"") else {
                continue;
            };
            let rest = &line[i + 14..];
            let path = &rest[..rest.find('"').expect("closing quote")];
            let name = path.rsplit('/').next().unwrap_or(path).to_string();
            found.push((name, PathBuf::from(path)));
        }
        found
    });
    built
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("cargo did not build {name}: {built:?}"))
}

/// Waits for `pred`, polling every 10 ms; panics with `what` after the hang
/// guard.
pub fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !pred() {
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs an example binary to its end; returns its exit status, stdout and
/// stderr.
pub fn run(bin: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(binary(bin))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut e = String::new();
        stderr.read_to_string(&mut e).unwrap();
        e
    });
    stdout.read_to_string(&mut out).unwrap();
    let err = t.join().unwrap();
    let status = wait_exit(&mut child);
    (status, out, err)
}

/// Waits for a child to exit (hang guard: kill it and fail).
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the program did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number of lines of `lines` that start with `prefix`.
pub fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

/// Checks tevent's lines client by client: `new client fd N`, later
/// `Closing client fd N` immediately followed by that client's outcome,
/// never two open clients on one fd (fd numbers are reused after a close).
/// Returns the outcome lines, and the fds still open at the end.
pub fn check_client_lines(lines: &[String]) -> (Vec<String>, Vec<String>) {
    let mut open: Vec<String> = Vec::new();
    let mut outcomes = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if let Some(fd) = l.strip_prefix("new client fd ") {
            assert!(
                !open.iter().any(|o| o == fd),
                "fd {fd} opened twice: {lines:?}"
            );
            open.push(fd.to_string());
        } else if let Some(fd) = l.strip_prefix("Closing client fd ") {
            let at = open.iter().position(|o| o == fd);
            assert!(at.is_some(), "fd {fd} closed but not open: {lines:?}");
            open.remove(at.unwrap());
            if let Some(next) = lines.get(i + 1)
                && (next == "Client done" || next.starts_with("Client failed: "))
            {
                outcomes.push(next.clone());
                i += 1;
            }
        } else if l == "Client done" || l.starts_with("Client failed: ") {
            panic!("an outcome line not right after a Closing line: {lines:?}");
        }
        i += 1;
    }
    (outcomes, open)
}

// ---------------------------------------------------------------------------
// Resource limits and /proc.

/// Sets `RLIMIT_NOFILE` (soft and hard) of the program `cmd` will run to
/// `n`, in the child between `fork` and `exec`.
pub fn limit_nofile(cmd: &mut Command, n: u64) {
    // SAFETY: the closure runs in the forked child before exec; it only
    // calls setrlimit(2), which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            use rustix::process::{Resource, Rlimit, setrlimit};
            let lim = Rlimit {
                current: Some(n),
                maximum: Some(n),
            };
            setrlimit(Resource::Nofile, lim).map_err(std::io::Error::from)
        });
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (a test
/// that opens many sockets; the servers it starts inherit the limit).
/// Returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).expect("raise RLIMIT_NOFILE");
    }
    lim.current.unwrap_or(u64::MAX)
}

/// The resident set size of process `pid` (`VmRSS` in `/proc/PID/status`),
/// in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The CPU time process `pid` has used so far, user and system
/// (`utime + stime` of `/proc/PID/stat`), with its clock-tick resolution.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // "pid (comm) state ppid ...": comm may hold spaces; count after ')'.
    // Fields 14 and 15 (1-based) are utime and stime: the 12th and 13th
    // after the command.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// The number of fds process `pid` has open (entries of `/proc/PID/fd`).
pub fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// The fds process `pid` has open, by number, sorted. (A child inherits
/// the fds its parent did not mark close-on-exec, cargo's jobserver pipe
/// for instance, at numbers of their own: `RLIMIT_NOFILE` limits the
/// numbers, not the count.)
pub fn fd_numbers(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

// ---------------------------------------------------------------------------
// A running echo server.

/// A running `echo_server` and what it printed so far (stdout line by line,
/// stderr as text), read by two threads. Dropping it kills the process.
pub struct Server {
    child: Child,
    /// The port it listens on, from its `listening on port N` line.
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `echo_server ARGS` and waits for its `listening on port N`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, |_| {})
    }

    /// Like [`Server::start`], with `setup` applied to the command first
    /// (for example [`limit_nofile`]). If `setup` sends the server's stderr
    /// elsewhere than the pipe it starts with, [`Server::stderr`] stays
    /// empty.
    pub fn start_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = Command::new(binary("echo_server"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn echo_server");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (l, out) = (lines.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        // (Unless `setup` sent stderr elsewhere.)
        if let Some(err) = child.stderr.take() {
            let e = stderr.clone();
            std::thread::spawn(move || {
                let mut err = BufReader::new(err);
                let mut buf = String::new();
                while err.read_line(&mut buf).unwrap_or(0) > 0 {
                    e.lock().unwrap().push_str(&buf);
                    buf.clear();
                }
            });
        }
        let mut server = Server {
            child,
            port: 0,
            lines,
            stderr,
        };
        server.wait_for("the listening line", |l| !l.is_empty());
        let first = server.lines()[0].clone();
        server.port = first
            .strip_prefix("listening on port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("first line: {first:?}"));
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The lines it printed on stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The number of lines printed so far that start with `prefix` (without
    /// copying them: a server with 10 000 clients prints 30 000 lines).
    pub fn count(&self, prefix: &str) -> usize {
        count(&self.lines.lock().unwrap(), prefix)
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the lines printed so far satisfy `pred`; returns them.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        wait_until(what, || {
            seen = self.lines();
            pred(&seen)
        });
        seen
    }

    /// Waits until at least `n` lines start with `prefix`.
    pub fn wait_count(&self, prefix: &str, n: usize) {
        wait_until(&format!("{n} lines {prefix:?}"), || self.count(prefix) >= n);
    }

    /// A blocking connection to the server, with the hang guard as its read
    /// timeout.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("a pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Whether the process is still running, from a shared reference: it
    /// is not a zombie (not yet reaped, since only [`Server::exit`] and
    /// the drop reap it).
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|stat| Some(stat[stat.rfind(')')? + 2..].starts_with('Z')))
            == Some(false)
    }

    /// Like [`wait_until`], but fails at once if the server dies meanwhile.
    pub fn wait_alive(&self, what: &str, mut pred: impl FnMut() -> bool) {
        wait_until(what, || {
            assert!(self.alive(), "the server died waiting for {what}");
            pred()
        });
    }

    /// The number of fds the server has open.
    pub fn open_fds(&self) -> usize {
        open_fds(self.pid())
    }

    /// The fds the server has open, by number ([`fd_numbers`]).
    pub fn fd_numbers(&self) -> Vec<i32> {
        fd_numbers(self.pid())
    }

    /// Waits until the server has exactly `n` fds open (a closed socket
    /// leaves the table at the loop's next step).
    pub fn wait_fds(&self, n: usize) {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let now = self.open_fds();
            if now == n {
                return;
            }
            assert!(Instant::now() < deadline, "never saw {n} open fds: {now}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's resident set size, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// The CPU time the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// Waits for the server to exit after a signal; its status, its stdout
    /// lines and its stderr.
    pub fn exit(mut self) -> (ExitStatus, Vec<String>, String) {
        let status = wait_exit(&mut self.child);
        // The reader threads end (dropping their clones) at end of file.
        wait_until("the output read to its end", || {
            Arc::strong_count(&self.lines) == 1 && Arc::strong_count(&self.stderr) == 1
        });
        (status, self.lines(), self.stderr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
