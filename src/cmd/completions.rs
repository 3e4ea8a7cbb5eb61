//! `hqx completions SHELL`: a completion script for the shell (clap_complete).

use clap::CommandFactory;
use clap_complete::Shell as Sh;

use super::Failure;
use crate::executor::exit;

/// Options of `hqx completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Sh,
}

/// Print the script to stdout.
pub fn run(args: &Args) -> Result<i32, Failure> {
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "hqx", &mut std::io::stdout());
    Ok(exit::OK)
}
