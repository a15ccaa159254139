//! The `tiaochu` binary: argument parsing only; everything else lives in the library.

use clap::Parser;

fn main() {
    let cli = tiaochu::cli::Cli::parse();
    std::process::exit(tiaochu::cli::run(cli));
}
