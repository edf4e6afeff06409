//! Runs the netfilter tools (`nft`, `iptables-restore`, `iptables-save`,
//! `iptables`) for both backends, each optionally under a wrapper
//! (`nsenter --net=/run/netns/NAME`: how the benchmark programs a private
//! network namespace), with the script on standard input.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// Runs `wrapper… tool args…`, feeding `input` to its standard input;
/// answers its standard output, or its standard error as the failure.
pub async fn run(
    wrapper: &[String],
    tool: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, ToolError> {
    let command = format!("{tool} {}", args.join(" "));
    let mut words = wrapper.iter();
    let mut cmd = match words.next() {
        Some(first) => {
            let mut c = tokio::process::Command::new(first);
            c.args(words).arg(tool);
            c
        }
        None => tokio::process::Command::new(tool),
    };
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn = |source| ToolError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await.map_err(spawn)?;
    }
    let out = child.wait_with_output().await.map_err(spawn)?;
    if !out.status.success() {
        return Err(ToolError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
