//! `hqx man`: the man page, roff on stdout (clap_mangen).

use clap::CommandFactory;

use super::Failure;
use crate::executor::exit;

/// Options of `hqx man`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Print hqx(1) to stdout: `hqx man > hqx.1; man ./hqx.1`.
pub fn run(_args: &Args) -> Result<i32, Failure> {
    let cmd = crate::cli::Cli::command();
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .map_err(|e| Failure::failed(format!("cannot write the man page: {e}")))?;
    Ok(exit::OK)
}
