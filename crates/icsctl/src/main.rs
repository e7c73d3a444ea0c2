//! `icsctl`: the command-line client of the ICS improvement-programme platform.
//!
//! Exit codes: 0 on success, 1 when a call or the client fails, 2 for usage errors.

mod args;
mod cli;
mod commands;
mod connect;
mod csv_import;
mod failure;
mod progress;
mod render;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{admin, demo, metrics, report, trusts, workshops};
use crate::connect::Context;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if failure::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            failure::report(&error);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        // Minting needs no server, and `--as` here names the token's principal rather than
        // asking for a bearer token to be resolved from --token-secret.
        Command::Token(command) => return admin::token(&cli.global, command),
        command => command,
    };
    let context = Context::new(&cli.global)?;
    match command {
        Command::Org(command) => trusts::org(&context, command).await,
        Command::Cqc(command) => trusts::cqc(&context, command).await,
        Command::Exec(command) => trusts::exec(&context, command).await,
        Command::ValueStream(command) => trusts::value_stream(&context, command).await,
        Command::Training(command) => trusts::training(&context, command).await,
        Command::Programme(command) => trusts::programme(&context, command).await,
        Command::Workshop(command) => workshops::workshop(&context, command).await,
        Command::Measure(command) => metrics::measure(&context, command).await,
        Command::Observation(command) => metrics::observation(&context, command).await,
        Command::Series(command) => metrics::series(&context, command).await,
        Command::PeerGroup(command) => metrics::peer_group(&context, command).await,
        Command::Import(command) => metrics::import(&context, command).await,
        Command::Report(command) => report::report(&context, command).await,
        Command::Events(command) => admin::events(&context, command).await,
        Command::Admin(command) => admin::admin(&context, command).await,
        Command::Demo(arguments) => demo::run(&context, &arguments).await,
        Command::Token(command) => admin::token(&cli.global, command),
    }
}
