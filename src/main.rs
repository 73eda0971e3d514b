//! The `etcd-snapshot` binary: parses the command line, evaluates the config, runs the command,
//! and maps the outcome to the documented exit codes (the only place that does).

use std::process::ExitCode;

use etcd_snapshot::cli::{self, Command, generate};
use etcd_snapshot::commands::{self, CommandError, Completion};
use etcd_snapshot::config::{ConfigEngine, show};
use etcd_snapshot::errors::error_chain;
use etcd_snapshot::kube::crd;
use etcd_snapshot::{daemon, telemetry};

/// Success.
const EXIT_OK: u8 = 0;
/// The command failed.
const EXIT_FAILURE: u8 = 1;
/// Bad command line or configuration.
const EXIT_USAGE: u8 = 2;
/// The operation finished but part of it failed (e.g. one of several deletes).
const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    // One process-wide TLS provider, chosen explicitly so no dependency can make it ambiguous.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let invocation = match cli::parse(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    if invocation.command == Command::Crd {
        return ExitCode::from(print_crd());
    }
    if let Some(code) = generate(&invocation.command) {
        return ExitCode::from(code);
    }
    telemetry::progress::install(invocation.progress);
    let engine = ConfigEngine::new(invocation.flags.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    ExitCode::from(runtime.block_on(run(invocation.command, engine)))
}

async fn run(command: Command, engine: ConfigEngine) -> u8 {
    if command == Command::ConfigValidate {
        let validation = engine.validate();
        let report = show::render_validation(&validation);
        return if validation.outcome.is_ok() {
            print!("{report}");
            EXIT_OK
        } else {
            eprint!("{report}");
            EXIT_USAGE
        };
    }
    let resolved = match engine.evaluate(None) {
        Ok(resolved) => resolved,
        Err(errors) => {
            eprint!("error: {errors}");
            return EXIT_USAGE;
        }
    };
    telemetry::logging::init(resolved.config.log);
    // Before any child runs: its output is masked with every secret known by then.
    etcd_snapshot::child::mask::remember_config(&resolved.config);
    etcd_snapshot::child::mask::remember_environment();
    match command {
        Command::ConfigShow { sources } => {
            let mut resolved = resolved;
            let secret_warning = commands::show_secret_values(&mut resolved).await;
            print_warnings(&resolved.warnings);
            print_warnings(&Vec::from_iter(secret_warning));
            print!("{}", show::render(&resolved, sources));
            EXIT_OK
        }
        Command::ConfigValidate => EXIT_OK,
        Command::Crd => print_crd(),
        Command::Rekey { dry_run } => {
            print_warnings(&resolved.warnings);
            match commands::rekey::run(&resolved.config, dry_run).await {
                Ok(true) => EXIT_OK,
                Ok(false) => EXIT_PARTIAL,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    EXIT_FAILURE
                }
            }
        }
        Command::Restore(action) => {
            print_warnings(&resolved.warnings);
            match commands::restore::run(&action, &resolved.config).await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    EXIT_FAILURE
                }
            }
        }
        Command::ListDeltas { output } => {
            print_warnings(&resolved.warnings);
            match commands::deltas::run(&resolved.config, output).await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    EXIT_FAILURE
                }
            }
        }
        Command::Inspect { snapshot, output } => {
            print_warnings(&resolved.warnings);
            match commands::inspect::run(&snapshot, output, &resolved).await {
                Ok(true) => EXIT_OK,
                Ok(false) => EXIT_FAILURE,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    if e.is_usage() {
                        EXIT_USAGE
                    } else {
                        EXIT_FAILURE
                    }
                }
            }
        }
        Command::Server => match daemon::run(engine, resolved).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                tracing::error!("{}", error_chain(&e));
                EXIT_FAILURE
            }
        },
        snapshot_command => {
            print_warnings(&resolved.warnings);
            match commands::run_snapshot_command(&snapshot_command, &engine, &resolved).await {
                Ok(Completion::Success) => EXIT_OK,
                Ok(Completion::Partial) => EXIT_PARTIAL,
                Ok(Completion::Failed) => EXIT_FAILURE,
                Ok(Completion::NotFound) => EXIT_USAGE,
                Err(CommandError::Config(errors)) => {
                    eprint!("error: {errors}");
                    EXIT_USAGE
                }
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    EXIT_FAILURE
                }
            }
        }
    }
}

/// `crd` needs no configuration: the definition is the same for every install.
fn print_crd() -> u8 {
    match crd::render_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            EXIT_FAILURE
        }
    }
}

/// `completions` and `man` need no configuration either: they describe the command line.
fn generate(command: &Command) -> Option<u8> {
    let result = match command {
        Command::Completions(shell) => generate::print(
            "completion script",
            &generate::completion_script(*shell, cli::command()),
        ),
        Command::Man { dir } => {
            let pages = generate::man_pages(cli::command());
            match dir {
                Some(dir) => generate::write_man_pages(dir, &pages),
                None => generate::print("man page", &pages[0].1),
            }
        }
        _ => return None,
    };
    Some(match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            EXIT_FAILURE
        }
    })
}

fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}
