//! The `hqx` binary: parse, run, map the outcome to an exit code.

use clap::Parser;

/// mimalloc instead of the system allocator: a run allocates and frees
/// small strings per order on several threads (journal, HTTP), and glibc's
/// malloc spent about a tenth of hqx's CPU on it (perf: `_int_malloc`,
/// `malloc_consolidate`, `_int_free`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = hqx::cli::Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HQX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match hqx::cli::run(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("hqx: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}
