//! `spaceport completions SHELL` and `spaceport man`: generated from the
//! command-line definition itself, so they never drift from it.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Ctx, Done, Failure};

pub const COMPLETIONS_HELP: &str = "Examples:\n  spaceport completions bash > ~/.local/share/bash-completion/completions/spaceport\n  spaceport completions zsh > \"${fpath[1]}/_spaceport\"\n  spaceport completions fish > ~/.config/fish/completions/spaceport.fish";

pub const MAN_HELP: &str = "Without --dir, prints spaceport(1) as roff; with --dir, writes it and one\npage per command (spaceport-push.1, ...) there.\n\nExamples:\n  spaceport man | man -l -\n  spaceport man --dir ~/.local/share/man/man1";

/// The man page's one-line summary.
const ABOUT: &str = "a self-hosted runtime for Hugging Face-style Spaces";

/// The shells completions are written for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Write the pages into this folder instead of printing the main one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(ctx: &mut Ctx<'_>, a: CompletionsArgs) -> Done {
    let mut cmd = crate::cli::Cli::command();
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "spaceport", ctx.out.out);
    Ok(())
}

pub fn man(ctx: &mut Ctx<'_>, a: ManArgs) -> Done {
    let cmd = crate::cli::Cli::command().about(ABOUT);
    match a.dir {
        None => match clap_mangen::Man::new(cmd).render(ctx.out.out) {
            // A reader that stops early (`| head`) is not a failure.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Failure::failed(format!("cannot write the man page: {e}")))
            }
            _ => Ok(()),
        },
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| {
                Failure::failed(format!(
                    "cannot write the man pages to {}: {e}",
                    dir.display()
                ))
            })?;
            ctx.out
                .line(&format!("Wrote the man pages to {}", dir.display()));
            Ok(())
        }
    }
}
