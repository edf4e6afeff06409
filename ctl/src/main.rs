//! `fkctl`: kubectl-like commands against a ferrokube (or any Kubernetes)
//! API server, and `explain-placement` for the ferrokube scheduler. The
//! kubeconfig is found as kubectl finds it: `--kubeconfig`, then
//! `$KUBECONFIG`, then `~/.kube/config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ctl::discovery::Discovery;
use ctl::get::Scope;

#[derive(Parser)]
#[command(name = "fkctl", about = "ferrokube command line", version)]
struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Namespace to work in.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply manifests with server-side apply (multi-document YAML; `-` for stdin).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Take ownership of fields other managers own.
        #[arg(long)]
        force_conflicts: bool,
    },
    /// Show objects as the server's table.
    Get {
        kind: String,
        name: Option<String>,
        /// List across all namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Delete one object.
    Delete { kind: String, name: String },
    /// Why the scheduler placed a pod where it did, or nowhere: per node,
    /// the filter that rejected it and why; per feasible node, each score.
    ExplainPlacement {
        pod: String,
        /// The scheduler's explanations endpoint (default: the URL the
        /// scheduler announces on the Lease kube-system/kube-scheduler).
        #[arg(long, env = "FKCTL_SCHEDULER")]
        scheduler: Option<String>,
        /// Print the explanation as JSON.
        #[arg(short = 'o', long, value_parser = ["json", "text"], default_value = "text")]
        output: String,
    },
}

async fn run(cli: Cli) -> Result<(), ctl::CtlError> {
    let client = client::connect(cli.kubeconfig.as_deref()).await?;
    match cli.command {
        Command::Apply {
            files,
            force_conflicts,
        } => {
            let discovery = Discovery::run(&client).await?;
            for f in files {
                for line in
                    ctl::apply::apply(&client, &discovery, &f, &cli.namespace, force_conflicts)
                        .await?
                {
                    println!("{line}");
                }
            }
        }
        Command::Get {
            kind,
            name,
            all_namespaces,
        } => {
            let discovery = Discovery::run(&client).await?;
            let resource = discovery.resolve(&kind)?;
            let scope = if all_namespaces && name.is_none() {
                Scope::All
            } else {
                Scope::Namespace(cli.namespace.clone())
            };
            print!(
                "{}",
                ctl::get::get(&client, resource, name.as_deref(), &scope).await?
            );
        }
        Command::Delete { kind, name } => {
            let discovery = Discovery::run(&client).await?;
            let resource = discovery.resolve(&kind)?;
            println!(
                "{}",
                ctl::get::delete(&client, resource, &name, &cli.namespace).await?
            );
        }
        Command::ExplainPlacement {
            pod,
            scheduler,
            output,
        } => {
            let url = match scheduler {
                Some(u) => u,
                None => ctl::explain::scheduler_url(&client).await?,
            };
            let explanation = ctl::explain::fetch(&url, &cli.namespace, &pod).await?;
            if output == "json" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&explanation).map_err(ctl::CtlError::Decode)?
                );
            } else {
                print!("{}", ctl::explain::render_explanation(&explanation));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // "No resources found" is not a failure for kubectl either.
        Err(ctl::CtlError::NotFound(msg)) if msg.starts_with("No resources found") => {
            eprintln!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e @ ctl::CtlError::Server { .. }) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
