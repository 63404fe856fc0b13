//! The `inft` command-line program. Thin: everything lives in [`cli`] and one module per
//! subcommand under `cmd/`.

mod cli;
mod cmd;
mod ids;
mod log;

fn main() -> std::process::ExitCode {
    cli::run()
}
