//! The log lines on stderr: readable lines by default, JSON lines with `--log-format json`;
//! `RUST_LOG` filters either.
//!
//! A readable line is the time, the agent (short token id and name) when the event is about
//! one, and the message. The service's own events say everything in their message (their
//! fields are there for the JSON lines), so their fields are not repeated; events of other
//! crates keep theirs, as `key=value` after the message.

use std::fmt::{self, Write as _};

use alloy::primitives::U256;
use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::ids::Id;

/// The filter without `RUST_LOG`: warnings, and the service's lines (`inft serve`).
const DEFAULT_FILTER: &str = "warn,inft_service=info";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event: time, agent, message.
    #[default]
    Text,
    /// One JSON object per line, with every field (full token ids).
    Json,
}

/// Installs the stderr logger for the process.
pub(crate) fn init(format: LogFormat) {
    let _ = subscriber(format, std::io::stderr).try_init();
}

/// The logger writing to `writer` (a function, so tests can capture it).
fn subscriber<W>(format: LogFormat, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(Lines(format))
        .finish()
}

/// The event formatter of both formats.
struct Lines(LogFormat);

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = now_utc();
        let line = match self.0 {
            LogFormat::Text => text_line(&time, meta.level(), meta.target(), &fields),
            LogFormat::Json => json_line(&time, meta.level(), meta.target(), &fields),
        };
        writeln!(writer, "{line}")
    }
}

/// The time now, UTC, to the second (`2025-06-01T12:00:05Z`).
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// An event's fields: the message, the agent it is about, and the rest in order.
#[derive(Default)]
struct Fields {
    message: String,
    /// `token`: the token id, decimal.
    token: Option<String>,
    /// `agent`: the agent's name.
    agent: Option<String>,
    rest: Vec<(&'static str, serde_json::Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let text = || match &value {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        match field.name() {
            "message" => self.message = text(),
            "token" => self.token = Some(text()),
            "agent" => self.agent = Some(text()),
            name => self.rest.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

/// The readable line: `TIME [LEVEL] [ID NAME]  MESSAGE [key=value…]`.
fn text_line(time: &str, level: &Level, target: &str, f: &Fields) -> String {
    let mut line = time.to_owned();
    match *level {
        Level::INFO => {}
        Level::WARN => line.push_str(" warning:"),
        Level::ERROR => line.push_str(" error:"),
        l => {
            let _ = write!(line, " {}:", l.as_str().to_ascii_lowercase());
        }
    }
    if let Some(token) = &f.token {
        match U256::from_str_radix(token, 10) {
            Ok(id) => {
                let _ = write!(line, " {}", Id(id));
            }
            Err(_) => {
                let _ = write!(line, " {token}");
            }
        }
        if let Some(name) = &f.agent {
            let _ = write!(line, " {name}");
        }
        line.push(' ');
    }
    let _ = write!(line, " {}", f.message.trim_start());
    // The service says everything in its messages; other crates' fields are kept.
    if !target.starts_with("inft_service") {
        for (name, value) in &f.rest {
            match value {
                serde_json::Value::String(s) => {
                    let _ = write!(line, " {name}={s}");
                }
                v => {
                    let _ = write!(line, " {name}={v}");
                }
            }
        }
    }
    line
}

/// The JSON line: time, level, target, message and every field (the token id in full).
fn json_line(time: &str, level: &Level, target: &str, f: &Fields) -> String {
    let mut object = serde_json::Map::new();
    object.insert("time".into(), time.into());
    object.insert("level".into(), level.as_str().into());
    object.insert("target".into(), target.into());
    if let Some(token) = &f.token {
        object.insert("token".into(), token.clone().into());
    }
    if let Some(agent) = &f.agent {
        object.insert("agent".into(), agent.clone().into());
    }
    object.insert("message".into(), f.message.trim_start().into());
    for (name, value) in &f.rest {
        object.insert((*name).into(), value.clone());
    }
    serde_json::Value::Object(object).to_string()
}

// The service's lines exist only in a build with the engine (`inft serve`).
#[cfg(all(test, feature = "engine"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use agent_runtime::record::ActionKind;
    use alloy::primitives::B256;
    use inft_runtime::StepReport;
    use inft_service::StepSummary;
    use inft_service::lines::AgentLines;

    use super::*;

    /// Captures what the logger writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The lines `format` writes for a state change and an action of agent `token`, emitted as
    /// the service emits them.
    fn lines(format: LogFormat, token: U256, action: &str) -> Vec<String> {
        let out = Captured::default();
        let token = token.to_string();
        let agent = AgentLines {
            token: &token,
            name: Some("poet"),
        };
        tracing::subscriber::with_default(subscriber(format, out.clone()), || {
            agent.started(Some(41));
            agent.action(&StepSummary {
                seq: 42,
                kind: "hold".into(),
                summary: action.to_owned(),
                ..StepSummary::default()
            });
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn hold() -> StepReport {
        StepReport {
            step: 0,
            seq: 42,
            record_hash: B256::repeat_byte(0xab),
            tx_hash: None,
            kind: ActionKind::Other("hold".into()),
            output: r#"{"action":"hold"}"#.into(),
            details: serde_json::json!({ "intent": { "action": "hold", "reason": "no trend yet" } }),
        }
    }

    #[test]
    fn serve_lines_are_readable_by_default() {
        let token = U256::from_str_radix(
            "1a2b3c4d5e6f00000000000000000000000000000000000000000000000000ff",
            16,
        )
        .unwrap();
        let action = crate::cmd::run::action_line(&hold(), None);
        let lines = lines(LogFormat::Text, token, &action);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let [started, acted] = [&lines[0], &lines[1]];
        // TIME ID NAME  MESSAGE, and no field dump.
        let rest = |l: &str| l.split_once(' ').map(|(_, r)| r.to_owned()).unwrap();
        let short = crate::ids::short_id(token);
        assert_eq!(short, "ff1a2b3c", "the salt (0xff) first, then the minter");
        assert_eq!(
            rest(started),
            format!("{short} poet  started (last logged seq 41)")
        );
        assert_eq!(
            rest(acted),
            format!("{short} poet  {}", action.trim_start())
        );
        assert!(acted.contains("hold      · no trend yet"), "{acted}");
        assert!(
            !acted.contains(&token.to_string()) && !acted.contains("seq="),
            "{acted}"
        );
    }

    #[test]
    fn json_lines_carry_the_full_id_and_the_fields() {
        let token = U256::from(77u64) << 240;
        let lines = lines(LogFormat::Json, token, "  seq  42  hold");
        let acted: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(acted["token"], token.to_string());
        assert_eq!(acted["agent"], "poet");
        assert_eq!(acted["seq"], 42);
        assert_eq!(acted["kind"], "hold");
        assert_eq!(acted["message"], "seq  42  hold");
        assert_eq!(acted["level"], "INFO");
    }
}
