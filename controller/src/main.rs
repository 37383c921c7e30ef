//! `spaceport-controller`: the Kubernetes controller binary. Parses the
//! command line and hands over to the library.

use clap::{Parser, Subcommand};
use spaceport_controller::manifest::{self, Source};
use std::path::PathBuf;

/// The spaceport Kubernetes controller.
///
/// Reconciles `Space` resources (group spaceport.dev) into running apps.
#[derive(Debug, Parser)]
#[command(name = "spaceport-controller", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Space CustomResourceDefinition as YAML.
    ///
    /// Example: spaceport-controller crd | kubectl apply -f -
    Crd,
    /// Print a Space resource made from a Space folder's README.
    ///
    /// Example: spaceport-controller manifest examples/gradio-hello --hub spaceport/gradio-hello
    Manifest(ManifestArgs),
    /// Run the hub (git push, HF API, web UI) with its Spaces as Space
    /// resources.
    ///
    /// Example: spaceport-controller hub --namespace spaces --public-url https://hub.example.org
    Hub(spaceport_controller::hub::serve::HubArgs),
}

#[derive(Debug, clap::Args)]
struct ManifestArgs {
    /// The Space folder.
    folder: PathBuf,
    /// Resource name (default: the folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Build from this git repository.
    #[arg(long, conflicts_with_all = ["hub", "image"])]
    git_url: Option<String>,
    /// Branch or tag of --git-url.
    #[arg(long, default_value = "main", requires = "git_url")]
    git_ref: String,
    /// Build from this Space repo on the spaceport hub (owner/name).
    #[arg(long, conflicts_with = "image")]
    hub: Option<String>,
    /// Run this prebuilt image.
    #[arg(long)]
    image: Option<String>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", spaceport_controller::crd::crd_yaml()),
        Command::Hub(args) => {
            tokio::runtime::Runtime::new()?.block_on(spaceport_controller::hub::serve::run(args))?
        }
        Command::Manifest(args) => {
            let source = match (args.git_url, args.hub, args.image) {
                (Some(url), _, _) => Source::Git {
                    url,
                    r#ref: args.git_ref,
                },
                (_, Some(repo), _) => Source::Hub(repo),
                (_, _, Some(image)) => Source::Image(image),
                _ => anyhow::bail!("say where the code comes from: --git-url, --hub or --image"),
            };
            let name = match &args.name {
                Some(n) => n.clone(),
                None => args
                    .folder
                    .canonicalize()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let space = manifest::from_folder(&args.folder, &name, source)?;
            print!(
                "{}",
                manifest::to_yaml(&space, "spaceport-controller manifest")
            );
        }
    }
    Ok(())
}
