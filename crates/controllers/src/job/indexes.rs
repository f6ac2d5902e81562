//! Completion indexes of Indexed Jobs as sorted, merged intervals, written the way
//! `status.completedIndexes` shows them (`"1,3-5,7"`; two neighbours as `"1,2"`).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub first: i32,
    pub last: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(pub Vec<Interval>);

impl Intervals {
    /// Parses the status form, ignoring corrupt parts and anything at or beyond
    /// `completions` (upstream's `parseIndexesFromString`).
    pub fn parse(s: &str, completions: i32) -> Intervals {
        let mut out: Vec<Interval> = Vec::new();
        if s.is_empty() {
            return Intervals(out);
        }
        for part in s.split(',') {
            let mut limits = part.split('-');
            let Some(Ok(first)) = limits.next().map(str::parse::<i32>) else { continue };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(l) => match l.parse::<i32>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.last == first - 1 => prev.last = last,
                _ => out.push(Interval { first, last }),
            }
        }
        Intervals(out)
    }

    /// A copy with `sorted` (ascending) indexes added.
    pub fn with_indexes(&self, sorted: &[i32]) -> Intervals {
        let add = Intervals(sorted.iter().map(|&i| Interval { first: i, last: i }).collect());
        self.merge(&add)
    }

    pub fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<Interval> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort_by_key(|i| i.first);
        let mut out: Vec<Interval> = Vec::with_capacity(all.len());
        for iv in all {
            match out.last_mut() {
                Some(prev) if iv.first <= prev.last.saturating_add(1) => prev.last = prev.last.max(iv.last),
                _ => out.push(iv),
            }
        }
        Intervals(out)
    }

    pub fn total(&self) -> i32 {
        self.0.iter().map(|i| i.last - i.first + 1).sum()
    }

    pub fn has(&self, ix: i32) -> bool {
        let pos = self.0.partition_point(|i| i.last < ix);
        self.0.get(pos).is_some_and(|i| i.first <= ix)
    }

    /// How many of `self` fall inside `within`.
    pub fn count_within(&self, within: &Intervals) -> i32 {
        let mut n = 0;
        for a in &self.0 {
            for b in &within.0 {
                let lo = a.first.max(b.first);
                let hi = a.last.min(b.last);
                if lo <= hi {
                    n += hi - lo + 1;
                }
            }
        }
        n
    }

    /// The first `count` indexes below `completions` not in `self`.
    pub fn first_missing(&self, count: usize, completions: i32) -> Vec<i32> {
        let mut out = Vec::with_capacity(count);
        let mut candidate = 0;
        for iv in &self.0 {
            while candidate < completions && out.len() < count && candidate < iv.first {
                out.push(candidate);
                candidate += 1;
            }
            candidate = candidate.max(iv.last + 1);
        }
        while candidate < completions && out.len() < count {
            out.push(candidate);
            candidate += 1;
        }
        out
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, iv) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", iv.first)?;
            if iv.last > iv.first {
                let sep = if iv.last == iv.first + 1 { ',' } else { '-' };
                write!(f, "{sep}{}", iv.last)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_merge_and_print_as_upstream() {
        let iv = Intervals::parse("1,3-5,7", 10);
        assert_eq!(iv.to_string(), "1,3-5,7");
        assert_eq!(iv.total(), 5);
        assert_eq!(iv.with_indexes(&[2, 6]).to_string(), "1-7");
        assert_eq!(Intervals::default().with_indexes(&[0, 1]).to_string(), "0,1");
        assert_eq!(Intervals::parse("0-3,8-12", 10).to_string(), "0-3,8,9");
        assert_eq!(Intervals::parse("x,2", 10).to_string(), "2");
        assert!(iv.has(4) && !iv.has(6) && !iv.has(0));
    }

    #[test]
    fn first_missing_skips_taken_indexes() {
        let taken = Intervals::parse("0,2-3", 10);
        assert_eq!(taken.first_missing(3, 10), [1, 4, 5]);
        assert_eq!(taken.first_missing(10, 6), [1, 4, 5]);
        assert!(taken.first_missing(0, 10).is_empty());
    }

    #[test]
    fn count_within_a_set() {
        let done = Intervals::parse("0-4,8", 10);
        assert_eq!(done.count_within(&Intervals::parse("3-9", 10)), 3);
    }
}
