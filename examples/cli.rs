//! Command-line helpers shared by the example programs (`echo_server`,
//! `echo_client`), on `clap`.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// Parses the command line into `T`. `--help` prints the help on stdout and
/// exits 0; any error prints the message and the usage on stderr and exits
/// 2 (clap alone omits the usage after some errors, such as a bad value).
pub fn parse<T: Parser + CommandFactory>() -> T {
    parse_from(std::env::args_os())
}

/// [`parse`], from the given arguments (the first is the program name).
pub fn parse_from<T, I, A>(args: I) -> T
where
    T: Parser + CommandFactory,
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    parse_adjusted_from(args, |cmd| cmd)
}

/// [`parse`], with `T`'s command changed by `adjust` first (for what the
/// derive cannot say, such as an argument required in one mode only).
pub fn parse_adjusted<T: Parser + CommandFactory>(
    adjust: impl FnOnce(clap::Command) -> clap::Command,
) -> T {
    parse_adjusted_from(std::env::args_os(), adjust)
}

fn parse_adjusted_from<T, I, A>(args: I, adjust: impl FnOnce(clap::Command) -> clap::Command) -> T
where
    T: Parser + CommandFactory,
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = adjust(T::command());
    let parsed = cmd
        .try_get_matches_from_mut(args)
        .and_then(|m| T::from_arg_matches(&m));
    match parsed {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // Not `eprint!`, which panics (exit 101) if stderr is a broken pipe.
            let text = with_usage(&mut cmd, &e.render().to_string());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
            std::process::exit(2)
        }
    }
}

/// `message` with the usage of `cmd` added if it has none.
fn with_usage(cmd: &mut clap::Command, message: &str) -> String {
    let text = message.trim_end();
    if text.contains("Usage:") {
        return format!("{text}\n");
    }
    let usage = cmd.render_usage();
    match text.find("\n\nFor more information") {
        Some(i) => format!("{}\n\n{usage}{}\n", &text[..i], &text[i..]),
        None => format!("{text}\n\n{usage}\n"),
    }
}

/// A positive number of seconds, decimals allowed (`1`, `0.5`), as a
/// `clap` value parser.
pub fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: '{s}'"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("must be more than 0 seconds, not '{s}'"));
    }
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| format!("too many seconds: '{s}'"))
}
