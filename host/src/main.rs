//! The `percore` binary: parses the command line and hands over to
//! [`percore::cli::main`].

fn main() -> std::process::ExitCode {
    percore::cli::main()
}
