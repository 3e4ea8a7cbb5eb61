//! The `hqx` binary: parse, run, map the outcome to an exit code.

use clap::Parser;

/// mimalloc instead of the system allocator: a run allocates and frees
/// small strings per order on several threads (journal, HTTP), and glibc's
/// malloc spent about a tenth of hqx's CPU on it (perf: `_int_malloc`,
/// `malloc_consolidate`, `_int_free`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut cli = hqx::cli::Cli::parse();
    // `--env-file`: read it, then parse again so that options taking their
    // default from the environment see it. Variables already set win.
    // Values are never printed (a key read this way is as secret as any).
    if let Some(file) = cli.output.env_file.clone() {
        if let Err(e) = dotenvy::from_path(&file) {
            eprintln!(
                "error: --env-file {}: {}; check the path and the KEY=VALUE lines (values are not shown)",
                file.display(),
                match e {
                    dotenvy::Error::LineParse(_, i) => format!("cannot parse it near byte {i}"),
                    dotenvy::Error::Io(e) => e.to_string(),
                    _ => "cannot read it".to_string(),
                }
            );
            std::process::exit(hqx::executor::exit::USAGE);
        }
        cli = hqx::cli::Cli::parse();
    }
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
        // Colour only for a person: never into a log file or a pipe.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    std::process::exit(hqx::cli::run(cli));
}
