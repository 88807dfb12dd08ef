//! Head sampling: which traces a client records.
//!
//! A [`Sampler`] decides per trace, from the trace ID and, when it is
//! [parent-based](Sampler::parent_based), from the decision the trace already carries (an
//! incoming `traceparent` flag or `ot-tracer-sampled` header, or a decision made earlier
//! in this process). The decision is a pure function of those two, so every span of a
//! trace gets the same answer, in every process that samples with the same settings.

use std::fmt;

/// Decides which traces a client records; set with
/// [`ClientBuilder::sampler`](crate::ClientBuilder::sampler).
///
/// | sampler | records |
/// |---|---|
/// | [`Sampler::always`] (the default, as veneur's client) | every span |
/// | [`Sampler::never`] | no span (they are counted as [`unsampled`](crate::ClientStats::unsampled)) |
/// | [`Sampler::ratio`]`(p)` | the traces whose ID falls in a fraction `p` of the ID space |
/// | `s.`[`parent_based`](Sampler::parent_based)`()` | what the trace's incoming decision says; `s` decides for traces without one |
///
/// The ratio is taken from the trace ID, mixed so that sequential or hand-picked IDs
/// spread evenly: all spans of a trace agree without talking to each other. Spans with
/// trace ID 0 (metrics carriers, see [`metrics`](crate::metrics)) are always recorded.
///
/// # Examples
///
/// ```
/// use trace_client::Sampler;
///
/// let sampler = Sampler::ratio(0.25).parent_based();
/// // A caller that said "sampled" wins over the ratio, and so does one that said "not".
/// assert!(sampler.samples(42, Some(true)));
/// assert!(!sampler.samples(42, Some(false)));
/// // Without a caller's decision, the trace ID decides, the same way every time.
/// assert_eq!(sampler.samples(42, None), sampler.samples(42, None));
/// assert!(Sampler::always().samples(42, Some(false)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sampler {
    rule: Rule,
    parent_based: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    Always,
    Never,
    /// Traces whose mixed ID is below the threshold (out of 2^64).
    Below(u64),
}

impl Sampler {
    /// Records every trace (whatever a caller decided).
    pub const fn always() -> Self {
        Sampler {
            rule: Rule::Always,
            parent_based: false,
        }
    }

    /// Records no trace.
    pub const fn never() -> Self {
        Sampler {
            rule: Rule::Never,
            parent_based: false,
        }
    }

    /// Records a fraction `ratio` of traces, chosen by trace ID. A ratio of 1 or more
    /// records every trace, 0 or less (or NaN) none.
    pub fn ratio(ratio: f64) -> Self {
        let rule = if ratio.is_nan() || ratio <= 0.0 {
            Rule::Never
        } else if ratio >= 1.0 {
            Rule::Always
        } else {
            // `as` saturates; 2^64 · ratio < 2^64 here.
            Rule::Below((ratio * 18_446_744_073_709_551_616.0) as u64)
        };
        Sampler {
            rule,
            parent_based: false,
        }
    }

    /// This sampler for traces that carry no decision; a trace that carries one (from the
    /// caller's headers, or decided earlier in this process) follows it.
    #[must_use]
    pub const fn parent_based(mut self) -> Self {
        self.parent_based = true;
        self
    }

    /// Whether this sampler follows a trace's incoming decision.
    pub const fn is_parent_based(&self) -> bool {
        self.parent_based
    }

    /// The decision for trace `trace_id` whose incoming decision is `parent` (`None` when
    /// the trace carries none).
    #[inline]
    pub fn samples(&self, trace_id: i64, parent: Option<bool>) -> bool {
        if let (true, Some(decided)) = (self.parent_based, parent) {
            return decided;
        }
        match self.rule {
            Rule::Always => true,
            Rule::Never => false,
            Rule::Below(threshold) => mix(trace_id as u64) < threshold,
        }
    }

    /// Whether this sampler records every span it is asked about, whatever the trace:
    /// the check the record path makes first.
    #[inline]
    pub(crate) fn records_all(&self) -> bool {
        matches!((self.rule, self.parent_based), (Rule::Always, false))
    }
}

impl Default for Sampler {
    /// [`Sampler::always`].
    fn default() -> Self {
        Sampler::always()
    }
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Rule::Always => f.write_str("always")?,
            Rule::Never => f.write_str("never")?,
            Rule::Below(t) => write!(f, "ratio({})", t as f64 / 18_446_744_073_709_551_616.0)?,
        }
        if self.parent_based {
            f.write_str(".parent_based()")?;
        }
        Ok(())
    }
}

/// The finaliser of SplitMix64: a bijection on 64 bits that spreads nearby IDs apart.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_and_never_ignore_the_caller_unless_parent_based() {
        for parent in [None, Some(true), Some(false)] {
            assert!(Sampler::always().samples(1, parent));
            assert!(!Sampler::never().samples(1, parent));
        }
        let p = Sampler::never().parent_based();
        assert!(p.samples(1, Some(true)));
        assert!(!p.samples(1, None));
        let p = Sampler::always().parent_based();
        assert!(!p.samples(1, Some(false)));
        assert!(p.samples(1, None));
        assert!(p.is_parent_based() && !Sampler::always().is_parent_based());
    }

    #[test]
    fn ratio_edges() {
        assert_eq!(Sampler::ratio(1.0), Sampler::always());
        assert_eq!(Sampler::ratio(7.0), Sampler::always());
        assert_eq!(Sampler::ratio(0.0), Sampler::never());
        assert_eq!(Sampler::ratio(-1.0), Sampler::never());
        assert_eq!(Sampler::ratio(f64::NAN), Sampler::never());
        assert_eq!(Sampler::default(), Sampler::always());
        assert!(Sampler::always().records_all());
        assert!(!Sampler::always().parent_based().records_all());
        assert_eq!(
            format!("{:?}", Sampler::ratio(0.5).parent_based()),
            "ratio(0.5).parent_based()"
        );
    }

    #[test]
    fn ratio_is_close_on_sequential_ids_and_stable() {
        // Sequential IDs are the hard case for a ratio read straight off the ID.
        for ratio in [0.01, 0.1, 0.5, 0.9] {
            let s = Sampler::ratio(ratio);
            let n = 100_000;
            let kept = (1..=n).filter(|&id| s.samples(id, None)).count();
            let got = kept as f64 / n as f64;
            assert!((got - ratio).abs() < 0.01, "ratio {ratio}: kept {got}");
            assert!((1..=1000).all(|id| s.samples(id, None) == s.samples(id, None)));
        }
    }

    #[test]
    fn ratios_nest() {
        // A trace kept at a lower ratio is kept at every higher one: services that sample
        // at different rates agree on the traces both keep.
        let (low, high) = (Sampler::ratio(0.1), Sampler::ratio(0.3));
        assert!((1..=10_000).all(|id| !low.samples(id, None) || high.samples(id, None)));
    }
}
