//! tokio_echo: the tokio peer of the echo servers in `benches/run.sh`: a
//! current-thread runtime, one task per connection reading up to 16 KiB and
//! writing it all back.
//!
//! ```text
//! tokio_echo [PORT]
//! ```
//!
//! Listens on 127.0.0.1:PORT (none or 0: a free port), prints
//! `LISTEN 127.0.0.1:<port> PID=<pid>` on stdout once it listens, sets
//! `TCP_NODELAY` on every client (as the other servers do), and echoes until
//! SIGINT or SIGTERM, then exits 0. Exit status 1 if it cannot listen, 2 for
//! a bad command line.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// Bytes read at a time, as the C servers' buffer.
const BUF: usize = 16384;

async fn echo(mut sock: TcpStream) {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if sock.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!(
        "LISTEN {} PID={}",
        listener.local_addr()?,
        std::process::id()
    );
    std::io::stdout().flush()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    tokio::spawn(echo(sock));
                }
                Err(e) => eprintln!("accept: {e}"),
            },
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.as_slice() {
        [] => 0,
        [p] if p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok() => {
            p.parse().unwrap_or(0)
        }
        _ => {
            eprintln!("usage: tokio_echo [PORT]   (PORT: 0 to 65535)");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_echo: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
