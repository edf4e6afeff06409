//! The `channel.k8s.io` WebSocket protocols kubectl speaks for exec and
//! attach: every binary message starts with a channel byte (0 stdin,
//! 1 stdout, 2 stderr, 3 error, 4 resize). `v4` puts a `Status` on the
//! error channel at the end; `v5` adds the close signal `[255, channel]`
//! so a client can end stdin without ending the connection.

use serde_json::{Value, json};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
pub const PROTOCOLS: [&str; 2] = [V5, V4];

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// What the client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<'a> {
    Stdin(&'a [u8]),
    Resize { width: u16, height: u16 },
    CloseStdin,
    Ignored,
}

pub fn decode(message: &[u8]) -> Incoming<'_> {
    match message {
        [STDIN, data @ ..] => Incoming::Stdin(data),
        [RESIZE, data @ ..] => {
            let size: Value = serde_json::from_slice(data).unwrap_or_default();
            let dim = |k: &str| size[k].as_u64().and_then(|v| u16::try_from(v).ok());
            match (dim("Width"), dim("Height")) {
                (Some(width), Some(height)) => Incoming::Resize { width, height },
                _ => Incoming::Ignored,
            }
        }
        [CLOSE, STDIN, ..] => Incoming::CloseStdin,
        _ => Incoming::Ignored,
    }
}

pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// The error-channel `Status` for a finished command, as the kubelet's
/// remotecommand server writes it (kubectl turns `NonZeroExitCode` into
/// its own exit code).
pub fn exit_status(command: &[String], code: u32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {}, exit code {code}",
            go_slice(command)
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// A failure before or while running the command.
pub fn failure(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

/// Go's `%v` of a string slice: `[sh -c exit 3]`.
fn go_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_decode_by_channel() {
        assert_eq!(decode(&[0, b'h', b'i']), Incoming::Stdin(b"hi"));
        assert_eq!(
            decode(b"\x04{\"Width\":120,\"Height\":40}"),
            Incoming::Resize {
                width: 120,
                height: 40
            }
        );
        assert_eq!(decode(b"\x04{\"Width\":-1}"), Incoming::Ignored);
        assert_eq!(decode(&[255, 0]), Incoming::CloseStdin);
        assert_eq!(decode(&[]), Incoming::Ignored);
        assert_eq!(frame(STDOUT, b"x"), vec![1, b'x']);
    }

    #[test]
    fn exit_codes_become_kubernetes_statuses() {
        assert_eq!(exit_status(&[], 0)["status"], "Success");
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        let s = exit_status(&cmd, 3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }
}
