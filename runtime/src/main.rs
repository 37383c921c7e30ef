//! `spaceport`: the single-node server and command line.

use clap::Parser;

/// spaceport: a self-hosted runtime for Hugging Face-style Spaces.
#[derive(Debug, Parser)]
#[command(name = "spaceport", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
