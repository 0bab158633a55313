//! Carries a plugin's `tracing` events and panic reports to the host's log stream.
//!
//! A cdylib has its own copy of `tracing`'s statics, so events a plugin emits reach nothing
//! unless the plugin installs a subscriber. At init the SDK installs one that formats each event
//! and hands it to the host through the [`HostLog`](crate::abi::HostLog) object; the host tags it
//! with the plugin's name. The plugin's own panic hook reports through the same sink.

use std::fmt::Write as _;
use std::sync::{Once, PoisonError, RwLock};

use abi_stable::std_types::RStr;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

use crate::abi::{HostLogBox, LogLevel};

struct Sink {
    host_log: HostLogBox,
    max_level: LogLevel,
}

/// Replaced at every init, so a re-initialised plugin logs to the host's current sink.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

pub(crate) fn install(host_log: HostLogBox, max_level: LogLevel) {
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = Some(Sink { host_log, max_level });
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if the plugin installed its own global subscriber first; then it keeps it.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Bridge));
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let message = crate::export::panic_message(info.payload());
            send(LogLevel::Error, "panic", &format!("plugin panicked{location}: {message}"));
        }));
    });
}

fn send(level: LogLevel, target: &str, message: &str) {
    let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(sink) = sink.as_ref() {
        if level <= sink.max_level {
            sink.host_log.log(level, RStr::from(target), RStr::from(message));
        }
    }
}

fn to_level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

struct Bridge;

impl<S: Subscriber> Layer<S> for Bridge {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        sink.as_ref().is_some_and(|sink| to_level(metadata.level()) <= sink.max_level)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let meta = event.metadata();
        send(to_level(meta.level()), meta.target(), &message.text);
    }
}

/// `message` first, then the other fields as `key=value`, like tracing's compact format.
#[derive(Default)]
struct Message {
    text: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.text);
            let _ = write!(self.text, "{value:?}");
            self.text.push_str(&fields);
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }
}
