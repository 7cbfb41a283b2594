//! The progress line every few seconds: operations so far and the faults in force.

use super::{Engine, Phase};
use crate::nemesis::Kind;
use crate::net::Nanos;

impl Engine {
    /// Logs the progress line when it is due.
    pub(super) fn report_progress(&mut self, now: Nanos) {
        match &self.progress {
            Some(p) if now >= p.next_at() => {}
            _ => return,
        }
        let faults = self.faults_in_force();
        let elapsed = now.saturating_sub(self.history_origin);
        let Some(progress) = self.progress.as_mut() else {
            return;
        };
        let line = progress.poll(now, elapsed, &self.history.ops, &faults);
        if let Some(mut line) = line {
            match self.phase {
                Phase::Final { .. } => line.push_str(" · final phase"),
                Phase::Quiet => line.push_str(" · main phase over, waiting"),
                Phase::Setup | Phase::Main { .. } => {}
            }
            self.console.info("runner", "workloads.progress", &line);
        }
    }

    /// The faults in force, in words: `partition {n0} | {n1 n2}`, `killed n1`, `lossy`…
    pub(super) fn faults_in_force(&self) -> Vec<String> {
        let active = |kind| {
            self.faults
                .planner
                .as_ref()
                .is_some_and(|p| p.is_active(kind))
        };
        let on: Vec<Kind> = [Kind::Lossy, Kind::Clock]
            .into_iter()
            .filter(|k| active(*k))
            .collect();
        let partition = self.faults.partition.as_deref();
        describe_faults(
            partition,
            &self.names,
            &self.faults.down,
            &self.faults.paused,
            &on,
        )
    }
}

/// The faults in force, in words, from what the engine knows of them.
fn describe_faults(
    partition: Option<&str>,
    names: &[String],
    down: &[bool],
    paused: &[bool],
    on: &[Kind],
) -> Vec<String> {
    let mut faults: Vec<String> = partition
        .map(|p| format!("partition {p}"))
        .into_iter()
        .collect();
    for (word, flags) in [("killed", down), ("paused", paused)] {
        let hit: Vec<&str> = (0..names.len())
            .filter(|&i| flags[i])
            .map(|i| names[i].as_str())
            .collect();
        if !hit.is_empty() {
            faults.push(format!("{word} {}", hit.join(" ")));
        }
    }
    faults.extend(on.iter().map(|k| k.name().to_string()));
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_said_in_words() {
        let names: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
        let none = [false; 3];
        assert!(describe_faults(None, &names, &none, &none, &[]).is_empty());
        let said = describe_faults(
            Some("{n0} | {n1 n2}"),
            &names,
            &[false, true, true],
            &[true, false, false],
            &[Kind::Lossy],
        );
        assert_eq!(
            said,
            [
                "partition {n0} | {n1 n2}",
                "killed n1 n2",
                "paused n0",
                "lossy"
            ]
        );
    }
}
