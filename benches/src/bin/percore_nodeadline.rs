//! `percore serve` with the deadline machinery switched off (no epoch
//! interruption, no timer), for the load harness's `core-nodeadline`
//! server, which measures what deadlines cost. A bench-only binary: the
//! `percore` binary has no flag or config key that turns deadlines off.
//!
//! It takes `percore serve`'s flags: `percore-nodeadline --listen ADDR
//! --route /=hello.wasm --isolation core ...`.

use clap::Parser as _;

/// `percore serve`'s flags.
#[derive(Debug, clap::Parser)]
#[command(name = "percore-nodeadline")]
struct Args {
    #[command(flatten)]
    serve: percore::cli::ServeArgs,
}

fn main() -> anyhow::Result<()> {
    percore::cli::init_logging();
    let args = Args::parse();
    let config = percore::cli::serve_config(args.serve)?;
    // No admin uploads in a benchmark: nothing to compile in a child.
    let server = percore::Server::new(config).without_deadlines().start()?;
    percore::cli::wait_for_signal(server)
}
