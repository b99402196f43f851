//! The child's stdout and stderr, line by line, into `tracing` (target `k3s`).

use std::io::{self, BufRead, BufReader};

/// Forwards each line from `reader` to `tracing` (target `k3s`) on a thread of its own; the
/// thread ends at EOF, when the child and everything it started have closed the pipe.
pub(crate) fn forward_output(
    reader: io::PipeReader,
    thread_name: String,
    stream: &'static str,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        emit(stream, line.trim_end_matches(['\n', '\r']));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(target: "k3s", stream, error = %e, "cannot read the child's output");
                        break;
                    }
                }
            }
        })
        .map(drop)
}

fn emit(stream: &'static str, line: &str) {
    match line_level(line) {
        tracing::Level::ERROR => tracing::error!(target: "k3s", stream, "{line}"),
        tracing::Level::WARN => tracing::warn!(target: "k3s", stream, "{line}"),
        tracing::Level::DEBUG | tracing::Level::TRACE => {
            tracing::debug!(target: "k3s", stream, "{line}");
        }
        _ => tracing::info!(target: "k3s", stream, "{line}"),
    }
}

/// The level of a child's log line: logrus text (`time="…" level=warning msg="…"`, K3s's own) or
/// klog (`W0102 15:04:05.000000 …`, the Kubernetes components). Anything else: info.
fn line_level(line: &str) -> tracing::Level {
    use tracing::Level;
    if line.starts_with("time=")
        && let Some((_, rest)) = line.split_once(" level=")
    {
        let word = rest.split(' ').next().unwrap_or_default();
        return match word {
            "error" | "fatal" | "panic" => Level::ERROR,
            "warning" | "warn" => Level::WARN,
            "debug" | "trace" => Level::DEBUG,
            _ => Level::INFO,
        };
    }
    let bytes = line.as_bytes();
    if bytes.len() > 5 && bytes[1..5].iter().all(u8::is_ascii_digit) {
        return match bytes[0] {
            b'E' | b'F' => Level::ERROR,
            b'W' => Level::WARN,
            _ => Level::INFO,
        };
    }
    Level::INFO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        use tracing::Level;
        for (line, level) in [
            (
                r#"time="2025-01-02T03:04:05Z" level=info msg="Starting k3s""#,
                Level::INFO,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=warning msg="x""#,
                Level::WARN,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=error msg="x""#,
                Level::ERROR,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=fatal msg="x""#,
                Level::ERROR,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=debug msg="x""#,
                Level::DEBUG,
            ),
            ("I0102 03:04:05.000000      42 server.go:1] hi", Level::INFO),
            ("W0102 03:04:05.000000      42 server.go:1] hm", Level::WARN),
            (
                "E0102 03:04:05.000000      42 server.go:1] no",
                Level::ERROR,
            ),
            ("Error: flag provided but not defined: -x", Level::INFO),
            ("level=error not logrus", Level::INFO),
            ("", Level::INFO),
        ] {
            assert_eq!(line_level(line), level, "{line}");
        }
    }
}
