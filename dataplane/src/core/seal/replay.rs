//! The replay window of one (sender, key epoch): which counters were already accepted.
//!
//! A sliding bitmap of [`WINDOW`] counters ending at the highest accepted one: a counter above
//! it moves the window up, one inside it is accepted once, one below it is refused (too old to
//! tell). Datagrams may arrive out of order by up to [`WINDOW`] counters — a sender's counter
//! is shared by all its peers on the network, so gaps are normal and cost nothing.
//!
//! Two steps, so that only authentic datagrams move the window: [`ReplayWindow::check`] before
//! the AEAD opens a datagram (a cheap refusal), [`ReplayWindow::mark`] after it did.

/// Counters the window remembers below the highest one.
pub const WINDOW: u64 = 2048;
const WORDS: usize = (WINDOW / 64) as usize;

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest accepted counter, `None` before the first.
    top: Option<u64>,
    /// Bit `c % WINDOW` is set when counter `c` (within the window) was accepted.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: None,
            bits: [0; WORDS],
        }
    }
}

fn slot(counter: u64) -> (usize, u64) {
    let bit = counter % WINDOW;
    ((bit / 64) as usize, 1 << (bit % 64))
}

impl ReplayWindow {
    /// Whether `counter` would be accepted now.
    pub fn check(&self, counter: u64) -> bool {
        let Some(top) = self.top else {
            return true;
        };
        if counter > top {
            return true;
        }
        if top - counter >= WINDOW {
            return false;
        }
        let (word, mask) = slot(counter);
        self.bits[word] & mask == 0
    }

    /// Records `counter` as accepted; `false` (and nothing changes) if it may not be.
    pub fn mark(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        match self.top {
            Some(top) if counter <= top => {}
            Some(top) if counter - top < WINDOW => {
                // Forget the counters the window slides past: those that share a slot with
                // the new ones.
                for c in top + 1..=counter {
                    let (word, mask) = slot(c);
                    self.bits[word] &= !mask;
                }
                self.top = Some(counter);
            }
            _ => {
                self.bits = [0; WORDS];
                self.top = Some(counter);
            }
        }
        let (word, mask) = slot(counter);
        self.bits[word] |= mask;
        true
    }
}
