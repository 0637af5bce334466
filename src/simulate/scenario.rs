//! Threat models: who the adversaries are, what they serve and how they rate.
//!
//! A [`Scenario`] plays one epoch of the market given the model's current
//! trust vector: every peer takes `queries` query slots; an honest peer (and
//! an individual malicious peer of scenario A) downloads from one of
//! `candidates` peers drawn uniformly, picked by [`super::choice::choose`],
//! and rates the provider; an adversary of a collective (B, C, D) instead
//! writes a positive rating for a peer of the collective without any
//! download. The classic models are those of the EigenTrust paper (Kamvar,
//! Schlosser, Garcia-Molina, WWW 2003, §7.2).

use super::choice::Rule;
use super::log::{Interaction, LAYER};
use crate::graph::synthetic::SplitMix64;
use crate::score::ScoreConfig;

/// What a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves authentic files, rates what it gets truthfully.
    Honest,
    /// The scenario's adversary: serves inauthentic files (C: authentic a
    /// share of the time) and rates as its scenario says.
    Malicious,
    /// Scenario D's spy: serves authentic files (so honest peers trust it)
    /// and rates the malicious collective up.
    Spy,
    /// A fake identity of the sybil scenario: holds no files, only rates.
    Sybil,
}

impl Role {
    pub fn is_adversary(self) -> bool {
        self != Role::Honest
    }

    /// Whether the identity holds files and answers queries.
    pub fn serves(self) -> bool {
        self != Role::Sybil
    }
}

/// What a peer does with one query slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Query, pick a provider, download and rate it.
    Download,
    /// Rate this peer +1 without any download (a collective's fake praise).
    Praise(usize),
    /// Nothing (a collective of one has nobody to praise).
    Idle,
}

/// The market's fixed parameters for one run.
#[derive(Debug, Clone)]
pub struct Market {
    pub roles: Vec<Role>,
    /// Query slots per peer per epoch.
    pub queries: usize,
    /// Candidates answering each query, drawn uniformly without replacement
    /// among the other peers.
    pub candidates: usize,
    /// Share of choices that explore zero-trust candidates.
    pub exploration: f64,
    /// How the rest of the choices follow trust.
    pub rule: Rule,
}

/// One epoch's log and what it cost honest peers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Epoch {
    pub rows: Vec<Interaction>,
    /// Downloads made by honest peers.
    pub honest_downloads: u64,
    /// Of those, the inauthentic ones.
    pub inauthentic: u64,
}

/// A threat model: roles, service and rating behaviour; [`Scenario::epoch`]
/// plays an epoch from those.
pub trait Scenario {
    /// The name in results and reports (`A`, `B`, …).
    fn name(&self) -> &'static str;

    /// The log's layers; [`Interaction::layer`] indexes this.
    fn layers(&self) -> &'static [&'static str] {
        &[LAYER]
    }

    /// The layers a download's rating is written to, one row each.
    fn rating_layers(&self) -> &'static [usize] {
        &[0]
    }

    /// The layer of a collective's praise.
    fn praise_layer(&self) -> usize {
        0
    }

    /// What the `mg` model adds to plain EigenTrust against this threat
    /// (beside the consistency gate, which it always applies): nothing by
    /// default.
    fn mg_defences(&self, _cfg: &mut ScoreConfig) {}

    /// Whether `mg` filters raters by an identity registry, in which the
    /// identities of role [`Role::serves`] are registered (a registry prices
    /// identities; fake ones are not in it).
    fn registry(&self) -> bool {
        false
    }

    /// Roles of `peers` peers of which `adversaries` are not honest, never
    /// among the first `pretrusted` (pre-trusted peers are honest by
    /// definition), drawn uniformly ([`draw_adversaries`]); a scenario may
    /// add identities beyond `peers` (fake ones).
    fn roles(
        &self,
        peers: usize,
        pretrusted: usize,
        adversaries: usize,
        rng: &mut SplitMix64,
    ) -> Vec<Role>;

    /// Whether a provider of role `provider` serves an authentic file; `u`
    /// is uniform in [0, 1), drawn for every download.
    fn authentic(&self, provider: Role, u: f64) -> bool;

    /// What adversary `peer` does with a query slot; `u` is uniform in
    /// [0, 1), drawn for every adversary slot.
    fn adversary_slot(&self, peer: usize, roles: &[Role], u: f64) -> Slot;

    /// The rating a downloader of role `rater` gives: honest peers rate +1
    /// for authentic and -1 for inauthentic; adversaries who download (A)
    /// value inauthentic files, the paper's "assign trust to peers who give
    /// inauthentic files".
    fn outcome(&self, rater: Role, authentic: bool) -> f64 {
        let good = if rater.is_adversary() {
            !authentic
        } else {
            authentic
        };
        if good {
            1.0
        } else {
            -1.0
        }
    }

    /// Plays one epoch: peers in index order, each its query slots in turn.
    /// The random draws per slot depend on the peer's role alone, never on
    /// `trust`, so two models run on one seed see the same queries,
    /// candidates and coin flips and differ only by their choices.
    fn epoch(&self, market: &Market, trust: Option<&[f64]>, rng: &mut SplitMix64) -> Epoch {
        let n = market.roles.len();
        let mut out = Epoch::default();
        let mut pool: Vec<usize> = Vec::with_capacity(n);
        for (peer, &role) in market.roles.iter().enumerate() {
            for _ in 0..market.queries {
                let slot = if role.is_adversary() {
                    self.adversary_slot(peer, &market.roles, rng.next_f64())
                } else {
                    Slot::Download
                };
                match slot {
                    Slot::Idle => {}
                    Slot::Praise(dst) => out.rows.push(Interaction {
                        src: peer,
                        dst,
                        layer: self.praise_layer(),
                        outcome: 1.0,
                    }),
                    Slot::Download => {
                        pool.clear();
                        pool.extend((0..n).filter(|&j| j != peer && market.roles[j].serves()));
                        let k = market.candidates.min(pool.len());
                        partial_shuffle(&mut pool, k, rng);
                        let (u_explore, u_pick, u_serve) =
                            (rng.next_f64(), rng.next_f64(), rng.next_f64());
                        let dst = market.rule.pick(
                            &pool[..k],
                            trust,
                            market.exploration,
                            u_explore,
                            u_pick,
                        );
                        let authentic = self.authentic(market.roles[dst], u_serve);
                        if role == Role::Honest {
                            out.honest_downloads += 1;
                            out.inauthentic += u64::from(!authentic);
                        }
                        let outcome = self.outcome(role, authentic);
                        for &layer in self.rating_layers() {
                            out.rows.push(Interaction {
                                src: peer,
                                dst,
                                layer,
                                outcome,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// `adversaries` distinct peers drawn uniformly among `pretrusted..peers`,
/// in the order drawn.
pub fn draw_adversaries(
    peers: usize,
    pretrusted: usize,
    adversaries: usize,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    let mut pool: Vec<usize> = (pretrusted..peers).collect();
    let k = adversaries.min(pool.len());
    partial_shuffle(&mut pool, k, rng);
    pool.truncate(k);
    pool
}

/// Partial Fisher-Yates: the first `k` of `pool` become a uniform draw
/// without replacement, one uniform each.
pub fn partial_shuffle(pool: &mut [usize], k: usize, rng: &mut SplitMix64) {
    let last = pool.len().saturating_sub(1);
    for i in 0..k.min(pool.len()) {
        let j = i + (rng.next_f64() * (pool.len() - i) as f64) as usize;
        pool.swap(i, j.min(last));
    }
}

/// The share of scenario D's adversaries that are spies; the rest are the
/// malicious collective they promote. The paper varies this split; half is
/// one point of its range.
pub const SPY_SHARE: f64 = 0.5;

/// The EigenTrust paper's threat models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Classic {
    /// Individual malicious peers: always inauthentic, they download like
    /// everyone and rate inauthentic service up, authentic down.
    A,
    /// A malicious collective: always inauthentic; each member praises the
    /// next member (a chain closed into a ring) and downloads nothing.
    B,
    /// A camouflaged collective: as B, but a member serves an authentic file
    /// with probability `authentic` (the paper's f), to earn honest ratings.
    C { authentic: f64 },
    /// Spies: [`SPY_SHARE`] of the adversaries serve authentic files and
    /// praise a uniformly drawn member of the rest, a B collective.
    D,
    /// A ring in a free layer: a camouflaged collective (as C) whose praise
    /// goes in the `review` layer, which costs nothing, while honest peers'
    /// downloads are paid for: each is a `payment` row and a `review` row.
    /// The cheap/costly corroboration rule (`--cheap review --costly
    /// payment`) is what `mg` adds against it.
    Ring { authentic: f64 },
    /// Individual malicious peers (as A), each with `per_malicious` fake
    /// identities that hold no files and rate their owner up every query
    /// slot. Against it `mg` keeps only raters in the identity registry,
    /// where the fakes are not. The attack needs uniform pre-trust
    /// (`--pretrusted-peers 0`): with pre-trusted peers, identities nobody
    /// trusted have no trust to give.
    Sybil { per_malicious: usize },
}

/// The ring scenario's layers: the costly one first.
pub const RING_LAYERS: [&str; 2] = ["payment", "review"];

impl Classic {
    /// The next malicious peer after `peer` in index order, cyclic; `None`
    /// when `peer` is the only one.
    fn next_malicious(peer: usize, roles: &[Role]) -> Option<usize> {
        let n = roles.len();
        (1..n)
            .map(|d| (peer + d) % n)
            .find(|&j| roles[j] == Role::Malicious)
    }
}

impl Scenario for Classic {
    fn name(&self) -> &'static str {
        match self {
            Classic::A => "A",
            Classic::B => "B",
            Classic::C { .. } => "C",
            Classic::D => "D",
            Classic::Ring { .. } => "ring",
            Classic::Sybil { .. } => "sybil",
        }
    }

    fn registry(&self) -> bool {
        matches!(self, Classic::Sybil { .. })
    }

    fn layers(&self) -> &'static [&'static str] {
        match self {
            Classic::Ring { .. } => &RING_LAYERS,
            _ => &[LAYER],
        }
    }

    fn rating_layers(&self) -> &'static [usize] {
        match self {
            Classic::Ring { .. } => &[0, 1],
            _ => &[0],
        }
    }

    fn praise_layer(&self) -> usize {
        match self {
            Classic::Ring { .. } => 1,
            _ => 0,
        }
    }

    fn mg_defences(&self, cfg: &mut ScoreConfig) {
        if let Classic::Ring { .. } = self {
            cfg.cheap = vec![RING_LAYERS[1].to_string()];
            cfg.costly = vec![RING_LAYERS[0].to_string()];
        }
    }

    fn roles(
        &self,
        peers: usize,
        pretrusted: usize,
        adversaries: usize,
        rng: &mut SplitMix64,
    ) -> Vec<Role> {
        let mut roles = vec![Role::Honest; peers];
        let drawn = draw_adversaries(peers, pretrusted, adversaries, rng);
        let spies = match self {
            Classic::D => (drawn.len() as f64 * SPY_SHARE).floor() as usize,
            _ => 0,
        };
        let sybils = match self {
            Classic::Sybil { per_malicious } => drawn.len() * per_malicious,
            _ => 0,
        };
        for (k, i) in drawn.into_iter().enumerate() {
            roles[i] = if k < spies {
                Role::Spy
            } else {
                Role::Malicious
            };
        }
        roles.extend(std::iter::repeat_n(Role::Sybil, sybils));
        roles
    }

    fn authentic(&self, provider: Role, u: f64) -> bool {
        match (provider, self) {
            (Role::Honest | Role::Spy, _) => true,
            (Role::Malicious, Classic::C { authentic } | Classic::Ring { authentic }) => {
                u < *authentic
            }
            (Role::Malicious | Role::Sybil, _) => false,
        }
    }

    fn adversary_slot(&self, peer: usize, roles: &[Role], u: f64) -> Slot {
        match (self, roles[peer]) {
            (Classic::A, _) | (Classic::Sybil { .. }, Role::Malicious) => Slot::Download,
            // A spy or a fake identity praises a uniformly drawn member of
            // the collective it serves.
            (Classic::D, Role::Spy) | (Classic::Sybil { .. }, Role::Sybil) => {
                let collective: Vec<usize> = (0..roles.len())
                    .filter(|&j| roles[j] == Role::Malicious)
                    .collect();
                if collective.is_empty() {
                    Slot::Idle
                } else {
                    let k = ((u * collective.len() as f64) as usize).min(collective.len() - 1);
                    Slot::Praise(collective[k])
                }
            }
            _ => Classic::next_malicious(peer, roles).map_or(Slot::Idle, Slot::Praise),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_spare_pretrusted_peers_and_d_has_spies() {
        let mut rng = SplitMix64::new(7);
        let roles = Classic::D.roles(20, 3, 6, &mut rng);
        assert!(roles[..3].iter().all(|r| *r == Role::Honest));
        let count = |r| roles.iter().filter(|&&x| x == r).count();
        assert_eq!((count(Role::Spy), count(Role::Malicious)), (3, 3));
        let roles = Classic::B.roles(20, 3, 6, &mut rng);
        assert_eq!(roles.iter().filter(|r| r.is_adversary()).count(), 6);
        assert!(!roles.contains(&Role::Spy));
    }

    #[test]
    fn a_collective_praises_a_ring_and_individuals_download() {
        use Role::*;
        let roles = [Honest, Malicious, Honest, Malicious, Malicious];
        assert_eq!(Classic::B.adversary_slot(1, &roles, 0.0), Slot::Praise(3));
        assert_eq!(Classic::B.adversary_slot(4, &roles, 0.0), Slot::Praise(1));
        assert_eq!(Classic::A.adversary_slot(1, &roles, 0.0), Slot::Download);
        let alone = [Honest, Malicious];
        assert_eq!(Classic::B.adversary_slot(1, &alone, 0.0), Slot::Idle);
        assert!(Classic::C { authentic: 0.3 }.authentic(Malicious, 0.2));
        assert!(!Classic::C { authentic: 0.3 }.authentic(Malicious, 0.4));
        assert_eq!(Classic::A.outcome(Malicious, false), 1.0);
        assert_eq!(Classic::A.outcome(Honest, false), -1.0);
    }

    #[test]
    fn an_epoch_under_random_choice_meets_the_malicious_share() {
        let mut rng = SplitMix64::new(1);
        let roles = Classic::A.roles(50, 2, 10, &mut rng);
        let market = Market {
            roles,
            queries: 40,
            candidates: 8,
            exploration: 0.1,
            rule: Rule::Proportional,
        };
        let e = Classic::A.epoch(&market, None, &mut rng);
        assert_eq!(e.honest_downloads, 40 * 40);
        assert_eq!(e.rows.len(), 50 * 40);
        let share = e.inauthentic as f64 / e.honest_downloads as f64;
        // Uniform providers among the 49 others: 10/49 ≈ 0.204 malicious.
        assert!((share - 0.204).abs() < 0.04, "{share}");
        assert!(e.rows.iter().all(|r| r.src != r.dst));
    }
}
