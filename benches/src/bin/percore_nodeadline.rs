//! `percore serve` with the deadline machinery switched off (no epoch
//! interruption, no timer), for the load harness's `core-nodeadline`
//! server, which measures what deadlines cost. A bench-only binary: the
//! `percore` binary has no flag or config key that turns deadlines off.
//!
//! It takes `percore serve`'s command line: `percore-nodeadline serve
//! --listen ADDR --route /=hello.wasm --isolation core ...`.

use clap::Parser as _;

/// `percore serve`, the only command.
#[derive(Debug, clap::Parser)]
#[command(name = "percore-nodeadline")]
enum Command {
    /// Serve, as `percore serve` does, without deadlines.
    Serve(percore::cli::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    percore::cli::init_logging();
    let Command::Serve(args) = Command::parse();
    let config = percore::cli::serve_config(args)?;
    let signals = percore::cli::Signals::listen()?;
    // No admin uploads in a benchmark: nothing to compile in a child.
    let server = percore::Server::new(config).without_deadlines().start()?;
    signals.wait(server)
}
