//! The `tiaochu` binary: argument parsing and the allocator; everything else lives in the library.

use clap::Parser;

// A callback's body is allocated on the HTTP side and freed on the writer thread; mimalloc
// frees across threads without the lock and consolidation glibc's malloc spent 13–17 % of the
// service's CPU on (docs/throughput.md → The allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = tiaochu::cli::Cli::parse();
    std::process::exit(tiaochu::cli::run(cli));
}
