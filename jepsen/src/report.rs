//! What a run found, for a person: its checks ([`RunResult`]), one line per run, the
//! summary table of a sweep, and a picture of each run (throughput and latency over time,
//! fault windows shaded, as Jepsen draws them) with plotters.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::checker::followers::Staleness;
use crate::checker::models::ModelResult;
use crate::checker::set::SetResult;
use crate::history::{Kind, Op, Outcome};
use crate::nemesis::{Fault, Window};

/// The checks of one run.
#[derive(Debug, Default)]
pub(crate) struct RunResult {
    pub(crate) run: usize,
    pub(crate) seed: u64,
    pub(crate) ops: usize,
    pub(crate) ok: usize,
    pub(crate) unknown: usize,
    pub(crate) failed: usize,
    pub(crate) keys: usize,
    /// Keys whose history is not linearizable.
    pub(crate) violations: Vec<String>,
    /// Keys the checker could not decide within its budget.
    pub(crate) undecided: usize,
    pub(crate) set: SetResult,
    /// Added keys the final read could not read.
    pub(crate) unread: usize,
    /// Follower reads of a value no one wrote to that key.
    pub(crate) follower_phantoms: usize,
    /// How stale the follower reads were (not a failure: they do not promise the latest).
    pub(crate) staleness: Staleness,
    /// The model executions' outputs on every replica.
    pub(crate) models: ModelResult,
    /// Why the outputs could not be read from every replica after the heal.
    pub(crate) model_read_error: Option<String>,
    /// Faults that could not be made or healed (a `shardai cluster` command that failed).
    pub(crate) nemesis_errors: Vec<String>,
    /// Why the run ended before its checks (the cluster did not form, ...).
    pub(crate) error: Option<String>,
    /// For each fault: share of operations invoked during it that succeeded.
    pub(crate) availability: Vec<(Fault, f64)>,
    /// Seconds from each heal to the first acknowledged write invoked after it (None: none
    /// came before the run ended).
    pub(crate) recovery: Vec<Option<f64>>,
}

impl RunResult {
    pub(crate) fn passed(&self) -> bool {
        self.violations.is_empty()
            && self.undecided == 0
            && self.set.lost.is_empty()
            && self.set.phantom.is_empty()
            && self.unread == 0
            && self.follower_phantoms == 0
            && self.models.passed()
            && self.model_read_error.is_none()
            && self.nemesis_errors.is_empty()
            && self.error.is_none()
            && self.recovery.iter().all(|r| r.is_some_and(|s| s <= 10.0))
    }

    /// Counts, availability and recovery from the history and the fault windows.
    pub(crate) fn tally(&mut self, ops: &[Op], windows: &[Window]) {
        self.ops = ops.len();
        for o in ops {
            match o.outcome {
                Outcome::Ok => self.ok += 1,
                Outcome::Info => self.unknown += 1,
                Outcome::Fail => self.failed += 1,
            }
        }
        for w in windows {
            let during: Vec<&Op> = ops
                .iter()
                .filter(|o| o.invoke_us >= w.start_us && o.invoke_us < w.end_us && !o.follower)
                .collect();
            let ok = during.iter().filter(|o| o.outcome == Outcome::Ok).count();
            self.availability
                .push((w.fault, ok as f64 / during.len().max(1) as f64));
            let first = ops
                .iter()
                .filter(|o| {
                    o.invoke_us >= w.end_us && o.outcome == Outcome::Ok && o.kind != Kind::Read
                })
                .map(|o| o.complete_us)
                .min();
            self.recovery
                .push(first.map(|t| (t - w.end_us) as f64 / 1e6));
        }
    }

    fn max_recovery(&self) -> String {
        let m = self
            .recovery
            .iter()
            .map(|r| r.unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max);
        if m.is_finite() {
            format!("{m:.1}")
        } else {
            "never".into()
        }
    }

    /// One line.
    pub(crate) fn line(&self) -> String {
        if let Some(e) = &self.error {
            return format!(
                "run {:>3} seed {:<20} ended early: {e}  FAIL",
                self.run, self.seed
            );
        }
        format!(
            "run {:>3} seed {:<20} ops {:>6} ok {:>5.1}% unknown {:>4} lost {} phantom {} \
             violations {} undecided {} follower-phantoms {} model-outputs {}x{} lost/wrong/phantom/unread {}/{}/{}/{}{}{} \
             max-recovery {}s  {}",
            self.run,
            self.seed,
            self.ops,
            100.0 * self.ok as f64 / self.ops.max(1) as f64,
            self.unknown,
            self.set.lost.len(),
            self.set.phantom.len(),
            self.violations.len(),
            self.undecided,
            self.follower_phantoms,
            self.models.acknowledged,
            self.models.replicas,
            self.models.lost.len(),
            self.models.wrong.len(),
            self.models.phantom.len(),
            self.models.short.len(),
            match &self.model_read_error {
                Some(e) => format!(" ({e})"),
                None => String::new(),
            },
            match self.nemesis_errors.first() {
                Some(e) => format!(" nemesis-error ({e})"),
                None => String::new(),
            },
            self.max_recovery(),
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// The sweep's table: totals and, per fault, availability and recovery.
pub(crate) fn summary(results: &[RunResult]) -> String {
    let sum = |f: fn(&RunResult) -> usize| results.iter().map(f).sum::<usize>();
    let mut s = String::new();
    s.push_str(&format!(
        "| runs | passed | operations | acknowledged | unknown | acknowledged adds | lost | phantom | linearizability violations | undecided keys | keys checked | acknowledged model executions | outputs lost, wrong, phantom or unread on a replica |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n\n",
        results.len(),
        results.iter().filter(|r| r.passed()).count(),
        sum(|r| r.ops),
        sum(|r| r.ok),
        sum(|r| r.unknown),
        sum(|r| r.set.acknowledged),
        sum(|r| r.set.lost.len()),
        sum(|r| r.set.phantom.len()),
        sum(|r| r.violations.len()),
        sum(|r| r.undecided),
        sum(|r| r.keys),
        sum(|r| r.models.acknowledged),
        sum(|r| {
            r.models.lost.len() + r.models.wrong.len() + r.models.phantom.len() + r.models.short.len()
        }),
    ));
    let mut stale = Staleness::default();
    for r in results {
        stale.merge(&r.staleness);
    }
    let (share, max, p99) = stale.stats();
    s.push_str(&format!(
        "| READONLY follower reads | stale (their value overwritten by a write acknowledged before they began) | staleness: p99 | max |\n\
         |---|---|---|---|\n\
         | {} | {} ({:.1}%) | {p99:.0} ms | {max:.0} ms |\n\n",
        stale.reads,
        stale.lags_us.len(),
        100.0 * share,
    ));
    let mut per: BTreeMap<&str, (Vec<f64>, Vec<Option<f64>>)> = BTreeMap::new();
    for r in results {
        for ((f, a), rec) in r.availability.iter().zip(&r.recovery) {
            let e = per.entry(f.name()).or_default();
            e.0.push(*a);
            e.1.push(*rec);
        }
    }
    s.push_str(
        "| fault | times | availability during it (mean) | recovery after heal: mean | max |\n\
         |---|---|---|---|---|\n",
    );
    for (name, (avail, rec)) in per {
        let done: Vec<f64> = rec.iter().flatten().copied().collect();
        let mean = done.iter().sum::<f64>() / done.len().max(1) as f64;
        let max = if done.len() == rec.len() {
            format!("{:.1} s", done.iter().copied().fold(0.0, f64::max))
        } else {
            format!("never ({} of {})", rec.len() - done.len(), rec.len())
        };
        s.push_str(&format!(
            "| {name} | {} | {:.0}% | {:.1} s | {max} |\n",
            avail.len(),
            100.0 * avail.iter().sum::<f64>() / avail.len().max(1) as f64,
            mean
        ));
    }
    s
}

/// The fault windows as shaded rectangles from `low` to `high`.
fn shading(windows: &[Window], low: f64, high: f64) -> Vec<Rectangle<(f64, f64)>> {
    windows
        .iter()
        .map(|w| {
            let (a, b) = (w.start_us as f64 / 1e6, w.end_us as f64 / 1e6);
            Rectangle::new(
                [(a, low), (b, high)],
                RGBColor(255, 200, 120).mix(0.35).filled(),
            )
        })
        .collect()
}

/// Throughput (acknowledged operations a second) and latency of each operation over
/// time, fault windows shaded, as an SVG file.
pub(crate) fn plot(path: &Path, title: &str, ops: &[Op], windows: &[Window]) -> anyhow::Result<()> {
    let end_s = ops.iter().map(|o| o.complete_us).max().unwrap_or(1) as f64 / 1e6;
    let bucket = 0.25;
    let n = (end_s / bucket).ceil() as usize + 1;
    let mut rate = vec![0u32; n];
    for o in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        rate[(o.complete_us as f64 / 1e6 / bucket) as usize] += 1;
    }
    let max_rate = rate.iter().copied().max().unwrap_or(1) as f64 / bucket;
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let (top, bottom) = root.split_vertically(330);
    {
        let mut chart = ChartBuilder::on(&top)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption(
                "acknowledged operations per second (shaded: faults)",
                ("sans-serif", 14),
            )
            .build_cartesian_2d(0.0..end_s, 0.0..max_rate * 1.1 + 1.0)?;
        chart.configure_mesh().x_desc("seconds").draw()?;
        chart.draw_series(shading(windows, 0.0, max_rate * 1.1 + 1.0))?;
        chart.draw_series(LineSeries::new(
            rate.iter()
                .enumerate()
                .map(|(i, c)| (i as f64 * bucket, *c as f64 / bucket)),
            &BLUE,
        ))?;
    }
    {
        let lat = |o: &Op| ((o.complete_us - o.invoke_us) as f64 / 1e3).max(0.01);
        let max_lat = ops.iter().map(lat).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption(
                "latency of each operation, ms (blue: ok, red: failed, orange: unknown)",
                ("sans-serif", 14),
            )
            .build_cartesian_2d(0.0..end_s, (0.01..max_lat * 1.5).log_scale())?;
        chart.configure_mesh().x_desc("seconds").draw()?;
        chart.draw_series(shading(windows, 0.01, max_lat * 1.5))?;
        // At most 20000 points, evenly thinned.
        let step = (ops.len() / 20_000).max(1);
        chart.draw_series(ops.iter().step_by(step).map(|o| {
            let color = match o.outcome {
                Outcome::Ok => BLUE.mix(0.4),
                Outcome::Fail => RED.mix(0.6),
                Outcome::Info => RGBColor(255, 140, 0).mix(0.8),
            };
            Circle::new((o.invoke_us as f64 / 1e6, lat(o)), 1, color.filled())
        }))?;
    }
    root.present()?;
    Ok(())
}
