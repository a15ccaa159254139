//! The `tiaochu` binary: argument parsing and the allocator; everything else lives in the library.

use clap::Parser;

// Under load glibc's malloc took 17 % of the HTTP side's CPU samples and ~13 % of the writer
// thread's; mimalloc 11 % of each (docs/throughput.md → "The allocator, and one statement less").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = tiaochu::cli::Cli::parse();
    std::process::exit(tiaochu::cli::run(cli));
}
