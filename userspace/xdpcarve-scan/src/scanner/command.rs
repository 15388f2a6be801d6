//! Any tool as a scanner: a program run once per file with the stored file's path as an argument.
//! Run directly, never through a shell, so nothing from the wire can become a command; the path
//! itself is the store's own (`xx/<sha256>`), never a name from the wire.
//!
//! Verdict: a JSON object on stdout ([`super::PrintedVerdict`]) when stdout starts with `{`;
//! otherwise the exit status, 0 clean and 1 malicious (as clamscan and `yara` scripts use them),
//! anything else an error. Killed by a signal (a crash) is an error; past the scanner's timeout the
//! child is killed (kill_on_drop) and the verdict is a timeout.

use super::{Answer, PrintedVerdict};
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use xdpcarve_contract::Verdict;

/// What is kept of a tool's stdout (a verdict) and stderr (for the error's detail).
const MAX_OUTPUT: u64 = 64 * 1024;
/// The placeholder in `argv` for the stored file's path.
pub const PATH_PLACEHOLDER: &str = "{path}";

#[derive(Debug)]
pub struct Command {
    argv: Vec<String>,
}

impl Command {
    pub fn new(argv: &[String]) -> Result<Command, String> {
        if argv.is_empty() {
            return Err("argv is empty: give the program and its arguments".into());
        }
        if !argv.iter().any(|a| a.contains(PATH_PLACEHOLDER)) {
            return Err(format!(
                "argv has no {PATH_PLACEHOLDER}: the tool would not know which file to scan"
            ));
        }
        if !runnable(&argv[0]) {
            return Err(format!(
                "argv[0] `{}` is not an executable file (nor one found in PATH)",
                argv[0]
            ));
        }
        Ok(Command { argv: argv.to_vec() })
    }

    pub async fn scan(&self, path: &Path) -> Answer {
        let path = path.to_string_lossy();
        let args: Vec<String> = self.argv.iter().map(|a| a.replace(PATH_PLACEHOLDER, &path)).collect();
        let mut child = match tokio::process::Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return Answer::error(format!("cannot run {}: {e}", args[0])),
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut out = child.stdout.take().expect("piped").take(MAX_OUTPUT);
        let mut err = child.stderr.take().expect("piped").take(MAX_OUTPUT);
        let (read_out, read_err, status) =
            tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr), child.wait());
        let status = match (read_out, read_err, status) {
            (Ok(_), Ok(_), Ok(s)) => s,
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return Answer::error(format!("{}: {e}", args[0]));
            }
        };
        verdict_of(&args[0], status, &stdout, &stderr)
    }
}

/// Whether `program` names an executable file, directly or through `PATH`, as exec would find it.
fn runnable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| executable(&d.join(program))))
}

fn verdict_of(tool: &str, status: std::process::ExitStatus, stdout: &[u8], stderr: &[u8]) -> Answer {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return Answer::error(format!("{tool} was killed by signal {sig}{}", stderr_tail(stderr)));
    }
    let printed = stdout.trim_ascii();
    if printed.starts_with(b"{") && matches!(status.code(), Some(0 | 1)) {
        return PrintedVerdict::parse(printed);
    }
    match status.code() {
        Some(0) => Answer::clean(),
        Some(1) => Answer {
            verdict: Verdict::Malicious,
            signatures: Vec::new(),
            detail: (!printed.is_empty()).then(|| String::from_utf8_lossy(printed).into_owned()),
        },
        code => Answer::error(format!(
            "{tool} exited with status {}{}",
            code.map_or("?".into(), |c| c.to_string()),
            stderr_tail(stderr)
        )),
    }
}

/// The end of what the tool said on stderr, for an error's detail.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr.trim_ascii());
    if text.is_empty() {
        return String::new();
    }
    let start = text.char_indices().rev().nth(199).map_or(0, |(i, _)| i);
    format!(": {}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        Command::new(&[
            "sh".into(),
            "-c".into(),
            script.into(),
            "scanner".into(),
            "{path}".into(),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn exit_status_json_and_signals_become_verdicts() {
        let p = Path::new("/dev/null");
        assert_eq!(sh("exit 0").scan(p).await, Answer::clean());
        assert_eq!(sh("exit 1").scan(p).await.verdict, Verdict::Malicious);
        let a = sh("echo oops >&2; exit 3").scan(p).await;
        assert_eq!(a.verdict, Verdict::Error);
        assert!(a.detail.unwrap().ends_with("status 3: oops"));
        let a = sh(r#"echo '{"verdict":"suspicious","signatures":["Macro.Auto"]}'"#)
            .scan(p)
            .await;
        assert_eq!(
            (a.verdict, a.signatures),
            (Verdict::Suspicious, vec!["Macro.Auto".into()])
        );
        let a = sh("kill -SEGV $$").scan(p).await;
        assert_eq!(a.verdict, Verdict::Error);
        assert!(a.detail.unwrap().contains("signal 11"));
        let a = sh(r#"test "$1" = /dev/null && echo '{"verdict":"clean"}'"#)
            .scan(p)
            .await;
        assert_eq!(a, Answer::clean(), "the path is passed as one argument");
        let gone = tempfile::tempdir().unwrap();
        let tool = gone.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let c = Command::new(&[tool.to_string_lossy().into(), "{path}".into()]).unwrap();
        drop(gone);
        assert_eq!(
            c.scan(p).await.verdict,
            Verdict::Error,
            "a tool removed after start is an error result"
        );
    }

    #[test]
    fn argv_must_name_the_file() {
        assert!(Command::new(&[]).is_err());
        assert!(Command::new(&["clamscan".into()]).unwrap_err().contains("{path}"));
        assert!(Command::new(&["/nonexistent/tool".into(), "{path}".into()])
            .unwrap_err()
            .contains("not an executable"));
        assert!(Command::new(&["sh".into(), "{path}".into()]).is_ok(), "found in PATH");
    }
}
