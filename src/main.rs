//! The `sluice` binary: thin command-line glue over the server, worker and SDK crates.

mod cli;

use clap::Parser;
use sluice_worker::runtime::embedded::shim;

fn main() -> std::process::ExitCode {
    // A container's helper process: single-threaded, no async runtime, no logging set up.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().as_deref() == Some(std::ffi::OsStr::new(shim::SUBCOMMAND)) {
        let state = std::path::PathBuf::from(argv.next().unwrap_or_default());
        return std::process::ExitCode::from(shim::main(&state).clamp(0, 255) as u8);
    }
    let args = cli::Cli::parse();
    if !matches!(
        args.cmd,
        cli::Cmd::Up(_) | cli::Cmd::Server(_) | cli::Cmd::Worker(_)
    ) {
        // A command whose output is piped into `head` ends quietly when the pipe closes, as
        // Unix tools do, instead of failing on the broken pipe. The long-running services keep
        // the signal ignored: a closed socket or pipe is an error they handle.
        // SAFETY: setting a signal's disposition to its default before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    cli::init_tracing(&args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let code = rt.block_on(cli::dispatch(args));
    std::process::ExitCode::from(code)
}
