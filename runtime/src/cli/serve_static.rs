//! `spaceport serve-static`: one static site on its own port.

use crate::hub::statics::site_router;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ServeStaticArgs {
    /// The site's folder.
    pub root: PathBuf,
    /// The page served at /, relative to the folder.
    #[arg(long, default_value = "index.html")]
    pub index: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
}

/// Serves until a signal; returns the exit status.
pub fn run(args: &ServeStaticArgs, err: &mut dyn Write) -> u8 {
    let index = std::path::Path::new(&args.index);
    if index.is_absolute()
        || index
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        let _ = writeln!(
            err,
            "error: --index must be a path inside the folder, not '{}'",
            args.index
        );
        return 2;
    }
    if !args.root.join(index).is_file() {
        let _ = writeln!(
            err,
            "error: {} has no file {}",
            args.root.display(),
            args.index
        );
        return 1;
    }
    let result = tokio::runtime::Runtime::new().and_then(|rt| {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            let app = site_router(&args.root, &args.index);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
        })
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: failed to serve on {}: {e}", args.listen);
            1
        }
    }
}
