//! Live connections in a slab, each on one of a few intrusive lists kept in
//! order of last activity: insert, remove, touch (move to the back) and the
//! least recently active of a list all cost O(1). The flow table uses one
//! list for open connections and one for closed ones, so that idle expiry
//! and eviction look at the front of a list instead of scanning every flow.

/// Index of a slot; stable while the value is in the slab.
pub(crate) type Idx = u32;

const NIL: Idx = Idx::MAX;

#[derive(Debug)]
struct Node<T> {
    value: Option<T>,
    prev: Idx,
    /// Next in the node's list, or the next free slot.
    next: Idx,
    list: u8,
}

#[derive(Debug, Clone, Copy)]
struct Ends {
    head: Idx,
    tail: Idx,
}

/// A slab of values on `N` lists, each in order of last touch (front: least recent).
#[derive(Debug)]
pub(crate) struct Lru<T, const N: usize> {
    nodes: Vec<Node<T>>,
    lists: [Ends; N],
    free: Idx,
    len: usize,
}

impl<T, const N: usize> Default for Lru<T, N> {
    fn default() -> Self {
        Lru {
            nodes: Vec::new(),
            lists: [Ends {
                head: NIL,
                tail: NIL,
            }; N],
            free: NIL,
            len: 0,
        }
    }
}

impl<T, const N: usize> Lru<T, N> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `value` at the back of `list`.
    pub(crate) fn insert(&mut self, list: usize, value: T) -> Idx {
        let node = Node {
            value: Some(value),
            prev: NIL,
            next: NIL,
            list: list as u8,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.nodes[i as usize].next;
            self.nodes[i as usize] = node;
            i
        } else {
            assert!(
                self.nodes.len() < NIL as usize,
                "more than 2^32-1 live flows"
            );
            self.nodes.push(node);
            (self.nodes.len() - 1) as Idx
        };
        self.link_back(i, list);
        self.len += 1;
        i
    }

    pub(crate) fn remove(&mut self, i: Idx) -> T {
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        let value = node.value.take().expect("live slot");
        node.next = self.free;
        self.free = i;
        self.len -= 1;
        value
    }

    pub(crate) fn get(&self, i: Idx) -> &T {
        self.nodes[i as usize].value.as_ref().expect("live slot")
    }

    pub(crate) fn get_mut(&mut self, i: Idx) -> &mut T {
        self.nodes[i as usize].value.as_mut().expect("live slot")
    }

    /// The list `i` is on.
    #[cfg(test)]
    pub(crate) fn list_of(&self, i: Idx) -> usize {
        self.nodes[i as usize].list as usize
    }

    /// Moves `i` to the back of `list` (its own list or another).
    pub(crate) fn touch(&mut self, i: Idx, list: usize) {
        let n = &self.nodes[i as usize];
        if n.list as usize == list && n.next == NIL {
            return; // already the most recent
        }
        self.unlink(i);
        self.nodes[i as usize].list = list as u8;
        self.link_back(i, list);
    }

    /// The least recently touched value of `list`.
    pub(crate) fn front(&self, list: usize) -> Option<Idx> {
        Some(self.lists[list].head).filter(|&h| h != NIL)
    }

    /// The value after `i` on its list.
    pub(crate) fn next(&self, i: Idx) -> Option<Idx> {
        Some(self.nodes[i as usize].next).filter(|&n| n != NIL)
    }

    /// Every live value with its slot, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Idx, &T)> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((i as Idx, n.value.as_ref()?)))
    }

    fn link_back(&mut self, i: Idx, list: usize) {
        let tail = self.lists[list].tail;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = tail;
            n.next = NIL;
        }
        if tail == NIL {
            self.lists[list].head = i;
        } else {
            self.nodes[tail as usize].next = i;
        }
        self.lists[list].tail = i;
    }

    fn unlink(&mut self, i: Idx) {
        let (prev, next, list) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next, n.list as usize)
        };
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list<T: Copy, const N: usize>(l: &Lru<T, N>, which: usize) -> Vec<T> {
        let mut out = Vec::new();
        let mut i = l.front(which);
        while let Some(x) = i {
            out.push(*l.get(x));
            i = l.next(x);
        }
        out
    }

    #[test]
    fn touch_moves_to_the_back_and_slots_are_reused() {
        let mut l: Lru<u32, 2> = Lru::default();
        let a = l.insert(0, 1);
        let b = l.insert(0, 2);
        let c = l.insert(0, 3);
        l.touch(a, 0);
        assert_eq!(list(&l, 0), [2, 3, 1]);
        l.touch(b, 1);
        assert_eq!((list(&l, 0), list(&l, 1)), (vec![3, 1], vec![2]));
        assert_eq!(l.list_of(b), 1);
        assert_eq!(l.remove(c), 3);
        let d = l.insert(1, 4);
        assert_eq!(d, c, "the freed slot is reused");
        assert_eq!((list(&l, 0), list(&l, 1)), (vec![1], vec![2, 4]));
        assert_eq!(l.len(), 3);
        let mut all: Vec<(Idx, u32)> = l.iter().map(|(i, v)| (i, *v)).collect();
        all.sort();
        assert_eq!(all, [(a, 1), (b, 2), (d, 4)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize),
        Remove(usize),
        Touch(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..2usize).prop_map(Op::Insert),
            any::<usize>().prop_map(Op::Remove),
            (any::<usize>(), 0..2usize).prop_map(|(i, l)| Op::Touch(i, l)),
        ]
    }

    proptest! {
        /// Against a model: two Vecs in order of last touch.
        #[test]
        fn lists_match_a_naive_model(ops in prop::collection::vec(op(), 0..200)) {
            let mut l: Lru<u32, 2> = Lru::default();
            let mut model: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
            let mut live: Vec<(Idx, u32)> = Vec::new();
            let mut next_value = 0u32;
            for op in ops {
                match op {
                    Op::Insert(which) => {
                        let i = l.insert(which, next_value);
                        model[which].push(next_value);
                        live.push((i, next_value));
                        next_value += 1;
                    }
                    Op::Remove(k) if !live.is_empty() => {
                        let (i, v) = live.swap_remove(k % live.len());
                        prop_assert_eq!(l.remove(i), v);
                        for m in model.iter_mut() {
                            m.retain(|&x| x != v);
                        }
                    }
                    Op::Touch(k, which) if !live.is_empty() => {
                        let (i, v) = live[k % live.len()];
                        l.touch(i, which);
                        for m in model.iter_mut() {
                            m.retain(|&x| x != v);
                        }
                        model[which].push(v);
                    }
                    _ => {}
                }
                prop_assert_eq!(list(&l, 0), model[0].clone());
                prop_assert_eq!(list(&l, 1), model[1].clone());
                prop_assert_eq!(l.len(), live.len());
            }
        }
    }
}
