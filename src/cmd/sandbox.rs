//! `hqx sandbox`: serve the sandbox exchange on 127.0.0.1 until Ctrl-C.

use std::io::Write as _;
use std::path::PathBuf;

use super::Failure;
use crate::connect::{runtime, sidecar};
use crate::executor::exit;
use crate::sandbox::{FaultSpec, Sandbox, SandboxConfig};
use crate::sign::Secret;
use crate::venue::Venue;

/// Options of `hqx sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Public key (default: random; also HAQQEX_PUBLIC_KEY).
    #[arg(long, env = "HAQQEX_PUBLIC_KEY")]
    pub api_key: Option<String>,
    /// Secret key (default: random; also HAQQEX_PRIVATE_KEY).
    #[arg(long, env = "HAQQEX_PRIVATE_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub secret: Option<Secret>,
    /// Keep the exchange's state in this file across restarts; its key
    /// pair is kept beside it (FILE.key.json) unless --api-key and
    /// --secret are given.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Requests per second it accepts before answering 429.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Injected faults, e.g. latency=5ms,error5xx=0.1,drop=0.1,reset=0.05,limit429=0.05,stall=0.02
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed of the fault draws (same seed, same faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Venue profile (YAML): the paths to serve, the timestamp window, and
    /// whether orders carry a client order id.
    #[arg(long, env = "HQX_VENUE")]
    pub venue: Option<PathBuf>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// Serve until interrupted; print the URL and the key pair to use.
pub fn run(args: &Args) -> Result<i32, Failure> {
    let port = args.port;
    let faults: FaultSpec = args
        .faults
        .parse()
        .map_err(|e: String| Failure::usage(format!("--faults: {e}")))?;
    // With a state file and no key given, the key is kept beside it: a
    // restarted sandbox is the same account, not a new one.
    let (gk, gs) = match (&args.state, &args.api_key, &args.secret) {
        (Some(state), None, None) => {
            let c = crate::connect::sandbox_key_file(&sidecar(state, ".key.json"))?;
            (c.api_key, c.secret)
        }
        _ => crate::sandbox::generate_credentials(),
    };
    let key = args.api_key.clone().unwrap_or(gk);
    let secret = args.secret.clone().unwrap_or(gs);
    let mut cfg = SandboxConfig::new(key.clone(), secret.clone());
    cfg.state_path = args.state.clone();
    cfg.rate = args.rate;
    cfg.faults = faults;
    cfg.seed = args.seed;
    if let Some(p) = &args.venue {
        cfg.venue = Venue::load(p).map_err(Failure::usage)?;
    }
    let rt = runtime()?;
    rt.block_on(async {
        let sb = Sandbox::start(cfg, ([127, 0, 0, 1], port).into())
            .await
            .map_err(|e| {
                Failure::failed(format!("cannot start the sandbox on port {port}: {e}"))
            })?;
        // Listen for Ctrl-C before saying where to connect: whoever reads
        // these lines may stop the sandbox at once, and must not kill it.
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| Failure::failed(format!("cannot listen for Ctrl-C: {e}")))?;
        eprintln!("sandbox listening on {}", sb.base_url());
        println!("HQX_BASE_URL={}", sb.base_url());
        println!("HAQQEX_PUBLIC_KEY={key}");
        // The sandbox's own, throw-away key: printing it is the point.
        println!("HAQQEX_PRIVATE_KEY={}", secret.expose());
        let _ = std::io::stdout().flush();
        interrupt.recv().await;
        sb.shutdown().await;
        Ok(exit::OK)
    })
}
