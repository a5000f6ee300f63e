//! A union-find (disjoint sets) over dense indexes, used to group keys that operations touch
//! together.

/// Disjoint sets with path halving and union by size.
#[derive(Clone, Debug, Default)]
pub(crate) struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a new singleton set and returns its index.
    pub fn add(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.size.push(1);
        self.parent.len() - 1
    }

    /// The representative of `index`'s set.
    pub fn find(&mut self, mut index: usize) -> usize {
        while self.parent[index] != index {
            self.parent[index] = self.parent[self.parent[index]];
            index = self.parent[index];
        }
        index
    }

    /// Merges the sets of `left` and `right`.
    pub fn union(&mut self, left: usize, right: usize) {
        let (mut left, mut right) = (self.find(left), self.find(right));
        if left == right {
            return;
        }
        if self.size[left] < self.size[right] {
            std::mem::swap(&mut left, &mut right);
        }
        self.parent[right] = left;
        self.size[left] += self.size[right];
    }
}

#[cfg(test)]
mod tests {
    use super::UnionFind;

    /// Unions are transitive and leave other sets alone.
    #[test]
    fn unions_join_only_connected_sets() {
        let mut sets = UnionFind::new();
        let indexes: Vec<usize> = (0..5).map(|_| sets.add()).collect();
        sets.union(indexes[0], indexes[1]);
        sets.union(indexes[3], indexes[1]);
        assert_eq!(sets.find(0), sets.find(3));
        assert_ne!(sets.find(0), sets.find(2));
        assert_ne!(sets.find(4), sets.find(2));
    }
}
