//! The `percore` command line, built inside the test package so that the
//! integration tests can run the real binary (`CARGO_BIN_EXE_percore-under-test`)
//! for what only a process shows: signals and exit codes.

fn main() -> std::process::ExitCode {
    percore::cli::main()
}
