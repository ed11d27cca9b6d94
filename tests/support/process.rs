//! Processes a test starts: killed and reaped when the test ends, however it ends, and waited
//! for until they are ready.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    /// Start `cmd` (stdin closed, output kept for the failure message) as `name`.
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Guard {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Guard { name, child }
    }

    /// The process's ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The first line the process writes to its standard output, without the line break;
    /// fails with its error output if it ends without one, or writes none within a minute.
    /// The rest of its standard output is no longer kept.
    pub fn first_line(&mut self) -> String {
        let stdout = self.child.stdout.take().expect("standard output is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) if line.ends_with('\n') => line.trim_end().to_string(),
            Ok(Ok(line)) => {
                let _ = self.child.wait();
                self.assert_running();
                panic!("{} wrote no line: {line:?}", self.name)
            }
            Ok(Err(e)) => panic!("reading {}'s output: {e}", self.name),
            Err(_) => panic!("{} wrote no line within a minute", self.name),
        }
    }

    /// Fail with the process's output if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(s) = self.child.stdout.as_mut() {
                let _ = s.read_to_string(&mut out);
            }
            if let Some(s) = self.child.stderr.as_mut() {
                let _ = s.read_to_string(&mut err);
            }
            panic!(
                "{} exited ({status})\n--- stdout\n{out}--- stderr\n{err}",
                self.name
            );
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `ready` until it holds, failing after a generous bound with `what`. This waits for a
/// server to come up; it asserts nothing about speed.
pub fn wait_for(what: &str, guard: &mut Guard, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        guard.assert_running();
        if ready() {
            return;
        }
        sleep(Duration::from_millis(100));
    }
    panic!("{what} did not become ready");
}
