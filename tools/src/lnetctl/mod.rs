//! `glint lnetctl`: Lustre's `lnetctl net show`, `peer show`, `ping` and
//! `stats show`, printed with lnet-shim's renderers so the YAML reads as
//! lnetctl's.
//!
//! This command is its own process, not the node's LNet: `net show`
//! lists the NIs the configuration gives this host; `peer show` knows
//! only the peers it is told about (`--nid`, and the peers in
//! lnet.conf), each pinged live for its state and health; `stats show`
//! prints this process's counters, which are zero — a running server's
//! counters are on its Prometheus endpoint.

pub mod local;
pub mod ping;

use fabric::{Errno, NetType, Nid};
use lnet_shim::{
    HostInterfaces, LnetConfig, MsgCounts, PeerNiHealthStats, PeerNiLiveness, PeerShow, PeerShowNiDetail,
    PeerShowPeer, PeerState, PingFailure, PingReply, StatsShow,
};
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum LnetctlCmd {
    /// Local networks and their NIs.
    #[command(subcommand)]
    Net(NetCmd),
    /// Peers and how they are reached.
    #[command(subcommand)]
    Peer(PeerCmd),
    /// A round trip to the glint server at each NID.
    Ping {
        #[arg(required = true)]
        nids: Vec<String>,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Message counters.
    #[command(subcommand)]
    Stats(StatsCmd),
}

#[derive(clap::Subcommand, Debug)]
pub enum NetCmd {
    /// The NIs of this node (from GLINT_NETWORKS, /etc/lnet.conf, or every up interface).
    Show {
        #[arg(short = 'v', long)]
        verbose: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum PeerCmd {
    /// The peers named with --nid (and in lnet.conf), each pinged now.
    Show {
        /// Peer NIDs, comma-separated or repeated.
        #[arg(long, value_delimiter = ',')]
        nid: Vec<String>,
        #[arg(short = 'v', long)]
        verbose: bool,
        /// Seconds to wait for each peer's answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum StatsCmd {
    /// This process's counters (zero: a server's are in its metrics).
    Show,
}

fn parse_nids(list: &[String]) -> anyhow::Result<Vec<Nid>> {
    list.iter().map(|s| s.parse::<Nid>().map_err(|e| anyhow::anyhow!("bad NID '{s}': {e}"))).collect()
}

/// This node's configuration and NIs; what could not start is said on stderr.
fn local_nets() -> anyhow::Result<(LnetConfig, Vec<local::LocalNet>)> {
    let host = HostInterfaces::system()?;
    let (cfg, source) = local::load(&host)?;
    tracing::debug!(?source, "LNet configuration");
    let (nis, notes) = local::local_nis(&cfg, &host, &local::probe_rdma())?;
    for n in notes {
        eprintln!("lnetctl: {n}");
    }
    Ok((cfg, nis))
}

/// A peer's entry after pinging each of its NIDs.
// The command itself passes the o2ib fallback causes; this form is for
// callers that have none (the lnetctl tests).
#[allow(dead_code)]
pub fn peer_entry(
    state: &mut PeerState,
    local: &[lnet_shim::LocalNi],
    results: &[(Nid, ping::Outcome)],
    verbose: bool,
) -> PeerShowPeer {
    peer_entry_with_causes(state, local, results, &[], verbose)
}

/// As [`peer_entry`], with why o2ib NIDs were reached over tcp (from the
/// endpoint that pinged them), shown as the fallback reason.
pub fn peer_entry_with_causes(
    state: &mut PeerState,
    local: &[lnet_shim::LocalNi],
    results: &[(Nid, ping::Outcome)],
    o2ib_causes: &[(Nid, String)],
    verbose: bool,
) -> PeerShowPeer {
    let sensitivity = lnet_shim::Health::DEFAULT_SENSITIVITY;
    for (nid, r) in results {
        let cause = o2ib_causes.iter().find(|(n, _)| n == nid).map(|(_, c)| c.clone());
        match r {
            ping::Outcome::Alive { .. } => state.record_success(*nid, sensitivity),
            ping::Outcome::Failed(e) if nid.net.kind == NetType::O2ib => {
                state.record_connect_failure(*nid, cause.unwrap_or_else(|| e.name().to_string()), sensitivity)
            }
            ping::Outcome::Failed(_) => state.record_failure(*nid, sensitivity),
        }
    }
    let sel = lnet_shim::select(local, state).ok();
    let mut peer = PeerShowPeer::from_state(state, state.nis.len() > 1, sel.as_ref());
    for ni in &mut peer.nis {
        let Some((_, r)) = results.iter().find(|(n, _)| *n == ni.nid) else { continue };
        let alive = matches!(r, ping::Outcome::Alive { .. });
        ni.state = if alive { PeerNiLiveness::Up } else { PeerNiLiveness::Down };
        if verbose {
            let health = state.ni(ni.nid).map(|s| s.health).unwrap_or(lnet_shim::Health::MAX);
            let timeout = matches!(r, ping::Outcome::Failed(Errno::ETIMEDOUT)) as u64;
            let credits = lnet_shim::NiTunables::default().peer_credits as i64;
            ni.detail = Some(PeerShowNiDetail {
                max_ni_tx_credits: credits,
                available_tx_credits: credits,
                min_tx_credits: credits,
                available_rtr_credits: credits,
                min_rtr_credits: credits,
                refcount: 1,
                statistics: MsgCounts { send_count: 1, recv_count: alive as u64, drop_count: !alive as u64 },
                health: PeerNiHealthStats {
                    health_value: health,
                    timeout,
                    error: (!alive) as u64 - timeout,
                    ..Default::default()
                },
                ..Default::default()
            });
        }
    }
    peer
}

pub async fn run(cmd: LnetctlCmd) -> anyhow::Result<i32> {
    match cmd {
        LnetctlCmd::Net(NetCmd::Show { verbose }) => {
            print!("{}", local::net_show(&local_nets()?.1, verbose).to_yaml());
            Ok(0)
        }
        LnetctlCmd::Stats(StatsCmd::Show) => {
            print!("{}", StatsShow::default().to_yaml());
            Ok(0)
        }
        LnetctlCmd::Ping { nids, timeout } => {
            let nids = parse_nids(&nids)?;
            let ep = ping::endpoint(nids[0], Duration::from_secs(timeout)).await?;
            let mut replies = Vec::new();
            let mut status = 0;
            for nid in nids {
                match ping::ping(&ep, nid).await {
                    ping::Outcome::Alive { .. } => {
                        replies.push(PingReply { primary_nid: nid, multi_rail: false, nids: vec![nid] })
                    }
                    ping::Outcome::Failed(errno) => {
                        eprint!("{}", PingFailure { nid, errno }.to_yaml());
                        status = 1;
                    }
                }
            }
            ep.shutdown();
            if !replies.is_empty() {
                print!("{}", lnet_shim::ping_yaml(&replies));
            }
            Ok(status)
        }
        LnetctlCmd::Peer(PeerCmd::Show { nid, verbose, timeout }) => {
            let (cfg, nets) = local_nets()?;
            let local = local::selection_nis(&nets);
            let mut peers: Vec<PeerState> =
                cfg.peers.iter().map(|p| PeerState::new(p.primary_nid, p.nids.iter().copied())).collect();
            for n in parse_nids(&nid)? {
                if !peers.iter().any(|p| p.ni(n).is_some()) {
                    peers.push(PeerState::new(n, []));
                }
            }
            let mut show = PeerShow::default();
            if let Some(first) = peers.first() {
                // Towards an o2ib NID if any peer has one, so the endpoint
                // runs o2ib beside tcp and o2ib NIDs are pinged over o2ib.
                let towards = peers
                    .iter()
                    .flat_map(|p| p.nis.iter().map(|n| n.nid))
                    .find(|n| n.net.kind == NetType::O2ib)
                    .unwrap_or(first.primary_nid);
                let ep = ping::endpoint(towards, Duration::from_secs(timeout)).await?;
                for state in &mut peers {
                    let mut results = Vec::new();
                    let mut causes = Vec::new();
                    for ni in state.nis.clone() {
                        results.push((ni.nid, ping::ping(&ep, ni.nid).await));
                        if let Some(why) = ping::o2ib_fallback(&ep, ni.nid) {
                            causes.push((ni.nid, why));
                        }
                    }
                    show.peers.push(peer_entry_with_causes(state, &local, &results, &causes, verbose));
                }
                ep.shutdown();
            }
            print!("{}", show.to_yaml());
            Ok(0)
        }
    }
}
