//! `rzk bench` as a standalone program, for machines whose rzk binary predates the subcommand:
//! `cargo run --release -p rzk-loadgen --example rzk-bench -- --workload get ...`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "rzk-bench",
    about = "ZooKeeper-protocol load generator (rzk bench)"
)]
struct Cli {
    #[command(flatten)]
    args: rzk_loadgen::BenchArgs,
}

fn main() -> std::process::ExitCode {
    match rzk_loadgen::run_cli(&Cli::parse().args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rzk bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
