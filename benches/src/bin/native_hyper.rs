//! `native-hyper`: the load harness's baseline server (see
//! `percore_benches::native`). Parses the flags, starts the server, and
//! shuts it down on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use percore_benches::native::NativeServer;

/// Native hyper serving `/json` and `/plaintext`, built like percore's workers.
#[derive(Debug, clap::Parser)]
#[command(name = "native-hyper", about)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Number of workers [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Listened for before the server starts, as percore does: a signal
    // while it starts stops it rather than killing the process.
    let mut signals = percore::cli::Signals::listen()?;
    let server = NativeServer::start(args.listen, workers)?;
    eprintln!(
        "native-hyper: serving http://{} with {workers} workers",
        server.local_addr()
    );
    signals.next();
    server.shutdown();
    Ok(())
}
