//! The `meshrouter` command: the binary's edge, where OS randomness, files and the terminal meet the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
