//! Benchmark of D-Bus `GetToken` over a real `dbus-daemon`, beside a floor.
//!
//!     cargo bench --bench dbus
//!
//! The floor is a minimal zbus service (its own process, like tokend) whose
//! method returns a constant string, on the same private bus, called by the
//! same client code in the same run. Reported: p50/p99 latency of one client
//! and calls per second with 16 concurrent clients, each beside the floor.
//! Everything stays on a private bus and 127.0.0.1, in bounded loops.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login};
use support::provider::Provider;

const LATENCY_SAMPLES: usize = 5_000;
const THROUGHPUT_CALLS: usize = 20_000;
const CLIENTS: usize = 16;

/// Where a `GetToken(s) -> (s, x)` method lives.
#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    path: &'static str,
    interface: &'static str,
}

const TOKEND: Target = Target {
    name: "org.tokend.Broker1",
    path: "/org/tokend/Broker1",
    interface: "org.tokend.Broker1",
};

const FLOOR: Target = Target {
    name: "org.tokend.BenchFloor",
    path: "/floor",
    interface: "org.tokend.BenchFloor",
};

/// The floor service: a constant answer.
struct Floor;

// zbus methods take &self whether they use it or not.
#[allow(clippy::unused_self)]
#[zbus::interface(name = "org.tokend.BenchFloor")]
impl Floor {
    fn get_token(&self, provider: &str) -> (String, i64) {
        // As little work as an answer can be: a fixed token, named after
        // the provider only so the argument is read.
        (
            format!("floor-token-{provider}-0123456789abcdef"),
            1_790_000_000,
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor") {
        serve_floor(&args[i + 1]);
        return;
    }
    let bus = PrivateBus::start();
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            bus: "session",
            env: vec![
                ("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into()),
                ("RUST_LOG".into(), "info".into()),
            ],
            ..DaemonOptions::default()
        },
    );
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let floor = start_floor(&bus);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let address = bus.address().to_owned();
    let (t_lat, f_lat, t_put, f_put) = runtime.block_on(async {
        let t_lat = latency(&address, TOKEND).await;
        let f_lat = latency(&address, FLOOR).await;
        let t_put = throughput(&address, TOKEND).await;
        let f_put = throughput(&address, FLOOR).await;
        (t_lat, f_lat, t_put, f_put)
    });
    println!("tokend D-Bus benchmark (GetToken on a cached token; private dbus-daemon)\n");
    println!("                                 tokend          floor           ratio");
    println!(
        "  p50, 1 client                {:>9.1} µs    {:>9.1} µs    {:.2}",
        t_lat.0,
        f_lat.0,
        t_lat.0 / f_lat.0
    );
    println!(
        "  p99, 1 client                {:>9.1} µs    {:>9.1} µs    {:.2}",
        t_lat.1,
        f_lat.1,
        t_lat.1 / f_lat.1
    );
    println!(
        "  calls/s, {CLIENTS} clients          {t_put:>9.0} /s     {f_put:>9.0} /s     {:.2}",
        t_put / f_put
    );
    drop(floor);
}

/// Starts the floor service as a separate process and waits for its name.
fn start_floor(bus: &PrivateBus) -> FloorProcess {
    let child = bus
        .command(std::env::current_exe().unwrap())
        .args(["--floor", bus.address()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    bus.wait_for_owner(FLOOR.name, Duration::from_secs(30))
        .unwrap();
    FloorProcess(child)
}

/// The floor process, killed on drop.
struct FloorProcess(Child);

impl Drop for FloorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_floor(address: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _connection = zbus::connection::Builder::address(address)
            .unwrap()
            .serve_at(FLOOR.path, Floor)
            .unwrap()
            .name(FLOOR.name)
            .unwrap()
            .build()
            .await
            .unwrap();
        std::future::pending::<()>().await;
    });
}

async fn connect(address: &str) -> zbus::Connection {
    zbus::connection::Builder::address(address)
        .unwrap()
        .build()
        .await
        .unwrap()
}

async fn call(connection: &zbus::Connection, target: Target) {
    let reply = connection
        .call_method(
            Some(target.name),
            target.path,
            Some(target.interface),
            "GetToken",
            &("demo",),
        )
        .await
        .unwrap();
    let (token, _expires): (String, i64) = reply.body().deserialize().unwrap();
    assert!(!token.is_empty());
}

/// p50 and p99 in microseconds, one client calling in sequence.
async fn latency(address: &str, target: Target) -> (f64, f64) {
    let connection = connect(address).await;
    for _ in 0..200 {
        call(&connection, target).await;
    }
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let start = Instant::now();
        call(&connection, target).await;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((samples.len() - 1) as f64 * q) as usize;
        samples[index].as_secs_f64() * 1e6
    };
    (pick(0.50), pick(0.99))
}

/// Calls per second with [`CLIENTS`] connections calling at once.
async fn throughput(address: &str, target: Target) -> f64 {
    let mut connections = Vec::new();
    for _ in 0..CLIENTS {
        let connection = connect(address).await;
        call(&connection, target).await;
        connections.push(connection);
    }
    let per_client = THROUGHPUT_CALLS / CLIENTS;
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            tokio::spawn(async move {
                for _ in 0..per_client {
                    call(&connection, target).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let total = (per_client * CLIENTS) as f64;
    total / start.elapsed().as_secs_f64()
}
