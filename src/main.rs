//! The `postdesk` binary: parse the command line, run, map errors to exit
//! codes. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;

use postdesk::cli::Cli;
use postdesk::cmd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli) {
        Ok(exit) => exit.code(),
        Err(e) => {
            let exit = cmd::exit_of(&e);
            if !e.chain().any(|c| c.is::<cmd::ExitWith>()) {
                // An error may quote a subject or a server's reply.
                eprintln!("postdesk: {}", cmd::terminal_safe(&format!("{e:#}")));
            }
            exit.code()
        }
    }
}
