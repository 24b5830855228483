use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{start, MAX_PENDING};

/// An output that records each write it gets, and can be held shut.
#[derive(Clone, Default)]
struct Recorder {
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
    gate: Arc<Mutex<()>>,
}

impl Write for Recorder {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let _open = self.gate.lock().unwrap();
        self.writes.lock().unwrap().push(bytes.to_vec());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Recorder {
    fn all(&self) -> Vec<u8> {
        self.writes.lock().unwrap().concat()
    }
}

#[test]
fn every_line_is_written_in_order_and_many_lines_make_few_writes() {
    let output = Recorder::default();
    let (writer, guard) = start(output.clone()).unwrap();
    for n in 0..10_000 {
        (&writer)
            .write_all(format!("line {n}\n").as_bytes())
            .unwrap();
    }
    drop(guard);
    let expected: String = (0..10_000).map(|n| format!("line {n}\n")).collect();
    assert_eq!(String::from_utf8(output.all()).unwrap(), expected);
    let writes = output.writes.lock().unwrap().len();
    assert!(writes < 100, "{writes} writes for 10,000 lines");
}

#[test]
fn a_lone_line_goes_out_promptly() {
    let output = Recorder::default();
    let (writer, _guard) = start(output.clone()).unwrap();
    (&writer).write_all(b"hello\n").unwrap();
    let began = Instant::now();
    while output.all().is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "line never written"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(output.all(), b"hello\n");
}

#[test]
fn lines_from_several_threads_are_all_written_whole() {
    let output = Recorder::default();
    let (writer, guard) = start(output.clone()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for n in 0..1_000 {
                    (&writer)
                        .write_all(format!("thread {t} line {n}\n").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    drop(guard);
    let text = String::from_utf8(output.all()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4_000);
    for t in 0..4 {
        let mine: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.starts_with(&format!("thread {t} ")))
            .collect();
        let expected: Vec<String> = (0..1_000).map(|n| format!("thread {t} line {n}")).collect();
        assert_eq!(mine, expected, "thread {t}'s lines out of order or lost");
    }
}

#[test]
fn a_blocked_output_makes_callers_wait_instead_of_dropping_lines() {
    let output = Recorder::default();
    let held = output.gate.lock().unwrap();
    let (writer, guard) = start(output.clone()).unwrap();
    let line = vec![b'x'; 64 * 1024];
    // The writer takes a first batch and blocks on the output; then the buffer fills.
    let filler = {
        let writer = writer.clone();
        let line = line.clone();
        std::thread::spawn(move || {
            for _ in 0..(3 * MAX_PENDING / line.len()) {
                (&writer).write_all(&line).unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!filler.is_finished(), "callers did not wait for room");
    drop(held);
    filler.join().unwrap();
    drop(guard);
    assert_eq!(output.all().len(), 3 * MAX_PENDING);
}
