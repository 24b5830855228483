//! The log writer: formatted lines go into a shared buffer, and a thread of their own writes
//! them out in batches.
//!
//! Under load a proxy logs one access line per request. Handing each line to a writer thread
//! through a channel (tracing-appender's design) wakes that thread for nearly every line, and
//! its receive loop spins with `sched_yield` before sleeping: on a busy core, the writer then
//! takes turns with the proxy's worker thousands of times a second. Here the writer is woken
//! only when the buffer goes from empty to not empty, then waits [`GATHER`] for more lines
//! before it writes them all in one system call: a few hundred wake-ups a second at most,
//! and a quiet gateway's lines still go out within [`GATHER`].
//!
//! Lossless: when the buffer holds [`MAX_PENDING`] bytes (the output is blocked, a full pipe
//! to a stalled collector), callers wait for room rather than lines being dropped; audit
//! events must not be lost. The buffer grows with what is pending and nothing is allocated
//! in advance.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits for more lines once one has come.
pub const GATHER: Duration = Duration::from_millis(5);

/// Pending bytes beyond which callers wait for the writer.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for lines; callers wait here for room.
    lines_or_room: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The writer thread is asleep waiting for lines.
    writer_waiting: bool,
    /// The guard was dropped: the writer drains and ends; later lines are written directly.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain bytes: still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where tracing's formatter puts lines (a [`MakeWriter`]): see the module.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Ends the writer thread once every pending line is written; keep it for the process's life.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread writing to `output`.
pub fn start<W: Write + Send + 'static>(
    output: W,
) -> std::io::Result<(BatchedWriter, WriterGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        lines_or_room: Condvar::new(),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&shared, output))?
    };
    Ok((
        BatchedWriter {
            shared: shared.clone(),
        },
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_batches<W: Write>(shared: &Shared, mut output: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.closed {
                state.writer_waiting = true;
                state = shared
                    .lines_or_room
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.writer_waiting = false;
            }
            if state.pending.is_empty() && state.closed {
                return;
            }
        }
        // More lines come meanwhile: written together.
        std::thread::sleep(GATHER);
        {
            let mut state = shared.lock();
            std::mem::swap(&mut state.pending, &mut batch);
        }
        // Callers waiting for room may go on.
        shared.lines_or_room.notify_all();
        // Nowhere to report a failed write of the log itself; the lines are dropped.
        output.write_all(&batch).ok();
        output.flush().ok();
        batch.clear();
        // A burst's buffer is not kept for ever.
        if batch.capacity() > 256 * 1024 {
            batch = Vec::new();
        }
    }
}

impl Write for &BatchedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        while state.pending.len() >= MAX_PENDING && !state.closed {
            state = self
                .shared
                .lines_or_room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            // The process is ending and the writer thread is gone.
            drop(state);
            return std::io::stdout().write(bytes);
        }
        let wake = state.pending.is_empty() && state.writer_waiting;
        state.pending.extend_from_slice(bytes);
        drop(state);
        if wake {
            self.shared.lines_or_room.notify_all();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = &'a BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.lines_or_room.notify_all();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

#[cfg(test)]
mod tests;
