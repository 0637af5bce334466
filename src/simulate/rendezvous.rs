//! One engine call for many runs: the runs of a simulation go on side by
//! side, each on its own thread, and their solves are gathered into one
//! batched call of the real back end.
//!
//! Each run keeps scoring its own log through the `score` entry points,
//! exactly as `trustmesh score` would, with a [`Hub`] as its back end; only
//! the back end's solve is shared. A solve waits until every run still going
//! has one waiting too; then the coordinator (the thread that owns the real
//! back end, [`Coordinator::serve`]) solves them all in one `solve_many` and
//! hands each run its vectors. Back ends solve every column as if it were
//! alone (the contract of [`TrustBackend::solve_many`]), so a run's results
//! do not depend on which other runs shared its call.
//!
//! Matrices are copied into the shared call: the runs own them, and the
//! copies are small next to the logs they were read from.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::trust::{
    Batch, Column, IterParams, LoadedMatrices, Problem, TrustBackend, TrustMatrix, TrustVector,
};

type Solved = std::result::Result<Vec<Vec<TrustVector>>, String>;

/// A solve waiting for the shared call.
struct Pending {
    ticket: u64,
    matrices: Vec<TrustMatrix>,
    /// (index into `matrices`, columns).
    batches: Vec<(usize, Vec<Column>)>,
    params: IterParams,
}

struct State<T> {
    /// Runs that have joined and not finished.
    active: usize,
    pending: Vec<Pending>,
    next_ticket: u64,
    done: HashMap<u64, Solved>,
    /// Finished runs' reports, for the coordinator to pass on.
    finished: Vec<T>,
    /// Engine calls made and solves they carried.
    calls: u64,
    solves: u64,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when a solve is submitted, a run finishes or results are in.
    changed: Condvar,
    name: String,
    epsilon: f64,
    precision: &'static str,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panicking run poisons the lock; every update is a single step,
        // so the state is whole: carry on and let that panic be reported.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, g: MutexGuard<'g, State<T>>) -> MutexGuard<'g, State<T>> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }
}

/// The coordinator's side: owns the real back end.
pub struct Coordinator<'b, T> {
    backend: &'b dyn TrustBackend,
    shared: Arc<Shared<T>>,
}

/// A run's back end. Made by [`Coordinator::join`] before the runs start;
/// [`Hub::finish`] (or dropping it, on any exit) leaves, so nobody waits for
/// a run that will not come.
pub struct Hub<T> {
    shared: Arc<Shared<T>>,
    left: bool,
}

impl<'b, T: Send> Coordinator<'b, T> {
    pub fn new(backend: &'b dyn TrustBackend) -> Self {
        Coordinator {
            backend,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    active: 0,
                    pending: Vec::new(),
                    next_ticket: 0,
                    done: HashMap::new(),
                    finished: Vec::new(),
                    calls: 0,
                    solves: 0,
                }),
                changed: Condvar::new(),
                name: backend.name(),
                epsilon: backend.default_epsilon(),
                precision: backend.precision(),
            }),
        }
    }

    /// A back end for one more run; join every run before any starts.
    pub fn join(&self) -> Hub<T> {
        self.shared.lock().active += 1;
        Hub {
            shared: Arc::clone(&self.shared),
            left: false,
        }
    }

    /// Solves for the runs until all have finished, passing each finished
    /// run's report to `on_finished` as it comes. Returns (engine calls,
    /// solves carried).
    pub fn serve(&self, on_finished: &mut dyn FnMut(T)) -> (u64, u64) {
        let sh = &self.shared;
        let mut s = sh.lock();
        loop {
            for t in std::mem::take(&mut s.finished) {
                drop(s);
                on_finished(t);
                s = sh.lock();
            }
            if !s.pending.is_empty() && s.pending.len() >= s.active {
                let pending = std::mem::take(&mut s.pending);
                drop(s);
                let results = self.solve_all(&pending);
                s = sh.lock();
                s.calls += 1;
                s.solves += pending.len() as u64;
                for (p, r) in pending.iter().zip(results) {
                    s.done.insert(p.ticket, r);
                }
                sh.changed.notify_all();
                continue;
            }
            if s.active == 0 && s.finished.is_empty() {
                return (s.calls, s.solves);
            }
            if s.finished.is_empty() {
                s = sh.wait(s);
            }
        }
    }

    /// One `solve_many` per distinct set of iteration parameters (the runs
    /// of one simulation share theirs: one call).
    fn solve_all(&self, pending: &[Pending]) -> Vec<Solved> {
        let mut out: Vec<Option<Solved>> = pending.iter().map(|_| None).collect();
        let mut groups: Vec<(IterParams, Vec<usize>)> = Vec::new();
        for (i, p) in pending.iter().enumerate() {
            match groups.iter_mut().find(|(q, _)| *q == p.params) {
                Some((_, members)) => members.push(i),
                None => groups.push((p.params, vec![i])),
            }
        }
        for (params, members) in groups {
            let problems: Vec<Problem> = members
                .iter()
                .flat_map(|&i| {
                    let p = &pending[i];
                    p.batches.iter().map(move |(m, columns)| Problem {
                        matrix: &p.matrices[*m],
                        columns,
                    })
                })
                .collect();
            match self.backend.solve_many(&problems, &params) {
                Ok(solved) => {
                    // Each run gets its batches' vectors, in order.
                    let mut rest = solved.into_iter();
                    for &i in &members {
                        out[i] = Some(Ok(rest.by_ref().take(pending[i].batches.len()).collect()));
                    }
                }
                Err(e) => {
                    for &i in &members {
                        out[i] = Some(Err(e.to_string()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err("no result".to_string())))
            .collect()
    }
}

impl<T> Hub<T> {
    /// Leaves with a report for the coordinator.
    pub fn finish(mut self, report: T) {
        let mut s = self.shared.lock();
        s.active -= 1;
        s.finished.push(report);
        self.left = true;
        self.shared.changed.notify_all();
    }

    fn submit(
        &self,
        matrices: Vec<TrustMatrix>,
        batches: Vec<(usize, Vec<Column>)>,
        params: IterParams,
    ) -> Result<Vec<Vec<TrustVector>>> {
        let sh = &self.shared;
        let mut s = sh.lock();
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        s.pending.push(Pending {
            ticket,
            matrices,
            batches,
            params,
        });
        sh.changed.notify_all();
        loop {
            if let Some(r) = s.done.remove(&ticket) {
                return r.map_err(|e| Error::internal(format!("batched engine call: {e}")));
            }
            s = sh.wait(s);
        }
    }
}

impl<T> Drop for Hub<T> {
    fn drop(&mut self) {
        if !self.left {
            let mut s = self.shared.lock();
            s.active -= 1;
            self.shared.changed.notify_all();
        }
    }
}

impl<T: Send + 'static> TrustBackend for Hub<T> {
    fn name(&self) -> String {
        self.shared.name.clone()
    }

    fn default_epsilon(&self) -> f64 {
        self.shared.epsilon
    }

    fn precision(&self) -> &'static str {
        self.shared.precision
    }

    fn load<'m>(&self, matrices: &[&'m TrustMatrix]) -> Result<Box<dyn LoadedMatrices + 'm>> {
        Ok(Box::new(Deferred {
            hub: Hub {
                shared: Arc::clone(&self.shared),
                // A handle for submitting, not a membership.
                left: true,
            },
            matrices: matrices.to_vec(),
        }))
    }
}

/// Matrices "loaded" on a [`Hub`]: kept by reference until a solve copies
/// them into the shared call.
struct Deferred<'m, T> {
    hub: Hub<T>,
    matrices: Vec<&'m TrustMatrix>,
}

impl<T> LoadedMatrices for Deferred<'_, T> {
    fn len(&self) -> usize {
        self.matrices.len()
    }

    fn solve_many(
        &self,
        batches: &[Batch<'_>],
        params: &IterParams,
    ) -> Result<Vec<Vec<TrustVector>>> {
        crate::trust::engine::check_batches(self.matrices.len(), batches)?;
        // Only the matrices these batches use travel.
        let mut used: Vec<usize> = batches.iter().map(|b| b.matrix).collect();
        used.sort_unstable();
        used.dedup();
        let matrices = used.iter().map(|&m| self.matrices[m].clone()).collect();
        let batches = batches
            .iter()
            .map(|b| {
                let at = used.binary_search(&b.matrix).expect("listed above");
                (at, b.columns.to_vec())
            })
            .collect();
        self.hub.submit(matrices, batches, *params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::CpuBackend;

    /// A ring of `n` with a chord, rows full (no deficit).
    fn matrix(n: u32, chord: u32) -> TrustMatrix {
        let mut e: Vec<(u32, u32, f64)> = (0..n).map(|i| (i, (i + 1) % n, 0.5)).collect();
        e.extend((0..n).map(|i| (i, (i + chord) % n, 0.5)));
        TrustMatrix::from_entries(n as usize, e, vec![0.0; n as usize]).unwrap()
    }

    fn params() -> IterParams {
        IterParams {
            alpha: 0.15,
            epsilon: 1e-12,
            max_iter: 500,
            flat_tail: None,
        }
    }

    #[test]
    fn runs_share_one_engine_call_and_get_what_they_would_alone() {
        let coordinator = Coordinator::<usize>::new(&CpuBackend);
        let hubs: Vec<Hub<usize>> = (0..3).map(|_| coordinator.join()).collect();
        let mut finished = Vec::new();
        let results: Vec<Vec<TrustVector>> = std::thread::scope(|scope| {
            let handles: Vec<_> = hubs
                .into_iter()
                .enumerate()
                .map(|(k, hub)| {
                    scope.spawn(move || {
                        let n = 5 + k as u32;
                        let m = matrix(n, 2);
                        let mut p = vec![0.0; n as usize];
                        p[0] = 1.0;
                        let v = hub.solve(&m, &[Column::new(p)], &params()).unwrap();
                        hub.finish(k);
                        v
                    })
                })
                .collect();
            let counts = coordinator.serve(&mut |k| finished.push(k));
            // Three runs, one solve each: one engine call carried them all.
            assert_eq!(counts, (1, 3));
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        finished.sort_unstable();
        assert_eq!(finished, [0, 1, 2]);
        for (k, got) in results.iter().enumerate() {
            let n = 5 + k as u32;
            let mut p = vec![0.0; n as usize];
            p[0] = 1.0;
            let alone = CpuBackend
                .solve(&matrix(n, 2), &[Column::new(p)], &params())
                .unwrap();
            assert_eq!(got, &alone, "run {k}");
        }
    }

    #[test]
    fn a_run_that_leaves_without_solving_holds_nobody_up() {
        let coordinator = Coordinator::<()>::new(&CpuBackend);
        let (stay, leave) = (coordinator.join(), coordinator.join());
        std::thread::scope(|scope| {
            // Fails before its first solve: dropping its hub leaves.
            scope.spawn(move || drop(leave));
            scope.spawn(move || {
                let m = matrix(4, 2);
                let v = stay
                    .solve(&m, &[Column::new(vec![0.25; 4])], &params())
                    .unwrap();
                assert_eq!(v.len(), 1);
                stay.finish(());
            });
            assert_eq!(coordinator.serve(&mut |_| {}), (1, 1));
        });
    }
}
