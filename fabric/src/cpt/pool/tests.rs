use super::*;
use crate::cpt::{CptTable, TopologyDesc, current_thread_affinity};
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::channel;

fn this_machine() -> CptTable {
    CptTable::per_numa_node(&TopologyDesc::detect().unwrap())
}

/// A table of two partitions over this machine's cpus (one each when it
/// has two), so queues are exercised per partition.
fn two_partitions() -> CptTable {
    let topo = TopologyDesc::detect().unwrap();
    if topo.cpu_count() >= 2 {
        CptTable::with_count(&topo, 2).unwrap()
    } else {
        let cpu = topo.cpus().next().unwrap();
        CptTable::from_pattern(&topo, &format!("0[{cpu}]")).unwrap()
    }
}

fn config(threads: ThreadsPerCpt, depth: usize) -> CptPoolConfig {
    CptPoolConfig { threads, queue_depth: depth, ..CptPoolConfig::new("test") }
}

#[test]
fn every_item_is_handled_once_under_many_submitters() {
    const SUBMITTERS: usize = 8;
    const EACH: usize = 3000;
    let table = two_partitions();
    let seen: Arc<Vec<AtomicU32>> = Arc::new((0..SUBMITTERS * EACH).map(|_| AtomicU32::new(0)).collect());
    let wrong_cpt = Arc::new(AtomicUsize::new(0));
    let (s, w) = (Arc::clone(&seen), Arc::clone(&wrong_cpt));
    let ncpt = table.len();
    // A small queue, so submitters hit Full and retry.
    let pool = Arc::new(
        CptPool::spawn(
            &table,
            &config(ThreadsPerCpt::Fixed(3), 16),
            move |me: ServiceThread, item: usize| {
                if item % ncpt != me.cpt {
                    w.fetch_add(1, SeqCst);
                }
                s[item].fetch_add(1, SeqCst);
            },
        )
        .unwrap(),
    );
    let fulls = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let (pool, fulls) = (Arc::clone(&pool), Arc::clone(&fulls));
            std::thread::spawn(move || {
                for item in (t * EACH)..((t + 1) * EACH) {
                    let mut item = item;
                    loop {
                        match pool.submit(item % ncpt, item) {
                            Ok(()) => break,
                            Err(SubmitError::Full(back)) => {
                                fulls.fetch_add(1, SeqCst);
                                item = back;
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    let report = pool.shutdown();
    assert_eq!(report.threads_joined, 3 * ncpt);
    assert_eq!(report.handler_panics, 0);
    for (item, count) in seen.iter().enumerate() {
        assert_eq!(count.load(SeqCst), 1, "item {item}");
    }
    assert_eq!(wrong_cpt.load(SeqCst), 0, "an item ran on another partition's thread");
    assert!(matches!(pool.submit(0, 0), Err(SubmitError::Closed(0))));
}

#[test]
fn full_queue_hands_the_item_back() {
    let table = CptTable::single(&TopologyDesc::detect().unwrap());
    let (started_tx, started_rx) = channel();
    let (gate_tx, gate_rx) = channel::<()>();
    let gate_rx = Mutex::new(gate_rx);
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&handled);
    let pool = CptPool::spawn(&table, &config(ThreadsPerCpt::Fixed(1), 4), move |_, item: u32| {
        if item == 0 {
            started_tx.send(()).unwrap();
            // Hold the only thread until the test has filled the queue.
            gate_rx.lock().unwrap().recv().unwrap();
        }
        h.lock().unwrap().push(item);
    })
    .unwrap();
    pool.submit(0, 0).unwrap();
    started_rx.recv().unwrap();
    for item in 1..=4 {
        pool.submit(0, item).unwrap();
    }
    assert_eq!(pool.queued(0), 4);
    match pool.submit(0, 5) {
        Err(e @ SubmitError::Full(_)) => {
            assert_eq!(e.errno(), Errno::EAGAIN);
            assert_eq!(e.into_inner(), 5);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(matches!(pool.submit(1, 6), Err(SubmitError::NoSuchCpt(6))));
    gate_tx.send(()).unwrap();
    // Shutdown drains what was queued before it.
    assert_eq!(pool.shutdown().threads_joined, 1);
    assert_eq!(*handled.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn shutdown_joins_every_thread_and_drops_the_handler() {
    let table = two_partitions();
    let marker = Arc::new(());
    let m = Arc::clone(&marker);
    let pool =
        CptPool::spawn(&table, &config(ThreadsPerCpt::PerCpt(vec![2; table.len()]), 8), move |_, (): ()| {
            let _ = &m;
        })
        .unwrap();
    assert_eq!(Arc::strong_count(&marker), 2);
    let report = pool.shutdown();
    assert_eq!(report.threads_joined, 2 * table.len());
    // Every thread's clone of the handler is gone, so all have exited; the
    // pool's own reference goes with it.
    drop(pool);
    assert_eq!(Arc::strong_count(&marker), 1);
}

#[test]
fn dropping_the_pool_shuts_it_down() {
    let marker = Arc::new(());
    let m = Arc::clone(&marker);
    let pool = CptPool::spawn(&this_machine(), &config(ThreadsPerCpt::Auto, 8), move |_, (): ()| {
        let _ = &m;
    })
    .unwrap();
    pool.submit(0, ()).unwrap();
    drop(pool);
    assert_eq!(Arc::strong_count(&marker), 1);
}

#[test]
fn threads_are_pinned_to_their_partition() {
    let table = two_partitions();
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let pool = CptPool::spawn(&table, &config(ThreadsPerCpt::Fixed(1), 8), move |me, (): ()| {
        tx.lock().unwrap().send((me, current_thread_affinity().unwrap())).unwrap();
    })
    .unwrap();
    for cpt in 0..table.len() {
        pool.submit(cpt, ()).unwrap();
    }
    pool.shutdown();
    let mut seen: Vec<_> = rx.iter().collect();
    seen.sort_by_key(|(me, _)| me.cpt);
    assert_eq!(seen.len(), table.len());
    for (me, affinity) in seen {
        // This machine lets threads pin; where it does, the mask is exact.
        assert!(me.pinned, "{me:?}");
        assert_eq!(affinity, table.cpt(me.cpt).unwrap().cpus());
    }
}

#[test]
fn unpinnable_partitions_still_serve() {
    // cpus 5000.. exist nowhere: pinning fails, the pool runs regardless.
    let node = crate::cpt::NumaNodeDesc {
        id: 0,
        package: Some(0),
        cores: vec![vec![5000], vec![5001]],
        memory_bytes: 0,
    };
    let topo = TopologyDesc::new(vec![node]).unwrap();
    let table = CptTable::per_numa_node(&topo);
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let pool = CptPool::spawn(&table, &config(ThreadsPerCpt::Auto, 8), move |me, item: u8| {
        tx.lock().unwrap().send((me.pinned, item)).unwrap();
    })
    .unwrap();
    assert_eq!(pool.threads_in(0), 2, "one thread per core");
    pool.submit(0, 9).unwrap();
    pool.shutdown();
    assert_eq!(rx.iter().collect::<Vec<_>>(), vec![(false, 9)]);
}

#[test]
fn a_panicking_handler_does_not_kill_its_thread() {
    let table = CptTable::single(&TopologyDesc::detect().unwrap());
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&handled);
    let pool = CptPool::spawn(&table, &config(ThreadsPerCpt::Fixed(1), 8), move |_, item: u32| {
        assert_ne!(item, 13, "unlucky");
        h.lock().unwrap().push(item);
    })
    .unwrap();
    for item in [12, 13, 14] {
        pool.submit(0, item).unwrap();
    }
    let report = pool.shutdown();
    assert_eq!(report.handler_panics, 1);
    assert_eq!(*handled.lock().unwrap(), vec![12, 14]);
}

#[test]
fn async_handlers_run_on_a_current_thread_runtime_per_thread() {
    let table = two_partitions();
    let ncpt = table.len();
    let seen: Arc<Vec<AtomicU32>> = Arc::new((0..2000).map(|_| AtomicU32::new(0)).collect());
    let not_current_thread = Arc::new(AtomicUsize::new(0));
    let (s, n) = (Arc::clone(&seen), Arc::clone(&not_current_thread));
    let pool = Arc::new(
        CptPool::spawn_runtimes(&table, &config(ThreadsPerCpt::Fixed(2), 64), move |me, item: usize| {
            let (s, n) = (Arc::clone(&s), Arc::clone(&n));
            async move {
                let flavor = tokio::runtime::Handle::current().runtime_flavor();
                if flavor != tokio::runtime::RuntimeFlavor::CurrentThread || item % ncpt != me.cpt {
                    n.fetch_add(1, SeqCst);
                }
                // Await something that needs the runtime's drivers.
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::task::spawn_local(async move { tx.send(item).unwrap() });
                tokio::task::yield_now().await;
                let item = rx.await.unwrap();
                s[item].fetch_add(1, SeqCst);
            }
        })
        .unwrap(),
    );
    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                for item in (t * 500)..((t + 1) * 500) {
                    let mut item = item;
                    while let Err(e) = pool.submit(item % ncpt, item) {
                        item = e.into_inner();
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    assert_eq!(pool.shutdown().threads_joined, 2 * ncpt);
    assert!(seen.iter().all(|c| c.load(SeqCst) == 1));
    assert_eq!(not_current_thread.load(SeqCst), 0);
}

#[test]
fn bad_configurations_are_refused() {
    let table = two_partitions();
    let refuse = |threads, depth| {
        CptPool::spawn(&table, &config(threads, depth), |_, (): ()| {})
            .err()
            .expect("accepted a bad configuration")
    };
    assert!(matches!(refuse(ThreadsPerCpt::Auto, 0), CptError::PoolConfig(_)));
    assert!(matches!(refuse(ThreadsPerCpt::Fixed(0), 8), CptError::PoolConfig(_)));
    assert!(matches!(refuse(ThreadsPerCpt::PerCpt(vec![1; table.len() + 1]), 8), CptError::PoolConfig(_)));
    let mut zero_last = vec![1; table.len()];
    *zero_last.last_mut().unwrap() = 0;
    let e = refuse(ThreadsPerCpt::PerCpt(zero_last), 8);
    assert_eq!(e.errno(), Errno::EINVAL);
    assert!(e.to_string().contains("would have no threads"), "{e}");
}

#[test]
fn idle_threads_sleep_and_a_push_wakes_one() {
    let table = two_partitions();
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let pool = CptPool::spawn(
        &table,
        &CptPoolConfig { threads: ThreadsPerCpt::Fixed(2), ..CptPoolConfig::new("idle") },
        move |me, item: u32| {
            tx.lock().unwrap().send((me.cpt, item)).unwrap();
        },
    )
    .unwrap();
    let total = 2 * table.len();
    // Wait (without a clock) until every thread has announced it sleeps.
    while pool.shared.parts.iter().map(|p| p.sleepers.load(SeqCst)).sum::<usize>() != total {
        std::thread::yield_now();
    }
    // The kernel agrees: each service thread is blocked, not running. A
    // thread counts itself a sleeper just before it blocks, so look a
    // bounded number of times rather than once.
    let mut states = Vec::new();
    for _ in 0..10_000 {
        states = service_thread_states("idle");
        if states.len() == total && states.iter().all(|(_, state)| *state == 'S') {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(states.len(), total, "{states:?}");
    assert!(states.iter().all(|(_, state)| *state == 'S'), "{states:?}");
    let last = table.len() - 1;
    pool.submit(last, 7).unwrap();
    assert_eq!(rx.recv().unwrap(), (last, 7));
    pool.shutdown();
}

/// (name, scheduler state) of this process's threads whose names start
/// with `prefix`, from /proc.
fn service_thread_states(prefix: &str) -> Vec<(String, char)> {
    let mut states = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else { continue };
            // The state follows the parenthesised name.
            if let Some(state) = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
            {
                states.push((comm.trim().to_string(), state));
            }
        }
    }
    states
}

#[test]
fn shutdown_racing_submitters_loses_nothing_it_accepted() {
    let table = two_partitions();
    let ncpt = table.len();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&handled);
    let (first_tx, first_rx) = channel();
    let first_tx = Mutex::new(Some(first_tx));
    let pool = Arc::new(
        CptPool::spawn(&table, &config(ThreadsPerCpt::Fixed(2), 32), move |_, item: u64| {
            h.lock().unwrap().push(item);
            if let Some(tx) = first_tx.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
        })
        .unwrap(),
    );
    let submitters: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for n in 0.. {
                    let item = (t << 32) | n;
                    match pool.submit(n as usize % ncpt, item) {
                        Ok(()) => accepted.push(item),
                        Err(SubmitError::Full(_)) => std::thread::yield_now(),
                        Err(SubmitError::Closed(_)) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                accepted
            })
        })
        .collect();
    // Shut down while the submitters are still pushing.
    first_rx.recv().unwrap();
    pool.shutdown();
    let mut accepted: Vec<u64> = submitters.into_iter().flat_map(|s| s.join().unwrap()).collect();
    let mut handled = handled.lock().unwrap().clone();
    accepted.sort_unstable();
    handled.sort_unstable();
    assert!(!accepted.is_empty());
    assert_eq!(handled, accepted, "every accepted item handled exactly once, no other");
}
