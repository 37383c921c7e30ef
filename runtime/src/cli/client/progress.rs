//! The build progress of `spaceport push`: on a terminal, one spinner line
//! on stderr naming the stage and the current build step, redrawn in
//! place; otherwise plain lines, one per change.

use std::io::Write;

/// The step a build log line starts, if it starts one: Docker's classic
/// `Step 3/7 : RUN pip install ...` or BuildKit's `#8 [3/7] RUN pip ...`
/// (also `#8 [builder 3/7] ...`).
pub fn build_step(line: &str) -> Option<String> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("Step ") {
        let (count, _) = rest.split_once(" : ")?;
        let (n, m) = count.split_once('/')?;
        if n.parse::<u32>().is_ok() && m.parse::<u32>().is_ok() {
            return Some(line.to_owned());
        }
        return None;
    }
    let rest = line.strip_prefix('#')?;
    let (num, rest) = rest.split_once(' ')?;
    if num.parse::<u32>().is_err() {
        return None;
    }
    let inner = rest.strip_prefix('[')?;
    let (bracket, after) = inner.split_once(']')?;
    let count = bracket.rsplit(' ').next()?;
    let (n, m) = count.split_once('/')?;
    if n.parse::<u32>().is_ok() && m.parse::<u32>().is_ok() && !after.trim().is_empty() {
        Some(format!("[{bracket}]{after}"))
    } else {
        None
    }
}

/// The lines of a failed build worth showing: the last step started and
/// the lines that report the failure; the last few lines when none do.
pub fn failing_lines(lines: &[String]) -> Vec<String> {
    let is_failure = |l: &str| {
        let low = l.to_ascii_lowercase();
        low.contains("error")
            || low.contains("non-zero code")
            || low.contains("did not complete successfully")
            || low.contains("failed")
            || low.contains("exit code")
    };
    let last_step = lines.iter().rposition(|l| build_step(l).is_some());
    let mut picked: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| is_failure(l))
        .map(|(i, _)| i)
        .collect();
    if picked.len() > 8 {
        picked.drain(..picked.len() - 8);
    }
    if let Some(s) = last_step
        && !picked.contains(&s)
    {
        picked.push(s);
        picked.sort_unstable();
    }
    if picked.is_empty() {
        let from = lines.len().saturating_sub(6);
        return lines[from..].to_vec();
    }
    picked.into_iter().map(|i| lines[i].clone()).collect()
}

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The progress display.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    color: bool,
    frame: usize,
    shown: bool,
    last_stage: String,
    last_step: String,
}

impl Progress {
    pub fn new(tty: bool, color: bool) -> Self {
        Progress {
            tty,
            color,
            frame: 0,
            shown: false,
            last_stage: String::new(),
            last_step: String::new(),
        }
    }

    /// Shows the current stage and step (a redraw on a terminal, a line per
    /// change otherwise).
    pub fn update(&mut self, err: &mut dyn Write, stage: &str, step: Option<&str>) {
        let step = super::output::clean(step.unwrap_or_default());
        let step = step.as_str();
        let stage = super::output::clean(stage);
        let stage = stage.as_str();
        if self.tty {
            self.frame = (self.frame + 1) % FRAMES.len();
            let width = terminal_width().saturating_sub(4);
            let mut text = if step.is_empty() {
                stage.to_owned()
            } else {
                format!("{stage}  {step}")
            };
            if text.chars().count() > width {
                text = text.chars().take(width.saturating_sub(1)).collect();
                text.push('…');
            }
            let spinner = super::output::paint(self.color, "36", FRAMES[self.frame]);
            let _ = write!(err, "\r\x1b[2K{spinner} {text}");
            let _ = err.flush();
            self.shown = true;
        } else {
            if stage != self.last_stage {
                let _ = writeln!(err, "stage: {stage}");
            }
            if !step.is_empty() && step != self.last_step {
                let _ = writeln!(err, "step: {step}");
            }
        }
        self.last_stage = stage.to_owned();
        self.last_step = step.to_owned();
    }

    /// Clears the spinner line so the next output starts clean.
    pub fn clear(&mut self, err: &mut dyn Write) {
        if self.tty && self.shown {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

/// Columns of the terminal: $COLUMNS, else 80.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c >= 20)
        .unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_buildkit_steps_are_recognized() {
        assert_eq!(
            build_step("Step 2/5 : RUN pip install -r requirements.txt").as_deref(),
            Some("Step 2/5 : RUN pip install -r requirements.txt")
        );
        assert_eq!(
            build_step("#7 [3/4] RUN false").as_deref(),
            Some("[3/4] RUN false")
        );
        assert_eq!(
            build_step("#7 [builder 2/6] COPY . /src").as_deref(),
            Some("[builder 2/6] COPY . /src")
        );
        assert_eq!(build_step("#7 DONE 0.1s"), None);
        assert_eq!(build_step("#7 [internal] load build definition"), None);
        assert_eq!(build_step("Step up"), None);
        assert_eq!(build_step(" ---> Running in abc"), None);
    }

    #[test]
    fn a_failed_build_shows_its_step_and_error() {
        let lines: Vec<String> = [
            "Step 1/2 : FROM base",
            " ---> abc",
            "Step 2/2 : RUN false",
            " ---> Running in x",
            "The command '/bin/sh -c false' returned a non-zero code: 1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let shown = failing_lines(&lines);
        assert_eq!(
            shown,
            vec![
                "Step 2/2 : RUN false".to_string(),
                "The command '/bin/sh -c false' returned a non-zero code: 1".to_string()
            ]
        );
    }
}
