//! `spaceport-proxy`: the standalone proxy binary.

use clap::Parser;

/// The spaceport reverse proxy: serves Spaces by host or path prefix.
#[derive(Debug, Parser)]
#[command(name = "spaceport-proxy", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
