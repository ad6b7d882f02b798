use clap::Parser;
use syncscript::{
    cli::{self, Cli, Command, UserCommand},
    drain::Drain,
    memory, seed,
    settings::Settings,
    startup::Application,
    telemetry,
};

fn main() -> std::process::ExitCode {
    memory::return_large_blocks_to_the_os();
    match runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One worker thread per CPU the process may run on. On one CPU (a one-core container, or
/// `taskset -c 0`), the current-thread scheduler: every task runs on the thread that polls the
/// sockets, as Node's event loop does, without the work-stealing scheduler's atomics and
/// queues, which buy nothing with a single worker.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if syncscript::cpus() == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

async fn run() -> std::process::ExitCode {
    let args = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let result = match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => cli::migrate(&settings).await,
        Command::User {
            command: UserCommand::Create { email, name, .. },
        } => cli::create_user(&settings, &email, &name).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let bind = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = listen(&bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let demo = settings.demo.seed;
    tracing::info!(database = %settings.redacted_database_url(), "starting");
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let app = Application::build(settings, listener)
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.local_addr();
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    println!(
        "\nSyncScript Vault is running: open http://{host}:{}/",
        addr.port()
    );
    if demo {
        println!("Demo accounts (password `{}`):", seed::DEMO_PASSWORD);
        for (email, _, role) in seed::DEMO_USERS {
            println!(
                "  {email:<24} {}",
                role.map_or("no vault", syncscript::domain::role_name)
            );
        }
    }
    println!();
    memory::spawn_trimmer();
    let drain = app.drain();
    tokio::spawn(signals(drain.clone()));
    app.run_until(async move { drain.begun().await })
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// The first SIGTERM or Ctrl-C drains the node; the next one stops it at once.
async fn signals(drain: Drain) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        let term = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        if drain.is_draining() {
            tracing::warn!("second signal: stopping at once");
            drain.stop_now();
            return;
        }
        tracing::info!("signal received: draining (a second signal stops at once)");
        drain.begin();
    }
}

/// Binds with a deep accept queue: after a restart every client reconnects at once, and
/// tokio's default backlog of 128 makes the overflow wait a second for a SYN retry.
async fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("address did not resolve"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
