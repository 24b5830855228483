//! Complete OpenID Connect logins per second through the release `guichet` binary (issue #14).
//!
//! Starts the test kit's mock OpenID provider ([`MockOp`], in this process, on loopback), a
//! Redis ([`RedisServer`]), the echo app and `guichet run` in production mode (sessions in
//! Redis, encrypted; an `oidc` provider at the mock with production defaults: userinfo
//! fetched, JWKS cached; an app on the echo app passing identity headers; access log at info),
//! then N virtual browsers log in again and again, each on its own keep-alive connections:
//!
//! 1. `GET /rp/` → 302 to `/.guichet/login` (login transaction cookie),
//! 2. `GET /.guichet/login` → 302 to the provider's `/authorize`,
//! 3. `GET /authorize` at the provider → 302 back to the callback with a code,
//! 4. `GET /.guichet/callback/op?code=…` → Guichet redeems the code at `/token`, verifies the
//!    id_token (RS256), fetches `/userinfo`, writes the session to Redis → 302 to `/rp/`
//!    (session cookie),
//! 5. `GET /rp/` with the session cookie → 200 from the echo app, whose JSON must show
//!    `X-Remote-User: op-user-1` and the e-mail from userinfo.
//!
//! Every step's status, location and the final identity are checked; a login that fails any
//! check is counted as an error (and the browser starts again with no cookies). It prints
//! logins/s, p50/p99 login latency, errors and the CPU time per login of each party (Guichet,
//! the mock provider, Redis, the echo app, the load generator, read from `/proc`) over the
//! measured window, and how busy the whole machine was.
//!
//! Run with (build the release binary first; the bench profile puts this next to it):
//!
//! ```text
//! cargo build --release --bin guichet
//! cargo bench -p guichet-tests --bench oidc_logins
//! ```
//!
//! Environment variables (all optional):
//!
//! - `OIDC_BENCH_CONCURRENCY`: virtual browsers (default 32).
//! - `OIDC_BENCH_SECONDS`: measured duration in seconds (default 10).
//! - `OIDC_BENCH_WARMUP_SECONDS`: warm-up before it, not counted (default 2).
//! - `OIDC_BENCH_GUICHET_THREADS`: Guichet's `threads` (default: the machine's cores, as the
//!   production default).
//! - `OIDC_BENCH_CLIENT_THREADS`: worker threads of the load generator (default 1).
//! - `OIDC_BENCH_LOG_LEVEL`: Guichet's `log.level` (default `info`: access lines, as in
//!   production).
//! - `OIDC_BENCH_PERF`: a file name: record Guichet with `perf record -e cpu-clock -F 499
//!   --call-graph dwarf` during the measured window into it (then `perf report -i FILE
//!   --no-children --sort symbol`).
//! - `GUICHET_BIN`: the binary to run (default `target/release/guichet`, refused when older
//!   than the sources unless `GUICHET_TESTS_ACCEPT_STALE_BINARY=1`, as in the tests).
//!
//! Results in docs/benchmarks.md ("OIDC logins per second (issue #14)").

// A benchmark is test code: it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guichet_tests::binary::{GuichetProcess, Launch};
use guichet_tests::oidc::{self, MockOp, CLIENT_ID, CLIENT_SECRET};
use guichet_tests::{guichet_binary, GatewayOptions, RedisServer, Store, APP_HOST};

const SUBJECT: &str = "op-user-1";
const EMAIL: &str = "gregory.francoise@example.org";

struct Settings {
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    guichet_threads: usize,
    client_threads: usize,
    log_level: String,
    perf: Option<String>,
    binary: PathBuf,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not valid")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            concurrency: env_or("OIDC_BENCH_CONCURRENCY", 32),
            seconds: env_or("OIDC_BENCH_SECONDS", 10.0),
            warmup: env_or("OIDC_BENCH_WARMUP_SECONDS", 2.0),
            guichet_threads: env_or("OIDC_BENCH_GUICHET_THREADS", cores),
            client_threads: env_or("OIDC_BENCH_CLIENT_THREADS", 1),
            log_level: env_or("OIDC_BENCH_LOG_LEVEL", "info".to_string()),
            perf: std::env::var("OIDC_BENCH_PERF").ok(),
            binary: std::env::var_os("GUICHET_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(guichet_binary),
        }
    }
}

/// The provider entry with production defaults (no test shortcuts: JWKS refetched at most
/// every 30 s, userinfo fetched, client_secret_basic).
fn provider_yaml(issuer: &str) -> String {
    format!(
        "  - kind: oidc\n    id: op\n    issuer: \"{issuer}\"\n    client_id: {CLIENT_ID}\n    client_secret: \"{CLIENT_SECRET}\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc.

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// `(comm, utime + stime)` of a `/proc/.../stat` file.
fn stat_ticks(path: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 2..].split(' ').collect();
    // After the comm: state is field 3 of stat(5); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn process_ticks(pid: u32) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat")).map_or(0, |(_, t)| t)
}

/// This process's CPU by thread group: the mock provider's server thread (named `mock-op`),
/// the echo app (`echo-app`), the load generator (`loadgen`), the rest (the main thread, the
/// readers of Guichet's output).
fn own_ticks() -> BTreeMap<&'static str, u64> {
    let mut groups = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
        let Ok(entry) = entry else { continue };
        let path = format!("{}/stat", entry.path().display());
        let Some((comm, ticks)) = stat_ticks(&path) else {
            continue;
        };
        let group = if comm.starts_with("mock-op") {
            "mock OP"
        } else if comm.starts_with("echo-app") {
            "echo app"
        } else if comm.starts_with("loadgen") {
            "load generator"
        } else {
            "bench, other threads"
        };
        *groups.entry(group).or_insert(0) += ticks;
    }
    groups
}

/// The redis-server listening on `port` (its title is `redis-server 127.0.0.1:PORT`).
fn redis_pid(port: u16) -> Option<u32> {
    let suffix = format!(":{port}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.starts_with("redis-server") && cmdline.trim_end().ends_with(&suffix))
                .then_some(pid)
        })
}

/// `(busy, total)` ticks of the whole machine (`/proc/stat`'s `cpu` line).
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Calls per Redis command so far (`INFO commandstats`, through `redis-cli`; empty without it).
fn redis_calls(port: u16) -> BTreeMap<String, u64> {
    let output = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "INFO",
            "commandstats",
        ])
        .output();
    let text = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // cmdstat_get:calls=12,usec=...
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

struct Snapshot {
    at: Instant,
    redis_calls: BTreeMap<String, u64>,
    guichet: u64,
    redis: u64,
    own: BTreeMap<&'static str, u64>,
    machine: (u64, u64),
    token_requests: usize,
    userinfo_fetches: usize,
    jwks_fetches: usize,
}

fn snapshot(guichet: u32, redis: Option<u32>, redis_port: u16, op: &MockOp) -> Snapshot {
    let (token_requests, userinfo_fetches, jwks_fetches) = {
        let state = op.state();
        (
            state.token_requests.len(),
            state.userinfo_fetches,
            state.jwks_fetches,
        )
    };
    let redis_calls = redis_calls(redis_port);
    Snapshot {
        at: Instant::now(),
        redis_calls,
        guichet: process_ticks(guichet),
        redis: redis.map_or(0, process_ticks),
        own: own_ticks(),
        machine: machine_ticks(),
        token_requests,
        userinfo_fetches,
        jwks_fetches,
    }
}

// ---------------------------------------------------------------------------------------------
// Virtual browsers.

/// What one browser measured.
#[derive(Default)]
struct Tally {
    /// Latency of each login that ended inside the window, in microseconds.
    latencies: Vec<u64>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

struct Window {
    start: Instant,
    end: Instant,
}

/// A browser's cookies for the app's host (the provider's host gets none: it sets none).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        for set in headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if set.contains("Max-Age=0") || value.is_empty() {
                    self.0.remove(name);
                } else {
                    self.0.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }
}

/// An answer; its body is always read in full (so the connection is reused), and kept only
/// when asked for.
struct Answer {
    status: u16,
    location: Option<String>,
    body: Option<Vec<u8>>,
}

async fn get(
    client: &reqwest::Client,
    jar: Option<&mut Jar>,
    url: &str,
    accept: &str,
    keep_body: bool,
) -> Result<Answer, String> {
    let mut request = client.get(url).header("accept", accept);
    if let Some(cookies) = jar.as_ref().and_then(|j| j.header()) {
        request = request.header("cookie", cookies);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "timeout".to_string()
        } else if e.is_connect() {
            "connect error".to_string()
        } else {
            "request error".to_string()
        }
    })?;
    let status = response.status().as_u16();
    if let Some(jar) = jar {
        jar.absorb(response.headers());
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .bytes()
        .await
        .map_err(|_| "body error".to_string())?;
    Ok(Answer {
        status,
        location,
        body: keep_body.then(|| bytes.to_vec()),
    })
}

/// One complete login; `Err` names the step that went wrong.
async fn login(client: &reqwest::Client, app: &str, issuer: &str) -> Result<(), String> {
    let mut jar = Jar::default();
    let protected = format!("{app}/rp/");
    let first = get(client, Some(&mut jar), &protected, "text/html", false).await?;
    if first.status != 302 || first.location.as_deref() != Some("/.guichet/login") {
        return Err(format!("1 protected page: {}", first.status));
    }
    let start = get(
        client,
        Some(&mut jar),
        &format!("{app}/.guichet/login"),
        "text/html",
        false,
    )
    .await?;
    let authorize = start.location.unwrap_or_default();
    if start.status != 302 || !authorize.starts_with(&format!("{issuer}/authorize?")) {
        return Err(format!("2 login start: {}", start.status));
    }
    let at_op = get(client, None, &authorize, "text/html", false).await?;
    let callback = at_op.location.unwrap_or_default();
    if at_op.status != 302 || !callback.starts_with(&format!("{app}/.guichet/callback/op?")) {
        return Err(format!("3 provider: {}", at_op.status));
    }
    let back = get(client, Some(&mut jar), &callback, "text/html", false).await?;
    if back.status != 302 || back.location.as_deref() != Some("/rp/") {
        return Err(format!("4 callback: {}", back.status));
    }
    let page = get(client, Some(&mut jar), &protected, "application/json", true).await?;
    if page.status != 200 {
        return Err(format!("5 app page: {}", page.status));
    }
    let echo: serde_json::Value = serde_json::from_slice(&page.body.unwrap_or_default())
        .map_err(|_| "5 app page: not the echo app's JSON".to_string())?;
    let header = |name: &str| -> Vec<String> {
        echo["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    if header("x-remote-user") != [SUBJECT] || header("x-remote-email") != [EMAIL] {
        return Err("5 app page: wrong identity headers".into());
    }
    Ok(())
}

async fn browser(port: u16, issuer: String, window: Arc<Window>) -> Tally {
    let client = reqwest::Client::builder()
        .resolve(APP_HOST, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4)
        .build()
        .expect("reqwest client");
    let app = format!("http://{APP_HOST}:{port}");
    let mut tally = Tally::default();
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let result = login(&client, &app, &issuer).await;
        let ended = Instant::now();
        let counted = started >= window.start && ended <= window.end;
        match result {
            Ok(()) if counted => tally
                .latencies
                .push(u64::try_from(ended.duration_since(started).as_micros()).unwrap_or(u64::MAX)),
            Ok(()) => {}
            Err(kind) => {
                if counted {
                    tally.errors += 1;
                }
                *tally.error_kinds.entry(kind).or_insert(0) += 1;
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

// ---------------------------------------------------------------------------------------------

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() {
    let settings = Settings::from_env();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // The mock provider is started from a thread named `mock-op`: wiremock serves on a thread
    // of its own spawned from there, which inherits the name, so its CPU can be told apart.
    let op: MockOp = std::thread::Builder::new()
        .name("mock-op".into())
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(MockOp::start())
        })
        .unwrap()
        .join()
        .unwrap();
    let redis = RedisServer::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        extra_providers: vec![provider_yaml(&op.issuer)],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        // Every virtual browser comes from 127.0.0.1: the per-address limit on login starts
        // (600 a minute by default) would refuse almost all of them.
        login_starts_per_minute: 1_000_000_000,
        ..GatewayOptions::default()
    };
    let launch = Launch {
        overrides: vec![
            format!("threads={}", settings.guichet_threads),
            format!("log.level={}", settings.log_level),
        ],
        ..Launch::default()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .unwrap();
    let mut process =
        GuichetProcess::start_with_binary(&options, echo.address, &settings.binary, launch);
    runtime.block_on(process.wait_ready());
    let pid = process.pid().expect("guichet runs");
    let redis_pid = redis_pid(redis.port);

    println!("OIDC logins through {}", settings.binary.display());
    println!(
        "  guichet pid {pid} (threads={}, log.level={}), redis pid {}, mock OP {}",
        settings.guichet_threads,
        settings.log_level,
        redis_pid.map_or("?".into(), |p| p.to_string()),
        op.issuer
    );
    println!(
        "  {} virtual browsers, {} s warm-up, {} s measured, load generator threads: {}",
        settings.concurrency, settings.warmup, settings.seconds, settings.client_threads
    );
    println!("  load average before: {}", loadavg.trim());

    let begin = Instant::now();
    let window = Arc::new(Window {
        start: begin + Duration::from_secs_f64(settings.warmup),
        end: begin + Duration::from_secs_f64(settings.warmup + settings.seconds),
    });
    let browsers: Vec<_> = (0..settings.concurrency)
        .map(|_| runtime.spawn(browser(process.port, op.issuer.clone(), window.clone())))
        .collect();

    // Snapshots at the window's edges, taken from this (mostly idle) main thread.
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let first = snapshot(pid, redis_pid, redis.port, &op);
    let perf = settings.perf.as_ref().map(|file| {
        std::process::Command::new("perf")
            // DWARF unwinding: the release build keeps no frame pointers.
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
            ])
            .args(["-o", file, "-p"])
            .arg(pid.to_string())
            .args(["--", "sleep"])
            .arg(format!("{}", settings.seconds.floor().max(1.0)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("perf runs")
    });
    std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
    let last = snapshot(pid, redis_pid, redis.port, &op);
    if let Some(mut perf) = perf {
        perf.wait().ok();
    }

    let tallies: Vec<Tally> = runtime.block_on(async {
        let mut all = Vec::new();
        for handle in browsers {
            all.push(handle.await.unwrap());
        }
        all
    });
    let errors_in_window: u64 = tallies.iter().map(|t| t.errors).sum();
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    for tally in tallies {
        latencies.extend(tally.latencies);
        for (kind, n) in tally.error_kinds {
            *error_kinds.entry(kind).or_insert(0) += n;
        }
    }
    latencies.sort_unstable();

    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    let logins = latencies.len();
    let per_second = logins as f64 / elapsed;
    let ticks = clock_ticks();
    let mean = latencies.iter().sum::<u64>() as f64 / logins.max(1) as f64 / 1000.0;
    println!();
    println!("logins completed    {logins} in {elapsed:.2} s");
    println!("logins/s            {per_second:.0}");
    println!(
        "latency ms          p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {mean:.2}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0)
    );
    println!("errors              {errors_in_window} in the window");
    for (kind, n) in &error_kinds {
        println!("  {n:>8} × {kind} (warm-up included)");
    }
    let per_login = |n: usize| n as f64 / logins.max(1) as f64;
    println!(
        "at the mock OP      {:.2} token requests, {:.2} userinfo fetches per login; {} JWKS fetches in the window",
        per_login(last.token_requests - first.token_requests),
        per_login(last.userinfo_fetches - first.userinfo_fetches),
        last.jwks_fetches - first.jwks_fetches
    );

    let commands: Vec<String> = last
        .redis_calls
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| {
            let before = first.redis_calls.get(name).copied().unwrap_or(0);
            (name, per_login((calls - before) as usize))
        })
        .filter(|(_, n)| *n >= 0.005)
        .map(|(name, n)| format!("{name} {n:.2}"))
        .collect();
    println!("Redis commands      per login: {}", commands.join(", "));

    println!();
    println!("CPU over the window ({elapsed:.1} s, {} cores):", {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    });
    println!(
        "  {:<24} {:>8} {:>10} {:>14}",
        "", "CPU s", "cores", "CPU ms/login"
    );
    let row = |name: &str, delta: u64| {
        let seconds = delta as f64 / ticks;
        println!(
            "  {name:<24} {seconds:>8.2} {:>10.2} {:>14.3}",
            seconds / elapsed,
            seconds * 1000.0 / logins.max(1) as f64
        );
    };
    row("guichet", last.guichet - first.guichet);
    row("redis-server", last.redis - first.redis);
    let mut ours = last.guichet - first.guichet + last.redis - first.redis;
    for (group, end) in &last.own {
        let delta = end - first.own.get(group).copied().unwrap_or(0);
        ours += delta;
        row(group, delta);
    }
    let machine_busy = last.machine.0 - first.machine.0;
    let machine_total = last.machine.1 - first.machine.1;
    row("everything above", ours);
    row("whole machine (busy)", machine_busy);
    row("other processes", machine_busy.saturating_sub(ours));
    println!(
        "  machine busy {:.0} % of {} ticks",
        100.0 * machine_busy as f64 / machine_total.max(1) as f64,
        machine_total
    );
    if logins == 0 {
        println!(
            "\nno login completed; Guichet's output:\n{}",
            process.output()
        );
        std::process::exit(1);
    }
    drop(process);
}
