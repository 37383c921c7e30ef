//! `spaceport-controller`: the Kubernetes controller binary.

use clap::Parser;

/// The spaceport Kubernetes controller.
///
/// Reconciles `Space` resources (group spaceport.dev) into running apps.
#[derive(Debug, Parser)]
#[command(name = "spaceport-controller", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
